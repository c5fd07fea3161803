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
pub mod config;
pub mod domain;
pub mod episode;
pub mod error;
pub mod expand;
pub mod export;
pub mod grade;
pub mod incident;
pub mod limits;
pub mod mock;
pub mod model_check;
pub mod paraphrase;
pub mod plain_template;
pub mod probe;
pub mod progress;
pub mod project;
pub mod promote;
pub mod provider;
pub mod render;
pub mod replay;
pub mod report;
pub mod shard;
pub mod shrink;
pub mod store;
pub mod sweep;
pub mod template;
pub mod templatize;
pub mod term;
pub mod text;
pub mod tool_catalog;
pub mod tool_output;
pub mod trajectory;
pub mod view;

pub use error::{Error, Result};
