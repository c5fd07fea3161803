//! The dispatcher: one async task per model takes the planners' jobs and runs each case
//! within the model's limits and the sweep's global concurrency and budgets, then hands it to
//! the writer (through the judge when the probe has judge checks).

use super::case::{Job, Prepared, graded_record};
use super::concurrency::Slot;
use super::control::{Control, panic_message};
use super::episode::{drive_episode, episode_case};
use super::judge::{JudgeCtx, apply_judge, judge_checks};
use super::model::ModelCtx;
use super::pacing::call_with_retries;
use super::queue::JobReceiver;
use super::writer::{Outcome, WriterMsg};
use crate::call::{Ask, Outcome as CallOutcome};
use crate::chat::ChatResponse;
use crate::config::{ModelConfig, ProviderKind};
use crate::grade::CaseStatus;
use crate::store::{CaseRecord, WriteOp};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{Semaphore, mpsc};

/// What a model's dispatcher and its case tasks share: the model and its judge, where results
/// go, and the sweep's global concurrency, stop signal and money budget. Each case task holds
/// one `Arc` of it.
pub(super) struct Dispatcher {
    /// The model whose jobs these are.
    pub(super) model: Arc<ModelCtx>,
    /// The judge, when the suite has judge checks.
    pub(super) judge: Option<Arc<JudgeCtx>>,
    /// The model's configuration (prices, for the case records).
    pub(super) cfg: ModelConfig,
    /// `--concurrency`: a permit held only around one HTTP request.
    pub(super) global: Arc<Semaphore>,
    pub(super) writer: mpsc::Sender<WriterMsg>,
    pub(super) control: Arc<Control>,
    /// Spent so far across every model and the judge, in USD.
    pub(super) spent: Arc<Mutex<f64>>,
    /// `--budget-usd`.
    pub(super) budget_usd: Option<f64>,
    pub(super) run_id: String,
}

/// What the dispatcher does next after a case it ran inline (the mock's).
enum Next {
    Go,
    /// The writer is gone: the sweep is over.
    WriterGone,
}

impl Dispatcher {
    /// Takes the model's jobs until the planners are done, running each case within the
    /// model's limits (a task per case that calls the model or waits for the judge; the mock's
    /// answer inline), then waits for the tasks in flight.
    pub(super) async fn run(self: Arc<Self>, mut jobs: JobReceiver) {
        let mut tasks = tokio::task::JoinSet::new();
        let ctx = &self.model;
        let control = &self.control;
        let is_mock = ctx.provider.kind() == ProviderKind::Mock;
        // A task that panicked gave back what it held (its guards dropped while unwinding); the
        // sweep stops, and the run is recorded as failed naming the cause.
        let reap = |r: std::result::Result<(), tokio::task::JoinError>| {
            if let Err(e) = r
                && e.is_panic()
            {
                control.fail_with(format!(
                    "internal error: a request of model `{}` panicked: {}",
                    ctx.name,
                    panic_message(&*e.into_panic())
                ));
            }
        };
        while let Some(job) = jobs.recv().await {
            if control.stopped() || ctx.is_halted() {
                // Drain so the planner unblocks; these cases stay unplanned-for and resumable.
                continue;
            }
            // The judge, when this answer needs one (a suite with judge checks always has one).
            let judged = self.judge.is_some() && job.variant.has_judge;
            let episode_done = job.episode.as_ref().is_some_and(|e| e.is_finished());
            if job.answered.is_none()
                && !episode_done
                && let Some(limit) = self.budget_usd
                && *self.spent.lock().unwrap_or_else(|p| p.into_inner()) >= limit
            {
                control.stop_with(|| format!("budget of ${limit:.2} reached"));
                continue;
            }
            if is_mock && !judged {
                // The mock answers at once: no permits, no spawn.
                let next = if job.episode.is_some() {
                    self.mock_episode(job).await
                } else {
                    self.mock_answer(job).await
                };
                match next {
                    Next::Go => continue,
                    Next::WriterGone => break,
                }
            }
            // A model call takes one of the model's slots here (which bounds the tasks in
            // flight), and a global permit only around each HTTP request; a cached answer or
            // the mock (waiting only for the judge) takes neither.
            let calls_model = job.answered.is_none() && !is_mock && !episode_done;
            if calls_model {
                ctx.adaptive.acquire().await;
            }
            tasks.spawn(self.clone().case(job, calls_model, judged, is_mock));
            while let Some(r) = tasks.try_join_next() {
                reap(r);
            }
        }
        while let Some(r) = tasks.join_next().await {
            reap(r);
        }
    }

    /// An episode the mock plays at once.
    async fn mock_episode(&self, mut job: Job) -> Next {
        let ctx = &self.model;
        let run = job.episode.take().expect("an episode job");
        let Some((run, attempts)) = drive_episode(
            ctx,
            None,
            &self.global,
            *run,
            &job.variant.checks,
            job.sample,
            &self.writer,
            true,
        )
        .await
        else {
            return Next::Go;
        };
        let rec = episode_case(
            &self.run_id,
            &ctx.name,
            &job.variant,
            job.sample,
            &run,
            0,
            attempts,
            &self.cfg,
        );
        self.hand_over(rec, &job).await
    }

    /// A single-turn case the mock answers at once.
    async fn mock_answer(&self, job: Job) -> Next {
        let (ctx, control) = (&self.model, &self.control);
        if let Some(limit) = control.budget_requests
            && control.requests.fetch_add(1, Ordering::SeqCst) >= limit
        {
            control.stop_with(|| format!("budget of {limit} requests reached"));
            return Next::Go;
        }
        let resp = crate::call::attempt(
            &ctx.provider,
            &bytes::Bytes::new(),
            &job.variant.request,
            Ask::Answer {
                checks: &job.variant.checks,
                sample: job.sample,
            },
        )
        .await;
        ctx.progress.model_calls.fetch_add(1, Ordering::Relaxed);
        let rec = graded_record(
            &self.run_id,
            &ctx.name,
            &job.variant,
            job.sample,
            resp.map_err(|e| e.to_string()),
            0,
            1,
            &self.cfg,
            false,
        );
        self.hand_over(rec, &job).await
    }

    /// A case with no judge to ask, straight to the writer.
    async fn hand_over(&self, record: CaseRecord, job: &Job) -> Next {
        let sent = self
            .writer
            .send(WriterMsg::Case(Box::new(Outcome {
                record,
                tier: job.variant.tier,
                cache: None,
            })))
            .await;
        if sent.is_err() {
            Next::WriterGone
        } else {
            Next::Go
        }
    }

    /// One case's task: the model called (holding the slot the dispatcher took when
    /// `calls_model`), or an episode driven on, or a cached answer, then graded, judged when
    /// `judged`, and handed to the writer.
    async fn case(self: Arc<Self>, mut job: Job, calls_model: bool, judged: bool, is_mock: bool) {
        let ctx = &*self.model;
        let judge = self.judge.as_deref().filter(|_| judged);
        let mut slot = calls_model.then(|| Slot::taken(&ctx.adaptive));
        let started = Instant::now();
        if let Some(run) = job.episode.take() {
            let Some((run, attempts)) = drive_episode(
                ctx,
                slot.as_mut(),
                &self.global,
                *run,
                &job.variant.checks,
                job.sample,
                &self.writer,
                is_mock,
            )
            .await
            else {
                return;
            };
            drop(slot);
            let latency = started.elapsed().as_millis() as u64;
            let rec = episode_case(
                &self.run_id,
                &ctx.name,
                &job.variant,
                job.sample,
                &run,
                latency,
                attempts,
                &self.cfg,
            );
            let view = run.judge_view();
            self.finish_case(judge, &job.variant, rec, None, view).await;
            return;
        }
        let cached = job.answered.is_some();
        let (result, attempts) = if let Some(r) = job.answered.take() {
            (Ok(r), 0)
        } else if is_mock {
            let r = crate::call::attempt(
                &ctx.provider,
                &bytes::Bytes::new(),
                &job.variant.request,
                Ask::Answer {
                    checks: &job.variant.checks,
                    sample: job.sample,
                },
            )
            .await;
            (r.map_err(|e| e.to_string()), 1)
        } else if let Some(slot) = slot.as_mut() {
            let called = call_with_retries(
                ctx,
                slot,
                Some(&self.global),
                &job.body,
                &job.variant.request,
                Ask::Answer {
                    checks: &job.variant.checks,
                    sample: job.sample,
                },
                job.variant.est_tokens,
            )
            .await;
            match called.outcome {
                CallOutcome::Answer(r) => (Ok(r), called.attempts),
                CallOutcome::Error(e) => (Err(e), called.attempts),
                CallOutcome::Abandoned => return,
            }
        } else {
            unreachable!("a model call always holds a slot")
        };
        drop(slot);
        let latency = started.elapsed().as_millis() as u64;
        let cache = result
            .as_ref()
            .ok()
            .filter(|_| calls_model)
            .map(|r| (job.cache_key.clone(), r.clone()));
        let rec = graded_record(
            &self.run_id,
            &ctx.name,
            &job.variant,
            job.sample,
            result,
            latency,
            attempts,
            &self.cfg,
            cached,
        );
        if rec.status != CaseStatus::Error && (calls_model || is_mock) {
            ctx.progress.model_calls.fetch_add(1, Ordering::Relaxed);
        }
        let view = ChatResponse {
            text: rec.output.clone(),
            tool_calls: rec.tool_calls.clone(),
            ..Default::default()
        };
        self.finish_case(judge, &job.variant, rec, cache, view)
            .await;
    }

    /// The end of a case: its cost counted, the judge asked (seeing `view`: the answer, or an
    /// episode's whole trajectory) when the probe has judge checks, the case (and the fresh
    /// answer to cache) handed to the writer. A judge cut short by the sweep stopping (budget,
    /// Ctrl-C, failure) leaves the case unstored: a resume grades it, with its answer from the
    /// cache.
    async fn finish_case(
        &self,
        judge: Option<&JudgeCtx>,
        variant: &Prepared,
        mut rec: CaseRecord,
        cache: Option<(String, ChatResponse)>,
        view: ChatResponse,
    ) {
        let (writer, spent) = (&self.writer, &*self.spent);
        if let Some(c) = rec.cost_usd {
            *spent.lock().unwrap_or_else(|p| p.into_inner()) += c;
        }
        if let Some(judge) = judge
            && rec.status != CaseStatus::Error
        {
            let judged = judge_checks(judge, variant, &view, writer, spent).await;
            if judged.is_err() && self.model.control.stopped() {
                if let Some((key, response)) = cache {
                    let op = WriteOp::Cache { key, response };
                    let _ = writer.send(WriterMsg::Op(Box::new(op))).await;
                }
                return;
            }
            apply_judge(&mut rec, judged);
        }
        let _ = writer
            .send(WriterMsg::Case(Box::new(Outcome {
                record: rec,
                tier: variant.tier,
                cache,
            })))
            .await;
    }
}
