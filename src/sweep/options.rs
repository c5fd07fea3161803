//! What a sweep is asked to run ([`SweepOptions`], with the adaptive strategy's follow-up
//! [`PointPlan`]) and what a finished one reports ([`SweepOutcome`], [`JudgeSummary`]).

use super::counts::{TierCounts, UsageByModel};
use crate::expand::{AxisFilter, Strategy};
use crate::progress::ModelProgress;
use crate::render::VariantAxes;
use crate::store::RunInfo;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// What to run.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Model names (config keys), in order.
    pub models: Vec<String>,
    /// Strategy.
    pub strategy: Strategy,
    /// Seed.
    pub seed: u64,
    /// Samples per variant.
    pub repeats: u32,
    /// Requests in flight across all models.
    pub concurrency: usize,
    /// Stop after this many model calls (cache hits are free).
    pub budget_requests: Option<u64>,
    /// Stop once this much has been spent.
    pub budget_usd: Option<f64>,
    /// Ignore the response cache (results are still written to it).
    pub no_cache: bool,
    /// Axis filter.
    pub axes: AxisFilter,
    /// Run id (new, or the run being resumed).
    pub run_id: String,
    /// True when resuming.
    pub resume: bool,
    /// Resuming with `--replan`: the run's probe list and planned count become the current
    /// probes' (stored cases are all kept).
    pub replan: bool,
    /// Follow-up points planned by the adaptive strategy: when set, each probe runs exactly
    /// these points (none for a probe it does not list) instead of its strategy's.
    pub points: Option<Arc<PointPlan>>,
    /// `--shard I/N`: plan only this slice of the run's cases, joining (or creating) the run
    /// `run_id` as one of its shards (see [`crate::shard`]). `None`: the whole run, unsharded.
    pub shard: Option<crate::shard::Slice>,
}

/// What a finished sweep reports.
#[derive(Debug)]
pub struct SweepOutcome {
    /// The run.
    pub run: RunInfo,
    /// Per-model counters.
    pub progress: Vec<(String, Arc<ModelProgress>)>,
    /// Per model × tier: pass, fail, error, ungraded.
    pub tiers: TierCounts,
    /// Tokens in/out and cost per model.
    pub usage: UsageByModel,
    /// Wall time.
    pub wall: Duration,
    /// Why it stopped early, if it did.
    pub stopped: Option<String>,
    /// Models stopped on their own (an endpoint answering every request with the same error,
    /// see [`super::SAME_ERROR_STOP`]), each with the message that says why and how to resume.
    pub halted: Vec<String>,
    /// What the judge did, when the suite has judge checks.
    pub judge: Option<JudgeSummary>,
}

/// The judge's share of a sweep, counted apart from the graded models' tokens and cost.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeSummary {
    /// The `[models.NAME]` that judged.
    pub model: String,
    /// Judge verdicts obtained (fresh or cached).
    pub verdicts: u64,
    /// Verdicts answered from the response cache.
    pub cached: u64,
    /// HTTP requests made to the judge (attempts, retries included).
    pub requests: u64,
    /// Judge checks that ended without a verdict (their cases are `error`).
    pub errors: u64,
    /// Judge input tokens.
    pub input_tokens: u64,
    /// Judge output tokens.
    pub output_tokens: u64,
    /// Judge cost in USD, when the judge model has prices.
    pub cost_usd: Option<f64>,
}

/// One point a sweep runs and how many samples of it the run holds once it is done (samples
/// already graded are kept, as on `--resume`: a point already run once and planned with three
/// samples costs two calls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPoint {
    /// The axis values.
    pub axes: VariantAxes,
    /// Samples `0..samples` of it, per model.
    pub samples: u32,
}

/// Follow-up points per probe: probe id → points.
pub type PointPlan = HashMap<String, Vec<PlannedPoint>>;
