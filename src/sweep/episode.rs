//! Driving an episode probe's case in the sweep: each step one model call through the sweep's
//! retries and limits, its answer cached as it arrives ([`drive_episode`]), and the case record
//! of the finished episode ([`episode_case`]).

use super::cache::cache_key;
use super::case::Prepared;
use super::concurrency::Slot;
use super::model::ModelCtx;
use super::pacing::call_with_retries;
use super::writer::WriterMsg;
use crate::call::{Ask, Outcome as CallOutcome};
use crate::config::ModelConfig;
use crate::grade::check::Check;
use crate::store::{CaseRecord, WriteOp, now};
use std::sync::atomic::Ordering;
use tokio::sync::{Semaphore, mpsc};

/// Runs an episode on from where the planner left it (after the steps the cache answered):
/// each step is one model call through [`call_with_retries`] (the same retries, limits and
/// slot as a single-turn case; `slot` is `None` only for the mock), its answer cached as it
/// arrives (a resume replays it without HTTP), its tool calls answered by the simulator. A step
/// without an answer makes the episode an `error` (`step N: …`). Returns the finished episode
/// and the HTTP attempts made, or `None` when the sweep or the model stopped meanwhile (the case
/// is not written; a resume plans it again).
#[allow(clippy::too_many_arguments)]
pub(super) async fn drive_episode(
    ctx: &ModelCtx,
    mut slot: Option<&mut Slot<'_>>,
    global: &Semaphore,
    mut run: crate::episode::EpisodeRun,
    checks: &[Check],
    sample: u32,
    writer: &mpsc::Sender<WriterMsg>,
    is_mock: bool,
) -> Option<(crate::episode::EpisodeRun, u32)> {
    let mut attempts = 0u32;
    while let Some(req) = run.next_request() {
        let req = req.clone();
        let step = run.trajectory().steps.len() + 1;
        if is_mock {
            if ctx.control.stopped() || ctx.is_halted() {
                return None;
            }
            if let Some(limit) = ctx.control.budget_requests
                && ctx.control.requests.fetch_add(1, Ordering::SeqCst) >= limit
            {
                ctx.control
                    .stop_with(|| format!("budget of {limit} requests reached"));
                return None;
            }
            attempts += 1;
            let ask = Ask::AgentStep { checks, sample };
            match crate::call::attempt(&ctx.provider, &bytes::Bytes::new(), &req, ask).await {
                Ok(r) => {
                    ctx.progress.model_calls.fetch_add(1, Ordering::Relaxed);
                    run.feed(r, false);
                }
                Err(e) => run.fail(format!("step {step}: {e}")),
            }
            continue;
        }
        let slot = slot.as_deref_mut()?;
        let body = ctx.provider.encode(&req);
        let chars: usize = req.messages.iter().map(|m| m.content_str().len()).sum();
        let called = call_with_retries(
            ctx,
            slot,
            Some(global),
            &body,
            &req,
            Ask::AgentStep { checks, sample },
            (chars / 4) as u64 + 1,
        )
        .await;
        attempts += called.attempts;
        match called.outcome {
            CallOutcome::Answer(r) => {
                ctx.progress.model_calls.fetch_add(1, Ordering::Relaxed);
                let op = WriteOp::Cache {
                    key: cache_key(&ctx.provider, &body, sample),
                    response: r.clone(),
                };
                if writer.send(WriterMsg::Op(Box::new(op))).await.is_err() {
                    return None;
                }
                run.feed(r, false);
            }
            CallOutcome::Error(e) => run.fail(format!("step {step}: {e}")),
            CallOutcome::Abandoned => return None,
        }
    }
    Some((run, attempts))
}

/// The case of a finished episode (see [`crate::episode::record::case_record`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn episode_case(
    run_id: &str,
    model: &str,
    v: &Prepared,
    sample: u32,
    run: &crate::episode::EpisodeRun,
    latency_ms: u64,
    attempts: u32,
    cfg: &ModelConfig,
) -> CaseRecord {
    crate::episode::record::case_record(
        crate::episode::record::CaseKey {
            run_id,
            model,
            variant_id: &v.variant_id,
            sample,
        },
        &v.checks,
        v.invariant,
        run,
        latency_ms,
        attempts,
        cfg,
        now(),
    )
}
