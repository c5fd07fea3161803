//! The judge step: `judge` checks graded by the configured judge model right after the answer
//! arrives ([`JudgeCtx`]), through the response cache and the sweep's retries and limits; a
//! judge without a verdict makes the case an `error`, never a pass.

use super::cache::cache_key;
use super::case::Prepared;
use super::concurrency::Slot;
use super::control::Control;
use super::model::ModelCtx;
use super::options::JudgeSummary;
use super::pacing::call_with_retries;
use super::writer::WriterMsg;
use crate::call::{Ask, Outcome as CallOutcome};
use crate::chat::{ChatRequest, ChatResponse};
use crate::config::{Config, JudgeConfig, ModelConfig, ProviderKind};
use crate::error::{Error, Result};
use crate::grade::check::Check;
use crate::grade::judge::{JudgeError, VerdictError};
use crate::grade::{self, CaseStatus};
use crate::probe::LoadedProbe;
use crate::progress::ModelProgress;
use crate::provider::Provider;
use crate::store::{CaseRecord, Store, WriteOp};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, mpsc};

/// The judge model while a sweep runs: its provider and limits (its own, even when the same
/// model is also swept), its prompt, the cache reader and its usage counters.
pub(super) struct JudgeCtx {
    pub(super) ctx: ModelCtx,
    prompt: Option<String>,
    /// Judge calls in flight.
    pub(super) permits: Semaphore,
    /// Reads the response cache (`None` with `--no-cache`); looked up on a blocking thread,
    /// never on the runtime's workers.
    pub(super) cache: Option<Arc<Mutex<Store>>>,
    pub(super) verdicts: AtomicU64,
    pub(super) cached: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) input_tokens: AtomicU64,
    pub(super) output_tokens: AtomicU64,
    pub(super) cost: Mutex<f64>,
}

/// How many judge replies are read before a reply without a verdict makes the case an error.
pub const JUDGE_REPLY_ATTEMPTS: u32 = 3;

/// Refuses (an input error naming the probe file and check) a suite with `judge` checks when
/// `cliffprobe.toml` has no `[judge]`: checked before any call is made.
pub fn check_judge(config: &Config, probes: &[LoadedProbe]) -> Result<()> {
    if config.judge.is_some() {
        return Ok(());
    }
    for lp in probes {
        if let Some(i) = lp
            .probe
            .checks
            .iter()
            .position(|c| matches!(c, Check::Judge(_)))
        {
            return Err(Error::field(
                &lp.path,
                format!("checks[{i}].judge"),
                "judge checks need a judge model: add a [judge] table to cliffprobe.toml naming one of the [models.NAME] tables (e.g. `[judge]` then `model = \"gpt\"`)",
            ));
        }
    }
    Ok(())
}

impl JudgeCtx {
    pub(super) fn new(
        cfg: &JudgeConfig,
        model: &ModelConfig,
        store_path: &str,
        no_cache: bool,
        control: Arc<Control>,
        run_id: &str,
    ) -> Result<JudgeCtx> {
        let provider = Provider::new(&cfg.model, model)?;
        let concurrency = cfg
            .concurrency
            .or(model.max_concurrency)
            .unwrap_or(8)
            .max(1);
        Ok(JudgeCtx {
            ctx: ModelCtx::new(
                &cfg.model,
                provider,
                concurrency,
                Arc::new(ModelProgress::default()),
                control,
                run_id,
            ),
            prompt: cfg.prompt.clone(),
            permits: Semaphore::new(concurrency),
            cache: if no_cache {
                None
            } else {
                Some(Arc::new(Mutex::new(Store::open_url(store_path)?)))
            },
            verdicts: AtomicU64::new(0),
            cached: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            input_tokens: AtomicU64::new(0),
            output_tokens: AtomicU64::new(0),
            cost: Mutex::new(0.0),
        })
    }

    pub(super) fn summary(&self) -> JudgeSummary {
        let cfg = self.ctx.provider.config();
        JudgeSummary {
            model: self.ctx.name.clone(),
            verdicts: self.verdicts.load(Ordering::Relaxed),
            cached: self.cached.load(Ordering::Relaxed),
            requests: self.ctx.progress.attempts.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            input_tokens: self.input_tokens.load(Ordering::Relaxed),
            output_tokens: self.output_tokens.load(Ordering::Relaxed),
            cost_usd: cfg
                .cost(0, 0)
                .map(|_| *self.cost.lock().expect("judge cost")),
        }
    }
}

/// Grades the `judge` checks of one answer: one judge request per judge check (see
/// [`crate::grade::judge::judge_request`]), answered from the response cache when it can (key: the
/// judge's provider, endpoint, model id and the encoded judge request), else called with the
/// sweep's retries and 429 handling. A reply without a verdict is asked again, up to
/// [`JUDGE_REPLY_ATTEMPTS`] replies. Returns each judge check's index and verdict, or why no
/// verdict could be had; the caller makes that case an `error`.
pub(super) async fn judge_checks(
    judge: &JudgeCtx,
    v: &Prepared,
    answer: &ChatResponse,
    writer: &mpsc::Sender<WriterMsg>,
    spent: &Mutex<f64>,
) -> std::result::Result<Vec<(usize, grade::CheckVerdict)>, JudgeError> {
    let mut out = Vec::new();
    for (i, check) in v.checks.iter().enumerate() {
        let Check::Judge(j) = check else { continue };
        let req = crate::grade::judge::judge_request(
            judge.prompt.as_deref(),
            &j.rubric,
            &v.request,
            answer,
        );
        let verdict = judge_one(judge, &req, writer, spent).await;
        match verdict {
            Ok(jv) => {
                judge.verdicts.fetch_add(1, Ordering::Relaxed);
                out.push((
                    i,
                    grade::CheckVerdict {
                        check: check.kind().to_string(),
                        passed: Some(jv.passed),
                        reason: jv.reason,
                    },
                ));
            }
            Err(e) => {
                judge.errors.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        }
    }
    Ok(out)
}

/// One judge verdict for one judge request: from the response cache, else asked (the mock at
/// once), a reply without a verdict asked again up to [`JUDGE_REPLY_ATTEMPTS`] replies.
async fn judge_one(
    judge: &JudgeCtx,
    req: &ChatRequest,
    writer: &mpsc::Sender<WriterMsg>,
    spent: &Mutex<f64>,
) -> std::result::Result<crate::grade::judge::JudgeVerdict, JudgeError> {
    let provider = &judge.ctx.provider;
    let account = |r: &ChatResponse| {
        judge
            .input_tokens
            .fetch_add(r.usage.input_tokens, Ordering::Relaxed);
        judge
            .output_tokens
            .fetch_add(r.usage.output_tokens, Ordering::Relaxed);
        if let Some(c) = provider
            .config()
            .cost(r.usage.input_tokens, r.usage.output_tokens)
        {
            *judge.cost.lock().expect("judge cost") += c;
            *spent.lock().expect("spent") += c;
        }
    };
    if provider.kind() == ProviderKind::Mock {
        let r = crate::call::attempt(provider, &bytes::Bytes::new(), req, Ask::Judge)
            .await
            .map_err(|e| JudgeError::Call(e.to_string()))?;
        account(&r);
        return crate::grade::judge::parse_verdict(&r.text).map_err(JudgeError::Unreadable);
    }
    let body = provider.encode(req);
    let key = cache_key(provider, &body, 0);
    if let Some(cache) = &judge.cache {
        // A SQLite read (and the lock around it) blocks: off the async workers, which run
        // every model's requests.
        let (cache, k) = (cache.clone(), key.clone());
        let hit = tokio::task::spawn_blocking(move || {
            cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .cache_get(&k)
        })
        .await
        .map_err(|e| JudgeError::Cache(e.to_string()))?;
        if let Ok(Some(r)) = hit
            && let Ok(v) = crate::grade::judge::parse_verdict(&r.text)
        {
            judge.cached.fetch_add(1, Ordering::Relaxed);
            return Ok(v);
        }
    }
    let Ok(_permit) = judge.permits.acquire().await else {
        return Err(JudgeError::Stopped("the sweep is shutting down".into()));
    };
    let est_tokens = req
        .messages
        .iter()
        .map(|m| m.content_str().len())
        .sum::<usize>() as u64
        / 4
        + 1;
    // Replaced by the first reply without a verdict.
    let mut last = VerdictError::Missing {
        excerpt: String::new(),
    };
    for _ in 0..JUDGE_REPLY_ATTEMPTS {
        let mut slot = Slot::acquire(&judge.ctx.adaptive).await;
        let called = call_with_retries(
            &judge.ctx,
            &mut slot,
            None,
            &body,
            req,
            Ask::Judge,
            est_tokens,
        )
        .await;
        drop(slot);
        let r = match called.outcome {
            CallOutcome::Answer(r) => r,
            CallOutcome::Error(e) => return Err(JudgeError::Call(e)),
            CallOutcome::Abandoned => {
                return Err(JudgeError::Stopped(
                    judge
                        .ctx
                        .halt_reason()
                        .unwrap_or_else(|| "the sweep is stopping".into()),
                ));
            }
        };
        account(&r);
        match crate::grade::judge::parse_verdict(&r.text) {
            Ok(v) => {
                let op = WriteOp::Cache { key, response: r };
                let _ = writer.send(WriterMsg::Op(Box::new(op))).await;
                return Ok(v);
            }
            Err(e) => last = e,
        }
    }
    Err(JudgeError::NoVerdict {
        last,
        replies: JUDGE_REPLY_ATTEMPTS,
    })
}

/// Puts the judge's verdicts (or its failure) into a graded case.
pub(super) fn apply_judge(
    rec: &mut CaseRecord,
    judged: std::result::Result<Vec<(usize, grade::CheckVerdict)>, JudgeError>,
) {
    match judged {
        Ok(verdicts) => {
            for (i, v) in verdicts {
                if let Some(slot) = rec.checks.get_mut(i) {
                    *slot = v;
                }
            }
            rec.status = grade::fold_status(&rec.checks);
        }
        Err(reason) => {
            // The answer arrived and is kept, but the case could not be graded: an error,
            // outside every rate, retried by a resume.
            rec.status = CaseStatus::Error;
            rec.checks.clear();
            rec.error = Some(reason.to_string());
        }
    }
}
