//! The store's domain types: what a run, a probe version, a variant and a case look like once
//! recorded.
//!
//! These are plain data in the vocabulary of DESIGN.md, with no database types in them, so the
//! sweep, the analysis and the report depend on *what* is stored and never on *how*: a second
//! backend (PostgreSQL) can return the same values.

use crate::chat::{ChatResponse, ToolCall};
use crate::domain::Tier;
use crate::grade::{CaseStatus, CheckVerdict};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// Where a run stands.
///
/// A run is `running` from [`Store::begin_run`](super::Store::begin_run) until the sweep calls
/// [`Store::finish_run`](super::Store::finish_run). A run that is still `running` while nothing
/// holds the sweep lock was killed; `resume` picks it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// The sweep is (or was, if it was killed) still writing cases.
    Running,
    /// Every planned case has a result.
    Complete,
    /// The sweep ended with some planned cases missing (budget, limit, …); the run's note says why.
    Partial,
    /// The sweep was stopped (Ctrl-C, signal); it can be resumed.
    Interrupted,
    /// The sweep could not go on (the store could not be written, an internal error); the
    /// run's note says why. What was stored is kept and it can be resumed.
    Failed,
}

impl RunStatus {
    /// The lowercase name, as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Complete => "complete",
            RunStatus::Partial => "partial",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Failed => "failed",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "running" => RunStatus::Running,
            "complete" => RunStatus::Complete,
            "partial" => RunStatus::Partial,
            "interrupted" => RunStatus::Interrupted,
            "failed" => RunStatus::Failed,
            _ => return None,
        })
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One sweep, as recorded: enough to reproduce it (models, probes, strategy, seed, config
/// digest) and to tell whether it finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Run id, e.g. `r-20261121-230501-ab12`; chosen by the caller.
    pub id: String,
    /// When the sweep started, RFC 3339.
    pub started_at: String,
    /// When it ended, RFC 3339; `None` while running (or when it was killed).
    pub finished_at: Option<String>,
    /// Where the run stands.
    pub status: RunStatus,
    /// Model names (as in `cliffprobe.toml`), in panel order.
    pub models: Vec<String>,
    /// Model name → the pinned model id and provider it ran as (e.g. `openai:gpt-4.1-2025-04-14`).
    pub model_ids: IndexMap<String, String>,
    /// Probe ids swept.
    pub probes: Vec<String>,
    /// Expansion strategy (`full`, `pairwise`, `sample`, `one-at-a-time`).
    pub strategy: String,
    /// The seed everything random was drawn from. Stored as a 64-bit signed integer (bit-cast),
    /// so every `u64` round-trips.
    pub seed: u64,
    /// Samples per variant.
    pub repeats: u32,
    /// Digest of the configuration that shaped the run; a resume refuses a different one.
    pub config_digest: String,
    /// Number of cases the run planned (models × variants × repeats).
    pub planned: u64,
    /// Free text, e.g. why the run is partial.
    pub note: Option<String>,
    /// The cliffprobe version that ran it.
    pub version: String,
    /// The `--axes` filter the run was planned with (`persona,format=xml|csv`; empty when every
    /// axis varied); `None` for runs recorded before schema version 3, which did not say. A
    /// resume expands the same plan with it.
    #[serde(default, skip_serializing_if = "no_axes_filter")]
    pub axes: Option<String>,
    /// Probe id → the content digest the run planned it from; `None` for runs recorded before
    /// schema version 6. A resume compares it with the suite, so a probe edited before any of
    /// its cases was stored is noticed too.
    #[serde(skip)]
    pub probe_digests: Option<IndexMap<String, String>>,
}

fn no_axes_filter(axes: &Option<String>) -> bool {
    axes.as_deref().is_none_or(str::is_empty)
}

/// One content version of a probe family. A probe edited between runs gets a new digest, so
/// old runs keep pointing at the version they actually ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRecord {
    /// Probe id.
    pub id: String,
    /// Digest of the probe file's content.
    pub digest: String,
    /// Capability class.
    pub capability: String,
    /// Declared tier.
    pub tier: Tier,
    /// The probe file, relative to the project root.
    pub path: String,
}

/// One variant of a probe version. Its id is a content hash, so the same variant has the same id
/// in every run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantRecord {
    /// Variant id.
    pub id: String,
    /// The probe it belongs to.
    pub probe_id: String,
    /// The probe version it was expanded from.
    pub probe_digest: String,
    /// True for the variant that reproduces the incident unchanged.
    pub canonical: bool,
    /// Axis → value (`persona → terse-expert`, …), in axis order.
    pub axes: IndexMap<String, String>,
}

/// One case: one sample of one variant run against one model in one run.
///
/// `(run_id, model, variant_id, sample)` is its key: writing a case with the same key again
/// replaces the earlier one, so a resumed or retried run never double-counts.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRecord {
    /// The run.
    pub run_id: String,
    /// Model name (as in `cliffprobe.toml`).
    pub model: String,
    /// The variant.
    pub variant_id: String,
    /// Sample number, 0-based, below the run's `repeats`.
    pub sample: u32,
    /// Outcome.
    pub status: CaseStatus,
    /// The model's text answer ("" on error or tool-only answers).
    pub output: String,
    /// Tool calls in the answer.
    pub tool_calls: Vec<ToolCall>,
    /// Verdict of each check, in check order (empty on error).
    pub checks: Vec<CheckVerdict>,
    /// Wall time of the successful attempt (or of the last failed one), in milliseconds.
    pub latency_ms: u64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Cost in US dollars, when the model has prices configured.
    pub cost_usd: Option<f64>,
    /// What went wrong, for `error` cases.
    pub error: Option<String>,
    /// True when the answer came from the response cache.
    pub cached: bool,
    /// Requests made (1 + retries).
    pub attempts: u32,
    /// Why generation stopped, as the endpoint said.
    pub finish_reason: Option<String>,
    /// When the case finished, RFC 3339.
    pub finished_at: String,
    /// For a case of an episode: every step (`output` is the final answer, `tool_calls` every
    /// call of the episode, tokens and cost summed over the steps). `None` for single-turn
    /// cases.
    pub trajectory: Option<crate::trajectory::Trajectory>,
    /// For a case of an episode: why it stopped.
    pub stop_reason: Option<crate::trajectory::StopReason>,
}

/// A case with what the report needs about its variant and probe, as
/// [`Store::for_each_case`](super::Store::for_each_case) yields it.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRow {
    /// The case itself.
    pub case: CaseRecord,
    /// The probe the variant belongs to.
    pub probe_id: String,
    /// The probe's capability class (of the version that ran).
    pub capability: String,
    /// The probe's declared tier (of the version that ran).
    pub tier: Tier,
    /// True for the canonical variant.
    pub canonical: bool,
    /// Axis → value of the variant.
    pub axes: IndexMap<String, String>,
}

/// One write in a [`Store::write_batch`](super::Store::write_batch).
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// Record a probe version (ignored when that `(id, digest)` is already stored).
    Probe(ProbeRecord),
    /// Record a variant (ignored when that id is already stored).
    Variant(VariantRecord),
    /// Record a case (replaces a case with the same key).
    Case(CaseRecord),
    /// Record a response in the cache (replaces an entry with the same key).
    Cache {
        /// Cache key (a digest of model id + request; never contains an API key).
        key: String,
        /// The response.
        response: ChatResponse,
    },
}

/// New grades for one stored case, for [`Store::regrade_cases`](super::Store::regrade_cases).
#[derive(Debug, Clone, PartialEq)]
pub struct Regrade {
    /// The run.
    pub run_id: String,
    /// Model name.
    pub model: String,
    /// The variant.
    pub variant_id: String,
    /// Sample number.
    pub sample: u32,
    /// The new status.
    pub status: CaseStatus,
    /// The new verdicts, in check order.
    pub checks: Vec<CheckVerdict>,
}

/// Axis → value of a variant, shared: the variants of a run have few distinct axis maps, so a
/// brief walk ([`Store::for_each_case_brief`](super::Store::for_each_case_brief)) parses each
/// one once and hands out clones of one `Arc`.
pub type SharedAxes = std::sync::Arc<IndexMap<String, String>>;

/// A case as the counting analyses (brittleness, measured tiers, the report's rates and flips)
/// need it: status and where it belongs, without the output, tool calls and check verdicts,
/// which are not even read from the store. Borrowed from the row being walked.
#[derive(Debug, Clone, Copy)]
pub struct CaseBrief<'r> {
    /// Model name (as in `cliffprobe.toml`).
    pub model: &'r str,
    /// The variant.
    pub variant_id: &'r str,
    /// Sample number, 0-based.
    pub sample: u32,
    /// Outcome.
    pub status: CaseStatus,
    /// The probe the variant belongs to.
    pub probe_id: &'r str,
    /// The probe's capability class (of the version that ran).
    pub capability: &'r str,
    /// The probe's declared tier (of the version that ran).
    pub tier: Tier,
    /// True for the canonical variant.
    pub canonical: bool,
    /// Axis → value of the variant.
    pub axes: &'r SharedAxes,
}
