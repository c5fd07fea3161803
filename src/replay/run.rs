//! Running a replay: records stream from the logs to the candidate and into the store.
//!
//! Shape: a *reader* thread walks the logs ([`super::log::read_logs`]), skips records a
//! resumed replay already stored, reads each record's class and logged decision, answers from
//! the response cache where it can, and hands the rest to the async *dispatcher*, which calls
//! the model with the sweep's pieces: the model's rpm and tpm buckets, a concurrency limit,
//! and the one call path, [`crate::call::with_retries`] (429s waited out as the server says, transient faults
//! backed off). One *writer* thread commits records, unreadable lines and fresh cache entries
//! in batched transactions ([`Store::write_replay`]). Memory stays flat: the reader is at most
//! a bounded queue ahead of the calls, and the reader's only growing state is the noise
//! sample (`--noise K` records).
//!
//! Invariants: exactly one stored record per logged record (keyed by its position in the
//! logs; see the store's `replay` module); an error is never a flip; a cached re-run makes no
//! HTTP call; API keys never reach the store.

use super::ClassRule;
use super::decision::{DecisionRule, NO_DECISION};
use super::log::{Flow, LogFormat, LogItem, LoggedCall, read_logs};
use crate::call::{Ask, RetryPolicy, Unpaced};
use crate::chat::{ChatRequest, ChatResponse};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::provider::Provider;
use crate::store::now;
use crate::store::{ReplayKind, ReplayOutcome, ReplayRecord, ReplayWrite, Store};
use crate::sweep::{Bucket, cache_key};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to replay and how.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The replay id (new, or the one resumed).
    pub id: String,
    /// Resuming `id`: stored records are skipped.
    pub resume: bool,
    /// The candidate (`[models.NAME]`).
    pub model: String,
    /// The logs, in order.
    pub logs: Vec<PathBuf>,
    /// Their format.
    pub format: LogFormat,
    /// The decision rule.
    pub rule: DecisionRule,
    /// How records get their class.
    pub classes: ClassRule,
    /// Requests in flight (capped by the model's `max_concurrency`).
    pub concurrency: usize,
    /// Stop after this many HTTP requests (cache hits are free).
    pub budget_requests: Option<u64>,
    /// Stop once this many dollars are spent.
    pub budget_usd: Option<f64>,
    /// Do not answer from the response cache (answers are still written to it).
    pub no_cache: bool,
    /// `--noise K`: replay a seeded sample of K decided records on `noise_model`.
    pub noise: Option<u64>,
    /// The `[models.NAME]` of the logged model for the noise floor.
    pub noise_model: Option<String>,
    /// Seed of the noise sample.
    pub seed: u64,
}

/// Live counters for the progress display.
#[derive(Debug, Default)]
pub struct ReplayProgress {
    /// Records read (readable or not).
    pub read: AtomicU64,
    /// Already stored (resume).
    pub skipped: AtomicU64,
    /// Replayed with a decision compared.
    pub replayed: AtomicU64,
    /// Flipped.
    pub flipped: AtomicU64,
    /// Undecided.
    pub undecided: AtomicU64,
    /// Errors.
    pub errors: AtomicU64,
    /// Unreadable records.
    pub unreadable: AtomicU64,
    /// Answered from the cache.
    pub cached: AtomicU64,
    /// HTTP requests made (attempts).
    pub requests: AtomicU64,
}

/// How a replay ended.
#[derive(Debug, Clone, Default)]
pub struct ReplaySummary {
    /// Why it stopped early (budget, Ctrl-C), if it did.
    pub stopped: Option<String>,
    /// Why no noise floor was measured, when `--noise` was asked for and it could not be.
    pub noise_note: Option<String>,
    /// The noise model's name, when a noise floor was measured.
    pub noise_model: Option<String>,
    /// Judge calls that ended without a verdict.
    pub judge_errors: u64,
}

/// Transient faults retried per call.
const DEFAULT_RETRIES: u32 = 4;
/// 429s waited out per call before it is an error.
const MAX_RATE_LIMITS: u32 = 20;
/// Jobs the reader may be ahead of the calls.
const QUEUE: usize = 512;

/// One record to call.
struct Job {
    call: Box<LoggedCall>,
    class: String,
    old: String,
    body: bytes::Bytes,
    key: String,
}

/// What the pipeline shares between the reader, the dispatcher and the writer.
struct Shared {
    id: String,
    rule: DecisionRule,
    progress: Arc<ReplayProgress>,
    stop: AtomicBool,
    reason: Mutex<Option<String>>,
    spent: Mutex<f64>,
    budget_requests: Option<u64>,
    budget_usd: Option<f64>,
}

impl Shared {
    fn stop_with(&self, why: String) {
        let mut r = self.reason.lock().expect("reason");
        if r.is_none() {
            *r = Some(why);
        }
        self.stop.store(true, Ordering::SeqCst);
    }
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// The model side: provider, limits, retry policy.
struct Target {
    kind: ReplayKind,
    provider: Provider,
    rpm: Option<Bucket>,
    tpm: Option<Bucket>,
    policy: RetryPolicy,
    concurrency: usize,
}

impl Target {
    fn new(name: &str, config: &Config, kind: ReplayKind, concurrency: usize) -> Result<Target> {
        let cfg = config.models.get(name).ok_or_else(|| {
            Error::Refused(format!(
                "no model `{name}` in the configuration; configured: {}",
                config.models.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        Ok(Target {
            kind,
            provider: Provider::new(name, cfg)?,
            rpm: cfg.rpm.map(|n| Bucket::per_minute(n as f64)),
            tpm: cfg.tpm.map(|n| Bucket::per_minute(n as f64)),
            policy: RetryPolicy {
                max_retries: cfg.max_retries.unwrap_or(DEFAULT_RETRIES),
                max_rate_limits: MAX_RATE_LIMITS,
                // Bounded by the count alone, not by the sweep's total patience.
                patience: Duration::MAX,
                ..RetryPolicy::default()
            },
            concurrency: cfg
                .max_concurrency
                .map_or(concurrency, |m| m.min(concurrency))
                .max(1),
        })
    }
}

/// Replays `opts.logs` on `opts.model`, then the noise sample, storing every record in the
/// store at `store_path`. The replay row must not exist yet unless `opts.resume`.
pub fn run(
    config: &Config,
    store_path: &Path,
    opts: &ReplayOptions,
    progress: Arc<ReplayProgress>,
) -> Result<ReplaySummary> {
    crate::provider::install_crypto_provider();
    let candidate = Arc::new(Target::new(
        &opts.model,
        config,
        ReplayKind::Candidate,
        opts.concurrency,
    )?);
    let noise_target = match (&opts.noise, &opts.noise_model) {
        (Some(_), Some(m)) => Some(Arc::new(Target::new(
            m,
            config,
            ReplayKind::Noise,
            opts.concurrency,
        )?)),
        _ => None,
    };
    let store = Store::open_url(&store_path.to_string_lossy())?;
    let _lock = store.acquire_lock(&format!("replay {}", opts.id))?;
    let shared = Arc::new(Shared {
        id: opts.id.clone(),
        rule: opts.rule.clone(),
        progress,
        stop: AtomicBool::new(false),
        reason: Mutex::new(None),
        spent: Mutex::new(0.0),
        budget_requests: opts.budget_requests,
        budget_usd: opts.budget_usd,
    });

    let (wtx, wrx) = std::sync::mpsc::sync_channel::<ReplayWrite>(8192);
    let writer_store = store.reopen()?;
    let writer_shared = shared.clone();
    let writer = std::thread::Builder::new()
        .name("replay-writer".into())
        .spawn(move || write_loop(writer_store, wrx, &writer_shared))
        .map_err(|e| Error::Runtime(format!("cannot start the writer thread: {e}")))?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(format!("cannot start the async runtime: {e}")))?;
    {
        let s = shared.clone();
        rt.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                s.stop_with("interrupted (Ctrl-C): resume with --resume".into());
            }
        });
    }

    // The candidate pass: the reader feeds the dispatcher.
    let (jtx, jrx) = tokio::sync::mpsc::channel::<Job>(QUEUE);
    let reader = {
        let shared = shared.clone();
        let wtx = wtx.clone();
        let logs = opts.logs.clone();
        let format = opts.format;
        let classes = opts.classes.clone();
        let sample_k = opts.noise.unwrap_or(0);
        let seed = opts.seed;
        let no_cache = opts.no_cache;
        let resume = opts.resume;
        let cache = if no_cache {
            None
        } else {
            Some(store.reopen()?)
        };
        let resume_store = if resume { Some(store.reopen()?) } else { None };
        let target = candidate.clone();
        std::thread::Builder::new()
            .name("replay-reader".into())
            .spawn(move || -> Result<Vec<LoggedCall>> {
                let mut planner = Planner {
                    shared: &shared,
                    provider: &target.provider,
                    kind: ReplayKind::Candidate,
                    cache: cache.as_ref(),
                    resume: resume_store.as_ref(),
                    writer: &wtx,
                    jobs: &jtx,
                };
                let mut reservoir = Reservoir::new(sample_k, seed);
                let mut failure = None;
                read_logs(&logs, format, &mut |item| {
                    if shared.stopped() {
                        return Flow::Stop;
                    }
                    shared.progress.read.fetch_add(1, Ordering::Relaxed);
                    let flow = match item {
                        LogItem::Unreadable(u) => {
                            shared.progress.unreadable.fetch_add(1, Ordering::Relaxed);
                            planner.write(ReplayWrite::Unreadable {
                                replay_id: shared.id.clone(),
                                seq: u.seq,
                                place: u.place,
                                message: u.message,
                            })
                        }
                        LogItem::Call(call) => {
                            let class = classes.class_of(&call);
                            if sample_k > 0 && shared.rule.decide(&call.logged).is_some() {
                                reservoir.offer(&call);
                            }
                            planner.plan(call, class)
                        }
                    };
                    match flow {
                        Ok(f) => f,
                        Err(e) => {
                            failure = Some(e);
                            Flow::Stop
                        }
                    }
                })?;
                if let Some(e) = failure {
                    return Err(e);
                }
                Ok(reservoir.items)
            })
            .map_err(|e| Error::Runtime(format!("cannot start the reader thread: {e}")))?
    };
    rt.block_on(dispatch(candidate.clone(), jrx, &shared, &wtx));
    let sample = reader
        .join()
        .map_err(|_| Error::Runtime("the log reader panicked".into()))??;

    // The noise pass: the sample on the logged model.
    let mut summary = ReplaySummary::default();
    if let Some(target) = &noise_target
        && !shared.stopped()
    {
        summary.noise_model = Some(target.provider.name().to_string());
        let (jtx, jrx) = tokio::sync::mpsc::channel::<Job>(QUEUE);
        let feeder = {
            let shared = shared.clone();
            let wtx = wtx.clone();
            let cache = if opts.no_cache {
                None
            } else {
                Some(store.reopen()?)
            };
            let resume_store = store.reopen()?;
            let target2 = target.clone();
            let classes = opts.classes.clone();
            std::thread::spawn(move || -> Result<()> {
                let mut planner = Planner {
                    shared: &shared,
                    provider: &target2.provider,
                    kind: ReplayKind::Noise,
                    cache: cache.as_ref(),
                    resume: Some(&resume_store),
                    writer: &wtx,
                    jobs: &jtx,
                };
                for call in sample {
                    if shared.stopped() {
                        break;
                    }
                    let class = classes.class_of(&call);
                    if planner.plan(Box::new(call), class)? == Flow::Stop {
                        break;
                    }
                }
                Ok(())
            })
        };
        rt.block_on(dispatch(target.clone(), jrx, &shared, &wtx));
        feeder
            .join()
            .map_err(|_| Error::Runtime("the noise sample feeder panicked".into()))??;
    }
    drop(wtx);
    writer
        .join()
        .map_err(|_| Error::Runtime("the replay writer panicked".into()))??;
    rt.shutdown_timeout(Duration::from_millis(200));
    summary.stopped = shared.reason.lock().expect("reason").clone();
    Ok(summary)
}

/// Turns records into stored outcomes or jobs: resume skip, undecided, cache, dispatch.
struct Planner<'a> {
    shared: &'a Shared,
    provider: &'a Provider,
    kind: ReplayKind,
    cache: Option<&'a Store>,
    resume: Option<&'a Store>,
    writer: &'a std::sync::mpsc::SyncSender<ReplayWrite>,
    jobs: &'a tokio::sync::mpsc::Sender<Job>,
}

impl Planner<'_> {
    fn write(&mut self, op: ReplayWrite) -> Result<Flow> {
        self.writer
            .send(op)
            .map_err(|_| Error::Runtime("the replay writer stopped".into()))?;
        Ok(Flow::Continue)
    }

    fn plan(&mut self, call: Box<LoggedCall>, class: String) -> Result<Flow> {
        let progress = &self.shared.progress;
        if let Some(s) = self.resume
            && s.replay_record_exists(&self.shared.id, self.kind, call.seq)?
        {
            progress.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(Flow::Continue);
        }
        let Some(old) = self.shared.rule.decide(&call.logged) else {
            if self.kind == ReplayKind::Candidate {
                progress.undecided.fetch_add(1, Ordering::Relaxed);
            }
            let rec = record(
                &self.shared.id,
                self.kind,
                &call,
                class,
                ReplayOutcome::Undecided,
                None,
                None,
                None,
            );
            return self.write(ReplayWrite::Record(Box::new(rec)));
        };
        let body = self.provider.encode(&call.request);
        let key = cache_key(self.provider, &body, 0);
        if let Some(c) = self.cache
            && let Some(answer) = c.cache_get(&key)?
        {
            progress.cached.fetch_add(1, Ordering::Relaxed);
            let mut rec = compared(
                self.shared,
                self.kind,
                &call,
                class,
                old,
                answer,
                self.provider,
            );
            rec.cached = true;
            return self.write(ReplayWrite::Record(Box::new(rec)));
        }
        let job = Job {
            call,
            class,
            old,
            body,
            key,
        };
        if self.jobs.blocking_send(job).is_err() {
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    }
}

/// Calls the jobs' model, `target.concurrency` at a time, until the queue ends or the replay
/// stops (budget, Ctrl-C, a failed write).
async fn dispatch(
    target: Arc<Target>,
    mut jobs: tokio::sync::mpsc::Receiver<Job>,
    shared: &Arc<Shared>,
    writer: &std::sync::mpsc::SyncSender<ReplayWrite>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(target.concurrency));
    let started = AtomicU64::new(0);
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(job) = jobs.recv().await {
        if shared.stopped() {
            break;
        }
        if let Some(b) = shared.budget_requests
            && started.load(Ordering::Relaxed) >= b
        {
            shared.stop_with(format!(
                "the request budget ({b}) is spent: resume with --resume"
            ));
            break;
        }
        if let Some(b) = shared.budget_usd
            && *shared.spent.lock().expect("spent") >= b
        {
            shared.stop_with(format!(
                "the dollar budget (${b}) is spent: resume with --resume"
            ));
            break;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        started.fetch_add(1, Ordering::Relaxed);
        let ctx = target.clone();
        let shared = shared.clone();
        let writer = writer.clone();
        tasks.spawn(async move {
            let ops = call_one(&ctx, &shared, job).await;
            drop(permit);
            for op in ops {
                if writer.send(op).is_err() {
                    shared.stop_with("the replay writer stopped".into());
                }
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    // Close the queue so the reader stops feeding, then let the calls in flight finish.
    jobs.close();
    while tasks.join_next().await.is_some() {}
}

async fn call_one(ctx: &Target, shared: &Shared, job: Job) -> Vec<ReplayWrite> {
    if let Some(b) = &ctx.rpm {
        // One request never exceeds a whole minute of a valid rpm.
        let _ = b.take(1.0).await;
    }
    let mut too_large = None;
    if let Some(b) = &ctx.tpm {
        let est = job.body.len() as f64 / 4.0
            + ctx
                .provider
                .config()
                .max_tokens
                .unwrap_or(crate::provider::DEFAULT_MAX_TOKENS) as f64;
        if let Err(e) = b.take(est).await {
            too_large = Some(format!(
                "the request needs about {:.0} tokens, more than the model's tpm = {:.0} allows in a minute: it can never be sent within the limit (raise tpm or lower max_tokens)",
                e.amount, e.per_minute
            ));
        }
    }
    let (result, attempts) = match too_large {
        Some(reason) => (Err(reason), 0),
        None => {
            let c = crate::call::with_retries(
                &ctx.provider,
                &job.body,
                &job.call.request,
                Ask::Plain,
                &ctx.policy,
                &mut Unpaced,
            )
            .await;
            (c.clone().into_result(), c.attempts)
        }
    };
    shared
        .progress
        .requests
        .fetch_add(u64::from(attempts), Ordering::Relaxed);
    match result {
        Ok(answer) => {
            let mut ops = vec![ReplayWrite::Cache {
                key: job.key.clone(),
                response: answer.clone(),
            }];
            let mut rec = compared(
                shared,
                ctx.kind,
                &job.call,
                job.class,
                job.old,
                answer,
                &ctx.provider,
            );
            rec.attempts = attempts;
            if let Some(c) = rec.cost_usd {
                *shared.spent.lock().expect("spent") += c;
            }
            ops.push(ReplayWrite::Record(Box::new(rec)));
            ops
        }
        Err(e) => {
            if ctx.kind == ReplayKind::Candidate {
                shared.progress.errors.fetch_add(1, Ordering::Relaxed);
            }
            let mut rec = record(
                &shared.id,
                ctx.kind,
                &job.call,
                job.class,
                ReplayOutcome::Error,
                Some(job.old),
                None,
                None,
            );
            rec.error = Some(e);
            rec.attempts = attempts;
            vec![ReplayWrite::Record(Box::new(rec))]
        }
    }
}

/// The record of an answered call: same or flipped.
fn compared(
    shared: &Shared,
    kind: ReplayKind,
    call: &LoggedCall,
    class: String,
    old: String,
    answer: ChatResponse,
    provider: &Provider,
) -> ReplayRecord {
    let new = shared
        .rule
        .decide(&answer)
        .unwrap_or_else(|| NO_DECISION.to_string());
    let flipped = new != old;
    if kind == ReplayKind::Candidate {
        shared.progress.replayed.fetch_add(1, Ordering::Relaxed);
        if flipped {
            shared.progress.flipped.fetch_add(1, Ordering::Relaxed);
        }
    }
    let outcome = if flipped {
        ReplayOutcome::Flipped
    } else {
        ReplayOutcome::Same
    };
    let usage = answer.usage;
    let mut rec = record(
        &shared.id,
        kind,
        call,
        class,
        outcome,
        Some(old),
        Some(new),
        Some(answer),
    );
    if flipped {
        rec.request = serde_json::to_string(&call.request).ok();
    }
    rec.input_tokens = usage.input_tokens;
    rec.output_tokens = usage.output_tokens;
    rec.cost_usd = provider
        .config()
        .cost(usage.input_tokens, usage.output_tokens);
    rec
}

#[allow(clippy::too_many_arguments)]
fn record(
    id: &str,
    kind: ReplayKind,
    call: &LoggedCall,
    class: String,
    outcome: ReplayOutcome,
    old: Option<String>,
    new: Option<String>,
    answer: Option<ChatResponse>,
) -> ReplayRecord {
    ReplayRecord {
        replay_id: id.to_string(),
        kind,
        seq: call.seq,
        place: call.place.clone(),
        record_id: call.id.clone(),
        timestamp: call.timestamp.clone(),
        class,
        outcome,
        old,
        new,
        logged_answer: ChatResponse {
            text: call.logged.text.clone(),
            tool_calls: call.logged.tool_calls.clone(),
            ..Default::default()
        },
        candidate_answer: answer.map(|a| ChatResponse {
            usage: Default::default(),
            ..a
        }),
        error: None,
        request: None,
        verdict: None,
        cached: false,
        attempts: 0,
        input_tokens: 0,
        output_tokens: 0,
        cost_usd: None,
        finished_at: now(),
    }
}

/// Cache entries staged between two settles (see [`Store::stage_batch`]).
const SETTLE_EVERY: u64 = 100_000;

/// Commits what arrives, in batches: whatever is queued (up to 2,000) in one transaction.
/// Fresh cache entries are staged like the sweep's ([`Store::stage_batch`]: appended to an
/// index-free log, settled into the cache in key order every [`SETTLE_EVERY`] entries and at
/// the end), since their keys are digests and inserting them one by one rewrites index pages
/// at random.
fn write_loop(
    mut store: Store,
    rx: std::sync::mpsc::Receiver<ReplayWrite>,
    shared: &Shared,
) -> Result<()> {
    let mut batch = Vec::with_capacity(2048);
    let mut cache = Vec::new();
    let mut staged = 0u64;
    let fail = |e: Error| {
        shared.stop_with(format!("cannot write to the store: {e}"));
        e
    };
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < 2000 {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        batch.retain_mut(|op| match op {
            ReplayWrite::Cache { key, response } => {
                cache.push(crate::store::WriteOp::Cache {
                    key: std::mem::take(key),
                    response: std::mem::take(response),
                });
                false
            }
            _ => true,
        });
        if !cache.is_empty() {
            store.stage_batch(&cache).map_err(fail)?;
            staged += cache.len() as u64;
            cache.clear();
        }
        store.write_replay(&batch).map_err(fail)?;
        batch.clear();
        if staged >= SETTLE_EVERY {
            store.settle().map_err(fail)?;
            staged = 0;
        }
    }
    if staged > 0 {
        store.settle().map_err(fail)?;
    }
    Ok(())
}

/// A seeded reservoir sample (algorithm R) of the decided records, for the noise floor: the
/// same logs and seed give the same sample, so a resumed replay samples the same records.
struct Reservoir {
    k: u64,
    seen: u64,
    rng: rand_chacha::ChaCha8Rng,
    items: Vec<LoggedCall>,
}

impl Reservoir {
    fn new(k: u64, seed: u64) -> Reservoir {
        Reservoir {
            k,
            seen: 0,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            items: Vec::new(),
        }
    }

    fn offer(&mut self, call: &LoggedCall) {
        if self.k == 0 {
            return;
        }
        self.seen += 1;
        if (self.items.len() as u64) < self.k {
            self.items.push(call.clone());
        } else {
            let j = self.rng.random_range(0..self.seen);
            if j < self.k {
                self.items[j as usize] = call.clone();
            }
        }
    }
}

/// The request of a stored flip, for the judge and the incidents.
pub fn stored_request(rec: &ReplayRecord) -> Option<ChatRequest> {
    serde_json::from_str(rec.request.as_deref()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reservoir_is_seeded_and_bounded() {
        let mk = |i: u64| LoggedCall {
            place: format!("x:{i}"),
            seq: i,
            id: i.to_string(),
            timestamp: None,
            metadata: Default::default(),
            request: ChatRequest {
                messages: vec![],
                tools: vec![],
            },
            logged: ChatResponse::default(),
            logged_model: None,
        };
        let sample = |seed| {
            let mut r = Reservoir::new(5, seed);
            for i in 0..1000 {
                r.offer(&mk(i));
            }
            r.items.iter().map(|c| c.seq).collect::<Vec<_>>()
        };
        assert_eq!(sample(7), sample(7));
        assert_ne!(sample(7), sample(8));
        assert_eq!(sample(7).len(), 5);
    }
}

/// What the judge pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JudgePass {
    /// Flips given a verdict (fresh or cached).
    pub judged: u64,
    /// Verdicts from the response cache.
    pub cached: u64,
    /// Flips left without a verdict (no readable reply after retries).
    pub errors: u64,
    /// HTTP requests made.
    pub requests: u64,
}

/// Flips judged per page.
const JUDGE_PAGE: usize = 64;

/// Asks the `[judge]` model about every flip of `replay` without a verdict yet (see
/// [`super::judge`]), storing each verdict as it comes.
pub fn judge_flips(
    config: &Config,
    store_path: &Path,
    replay: &str,
    no_cache: bool,
) -> Result<JudgePass> {
    use super::judge::{judge_request, parse_verdict};
    crate::provider::install_crypto_provider();
    let jc = config.judge.as_ref().ok_or_else(|| {
        Error::Refused(
            "--judge needs a judge model: add a [judge] table to cliffprobe.toml naming one of the [models.NAME] tables".into(),
        )
    })?;
    let concurrency = jc.concurrency.unwrap_or(8);
    let target = Arc::new(Target::new(
        &jc.model,
        config,
        ReplayKind::Candidate,
        concurrency,
    )?);
    let mut store = Store::open_url(&store_path.to_string_lossy())?;
    let cache = Arc::new(Mutex::new(store.reopen()?));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(format!("cannot start the async runtime: {e}")))?;
    let mut pass = JudgePass::default();
    let mut after = None;
    loop {
        let page = store.replay_unjudged_flips(replay, after, JUDGE_PAGE)?;
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        let results = rt.block_on(async {
            let permits = Arc::new(tokio::sync::Semaphore::new(target.concurrency));
            let mut tasks = tokio::task::JoinSet::new();
            for rec in page {
                let (Some(req), Some(cand)) = (stored_request(&rec), rec.candidate_answer.clone())
                else {
                    continue;
                };
                let jreq = judge_request(&req, &rec.logged_answer, &cand);
                let target = target.clone();
                let cache = cache.clone();
                let permits = permits.clone();
                tasks.spawn(async move {
                    let body = target.provider.encode(&jreq);
                    let key = cache_key(&target.provider, &body, 0);
                    if !no_cache {
                        // A blocking store read (on PostgreSQL, a client that runs its own
                        // runtime, which must not be entered from an async task as is).
                        let hit = tokio::task::block_in_place(|| {
                            cache.lock().expect("cache").cache_get(&key)
                        });
                        if let Ok(Some(r)) = hit
                            && let Ok(v) = parse_verdict(&r.text)
                        {
                            return (rec.seq, Ok((v, None, true)), 0u32);
                        }
                    }
                    let _permit = permits.acquire_owned().await;
                    let mut attempts = 0;
                    let mut last = String::new();
                    for _ in 0..crate::sweep::JUDGE_REPLY_ATTEMPTS {
                        // Asked as a plain request: the replay judge's layout is its own, and
                        // the mock answers it as it answers any request without checks.
                        let c = crate::call::with_retries(
                            &target.provider,
                            &body,
                            &jreq,
                            Ask::Plain,
                            &target.policy,
                            &mut Unpaced,
                        )
                        .await;
                        attempts += c.attempts;
                        let r = c.into_result();
                        match r {
                            Ok(answer) => match parse_verdict(&answer.text) {
                                Ok(v) => {
                                    return (
                                        rec.seq,
                                        Ok((v, Some((key, answer)), false)),
                                        attempts,
                                    );
                                }
                                Err(e) => last = e,
                            },
                            Err(e) => return (rec.seq, Err(e), attempts),
                        }
                    }
                    (rec.seq, Err(last), attempts)
                });
            }
            let mut out = Vec::new();
            while let Some(r) = tasks.join_next().await {
                if let Ok(r) = r {
                    out.push(r);
                }
            }
            out
        });
        let mut cache_ops = Vec::new();
        for (seq, r, attempts) in results {
            pass.requests += u64::from(attempts);
            match r {
                Ok((v, fresh, cached)) => {
                    store.set_replay_verdict(replay, ReplayKind::Candidate, seq, v.as_str())?;
                    pass.judged += 1;
                    pass.cached += u64::from(cached);
                    if let Some((key, response)) = fresh {
                        cache_ops.push(ReplayWrite::Cache { key, response });
                    }
                }
                Err(_) => pass.errors += 1,
            }
        }
        store.write_replay(&cache_ops)?;
    }
    rt.shutdown_timeout(Duration::from_millis(200));
    Ok(pass)
}
