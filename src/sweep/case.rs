//! One case to run and its record: the rendered variant its samples share ([`Prepared`]), the
//! [`Job`] a planner hands the dispatcher, and the graded [`CaseRecord`] built from an answer
//! or an error ([`graded_record`]).

use crate::chat::{ChatRequest, ChatResponse};
use crate::config::ModelConfig;
use crate::domain::Tier;
use crate::grade::check::Check;
use crate::grade::{self, CaseStatus};
use crate::store::{CaseRecord, now};
use std::sync::Arc;

/// A rendered variant shared by the jobs of its samples.
pub(super) struct Prepared {
    pub(super) variant_id: String,
    pub(super) tier: Tier,
    pub(super) checks: Arc<Vec<Check>>,
    pub(super) request: ChatRequest,
    pub(super) est_tokens: u64,
    /// Some check is a `judge` check.
    pub(super) has_judge: bool,
    /// `Some(canonical?)` for the variants of an invariant probe.
    pub(super) invariant: Option<bool>,
    /// For an episode probe: the variant's tool simulator (the case is a loop of model calls,
    /// see [`crate::episode`]).
    pub(super) episode: Option<Arc<crate::episode::Simulator>>,
}

/// One planned case of a model, for its dispatcher: a sample of a prepared variant, with what
/// the planner already knows (its cache key and wire body, a cached answer, an episode replayed
/// from the cache).
pub(super) struct Job {
    pub(super) variant: Arc<Prepared>,
    pub(super) sample: u32,
    pub(super) cache_key: String,
    /// The wire body, encoded once for the cache key and every attempt.
    pub(super) body: bytes::Bytes,
    /// The answer, already known (from the cache): only the judge is left to ask.
    pub(super) answered: Option<ChatResponse>,
    /// For an episode: its state, with the steps the response cache answered already replayed
    /// (a finished one waits only for the judge).
    pub(super) episode: Option<Box<crate::episode::EpisodeRun>>,
}

/// The prefix of a case error whose request does not fit the model's context window.
pub const CONTEXT_OVERFLOW: &str = "exceeds the model's context window";

#[allow(clippy::too_many_arguments)]
pub(super) fn graded_record(
    run_id: &str,
    model: &str,
    v: &Prepared,
    sample: u32,
    result: std::result::Result<ChatResponse, String>,
    latency_ms: u64,
    attempts: u32,
    cfg: &ModelConfig,
    cached: bool,
) -> CaseRecord {
    let finished = now();
    match result {
        Ok(resp) => {
            let (mut status, mut checks) = grade::grade(&v.checks, &resp);
            if let Some(canonical) = v.invariant {
                checks.push(if canonical {
                    crate::grade::invariant::reference()
                } else {
                    crate::grade::invariant::pending()
                });
                status = grade::fold_status(&checks);
            }
            CaseRecord {
                run_id: run_id.to_string(),
                model: model.to_string(),
                variant_id: v.variant_id.clone(),
                sample,
                status,
                output: resp.text.clone(),
                tool_calls: resp.tool_calls.clone(),
                checks,
                latency_ms,
                input_tokens: resp.usage.input_tokens,
                output_tokens: resp.usage.output_tokens,
                cost_usd: if cached {
                    Some(0.0).filter(|_| cfg.cost(0, 0).is_some())
                } else {
                    cfg.cost(resp.usage.input_tokens, resp.usage.output_tokens)
                },
                error: None,
                cached,
                attempts,
                finish_reason: resp.finish_reason.clone(),
                finished_at: finished,
                trajectory: None,
                stop_reason: None,
            }
        }
        Err(reason) => CaseRecord {
            run_id: run_id.to_string(),
            model: model.to_string(),
            variant_id: v.variant_id.clone(),
            sample,
            status: CaseStatus::Error,
            output: String::new(),
            tool_calls: vec![],
            checks: vec![],
            latency_ms,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: None,
            error: Some(reason),
            cached: false,
            attempts,
            finish_reason: None,
            finished_at: finished,
            trajectory: None,
            stop_reason: None,
        },
    }
}
