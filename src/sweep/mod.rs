//! Sweep: run every planned case (variant × model × sample) over real HTTP, grade it and
//! store it, surviving rate limits, faults and interruption.
//!
//! Shape: *planner* threads per model (the model's probes dealt round-robin over the cores
//! left per model) expand the suite as a stream (never the whole expansion in memory), skips cases a resumed run already has, answers from the response
//! cache where it can, and feeds the rest to that model's async *dispatcher* in batches of
//! 32 jobs (one hand-over, and at most one wake-up, per batch). The dispatcher
//! respects the model's concurrency (adaptive: halved once per window of 429s, grown back on
//! success), its rpm and tpm buckets (each request charged its whole size) and the global
//! concurrency (a permit held only around one HTTP request, never through a wait, so a throttled
//! model cannot starve the others), and retries 429s (waiting as the server says) and transient
//! faults (exponential backoff, full jitter). A model whose first answers are all the same error
//! is stopped on its own ([`SAME_ERROR_STOP`]); a context-window overflow is one request and its
//! own kind of error ([`CONTEXT_OVERFLOW`]). A store that cannot be written, or a panic in any
//! task or thread, stops the whole sweep at once and records the run `failed`: slots and
//! permits are guards, so nothing waits for ever. One *writer* thread commits results
//! in batched transactions to the store's staging logs and settles them into the tables every
//! ~100,000 cases and when the sweep ends ([`Store::stage_batch`], [`Store::settle`]), before
//! the invariance step reads them. Per-model planners make scheduling fair: a slow model never holds
//! up a fast one. Invariants: exactly one stored result per planned case (the store's primary
//! key makes a re-write a replacement, never a duplicate); an `error` is never graded; API keys
//! never reach the store, the cache key or a message.
//!
//! Two kinds of grading need more than one answer. `judge` checks ask the configured judge
//! model (see [`crate::grade::judge`]) right after the graded answer arrives, through the same retries,
//! 429 handling and response cache as model calls (`judge_checks`); a judge that cannot give a
//! verdict makes the case an `error`, never a pass. Invariance (see [`crate::grade::invariant`]) is
//! graded once the run's cases are stored, by [`invariance::finalise`] at the end of the
//! sweep (and of every resume).

mod counts;
pub mod invariance;

pub use counts::{ModelUsage, StatusCounts, TierCounts, UsageByModel};

use crate::axes::AxisLibrary;
use crate::chat::{ChatRequest, ChatResponse};
use crate::config::{Config, JudgeConfig, ModelConfig, ProviderKind};
use crate::domain::Tier;
use crate::error::{Error, Result};
use crate::expand::{AxisFilter, ProbeExpansion, Strategy};
use crate::grade::check::Check;
use crate::grade::judge::{JudgeError, VerdictError};
use crate::grade::{self, CaseStatus};
use crate::probe::LoadedProbe;
use crate::progress::ModelProgress;
use crate::provider::{CallError, Provider};
use crate::render::VariantAxes;
use crate::store::{
    CaseRecord, ProbeRecord, RunInfo, RunStatus, Store, VariantRecord, WriteOp, now,
};
use indexmap::IndexMap;
use rand::Rng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore, mpsc};

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
    /// see [`SAME_ERROR_STOP`]), each with the message that says why and how to resume.
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

/// A rendered variant shared by the jobs of its samples.
struct Prepared {
    variant_id: String,
    tier: Tier,
    checks: Arc<Vec<Check>>,
    request: ChatRequest,
    est_tokens: u64,
    /// Some check is a `judge` check.
    has_judge: bool,
    /// `Some(canonical?)` for the variants of an invariant probe.
    invariant: Option<bool>,
    /// For an episode probe: the variant's tool simulator (the case is a loop of model calls,
    /// see [`crate::episode`]).
    episode: Option<Arc<crate::episode::Simulator>>,
}

struct Job {
    variant: Arc<Prepared>,
    sample: u32,
    cache_key: String,
    /// The wire body, encoded once for the cache key and every attempt.
    body: bytes::Bytes,
    /// The answer, already known (from the cache): only the judge is left to ask.
    answered: Option<ChatResponse>,
    /// For an episode: its state, with the steps the response cache answered already replayed
    /// (a finished one waits only for the judge).
    episode: Option<Box<crate::episode::EpisodeRun>>,
}

/// Jobs a planner hands over at once. A planner ahead of the endpoint waits on a full queue;
/// handing over one job at a time woke it (a futex wake and a context switch) for every case
/// the dispatcher took, about 0.4 context switches per case at 20,000 cases/s.
const JOB_BATCH: usize = 32;
/// Batches queued per model: with [`JOB_BATCH`], the 512 jobs the planners may be ahead.
const JOB_QUEUE_BATCHES: usize = 16;

/// A planner's side of the job queue: jobs gather into batches of [`JOB_BATCH`].
struct JobSender {
    tx: mpsc::Sender<Vec<Job>>,
    batch: Vec<Job>,
}

/// The dispatcher is gone (the sweep is stopping): the planner has nothing left to do.
struct Closed;

impl JobSender {
    fn new(tx: mpsc::Sender<Vec<Job>>) -> Self {
        Self {
            tx,
            batch: Vec::with_capacity(JOB_BATCH),
        }
    }

    fn push(&mut self, job: Job) -> std::result::Result<(), Closed> {
        self.batch.push(job);
        if self.batch.len() >= JOB_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Hands over what has gathered. A planner calls it when it stops planning, so no job is
    /// left in a half batch.
    fn flush(&mut self) -> std::result::Result<(), Closed> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(JOB_BATCH));
        self.tx.blocking_send(batch).map_err(|_| Closed)
    }
}

/// The dispatcher's side of the job queue: the batches' jobs, one at a time.
struct JobReceiver {
    rx: mpsc::Receiver<Vec<Job>>,
    batch: std::vec::IntoIter<Job>,
}

impl JobReceiver {
    fn new(rx: mpsc::Receiver<Vec<Job>>) -> Self {
        Self {
            rx,
            batch: Vec::new().into_iter(),
        }
    }

    /// The next job; `None` once every planner is done and every batch taken.
    async fn recv(&mut self) -> Option<Job> {
        loop {
            if let Some(job) = self.batch.next() {
                return Some(job);
            }
            self.batch = self.rx.recv().await?.into_iter();
        }
    }
}

struct Outcome {
    record: CaseRecord,
    tier: Tier,
    /// The response to cache, with its key (fresh HTTP answers only).
    cache: Option<(String, ChatResponse)>,
}

enum WriterMsg {
    Op(Box<WriteOp>),
    Case(Box<Outcome>),
}

/// Adaptive concurrency: a limit that halves on 429 (once per rate-limit window, so a burst of
/// simultaneous 429s counts as one signal) and grows by one after `limit` successes.
struct Adaptive {
    limit: AtomicUsize,
    max: usize,
    inflight: AtomicUsize,
    successes: AtomicUsize,
    /// No halving before this instant: the 429s of one burst answer requests sent before the
    /// first halving took effect, and must not halve again.
    next_halving: Mutex<Option<Instant>>,
    notify: Notify,
}

impl Adaptive {
    fn new(max: usize) -> Adaptive {
        Adaptive {
            limit: AtomicUsize::new(max),
            max,
            inflight: AtomicUsize::new(0),
            successes: AtomicUsize::new(0),
            next_halving: Mutex::new(None),
            notify: Notify::new(),
        }
    }
    async fn acquire(&self) {
        loop {
            let notified = self.notify.notified();
            let cur = self.inflight.load(Ordering::Acquire);
            if cur < self.limit.load(Ordering::Acquire) {
                if self
                    .inflight
                    .compare_exchange(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return;
                }
                continue;
            }
            notified.await;
        }
    }
    fn release(&self) {
        self.inflight.fetch_sub(1, Ordering::AcqRel);
        self.notify.notify_one();
    }
    /// A 429 arrived; the server asked for `wait`. Halves the limit unless it was halved less
    /// than one window (the larger of `wait` and [`HALVING_WINDOW`]) ago.
    fn on_rate_limited(&self, wait: Duration) {
        let now = Instant::now();
        {
            let mut next = self.next_halving.lock().unwrap_or_else(|p| p.into_inner());
            if next.is_some_and(|t| now < t) {
                return;
            }
            *next = Some(now + wait.max(HALVING_WINDOW));
        }
        let l = self.limit.load(Ordering::Acquire);
        self.limit.store((l / 2).max(1), Ordering::Release);
        self.successes.store(0, Ordering::Release);
    }
    fn on_success(&self) {
        let l = self.limit.load(Ordering::Acquire);
        if l < self.max && self.successes.fetch_add(1, Ordering::AcqRel) + 1 >= l {
            self.successes.store(0, Ordering::Release);
            self.limit.store(l + 1, Ordering::Release);
            self.notify.notify_one();
        }
    }
}

/// The shortest time between two halvings of a model's concurrency: about the round trip in
/// which the requests already sent when a 429 arrives come back with theirs.
const HALVING_WINDOW: Duration = Duration::from_millis(250);

/// One of a model's adaptive-concurrency slots, given back when dropped (also when the task
/// holding it panics: a lost slot would leave the dispatcher waiting for ever).
struct Slot<'a> {
    adaptive: &'a Adaptive,
    held: bool,
}

impl<'a> Slot<'a> {
    /// A slot the caller has already acquired.
    fn taken(adaptive: &'a Adaptive) -> Slot<'a> {
        Slot {
            adaptive,
            held: true,
        }
    }
    async fn acquire(adaptive: &'a Adaptive) -> Slot<'a> {
        adaptive.acquire().await;
        Slot::taken(adaptive)
    }
    fn release(&mut self) {
        if std::mem::take(&mut self.held) {
            self.adaptive.release();
        }
    }
    async fn reacquire(&mut self) {
        if !self.held {
            self.adaptive.acquire().await;
            self.held = true;
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

/// A token bucket (rpm or tpm): `rate` per second, bursts up to `capacity`, at most
/// `per_minute` in any one request. Also paces the replay's calls (`crate::replay`).
///
/// Every request is charged its whole amount. One larger than the burst waits until the bucket
/// is full, then leaves it in debt: the requests after it wait until the debt is refilled, so
/// over any minute no more than `per_minute` (plus one burst) is taken, however long the
/// requests are. One larger than `per_minute` can never fit and is refused.
pub(crate) struct Bucket {
    state: Mutex<(f64, Instant)>,
    rate: f64,
    capacity: f64,
    per_minute: f64,
}

/// A request bigger than a bucket's whole minute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NeverFits {
    pub(crate) amount: f64,
    pub(crate) per_minute: f64,
}

impl Bucket {
    pub(crate) fn per_minute(n: f64) -> Bucket {
        // Validation refuses 0 and NaN; a library caller's bad value still must not divide by 0.
        let n = if n.is_finite() && n > 0.0 { n } else { 1.0 };
        let rate = n / 60.0;
        // A small burst keeps the rate smooth, so a server counting per minute never sees more.
        let capacity = rate.clamp(1.0, n.max(1.0));
        Bucket {
            state: Mutex::new((capacity, Instant::now())),
            rate,
            capacity,
            per_minute: n,
        }
    }
    pub(crate) async fn take(&self, amount: f64) -> std::result::Result<(), NeverFits> {
        if amount > self.per_minute {
            return Err(NeverFits {
                amount,
                per_minute: self.per_minute,
            });
        }
        // A request larger than the burst waits for a full bucket, then goes into debt.
        let need = amount.min(self.capacity);
        loop {
            let wait = {
                let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * self.rate).min(self.capacity);
                s.1 = now;
                if s.0 >= need {
                    s.0 -= amount;
                    return Ok(());
                }
                Duration::try_from_secs_f64((need - s.0) / self.rate)
                    .unwrap_or(Duration::from_secs(60))
                    .min(Duration::from_secs(60))
            };
            tokio::time::sleep(wait).await;
        }
    }
    /// Gives back `amount` (an estimate that was too high, a request the server refused), or
    /// charges more when negative (an estimate that was too low).
    fn adjust(&self, amount: f64) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.0 = (s.0 + amount).min(self.capacity);
    }
}

/// What every task of a sweep reads to know whether to go on.
#[derive(Debug, Default)]
struct Control {
    /// No new case starts (budget, Ctrl-C, failure).
    stop: AtomicBool,
    /// Why it stopped: the first reason given.
    reason: Mutex<Option<String>>,
    /// The sweep cannot go on (the store cannot be written, a task panicked): no new attempt
    /// either, and the run is recorded as failed.
    failed: AtomicBool,
    /// `--budget-requests`: HTTP attempts allowed.
    budget_requests: Option<u64>,
    /// HTTP attempts made (the judge's included).
    requests: AtomicU64,
}

impl Control {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    /// Stops gracefully (no new case starts), keeping the first reason given.
    fn stop_with(&self, why: impl FnOnce() -> String) {
        self.stop.store(true, Ordering::SeqCst);
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(why);
    }
    /// Stops at once: the run will be recorded as failed with this reason.
    fn fail_with(&self, why: String) {
        let first = {
            let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
            // A failure outranks a graceful stop's reason.
            let first = !self.failed.swap(true, Ordering::SeqCst);
            if first {
                *r = Some(why.clone());
            }
            first
        };
        self.stop.store(true, Ordering::SeqCst);
        if first {
            eprintln!("\nerror: {}", crate::term::sanitize(&why));
        }
    }
    fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
    fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// After how many cases ended with the identical HTTP error (same status and body), with none
/// answered before them, a model is stopped.
pub const SAME_ERROR_STOP: u32 = 8;

/// Whether a model's endpoint answers at all: its first answers, until one differs.
#[derive(Debug, Default)]
struct Health {
    /// Something other than the same error came back: the model is known to work.
    settled: bool,
    /// The error every answer so far has been, and how many times.
    first: Option<String>,
    same: u32,
}

struct ModelCtx {
    name: String,
    provider: Provider,
    adaptive: Adaptive,
    rpm: Option<Bucket>,
    tpm: Option<Bucket>,
    pause_until: Mutex<Option<Instant>>,
    /// How each call is retried (the model's `max_retries`, the sweep's caps).
    policy: crate::call::RetryPolicy,
    progress: Arc<ModelProgress>,
    control: Arc<Control>,
    health: Mutex<Health>,
    /// Why this model was stopped (its endpoint answers every request with the same error).
    halted: Mutex<Option<String>>,
    halted_flag: AtomicBool,
    run_id: String,
}

impl ModelCtx {
    fn new(
        name: &str,
        provider: Provider,
        concurrency: usize,
        progress: Arc<ModelProgress>,
        control: Arc<Control>,
        run_id: &str,
    ) -> ModelCtx {
        let cfg = provider.config().clone();
        ModelCtx {
            name: name.to_string(),
            adaptive: Adaptive::new(concurrency.max(1)),
            rpm: cfg.rpm.map(|n| Bucket::per_minute(n as f64)),
            tpm: cfg.tpm.map(|n| Bucket::per_minute(n as f64)),
            pause_until: Mutex::new(None),
            policy: crate::call::RetryPolicy::for_model(&cfg),
            progress,
            provider,
            control,
            health: Mutex::new(Health::default()),
            halted: Mutex::new(None),
            halted_flag: AtomicBool::new(false),
            run_id: run_id.to_string(),
        }
    }

    fn is_halted(&self) -> bool {
        self.halted_flag.load(Ordering::Relaxed)
    }

    /// Why this model was stopped, if it was.
    fn halt_reason(&self) -> Option<String> {
        self.halted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Notes how one case of this model ended (`None`: with an answer). An error counts only
    /// when the server answered it with an HTTP error status (`HTTP 500: …`): timeouts, resets
    /// and bodies that are not JSON say nothing about the request shape. Cases count once their
    /// retries are spent, so a server that fails at start-up (a model still loading) and then
    /// answers is never stopped. After [`SAME_ERROR_STOP`] cases ended with the identical HTTP
    /// error (same status and body) and nothing else, stops the model (the other models go on).
    fn note_answer(&self, error: Option<&str>) {
        if error.is_some_and(|e| !e.starts_with("HTTP ")) {
            return;
        }
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if h.settled {
            return;
        }
        let Some(e) = error else {
            h.settled = true;
            return;
        };
        match &h.first {
            None => {
                h.first = Some(e.to_string());
                h.same = 1;
            }
            Some(f) if f == e => h.same += 1,
            Some(_) => {
                h.settled = true;
                return;
            }
        }
        if h.same >= SAME_ERROR_STOP {
            h.settled = true;
            let why = format!(
                "model `{}` stopped: its first {SAME_ERROR_STOP} cases all ended with the same error: {e}. Fix the endpoint or the request, then resume with `cliffprobe sweep --resume {}`",
                self.name, self.run_id
            );
            eprintln!("\n{}", crate::term::sanitize(&why));
            *self.halted.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
            self.halted_flag.store(true, Ordering::SeqCst);
        }
    }
}

/// The judge model while a sweep runs: its provider and limits (its own, even when the same
/// model is also swept), its prompt, the cache reader and its usage counters.
struct JudgeCtx {
    ctx: ModelCtx,
    prompt: Option<String>,
    /// Judge calls in flight.
    permits: Semaphore,
    /// Reads the response cache (`None` with `--no-cache`); looked up on a blocking thread,
    /// never on the runtime's workers.
    cache: Option<Arc<Mutex<Store>>>,
    verdicts: AtomicU64,
    cached: AtomicU64,
    errors: AtomicU64,
    input_tokens: AtomicU64,
    output_tokens: AtomicU64,
    cost: Mutex<f64>,
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
    fn new(
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

    fn summary(&self) -> JudgeSummary {
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
async fn judge_checks(
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
fn apply_judge(
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

/// The cache key of one call: provider, base URL, model id, the wire body as encoded by
/// [`Provider::encode`] (it holds the canonical request and sampling settings) and the sample
/// index. Never the API key.
pub fn cache_key(provider: &Provider, body: &[u8], sample: u32) -> String {
    let cfg = provider.config();
    let mut h = blake3::Hasher::new();
    h.update(cfg.provider.as_str().as_bytes());
    h.update(b"\0");
    h.update(provider.endpoint().as_bytes());
    h.update(b"\0");
    h.update(cfg.model.as_bytes());
    h.update(b"\0");
    h.update(body);
    h.update(&sample.to_le_bytes());
    h.finalize().to_hex().to_string()
}

/// A fresh run id: `r-YYYYMMDD-HHMMSS-xxxx`.
pub fn new_run_id() -> String {
    let now = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::UTC);
    let tag: u16 = crate::call::entropy_rng().random();
    format!("r-{}-{tag:04x}", now.strftime("%Y%m%d-%H%M%S"))
}

/// Probe id → the content digest its variant ids derive from, as recorded with a run so that a
/// resume can tell an edited probe from the one the run planned.
pub fn probe_digests(
    probes: &[LoadedProbe],
    lib: &AxisLibrary,
) -> Result<indexmap::IndexMap<String, String>> {
    probes
        .iter()
        .map(|p| {
            let digest = ProbeExpansion::new(&p.probe, lib)?.digest().to_string();
            Ok((p.probe.id.clone(), digest))
        })
        .collect()
}

/// Counts the variants a sweep plans per probe (of its slice, with `--shard`); the cases are
/// these × models × repeats.
pub fn plan_counts(
    probes: &[LoadedProbe],
    lib: &AxisLibrary,
    opts: &SweepOptions,
) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::with_capacity(probes.len());
    for p in probes {
        let x = ProbeExpansion::new(&p.probe, lib)?;
        let n = slice_points(&x, &p.probe, opts)?.count() as u64;
        out.push((p.probe.id.clone(), n));
    }
    Ok(out)
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

/// The points a sweep runs for a probe: the follow-up plan's when the options carry one,
/// else the strategy's, each with `--repeats` samples.
pub fn points(
    x: &ProbeExpansion<'_>,
    probe_id: &str,
    opts: &SweepOptions,
) -> Result<Box<dyn Iterator<Item = PlannedPoint> + Send>> {
    match &opts.points {
        Some(plan) => Ok(Box::new(
            plan.get(probe_id).cloned().unwrap_or_default().into_iter(),
        )),
        None => {
            let samples = opts.repeats;
            Ok(Box::new(
                x.points(opts.strategy, opts.seed, &opts.axes)?
                    .map(move |axes| PlannedPoint { axes, samples }),
            ))
        }
    }
}

/// Samples per model a sweep plans: the plan's per-point counts when there is a plan, else
/// `points` × `repeats`.
pub fn planned_samples(plan: Option<&PointPlan>, points: u64, repeats: u32) -> u64 {
    match plan {
        Some(plan) => plan.values().flatten().map(|p| p.samples as u64).sum(),
        None => points * repeats as u64,
    }
}

/// The points a sweep runs for a probe ([`points`]), only those of the
/// sweep's slice with `--shard` (by the variant id, see [`crate::shard`]).
fn slice_points<'a>(
    x: &'a ProbeExpansion<'_>,
    probe: &'a crate::probe::Probe,
    opts: &SweepOptions,
) -> Result<Box<dyn Iterator<Item = PlannedPoint> + Send + 'a>> {
    let all = points(x, &probe.id, opts)?;
    match opts.shard.filter(|s| !s.is_whole()) {
        None => Ok(all),
        Some(slice) => {
            let digest = x.digest();
            Ok(Box::new(all.filter(move |point| {
                slice.contains(&crate::expand::point_id(probe, digest, &point.axes))
            })))
        }
    }
}

/// How long a sweep's lease on its run-slice lasts without a heartbeat (renewed every quarter
/// of it): `CLIFFPROBE_LEASE_SECS`, default 30 s. A killed shard's slice can be taken over
/// that long after its last heartbeat (an unsharded sweep's at once: see
/// [`Store::acquire_lease`]).
pub fn lease_ttl() -> Duration {
    std::env::var("CLIFFPROBE_LEASE_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.2)
        .map_or(Duration::from_secs(30), Duration::from_secs_f64)
}

/// The record of a run this sweep starts (or, sharded, the first shard creates): what was
/// asked for, planned, and from which probe contents, so a resume or another shard can check it.
fn new_run(
    opts: &SweepOptions,
    models: &[(String, ModelConfig)],
    probes: &[LoadedProbe],
    config: &Config,
    planned: u64,
    probe_digests: indexmap::IndexMap<String, String>,
) -> RunInfo {
    RunInfo {
        id: opts.run_id.clone(),
        started_at: now(),
        finished_at: None,
        status: RunStatus::Running,
        models: opts.models.clone(),
        model_ids: models
            .iter()
            .map(|(n, c)| (n.clone(), format!("{}:{}", c.provider.as_str(), c.model)))
            .collect(),
        probes: probes.iter().map(|p| p.probe.id.clone()).collect(),
        strategy: opts.strategy.to_string(),
        seed: opts.seed,
        repeats: opts.repeats,
        config_digest: config.digest(),
        planned,
        note: None,
        version: env!("CARGO_PKG_VERSION").to_string(),
        axes: Some(opts.axes.to_string()),
        probe_digests: Some(probe_digests),
    }
}

/// Runs a sweep to the end (or to a budget, or to Ctrl-C) and records it.
pub fn run(
    config: &Config,
    store_path: &str,
    probes: Vec<LoadedProbe>,
    lib: AxisLibrary,
    opts: SweepOptions,
    show_progress: bool,
) -> Result<SweepOutcome> {
    let started = Instant::now();
    let mut models = Vec::new();
    for name in &opts.models {
        let cfg = config.models.get(name).ok_or_else(|| {
            Error::Refused(format!(
                "no model `{name}` in the configuration; configured: {}",
                config.models.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        models.push((name.clone(), cfg.clone()));
    }
    if models.is_empty() {
        return Err(Error::Refused("no models to run: add a [models.NAME] table to cliffprobe.toml (see `cliffprobe init`)".into()));
    }
    check_judge(config, &probes)?;
    crate::provider::install_crypto_provider();
    let providers: Vec<Provider> = models
        .iter()
        .map(|(n, c)| Provider::new(n, c))
        .collect::<Result<_>>()?;

    let counts = plan_counts(&probes, &lib, &opts)?;
    let variants_planned: u64 = counts.iter().map(|(_, n)| n).sum();
    let per_model = planned_samples(opts.points.as_deref(), variants_planned, opts.repeats);
    // The cases this process plans (its slice, with --shard), and the run's.
    let planned = per_model * models.len() as u64;
    let slice = opts.shard.unwrap_or(crate::shard::Slice::WHOLE);
    let run_planned = match opts.shard {
        Some(s) if !s.is_whole() => {
            crate::shard::check_strategy(opts.strategy, s)?;
            let whole = SweepOptions {
                shard: None,
                ..opts.clone()
            };
            let n: u64 = plan_counts(&probes, &lib, &whole)?
                .iter()
                .map(|(_, n)| n)
                .sum();
            n * opts.repeats as u64 * models.len() as u64
        }
        _ => planned,
    };

    let control = Arc::new(Control {
        budget_requests: opts.budget_requests,
        ..Control::default()
    });
    let mut store = Store::open_url(store_path)?;
    // Asked before this process takes the file lock: whether every earlier holder is gone.
    let dead_before = if opts.shard.is_some() {
        store.leases_dead_before()?
    } else {
        // The store's exclusive lock, taken below: no other sweep of this store is alive.
        i64::MAX
    };
    // The store's sweep lock (SQLite: a file lock; PostgreSQL: an advisory lock) says a sweep
    // is live; an unsharded sweep holds it alone, the shards of sharded runs share it. Either
    // way the run-slice's lease keeps two processes from sweeping the same slice at once.
    let _lock = if opts.shard.is_some() {
        store.acquire_shared_lock()?
    } else {
        store.acquire_lock(&format!("sweep {}", opts.run_id))?
    };
    let _lease = {
        let control = control.clone();
        store.acquire_lease(
            &opts.run_id,
            slice,
            &crate::store::holder_name(),
            lease_ttl(),
            dead_before,
            Box::new(move |why| control.fail_with(why)),
        )?
    };
    store.tune_for_sweep_writer()?;
    // What a killed sweep staged belongs in the tables before this one looks for done cases.
    store.settle()?;
    let run = match (opts.resume, store.run(&opts.run_id)?) {
        _ if opts.shard.is_some() => {
            let digests = probe_digests(&probes, &lib)?;
            let plan = crate::store::RunPlan {
                slices: slice.count(),
                digest: crate::shard::plan_digest(&crate::shard::PlanInputs {
                    config_digest: &config.digest(),
                    probe_digests: &digests,
                    models: &opts.models,
                    strategy: &opts.strategy.to_string(),
                    seed: opts.seed,
                    repeats: opts.repeats,
                    axes: &opts.axes.to_string(),
                    slices: slice.count(),
                }),
            };
            let r = new_run(&opts, &models, &probes, config, run_planned, digests);
            let created = store.join_run(&r, &plan)?;
            store.begin_slice(&r.id, slice, planned)?;
            eprintln!(
                "run {}: shard {slice}: {planned} of the run's {run_planned} planned cases ({}; \
                 if it is stopped, `cliffprobe sweep --resume {} --shard {slice}` continues it)",
                r.id,
                if created {
                    "created the run"
                } else {
                    "joined the run"
                },
                r.id
            );
            store.run(&r.id)?.unwrap_or(r)
        }
        (true, Some(mut r)) => {
            r.status = RunStatus::Running;
            r.finished_at = None;
            if opts.replan {
                r.probes = probes.iter().map(|p| p.probe.id.clone()).collect();
                r.planned = planned;
                r.probe_digests = Some(probe_digests(&probes, &lib)?);
                store.begin_run(&r)?;
            }
            store.finish_run(&r.id, RunStatus::Running, "", None)?;
            r
        }
        (true, None) => {
            return Err(Error::Refused(format!(
                "no run `{}` to resume",
                opts.run_id
            )));
        }
        (false, _) => {
            let r = new_run(
                &opts,
                &models,
                &probes,
                config,
                planned,
                probe_digests(&probes, &lib)?,
            );
            store.begin_run(&r)?;
            // Said first (even with -q: it is not progress), so the log of a sweep that is
            // killed still says what to resume.
            eprintln!(
                "run {}: {planned} planned cases (if it is stopped, `cliffprobe sweep --resume {}` continues it)",
                r.id, r.id
            );
            r
        }
    };

    let spent = Arc::new(Mutex::new(0.0f64));
    let progress: Vec<(String, Arc<ModelProgress>)> = models
        .iter()
        .map(|(n, _)| {
            let p = Arc::new(ModelProgress::default());
            p.planned.store(per_model, Ordering::Relaxed);
            (n.clone(), p)
        })
        .collect();

    let needs_judge = probes
        .iter()
        .any(|p| p.probe.checks.iter().any(|c| matches!(c, Check::Judge(_))));
    let judge: Option<Arc<JudgeCtx>> = match (&config.judge, needs_judge) {
        (Some(j), true) => {
            let model = config.models.get(&j.model).ok_or_else(|| {
                Error::field(
                    "cliffprobe.toml",
                    "judge.model",
                    format!("`{}` is not a configured model", j.model),
                )
            })?;
            Some(Arc::new(JudgeCtx::new(
                j,
                model,
                store_path,
                opts.no_cache,
                control.clone(),
                &run.id,
            )?))
        }
        _ => None,
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .map_err(|e| Error::Other(format!("tokio runtime: {e}")))?;
    let (wtx, mut wrx) = mpsc::channel::<WriterMsg>(WRITER_QUEUE);

    // Writer thread.
    let writer_progress: IndexMap<String, Arc<ModelProgress>> = progress.iter().cloned().collect();
    let writer_control = control.clone();
    let writer = std::thread::Builder::new()
        .name("cliffprobe-writer".into())
        .spawn(move || -> Result<(TierCounts, UsageByModel)> {
            let written = (|| -> Result<(TierCounts, UsageByModel)> {
                let mut tiers: TierCounts = IndexMap::new();
                let mut usage: UsageByModel = IndexMap::new();
                let mut batch: Vec<WriteOp> = Vec::with_capacity(2048);
                let mut pending: Vec<(String, CaseStatus, Tier, bool)> = Vec::with_capacity(2048);
                let mut staged = 0usize;
                while let Some(first) = wrx.blocking_recv() {
                    // Let a few messages gather before writing: one wake-up and one transaction
                    // per batch instead of per case (context switches dominated otherwise).
                    if wrx.len() < 256 {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    let mut msg = Some(first);
                    while let Some(m) = msg.take() {
                        match m {
                            WriterMsg::Op(op) => batch.push(*op),
                            WriterMsg::Case(o) => {
                                let o = *o;
                                let u = usage.entry(o.record.model.clone()).or_default();
                                u.input_tokens += o.record.input_tokens;
                                u.output_tokens += o.record.output_tokens;
                                u.cost_usd += o.record.cost_usd.unwrap_or(0.0);
                                pending.push((
                                    o.record.model.clone(),
                                    o.record.status,
                                    o.tier,
                                    o.record.cached,
                                ));
                                if let Some((key, response)) = o.cache {
                                    batch.push(WriteOp::Cache { key, response });
                                }
                                batch.push(WriteOp::Case(o.record));
                            }
                        }
                        if batch.len() < 2000 {
                            msg = wrx.try_recv().ok();
                        }
                    }
                    store.stage_batch(&batch)?;
                    staged += batch.len();
                    batch.clear();
                    if staged >= SETTLE_EVERY {
                        store.settle()?;
                        staged = 0;
                    }
                    // Count only what is committed.
                    for (model, status, tier, cached) in pending.drain(..) {
                        let t = tiers.entry((model.clone(), tier)).or_default();
                        if let Some(p) = writer_progress.get(&model) {
                            p.done.fetch_add(1, Ordering::Relaxed);
                            if cached {
                                p.cached.fetch_add(1, Ordering::Relaxed);
                            }
                            let counter = match status {
                                CaseStatus::Pass => &p.pass,
                                CaseStatus::Fail => &p.fail,
                                CaseStatus::Error => &p.error,
                                CaseStatus::Ungraded => &p.ungraded,
                            };
                            t.add(status);
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                store.settle()?;
                Ok((tiers, usage))
            })();
            // A store that cannot be written stops the sweep at once: every call made after
            // this would be paid for and its answer lost.
            if let Err(e) = &written {
                writer_control.fail_with(format!("the store could not be written: {e}"));
            }
            written
        })
        .map_err(|e| Error::Other(format!("writer thread: {e}")))?;

    // Ctrl-C: first stops gracefully, second exits at once (the store stays consistent).
    {
        let control = control.clone();
        let run_id = run.id.clone();
        rt.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                control.stop_with(|| "interrupted (Ctrl-C)".into());
                eprintln!("\nstopping: finishing the requests in flight (Ctrl-C again to quit now; resume with `cliffprobe sweep --resume {run_id}`)");
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("quitting; resume with `cliffprobe sweep --resume {run_id}`");
                    std::process::exit(130);
                }
            }
        });
    }

    let global = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let probes = Arc::new(probes);
    let lib = Arc::new(lib);
    let mut planners = Vec::new();
    let mut dispatchers = Vec::new();
    let mut model_ctxs: Vec<Arc<ModelCtx>> = Vec::new();
    // Planner threads per model: the cores not already taken by other models' planners
    // (at least one, at most four, never more than there are probes).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let planner_shards = (cores / models.len().max(1))
        .clamp(1, 4)
        .min(probes.len().max(1));
    for (idx, provider) in providers.into_iter().enumerate() {
        let (name, cfg) = models[idx].clone();
        let prog = progress[idx].1.clone();
        let ctx = Arc::new(ModelCtx::new(
            &name,
            provider,
            cfg.max_concurrency.unwrap_or(opts.concurrency),
            prog.clone(),
            control.clone(),
            &run.id,
        ));
        model_ctxs.push(ctx.clone());
        let (jtx, jrx) = mpsc::channel::<Vec<Job>>(JOB_QUEUE_BATCHES);
        // Planner threads: the model's probes are dealt round-robin to `shards` threads, so
        // rendering, encoding, hashing and cache lookups use every core when there are fewer
        // models than cores (one planner per model left a cached re-run bound by one thread).
        for shard in 0..planner_shards {
            let ctx = ctx.clone();
            let probes = probes.clone();
            let lib = lib.clone();
            let opts = opts.clone();
            let wtx = wtx.clone();
            let jtx = jtx.clone();
            let control = control.clone();
            let store_path = store_path.to_string();
            let run_id = run.id.clone();
            let write_variants = true; // every planner: a case must never arrive before its variant row
            let planner = std::thread::Builder::new()
                .name(format!("cliffprobe-plan-{name}"))
                .spawn(move || {
                    plan_model(
                        &ctx,
                        &probes,
                        Shard {
                            index: shard,
                            count: planner_shards,
                        },
                        &lib,
                        &opts,
                        &run_id,
                        &store_path,
                        write_variants,
                        JobSender::new(jtx),
                        wtx,
                        &control.stop,
                    )
                })
                .map_err(|e| Error::Other(format!("planner thread: {e}")))?;
            planners.push(planner);
        }
        drop(jtx);
        // Dispatcher task.
        let d = {
            let ctx = ctx.clone();
            let global = global.clone();
            let wtx = wtx.clone();
            let control = control.clone();
            let spent = spent.clone();
            let opts = opts.clone();
            let run_id = run.id.clone();
            let cfg = cfg.clone();
            let judge = judge.clone();
            rt.spawn(dispatch(
                ctx,
                judge,
                cfg,
                JobReceiver::new(jrx),
                global,
                wtx,
                control,
                spent,
                opts,
                run_id,
            ))
        };
        dispatchers.push(d);
    }
    drop(wtx);

    let display = crate::progress::Display::start(&progress, show_progress);
    let mut planner_error = None;
    for p in planners {
        let name = p.thread().name().unwrap_or("cliffprobe-plan").to_string();
        match p.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                control.fail_with(format!("planning failed: {e}"));
                planner_error.get_or_insert(e);
            }
            Err(payload) => control.fail_with(format!(
                "internal error: the planner thread {name} panicked: {}",
                panic_message(&*payload)
            )),
        }
    }
    rt.block_on(async {
        for d in dispatchers {
            if let Err(e) = d.await
                && e.is_panic()
            {
                control.fail_with(format!(
                    "internal error: a dispatcher panicked: {}",
                    panic_message(&*e.into_panic())
                ));
            }
        }
    });
    drop(rt);
    let written = match writer.join() {
        Ok(w) => w,
        Err(payload) => {
            let why = format!(
                "internal error: the writer thread panicked: {}",
                panic_message(&*payload)
            );
            control.fail_with(why.clone());
            Err(Error::Other(why))
        }
    };
    display.finish();
    if control.has_failed() {
        let reason = control
            .reason()
            .unwrap_or_else(|| "the sweep failed".into());
        // What was committed stays (staged rows are settled when the store is next opened);
        // the run says why it ended.
        // On a full disk this write can fail too: then say so rather than claim the run failed.
        let marked = Store::open_url(store_path).and_then(|mut store| match opts.shard {
            Some(slice) => store
                .end_slice(
                    &run.id,
                    slice,
                    &crate::store::SliceEnd {
                        status: RunStatus::Failed,
                        planned,
                        stored: 0,
                        finished_at: &now(),
                        note: Some(&reason),
                    },
                )
                .map(drop),
            None => store.finish_run(&run.id, RunStatus::Failed, &now(), Some(&reason)),
        });
        let unmarked = match marked {
            Ok(()) => String::new(),
            Err(e) => format!(
                "; the run could not be marked failed ({e}), so it still reads `running` until it \
                 is resumed"
            ),
        };
        let hint = format!(
            "the cases stored so far are kept{unmarked}; resume with `cliffprobe sweep --resume {}`",
            run.id
        );
        return Err(match planner_error {
            Some(e) if e.is_input() => e,
            _ => Error::Other(format!("sweep failed: {reason}; {hint}")),
        });
    }
    let (mut tiers, usage) = written?;
    let halted: Vec<String> = model_ctxs.iter().filter_map(|c| c.halt_reason()).collect();
    let stopped = control.reason();
    let mut store = Store::open_url(store_path)?;
    let invariant_probes: Vec<crate::sweep::invariance::InvariantProbe> = probes
        .iter()
        .filter_map(|lp| crate::sweep::invariance::InvariantProbe::of(&lp.probe))
        .collect();
    for t in crate::sweep::invariance::finalise(&mut store, &run.id, &invariant_probes)? {
        recount(&progress, &mut tiers, &t);
    }
    // Counted by the walk that leaves the run's brief snapshot
    // (`Store::count_cases_leaving_snapshot`): the first analysis after the sweep reads that.
    // A walk that fails (a store damaged outside cliffprobe) leaves that to the analyses.
    let stored = match opts.shard {
        // This slice's cases only: the other shards' are theirs to count.
        Some(slice) => {
            let mut n = 0u64;
            store.for_each_case_brief(&run.id, |c| {
                n += u64::from(slice.contains(c.variant_id));
                Ok(())
            })?;
            n
        }
        None => match store.count_cases_leaving_snapshot(&run.id) {
            Ok(n) => n,
            Err(_) => store.case_count(&run.id)?,
        },
    };
    let status = if stored >= planned && stopped.is_none() {
        RunStatus::Complete
    } else if stopped
        .as_deref()
        .is_some_and(|s| s.starts_with("interrupted"))
    {
        RunStatus::Interrupted
    } else {
        RunStatus::Partial
    };
    let note = stopped
        .iter()
        .chain(&halted)
        .cloned()
        .reduce(|a, b| format!("{a}; {b}"))
        .or_else(|| {
            (stored < planned).then(|| format!("{stored} of {planned} planned cases stored"))
        });
    match opts.shard {
        Some(slice) => {
            store.end_slice(
                &run.id,
                slice,
                &crate::store::SliceEnd {
                    status,
                    planned,
                    stored,
                    finished_at: &now(),
                    note: note.as_deref(),
                },
            )?;
        }
        None => store.finish_run(&run.id, status, &now(), note.as_deref())?,
    }
    let run = store.run(&run.id)?.unwrap_or(run);
    Ok(SweepOutcome {
        run,
        progress,
        tiers,
        usage,
        wall: started.elapsed(),
        stopped,
        halted,
        judge: judge.map(|j| j.summary()),
    })
}

/// Moves one case from its old status's counters to its new one's (after invariance grading).
fn recount(
    progress: &[(String, Arc<ModelProgress>)],
    tiers: &mut TierCounts,
    t: &crate::sweep::invariance::Transition,
) {
    if let Some((_, p)) = progress.iter().find(|(n, _)| *n == t.model) {
        let counter = |s: CaseStatus| match s {
            CaseStatus::Pass => &p.pass,
            CaseStatus::Fail => &p.fail,
            CaseStatus::Error => &p.error,
            CaseStatus::Ungraded => &p.ungraded,
        };
        // Saturating: a resumed run did not count the cases it kept.
        let _ = counter(t.from)
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        counter(t.to).fetch_add(1, Ordering::Relaxed);
    }
    tiers
        .entry((t.model.clone(), t.tier))
        .or_default()
        .moved(t.from, t.to);
}

#[allow(clippy::too_many_arguments)]
fn plan_model(
    ctx: &ModelCtx,
    probes: &[LoadedProbe],
    shard: Shard,
    lib: &AxisLibrary,
    opts: &SweepOptions,
    run_id: &str,
    store_path: &str,
    write_variants: bool,
    mut jobs: JobSender,
    writer: mpsc::Sender<WriterMsg>,
    stop: &AtomicBool,
) -> Result<()> {
    let reader = Store::open_url(store_path)?;
    let use_cache = !opts.no_cache;
    let is_mock = ctx.provider.kind() == ProviderKind::Mock;
    // Lookups (cache, resume) share read transactions of up to 512 lookups each.
    let mut lookups = 0u32;
    reader.begin_read()?;
    let mine = probes
        .iter()
        .enumerate()
        .filter(|(i, _)| i % shard.count == shard.index)
        .map(|(_, lp)| lp);
    for lp in mine {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let p = &lp.probe;
        let x = ProbeExpansion::new(p, lib)?;
        if write_variants {
            let op = WriteOp::Probe(ProbeRecord {
                id: p.id.clone(),
                digest: x.digest().to_string(),
                capability: p.capability.clone(),
                tier: p.tier,
                path: lp.path.display().to_string(),
            });
            if writer.blocking_send(WriterMsg::Op(Box::new(op))).is_err() {
                return Ok(());
            }
        }
        let checks = Arc::new(p.checks.clone());
        let has_judge = p.checks.iter().any(|c| matches!(c, Check::Judge(_)));
        let episode = p
            .episode
            .clone()
            .map(|e| (Arc::new(e), Arc::new(p.slots.tool_outputs.clone())));
        for point in slice_points(&x, p, opts)? {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let v = x.variant(point.axes)?;
            let canonical = v.canonical;
            let axes = v.axes;
            let chars: usize = v
                .request
                .messages
                .iter()
                .map(|m| m.content_str().len())
                .sum();
            let sim = episode.as_ref().map(|(e, slots)| {
                Arc::new(
                    crate::episode::simulator_for(
                        &p.id,
                        slots.clone(),
                        e.clone(),
                        &v.request,
                        lib,
                        &axes,
                    )
                    .with_aliases(v.added_tools.clone()),
                )
            });
            let prepared = Arc::new(Prepared {
                variant_id: v.variant,
                tier: p.tier,
                checks: checks.clone(),
                request: v.request,
                est_tokens: (chars / 4) as u64 + 1,
                has_judge,
                invariant: p.invariant.then_some(canonical),
                episode: sim,
            });
            // The variant's row goes to the writer before the first case or job of it (a case
            // must never arrive before its variant row), and only if the store may lack it.
            let mut row_pending = write_variants;
            let mut body = bytes::Bytes::new();
            for sample in 0..point.samples {
                // A resumed run keeps every graded case and retries its errors (an outage at
                // 3 a.m. should not stay in the results once the endpoint is back).
                if (opts.resume || opts.shard.is_some())
                    && reader
                        .case_status(run_id, &ctx.name, &prepared.variant_id, sample)?
                        .is_some_and(|st| st != CaseStatus::Error)
                {
                    ctx.progress.skipped.fetch_add(1, Ordering::Relaxed);
                    ctx.progress.done.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let next = if let Some(sim) = &prepared.episode {
                    ctx.progress.episodes.fetch_add(1, Ordering::Relaxed);
                    let mut run =
                        crate::episode::EpisodeRun::new(prepared.request.clone(), sim.clone());
                    // Replay the steps the cache answered (a re-run, a resume after a kill):
                    // the dispatcher calls the model from the first step it did not.
                    while !is_mock
                        && use_cache
                        && let Some(req) = run.next_request()
                    {
                        lookups += 1;
                        if lookups.is_multiple_of(512) {
                            reader.end_read()?;
                            reader.begin_read()?;
                        }
                        let key = cache_key(&ctx.provider, &ctx.provider.encode(req), sample);
                        match reader.cache_get(&key)? {
                            Some(resp) => run.feed(resp, true),
                            None => break,
                        }
                    }
                    if run.is_finished() && !prepared.has_judge {
                        Planned::Case(crate::episode::record::case_record(
                            crate::episode::record::CaseKey {
                                run_id,
                                model: &ctx.name,
                                variant_id: &prepared.variant_id,
                                sample,
                            },
                            &prepared.checks,
                            prepared.invariant,
                            &run,
                            0,
                            0,
                            ctx.provider.config(),
                            now(),
                        ))
                    } else {
                        Planned::Job(Job {
                            variant: prepared.clone(),
                            sample,
                            cache_key: String::new(),
                            body: bytes::Bytes::new(),
                            answered: None,
                            episode: Some(Box::new(run)),
                        })
                    }
                } else if is_mock {
                    // The mock is answered in the dispatcher: no body, no cache entry.
                    let job = Job {
                        variant: prepared.clone(),
                        sample,
                        cache_key: String::new(),
                        body: bytes::Bytes::new(),
                        answered: None,
                        episode: None,
                    };
                    Planned::Job(job)
                } else {
                    if body.is_empty() {
                        body = ctx.provider.encode(&prepared.request);
                    }
                    lookups += 1;
                    if lookups.is_multiple_of(512) {
                        reader.end_read()?;
                        reader.begin_read()?;
                    }
                    let key = cache_key(&ctx.provider, &body, sample);
                    match use_cache
                        .then(|| reader.cache_get(&key))
                        .transpose()?
                        .flatten()
                    {
                        // Only the judge is left to ask: that is async work for the dispatcher.
                        Some(resp) if prepared.has_judge => Planned::Job(Job {
                            variant: prepared.clone(),
                            sample,
                            cache_key: key,
                            body: bytes::Bytes::new(),
                            answered: Some(resp),
                            episode: None,
                        }),
                        Some(resp) => Planned::Case(graded_record(
                            run_id,
                            &ctx.name,
                            &prepared,
                            sample,
                            Ok(resp),
                            0,
                            0,
                            ctx.provider.config(),
                            true,
                        )),
                        None => Planned::Job(Job {
                            variant: prepared.clone(),
                            sample,
                            cache_key: key,
                            body: body.clone(),
                            answered: None,
                            episode: None,
                        }),
                    }
                };
                if row_pending {
                    row_pending = false;
                    // An answer from the cache means an earlier sweep has usually stored the
                    // variant. Variants are never deleted, and the settle would ignore a second
                    // row with the same id: a cached re-run skipped staging and settling a row
                    // per variant this way (one look-up in the planner's read transaction).
                    let stored =
                        next.answered_from_cache() && reader.has_variant(&prepared.variant_id)?;
                    if !stored {
                        let op = WriteOp::Variant(VariantRecord {
                            id: prepared.variant_id.clone(),
                            probe_id: p.id.clone(),
                            probe_digest: x.digest().to_string(),
                            canonical,
                            axes: axes.to_map(),
                        });
                        if writer.blocking_send(WriterMsg::Op(Box::new(op))).is_err() {
                            return Ok(());
                        }
                    }
                }
                let handed = match next {
                    Planned::Job(job) => jobs.push(job).is_ok(),
                    Planned::Case(record) => writer
                        .blocking_send(WriterMsg::Case(Box::new(Outcome {
                            record,
                            tier: prepared.tier,
                            cache: None,
                        })))
                        .is_ok(),
                };
                if !handed {
                    return Ok(());
                }
            }
        }
    }
    reader.end_read()?;
    // A closed queue here means the sweep is stopping: nothing is lost that a resume won't plan.
    let _ = jobs.flush();
    Ok(())
}

/// What a planner does with one planned case: hand it to the dispatcher, or (answered from
/// the cache, graded, no judge to ask) straight to the writer.
enum Planned {
    Job(Job),
    Case(CaseRecord),
}

impl Planned {
    /// Answered from the response cache (graded already, or waiting only for the judge).
    fn answered_from_cache(&self) -> bool {
        match self {
            Planned::Job(job) => {
                job.answered.is_some() || job.episode.as_ref().is_some_and(|e| e.is_finished())
            }
            Planned::Case(_) => true,
        }
    }
}

/// Which of a model's planner threads this is: it plans the probes whose index is `index`
/// modulo `count`.
#[derive(Debug, Clone, Copy)]
struct Shard {
    index: usize,
    count: usize,
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    ctx: Arc<ModelCtx>,
    judge: Option<Arc<JudgeCtx>>,
    cfg: ModelConfig,
    mut jobs: JobReceiver,
    global: Arc<Semaphore>,
    writer: mpsc::Sender<WriterMsg>,
    control: Arc<Control>,
    spent: Arc<Mutex<f64>>,
    opts: SweepOptions,
    run_id: String,
) {
    let mut tasks = tokio::task::JoinSet::new();
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
        let judge = judge.clone().filter(|_| job.variant.has_judge);
        let episode_done = job.episode.as_ref().is_some_and(|e| e.is_finished());
        if job.answered.is_none()
            && !episode_done
            && let Some(limit) = opts.budget_usd
            && *spent.lock().unwrap_or_else(|p| p.into_inner()) >= limit
        {
            control.stop_with(|| format!("budget of ${limit:.2} reached"));
            continue;
        }
        if is_mock && judge.is_none() && job.episode.is_some() {
            // The mock plays the agent at once: no permits, no spawn.
            let mut job = job;
            let run = job.episode.take().expect("an episode job");
            let Some((run, attempts)) = drive_episode(
                &ctx,
                None,
                &global,
                *run,
                &job.variant.checks,
                job.sample,
                &writer,
                true,
            )
            .await
            else {
                continue;
            };
            let rec = episode_case(
                &run_id,
                &ctx.name,
                &job.variant,
                job.sample,
                &run,
                0,
                attempts,
                &cfg,
            );
            if writer
                .send(WriterMsg::Case(Box::new(Outcome {
                    record: rec,
                    tier: job.variant.tier,
                    cache: None,
                })))
                .await
                .is_err()
            {
                break;
            }
            continue;
        }
        if is_mock && judge.is_none() {
            // The mock answers at once: no permits, no spawn.
            if let Some(limit) = control.budget_requests
                && control.requests.fetch_add(1, Ordering::SeqCst) >= limit
            {
                control.stop_with(|| format!("budget of {limit} requests reached"));
                continue;
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
                &run_id,
                &ctx.name,
                &job.variant,
                job.sample,
                resp.map_err(|e| e.to_string()),
                0,
                1,
                &cfg,
                false,
            );
            if writer
                .send(WriterMsg::Case(Box::new(Outcome {
                    record: rec,
                    tier: job.variant.tier,
                    cache: None,
                })))
                .await
                .is_err()
            {
                break;
            }
            continue;
        }
        // A model call takes one of the model's slots here (which bounds the tasks in
        // flight), and a global permit only around each HTTP request; a cached answer or the
        // mock (waiting only for the judge) takes neither.
        let calls_model = job.answered.is_none() && !is_mock && !episode_done;
        if calls_model {
            ctx.adaptive.acquire().await;
        }
        let ctx2 = ctx.clone();
        let writer = writer.clone();
        let spent = spent.clone();
        let run_id = run_id.clone();
        let cfg = cfg.clone();
        let global = global.clone();
        tasks.spawn(async move {
            let mut slot = calls_model.then(|| Slot::taken(&ctx2.adaptive));
            let started = Instant::now();
            let mut job = job;
            if let Some(run) = job.episode.take() {
                let Some((run, attempts)) = drive_episode(
                    &ctx2,
                    slot.as_mut(),
                    &global,
                    *run,
                    &job.variant.checks,
                    job.sample,
                    &writer,
                    is_mock,
                )
                .await
                else {
                    return;
                };
                drop(slot);
                let latency = started.elapsed().as_millis() as u64;
                let rec = episode_case(
                    &run_id,
                    &ctx2.name,
                    &job.variant,
                    job.sample,
                    &run,
                    latency,
                    attempts,
                    &cfg,
                );
                let view = run.judge_view();
                finish_case(
                    &ctx2,
                    judge.as_deref(),
                    &job.variant,
                    rec,
                    None,
                    view,
                    &writer,
                    &spent,
                )
                .await;
                return;
            }
            let cached = job.answered.is_some();
            let (result, attempts) = if let Some(r) = job.answered.take() {
                (Ok(r), 0)
            } else if is_mock {
                let r = crate::call::attempt(
                    &ctx2.provider,
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
                    &ctx2,
                    slot,
                    Some(&global),
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
                &run_id,
                &ctx2.name,
                &job.variant,
                job.sample,
                result,
                latency,
                attempts,
                &cfg,
                cached,
            );
            if rec.status != CaseStatus::Error && (calls_model || is_mock) {
                ctx2.progress.model_calls.fetch_add(1, Ordering::Relaxed);
            }
            let view = ChatResponse {
                text: rec.output.clone(),
                tool_calls: rec.tool_calls.clone(),
                ..Default::default()
            };
            finish_case(
                &ctx2,
                judge.as_deref(),
                &job.variant,
                rec,
                cache,
                view,
                &writer,
                &spent,
            )
            .await;
        });
        while let Some(r) = tasks.try_join_next() {
            reap(r);
        }
    }
    while let Some(r) = tasks.join_next().await {
        reap(r);
    }
}

/// The end of a case: its cost counted, the judge asked (seeing `view`: the answer, or an
/// episode's whole trajectory) when the probe has judge checks, the case (and the fresh answer
/// to cache) handed to the writer. A judge cut short by the sweep stopping (budget, Ctrl-C,
/// failure) leaves the case unstored: a resume grades it, with its answer from the cache.
#[allow(clippy::too_many_arguments)]
async fn finish_case(
    ctx: &ModelCtx,
    judge: Option<&JudgeCtx>,
    variant: &Prepared,
    mut rec: CaseRecord,
    cache: Option<(String, ChatResponse)>,
    view: ChatResponse,
    writer: &mpsc::Sender<WriterMsg>,
    spent: &Mutex<f64>,
) {
    if let Some(c) = rec.cost_usd {
        *spent.lock().unwrap_or_else(|p| p.into_inner()) += c;
    }
    if let Some(judge) = judge
        && rec.status != CaseStatus::Error
    {
        let judged = judge_checks(judge, variant, &view, writer, spent).await;
        if judged.is_err() && ctx.control.stopped() {
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

/// Runs an episode on from where the planner left it (after the steps the cache answered):
/// each step is one model call through [`call_with_retries`] (the same retries, limits and
/// slot as a single-turn case; `slot` is `None` only for the mock), its answer cached as it
/// arrives (a resume replays it without HTTP), its tool calls answered by the simulator. A step
/// without an answer makes the episode an `error` (`step N: …`). Returns the finished episode
/// and the HTTP attempts made, or `None` when the sweep or the model stopped meanwhile (the case
/// is not written; a resume plans it again).
#[allow(clippy::too_many_arguments)]
async fn drive_episode(
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
fn episode_case(
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

/// Results queued for the writer at most. While the writer settles (about a second per
/// 100,000 cases) the queue fills and the dispatchers wait: a bigger queue would only hold more
/// results (a few KB each) in memory, not make the sweep faster.
const WRITER_QUEUE: usize = 2048;

/// Write ops (cases, variants, cache entries) the writer stages before it settles them into the
/// tables ([`Store::settle`]): about 100,000 cases of an uncached sweep. Bigger settles write
/// each index page fewer times; this bound keeps one settle's transaction (and the WAL it
/// leaves) to a few hundred MB.
const SETTLE_EVERY: usize = 300_000;

use crate::call::{Ask, Called, Outcome as CallOutcome};

/// The prefix of a case error whose request does not fit the model's context window.
pub const CONTEXT_OVERFLOW: &str = "exceeds the model's context window";

/// What one case's call shares with the other calls to its model, as the [`crate::call::Pacing`]
/// of the one call path: per attempt, the model's pause (a server's `Retry-After`), its rpm and
/// tpm buckets, then one of the sweep's global permits (`global`: `--concurrency`) only for the
/// HTTP request itself. Waiting on a 429 holds no global permit, and gives the model slot back,
/// so a throttled model never keeps the other models' requests waiting. Each attempt counts
/// against `--budget-requests`; once it is spent, or the sweep fails, or the model is stopped,
/// the case is abandoned (not written).
struct SweepPacing<'a, 's> {
    ctx: &'a ModelCtx,
    slot: &'a mut Slot<'s>,
    global: Option<&'a Semaphore>,
    /// The request's input-token estimate.
    est_tokens: u64,
    /// What the tpm bucket is charged per attempt: the input estimate and all the output the
    /// request may ask for.
    charge: f64,
    permit: Option<tokio::sync::SemaphorePermit<'a>>,
}

impl crate::call::Pacing for SweepPacing<'_, '_> {
    async fn before_attempt(&mut self) -> std::result::Result<(), crate::call::Stop> {
        use crate::call::Stop;
        let ctx = self.ctx;
        if ctx.control.has_failed() || ctx.is_halted() {
            return Err(Stop::Abandoned);
        }
        // Honour a server-requested pause for this model.
        let pause = *ctx.pause_until.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = pause {
            let now = Instant::now();
            if until > now {
                tokio::time::sleep(until - now).await;
            }
        }
        if let Some(b) = &ctx.rpm {
            let _ = b.take(1.0).await;
        }
        if let Some(b) = &ctx.tpm
            && let Err(e) = b.take(self.charge).await
        {
            return Err(Stop::Error(format!(
                "the request needs about {:.0} tokens ({} in, up to {} out), more than the model's tpm = {:.0} allows in a minute: it can never be sent within the limit (raise tpm or lower max_tokens)",
                e.amount,
                self.est_tokens,
                e.amount as u64 - self.est_tokens,
                e.per_minute
            )));
        }
        self.permit = match self.global {
            Some(g) => match g.acquire().await {
                Ok(p) => Some(p),
                Err(_) => return Err(Stop::Abandoned),
            },
            None => None,
        };
        if ctx.control.has_failed() || ctx.is_halted() {
            return Err(Stop::Abandoned);
        }
        if let Some(limit) = ctx.control.budget_requests
            && ctx.control.requests.fetch_add(1, Ordering::SeqCst) >= limit
        {
            ctx.control
                .stop_with(|| format!("budget of {limit} requests reached"));
            return Err(Stop::Abandoned);
        }
        ctx.progress.attempts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn after_attempt(&mut self, result: &std::result::Result<ChatResponse, CallError>) {
        self.permit = None;
        let ctx = self.ctx;
        match result {
            Ok(r) => {
                ctx.note_answer(None);
                ctx.adaptive.on_success();
                if let Some(b) = &ctx.tpm {
                    let used = r.usage.input_tokens + r.usage.output_tokens;
                    if used > 0 {
                        b.adjust(self.charge - used as f64);
                    }
                }
            }
            Err(CallError::RateLimited { .. }) => {
                if let Some(b) = &ctx.tpm {
                    b.adjust(self.charge);
                }
                ctx.progress.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            Err(CallError::ContextOverflow(_)) => {
                ctx.progress
                    .context_overflow
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {}
        }
    }

    fn rate_limited(&mut self, wait: Duration) {
        self.ctx.adaptive.on_rate_limited(wait);
    }

    async fn wait(&mut self, wait: Duration) {
        {
            let mut p = self
                .ctx
                .pause_until
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let until = Instant::now() + wait;
            if p.is_none_or(|x| x < until) {
                *p = Some(until);
            }
        }
        // Give the slot back while waiting and queue for it again: the retry then obeys the
        // concurrency the 429 just halved, so in-flight requests do not all wake at the end of
        // the pause and stampede the endpoint (a case could lose that race again and again and
        // end as an error).
        self.slot.release();
        tokio::time::sleep(wait).await;
        self.slot.reacquire().await;
    }

    fn gave_up(&mut self, message: &str) {
        self.ctx.note_answer(Some(message));
    }
}

/// One case's call (or one episode step, or one judge request) through the one call path
/// ([`crate::call::with_retries`]) with the model's [`SweepPacing`]. The caller holds one of
/// the model's adaptive-concurrency slots (`slot`), and still holds it when this returns.
async fn call_with_retries(
    ctx: &ModelCtx,
    slot: &mut Slot<'_>,
    global: Option<&Semaphore>,
    body: &bytes::Bytes,
    request: &ChatRequest,
    ask: Ask<'_>,
    est_tokens: u64,
) -> Called {
    let charge = est_tokens as f64
        + ctx
            .provider
            .config()
            .max_tokens
            .unwrap_or(crate::provider::DEFAULT_MAX_TOKENS) as f64;
    let mut pacing = SweepPacing {
        ctx,
        slot,
        global,
        est_tokens,
        charge,
        permit: None,
    };
    crate::call::with_retries(&ctx.provider, body, request, ask, &ctx.policy, &mut pacing).await
}

#[allow(clippy::too_many_arguments)]
fn graded_record(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs_for(n: u32) -> impl Iterator<Item = Job> {
        let prepared = Arc::new(Prepared {
            variant_id: "v".into(),
            tier: Tier::Hard,
            checks: Arc::new(vec![]),
            request: ChatRequest {
                messages: vec![],
                tools: vec![],
            },
            est_tokens: 1,
            has_judge: false,
            invariant: None,
            episode: None,
        });
        (0..n).map(move |sample| Job {
            variant: prepared.clone(),
            sample,
            cache_key: String::new(),
            body: bytes::Bytes::new(),
            answered: None,
            episode: None,
        })
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn a_burst_of_429s_halves_the_concurrency_once_per_window() {
        let a = Adaptive::new(16);
        for _ in 0..16 {
            a.on_rate_limited(Duration::from_secs(2));
        }
        assert_eq!(a.limit.load(Ordering::Relaxed), 8);
        // After the window, the next 429 halves again.
        *a.next_halving.lock().unwrap() = Some(Instant::now());
        a.on_rate_limited(Duration::from_secs(2));
        assert_eq!(a.limit.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_slot_is_given_back_when_its_task_panics() {
        let rt = runtime();
        let a = Arc::new(Adaptive::new(1));
        rt.block_on(async {
            a.acquire().await;
            let held = a.clone();
            let task = tokio::spawn(async move {
                let _slot = Slot::taken(&held);
                panic!("boom");
            });
            let err = task.await.unwrap_err();
            assert!(err.is_panic());
            assert_eq!(panic_message(&*err.into_panic()), "boom");
            // The only slot is free again: this would wait for ever otherwise.
            tokio::time::timeout(Duration::from_secs(5), a.acquire())
                .await
                .expect("the slot was released");
        });
    }

    #[test]
    fn a_bucket_charges_whole_requests_and_refuses_one_that_can_never_fit() {
        runtime().block_on(async {
            // 600,000 a minute: 10,000 a second, bursts of 10,000.
            let b = Bucket::per_minute(600_000.0);
            let t0 = Instant::now();
            b.take(14_000.0).await.unwrap();
            // The bucket is 4,000 in debt: 5,000 more need 0.9 s of refill.
            b.take(5_000.0).await.unwrap();
            let waited = t0.elapsed().as_secs_f64();
            assert!((0.85..1.5).contains(&waited), "{waited}");
            assert_eq!(
                b.take(600_001.0).await,
                Err(NeverFits {
                    amount: 600_001.0,
                    per_minute: 600_000.0
                })
            );
            // A refund is usable at once.
            b.adjust(5_000.0);
            let t1 = Instant::now();
            b.take(5_000.0).await.unwrap();
            assert!(t1.elapsed() < Duration::from_millis(10));
        });
    }

    #[test]
    fn a_zero_or_nan_rate_never_panics() {
        runtime().block_on(async {
            for n in [0.0, f64::NAN, -5.0, f64::INFINITY] {
                let b = Bucket::per_minute(n);
                let _ = b.take(1.0).await;
            }
        });
    }

    #[test]
    fn backoff_draws_from_zero_to_the_cap() {
        use crate::call::{backoff, backoff_cap};
        let cap = backoff_cap(3);
        assert_eq!(cap, 2.0);
        let draws: Vec<f64> = (0..400).map(|_| backoff(3).as_secs_f64()).collect();
        assert!(draws.iter().all(|d| (0.0..=cap).contains(d)));
        assert!(
            draws.iter().any(|d| *d < cap / 4.0),
            "full jitter reaches below cap/2"
        );
        assert!(draws.iter().any(|d| *d > 3.0 * cap / 4.0));
        assert_eq!(backoff_cap(30), 20.0);
    }

    #[test]
    fn a_model_is_stopped_after_the_same_error_only() {
        let cfg = crate::config::ModelConfig {
            provider: ProviderKind::Mock,
            base_url: None,
            model: "m".into(),
            api_key_env: None,
            headers: Default::default(),
            temperature: None,
            max_tokens: None,
            max_tokens_field: None,
            timeout: None,
            max_concurrency: None,
            rpm: None,
            tpm: None,
            max_retries: None,
            price_input: None,
            price_output: None,
            compat: Default::default(),
        };
        let ctx = |_: ()| {
            ModelCtx::new(
                "m",
                Provider::new("m", &cfg).unwrap(),
                4,
                Arc::new(ModelProgress::default()),
                Arc::new(Control::default()),
                "r-1",
            )
        };
        let broken = ctx(());
        for _ in 0..SAME_ERROR_STOP - 1 {
            broken.note_answer(Some("HTTP 500: no"));
        }
        assert!(!broken.is_halted());
        broken.note_answer(Some("HTTP 500: no"));
        assert!(broken.is_halted());
        let why = broken.halt_reason().unwrap();
        assert!(
            why.contains("HTTP 500: no") && why.contains("--resume r-1"),
            "{why}"
        );

        // Different errors, or an answer first, never stop a model.
        let mixed = ctx(());
        mixed.note_answer(Some("HTTP 500: a"));
        mixed.note_answer(Some("HTTP 502: b"));
        for _ in 0..20 {
            mixed.note_answer(Some("HTTP 500: a"));
        }
        assert!(!mixed.is_halted());
        let answered = ctx(());
        answered.note_answer(None);
        for _ in 0..20 {
            answered.note_answer(Some("HTTP 500: a"));
        }
        assert!(!answered.is_halted());
    }

    #[test]
    fn planned_jobs_arrive_whole_and_in_order_in_full_batches_then_the_rest() {
        let n = 2 * JOB_BATCH as u32 + 5;
        let (tx, mut rx) = mpsc::channel(JOB_QUEUE_BATCHES);
        // The queue holds fewer batches than are sent only if the receiver keeps up: a thread
        // plans, as the planners do, and this one receives.
        let planner = std::thread::spawn(move || {
            let mut sender = JobSender::new(tx);
            for job in jobs_for(n) {
                assert!(sender.push(job).is_ok());
            }
            assert!(sender.flush().is_ok());
        });
        let (mut sizes, mut samples) = (vec![], vec![]);
        while let Some(batch) = rx.blocking_recv() {
            sizes.push(batch.len());
            samples.extend(batch.iter().map(|j| j.sample));
        }
        planner.join().unwrap();
        assert_eq!(sizes, [JOB_BATCH, JOB_BATCH, 5]);
        assert_eq!(samples, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn the_dispatcher_takes_every_batch_s_jobs_one_at_a_time_in_order_then_none() {
        let n = 2 * JOB_BATCH as u32 + 5;
        let (tx, rx) = mpsc::channel(JOB_QUEUE_BATCHES);
        let planner = std::thread::spawn(move || {
            let mut sender = JobSender::new(tx);
            for job in jobs_for(n) {
                assert!(sender.push(job).is_ok());
            }
            assert!(sender.flush().is_ok());
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let samples = rt.block_on(async {
            let mut jobs = JobReceiver::new(rx);
            let mut samples = vec![];
            while let Some(job) = jobs.recv().await {
                samples.push(job.sample);
            }
            samples
        });
        planner.join().unwrap();
        assert_eq!(samples, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn a_planner_learns_the_dispatcher_is_gone_when_it_hands_over_a_batch() {
        let (tx, rx) = mpsc::channel(JOB_QUEUE_BATCHES);
        drop(rx);
        let mut sender = JobSender::new(tx);
        let mut jobs = jobs_for(JOB_BATCH as u32);
        for job in jobs.by_ref().take(JOB_BATCH - 1) {
            assert!(sender.push(job).is_ok(), "a half batch is kept, not sent");
        }
        assert!(sender.push(jobs.next().unwrap()).is_err());
        assert!(sender.flush().is_ok(), "nothing left to hand over");
    }
}
