//! cliffprobe: turn LLM production incidents into families of variants, sweep them against
//! models, grade them, and report pass rates per difficulty tier and capability class.
//!
//! The modules follow the pipeline (see ARCHITECTURE.md): [`incident`] → [`templatize`] →
//! [`probe`] → [`axes`] / [`render`] / [`expand`] → `provider` → `sweep` → [`grade`] → `store`.

#![forbid(unsafe_code)]

pub mod adaptive;
pub mod analysis;
pub mod axes;
pub mod brittleness;
pub mod call;
pub mod chat;
pub mod check;
pub mod cli;
pub mod cli_brittle;
pub mod cli_models;
pub mod cli_paraphrase;
pub mod cli_replay;
pub mod cli_report;
pub mod cli_shrink;
pub mod cli_store;
pub mod cli_sweep;
pub mod cli_tiers;
pub mod cli_unlock;
pub mod cli_view;
pub mod config;
pub mod episode;
pub mod error;
pub mod expand;
pub mod export;
pub mod grade;
pub mod incident;
pub mod invariant;
pub mod judge;
pub mod limits;
pub mod mock;
pub mod model_check;
pub mod paraphrase;
pub mod plain_template;
pub mod probe;
pub mod progress;
pub mod promote;
pub mod provider;
pub mod records;
pub mod render;
pub mod replay;
pub mod report;
pub mod shard;
pub mod shrink;
pub mod store;
pub mod sweep;
pub mod templatize;
pub mod term;
pub mod tool_catalog;
pub mod view;

pub use error::{Error, Result};
