//! A finished episode as a stored case: the status from [`crate::trajectory::grade`] (or `error`),
//! the final answer as the case's output, every call of the episode as its tool calls, tokens
//! summed over the steps, cost over the steps answered over HTTP, the trajectory and the stop
//! reason.

use super::run::EpisodeRun;
use crate::config::ModelConfig;
use crate::grade::check::Check;
use crate::grade::{self, CaseStatus};
use crate::store::CaseRecord;
use crate::trajectory::StopReason;

/// Where a case belongs and how it was run, for [`case_record`].
pub struct CaseKey<'a> {
    /// The run.
    pub run_id: &'a str,
    /// The model name.
    pub model: &'a str,
    /// The variant.
    pub variant_id: &'a str,
    /// The sample.
    pub sample: u32,
}

/// The case of a finished episode. `invariant`: `Some(canonical?)` for a variant of an
/// invariant probe (graded later against the canonical answer, as single-turn cases are).
#[allow(clippy::too_many_arguments)]
pub fn case_record(
    key: CaseKey<'_>,
    checks: &[Check],
    invariant: Option<bool>,
    run: &EpisodeRun,
    latency_ms: u64,
    attempts: u32,
    cfg: &ModelConfig,
    finished_at: String,
) -> CaseRecord {
    let trajectory = run.trajectory().clone();
    let stop = run.stop().cloned().unwrap_or(crate::trajectory::Stop {
        reason: StopReason::Error,
        detail: "the episode did not finish".into(),
    });
    let answer = run.final_response();
    let (fresh_in, fresh_out) = trajectory
        .steps
        .iter()
        .filter(|s| !s.cached)
        .fold((0, 0), |(i, o), s| {
            (i + s.input_tokens, o + s.output_tokens)
        });
    let all_cached = !trajectory.steps.is_empty() && trajectory.steps.iter().all(|s| s.cached);
    let cost_usd = if all_cached {
        Some(0.0).filter(|_| cfg.cost(0, 0).is_some())
    } else {
        cfg.cost(fresh_in, fresh_out)
    };
    let (status, verdicts, error) = if stop.reason == StopReason::Error {
        (CaseStatus::Error, Vec::new(), Some(stop.detail.clone()))
    } else {
        let (mut status, mut verdicts) = crate::trajectory::grade(checks, &trajectory, &stop);
        if let Some(canonical) = invariant {
            verdicts.push(if canonical {
                crate::grade::invariant::reference()
            } else {
                crate::grade::invariant::pending()
            });
            status = grade::fold_status(&verdicts);
        }
        (status, verdicts, None)
    };
    CaseRecord {
        run_id: key.run_id.to_string(),
        model: key.model.to_string(),
        variant_id: key.variant_id.to_string(),
        sample: key.sample,
        status,
        output: answer.text,
        tool_calls: answer.tool_calls,
        checks: verdicts,
        latency_ms,
        input_tokens: answer.usage.input_tokens,
        output_tokens: answer.usage.output_tokens,
        cost_usd,
        error,
        cached: all_cached,
        attempts,
        finish_reason: answer.finish_reason,
        finished_at,
        trajectory: Some(trajectory),
        stop_reason: Some(stop.reason),
    }
}
