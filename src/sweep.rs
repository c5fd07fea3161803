//! Sweep: run every planned case (variant × model × sample) over real HTTP, grade it and
//! store it, surviving rate limits, faults and interruption.
//!
//! Shape: one *planner* thread per model expands the suite as a stream (never the whole
//! expansion in memory), skips cases a resumed run already has, answers from the response
//! cache where it can, and feeds the rest to that model's async *dispatcher*. The dispatcher
//! respects the model's concurrency (adaptive: halved on 429, grown back on success), its rpm
//! and tpm buckets and the global concurrency, and retries 429s (waiting as the server says)
//! and transient faults (exponential backoff with jitter). One *writer* thread commits results
//! in batched transactions. Per-model planners make scheduling fair: a slow model never holds
//! up a fast one. Invariants: exactly one stored result per planned case (the store's primary
//! key makes a re-write a replacement, never a duplicate); an `error` is never graded; API keys
//! never reach the store, the cache key or a message.

use crate::axes::AxisLibrary;
use crate::chat::{ChatRequest, ChatResponse};
use crate::check::Check;
use crate::config::{Config, ModelConfig, ProviderKind};
use crate::error::{Error, Result};
use crate::expand::{AxisFilter, ProbeExpansion, Strategy};
use crate::grade::{self, CaseStatus};
use crate::probe::{LoadedProbe, Tier};
use crate::provider::{CallError, Provider};
use crate::store::{CaseRecord, ProbeRecord, RunInfo, RunStatus, Store, VariantRecord, WriteOp};
use indexmap::IndexMap;
use rand::Rng;
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
}

/// Counters of one model, shared with the progress display.
#[derive(Debug, Default)]
pub struct ModelProgress {
    /// Planned cases.
    pub planned: AtomicU64,
    /// Stored cases.
    pub done: AtomicU64,
    /// Passed.
    pub pass: AtomicU64,
    /// Failed.
    pub fail: AtomicU64,
    /// Errors.
    pub error: AtomicU64,
    /// Ungraded.
    pub ungraded: AtomicU64,
    /// Answered from the cache.
    pub cached: AtomicU64,
    /// Already present (resume).
    pub skipped: AtomicU64,
    /// HTTP attempts made.
    pub attempts: AtomicU64,
    /// 429s received.
    pub rate_limited: AtomicU64,
}

/// Tokens in, tokens out and cost per model.
pub type UsageByModel = IndexMap<String, (u64, u64, f64)>;

/// Per model × tier outcome counts, for the summary.
pub type TierCounts = IndexMap<(String, Tier), [u64; 4]>;

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
    pub usage: IndexMap<String, (u64, u64, f64)>,
    /// Wall time.
    pub wall: Duration,
    /// Why it stopped early, if it did.
    pub stopped: Option<String>,
}

/// A rendered variant shared by the jobs of its samples.
struct Prepared {
    variant_id: String,
    tier: Tier,
    checks: Arc<Vec<Check>>,
    request: ChatRequest,
    est_tokens: u64,
}

struct Job {
    variant: Arc<Prepared>,
    sample: u32,
    cache_key: String,
    /// The wire body, encoded once for the cache key and every attempt.
    body: bytes::Bytes,
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

/// Adaptive concurrency: a limit that halves on 429 and grows by one after `limit` successes.
struct Adaptive {
    limit: AtomicUsize,
    max: usize,
    inflight: AtomicUsize,
    successes: AtomicUsize,
    notify: Notify,
}

impl Adaptive {
    fn new(max: usize) -> Adaptive {
        Adaptive {
            limit: AtomicUsize::new(max),
            max,
            inflight: AtomicUsize::new(0),
            successes: AtomicUsize::new(0),
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
    fn on_rate_limited(&self) {
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

/// A token bucket (rpm or tpm): `rate` per second, bursts up to `capacity`.
struct Bucket {
    state: Mutex<(f64, Instant)>,
    rate: f64,
    capacity: f64,
}

impl Bucket {
    fn per_minute(n: f64) -> Bucket {
        let rate = n / 60.0;
        // A small burst keeps the rate smooth, so a server counting per minute never sees more.
        let capacity = rate.clamp(1.0, n.max(1.0));
        Bucket {
            state: Mutex::new((capacity, Instant::now())),
            rate,
            capacity,
        }
    }
    async fn take(&self, amount: f64) {
        let amount = amount.min(self.capacity);
        loop {
            let wait = {
                let mut s = self.state.lock().expect("bucket lock");
                let now = Instant::now();
                s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * self.rate).min(self.capacity);
                s.1 = now;
                if s.0 >= amount {
                    s.0 -= amount;
                    return;
                }
                Duration::from_secs_f64((amount - s.0) / self.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

struct ModelCtx {
    name: String,
    provider: Provider,
    adaptive: Adaptive,
    rpm: Option<Bucket>,
    tpm: Option<Bucket>,
    pause_until: Mutex<Option<Instant>>,
    max_retries: u32,
    progress: Arc<ModelProgress>,
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
    let tag: u16 = entropy_rng().random();
    format!("r-{}-{tag:04x}", now.strftime("%Y%m%d-%H%M%S"))
}

/// RFC 3339 UTC now.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Counts the cases a sweep plans: per probe, the number of points × models × repeats.
pub fn plan_counts(
    probes: &[LoadedProbe],
    lib: &AxisLibrary,
    opts: &SweepOptions,
) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::with_capacity(probes.len());
    for p in probes {
        let x = ProbeExpansion::new(&p.probe, lib)?;
        let n = x.points(opts.strategy, opts.seed, &opts.axes)?.count() as u64;
        out.push((p.probe.id.clone(), n));
    }
    Ok(out)
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
    crate::provider::install_crypto_provider();
    let providers: Vec<Provider> = models
        .iter()
        .map(|(n, c)| Provider::new(n, c))
        .collect::<Result<_>>()?;

    let counts = plan_counts(&probes, &lib, &opts)?;
    let variants_planned: u64 = counts.iter().map(|(_, n)| n).sum();
    let per_model = variants_planned * opts.repeats as u64;
    let planned = per_model * models.len() as u64;

    let mut store = Store::open_url(store_path)?;
    let _lock = store.acquire_lock(&format!("sweep {}", opts.run_id))?;
    let run = match (opts.resume, store.run(&opts.run_id)?) {
        (true, Some(mut r)) => {
            r.status = RunStatus::Running;
            r.finished_at = None;
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
            let r = RunInfo {
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
            };
            store.begin_run(&r)?;
            r
        }
    };

    let stop = Arc::new(AtomicBool::new(false));
    let stop_reason: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let requests_made = Arc::new(AtomicU64::new(0));
    let spent = Arc::new(Mutex::new(0.0f64));
    let progress: Vec<(String, Arc<ModelProgress>)> = models
        .iter()
        .map(|(n, _)| {
            let p = Arc::new(ModelProgress::default());
            p.planned.store(per_model, Ordering::Relaxed);
            (n.clone(), p)
        })
        .collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .map_err(|e| Error::Other(format!("tokio runtime: {e}")))?;
    let (wtx, mut wrx) = mpsc::channel::<WriterMsg>(8192);

    // Writer thread.
    let writer_progress: IndexMap<String, Arc<ModelProgress>> = progress.iter().cloned().collect();
    let writer = std::thread::Builder::new()
        .name("cliffprobe-writer".into())
        .spawn(move || -> Result<(TierCounts, UsageByModel)> {
            let mut tiers: TierCounts = IndexMap::new();
            let mut usage: IndexMap<String, (u64, u64, f64)> = IndexMap::new();
            let mut batch: Vec<WriteOp> = Vec::with_capacity(2048);
            let mut pending: Vec<(String, CaseStatus, Tier, bool)> = Vec::with_capacity(2048);
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
                            u.0 += o.record.input_tokens;
                            u.1 += o.record.output_tokens;
                            u.2 += o.record.cost_usd.unwrap_or(0.0);
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
                store.write_batch(&batch)?;
                batch.clear();
                // Count only what is committed.
                for (model, status, tier, cached) in pending.drain(..) {
                    let t = tiers.entry((model.clone(), tier)).or_default();
                    if let Some(p) = writer_progress.get(&model) {
                        p.done.fetch_add(1, Ordering::Relaxed);
                        if cached {
                            p.cached.fetch_add(1, Ordering::Relaxed);
                        }
                        let (slot, counter) = match status {
                            CaseStatus::Pass => (0, &p.pass),
                            CaseStatus::Fail => (1, &p.fail),
                            CaseStatus::Error => (2, &p.error),
                            CaseStatus::Ungraded => (3, &p.ungraded),
                        };
                        t[slot] += 1;
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok((tiers, usage))
        })
        .map_err(|e| Error::Other(format!("writer thread: {e}")))?;

    // Ctrl-C: first stops gracefully, second exits at once (the store stays consistent).
    {
        let stop = stop.clone();
        let reason = stop_reason.clone();
        let run_id = run.id.clone();
        rt.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::SeqCst);
                reason.lock().expect("reason").get_or_insert_with(|| "interrupted (Ctrl-C)".into());
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
    for (idx, provider) in providers.into_iter().enumerate() {
        let (name, cfg) = models[idx].clone();
        let prog = progress[idx].1.clone();
        let ctx = Arc::new(ModelCtx {
            name: name.clone(),
            adaptive: Adaptive::new(cfg.max_concurrency.unwrap_or(opts.concurrency).max(1)),
            rpm: cfg.rpm.map(|n| Bucket::per_minute(n as f64)),
            tpm: cfg.tpm.map(|n| Bucket::per_minute(n as f64)),
            pause_until: Mutex::new(None),
            max_retries: cfg.max_retries.unwrap_or(4),
            progress: prog.clone(),
            provider,
        });
        let (jtx, jrx) = mpsc::channel::<Job>(512);
        // Planner thread.
        let planner = {
            let ctx = ctx.clone();
            let probes = probes.clone();
            let lib = lib.clone();
            let opts = opts.clone();
            let wtx = wtx.clone();
            let stop = stop.clone();
            let store_path = store_path.to_string();
            let run_id = run.id.clone();
            let write_variants = true; // every planner: a case must never arrive before its variant row
            std::thread::Builder::new()
                .name(format!("cliffprobe-plan-{name}"))
                .spawn(move || {
                    plan_model(
                        &ctx,
                        &probes,
                        &lib,
                        &opts,
                        &run_id,
                        &store_path,
                        write_variants,
                        jtx,
                        wtx,
                        &stop,
                    )
                })
                .map_err(|e| Error::Other(format!("planner thread: {e}")))?
        };
        planners.push(planner);
        // Dispatcher task.
        let d = {
            let ctx = ctx.clone();
            let global = global.clone();
            let wtx = wtx.clone();
            let stop = stop.clone();
            let stop_reason = stop_reason.clone();
            let requests_made = requests_made.clone();
            let spent = spent.clone();
            let opts = opts.clone();
            let run_id = run.id.clone();
            let cfg = cfg.clone();
            rt.spawn(dispatch(
                ctx,
                cfg,
                jrx,
                global,
                wtx,
                stop,
                stop_reason,
                requests_made,
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
        match p.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                stop.store(true, Ordering::SeqCst);
                planner_error.get_or_insert(e);
            }
            Err(_) => {
                planner_error.get_or_insert(Error::Other("a planner thread panicked".into()));
            }
        }
    }
    rt.block_on(async {
        for d in dispatchers {
            let _ = d.await;
        }
    });
    drop(rt);
    let written = writer
        .join()
        .map_err(|_| Error::Other("the writer thread panicked".into()))?;
    display.finish();
    let (tiers, usage) = written?;
    if let Some(e) = planner_error {
        let store = Store::open_url(store_path)?;
        store.finish_run(
            &run.id,
            RunStatus::Interrupted,
            &now(),
            Some(&e.to_string()),
        )?;
        return Err(e);
    }
    let stopped = stop_reason.lock().expect("reason").clone();
    let store = Store::open_url(store_path)?;
    let stored = store.case_count(&run.id)?;
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
    let note = stopped.clone().or_else(|| {
        (stored < planned).then(|| format!("{stored} of {planned} planned cases stored"))
    });
    store.finish_run(&run.id, status, &now(), note.as_deref())?;
    let run = store.run(&run.id)?.unwrap_or(run);
    Ok(SweepOutcome {
        run,
        progress,
        tiers,
        usage,
        wall: started.elapsed(),
        stopped,
    })
}

#[allow(clippy::too_many_arguments)]
fn plan_model(
    ctx: &ModelCtx,
    probes: &[LoadedProbe],
    lib: &AxisLibrary,
    opts: &SweepOptions,
    run_id: &str,
    store_path: &str,
    write_variants: bool,
    jobs: mpsc::Sender<Job>,
    writer: mpsc::Sender<WriterMsg>,
    stop: &AtomicBool,
) -> Result<()> {
    let reader = Store::open_url(store_path)?;
    let use_cache = !opts.no_cache;
    let is_mock = ctx.provider.kind() == ProviderKind::Mock;
    // Lookups (cache, resume) share read transactions of up to 512 lookups each.
    let mut lookups = 0u32;
    reader.begin_read()?;
    for lp in probes {
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
        for axes in x.points(opts.strategy, opts.seed, &opts.axes)? {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let v = x.variant(axes)?;
            if write_variants {
                let op = WriteOp::Variant(VariantRecord {
                    id: v.variant.clone(),
                    probe_id: p.id.clone(),
                    probe_digest: x.digest().to_string(),
                    canonical: v.canonical,
                    axes: v.axes.to_map(),
                });
                if writer.blocking_send(WriterMsg::Op(Box::new(op))).is_err() {
                    return Ok(());
                }
            }
            let chars: usize = v
                .request
                .messages
                .iter()
                .map(|m| m.content_str().len())
                .sum();
            let prepared = Arc::new(Prepared {
                variant_id: v.variant,
                tier: p.tier,
                checks: checks.clone(),
                request: v.request,
                est_tokens: (chars / 4) as u64 + 1,
            });
            let mut body = bytes::Bytes::new();
            for sample in 0..opts.repeats {
                // A resumed run keeps every graded case and retries its errors (an outage at
                // 3 a.m. should not stay in the results once the endpoint is back).
                if opts.resume
                    && reader
                        .case_status(run_id, &ctx.name, &prepared.variant_id, sample)?
                        .is_some_and(|st| st != CaseStatus::Error)
                {
                    ctx.progress.skipped.fetch_add(1, Ordering::Relaxed);
                    ctx.progress.done.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if is_mock {
                    // The mock is answered in the dispatcher: no body, no cache entry.
                    let job = Job {
                        variant: prepared.clone(),
                        sample,
                        cache_key: String::new(),
                        body: bytes::Bytes::new(),
                    };
                    if jobs.blocking_send(job).is_err() {
                        return Ok(());
                    }
                    continue;
                }
                if body.is_empty() {
                    body = ctx.provider.encode(&prepared.request);
                }
                lookups += 1;
                if lookups.is_multiple_of(512) {
                    reader.end_read()?;
                    reader.begin_read()?;
                }
                let key = cache_key(&ctx.provider, &body, sample);
                if use_cache && let Some(resp) = reader.cache_get(&key)? {
                    let rec = graded_record(
                        run_id,
                        &ctx.name,
                        &prepared,
                        sample,
                        Ok(resp),
                        0,
                        0,
                        ctx.provider.config(),
                        true,
                    );
                    if writer
                        .blocking_send(WriterMsg::Case(Box::new(Outcome {
                            record: rec,
                            tier: prepared.tier,
                            cache: None,
                        })))
                        .is_err()
                    {
                        return Ok(());
                    }
                    continue;
                }
                if jobs
                    .blocking_send(Job {
                        variant: prepared.clone(),
                        sample,
                        cache_key: key,
                        body: body.clone(),
                    })
                    .is_err()
                {
                    return Ok(());
                }
            }
        }
    }
    reader.end_read()?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    ctx: Arc<ModelCtx>,
    cfg: ModelConfig,
    mut jobs: mpsc::Receiver<Job>,
    global: Arc<Semaphore>,
    writer: mpsc::Sender<WriterMsg>,
    stop: Arc<AtomicBool>,
    stop_reason: Arc<Mutex<Option<String>>>,
    requests_made: Arc<AtomicU64>,
    spent: Arc<Mutex<f64>>,
    opts: SweepOptions,
    run_id: String,
) {
    let mut tasks = tokio::task::JoinSet::new();
    let is_mock = ctx.provider.kind() == ProviderKind::Mock;
    while let Some(job) = jobs.recv().await {
        if stop.load(Ordering::Relaxed) {
            // Drain so the planner unblocks; these cases stay unplanned-for and resumable.
            continue;
        }
        if let Some(limit) = opts.budget_requests
            && requests_made.fetch_add(1, Ordering::SeqCst) >= limit
        {
            stop.store(true, Ordering::SeqCst);
            stop_reason
                .lock()
                .expect("reason")
                .get_or_insert_with(|| format!("budget of {limit} requests reached"));
            continue;
        }
        if let Some(limit) = opts.budget_usd
            && *spent.lock().expect("spent") >= limit
        {
            stop.store(true, Ordering::SeqCst);
            stop_reason
                .lock()
                .expect("reason")
                .get_or_insert_with(|| format!("budget of ${limit:.2} reached"));
            continue;
        }
        if is_mock {
            // The mock answers at once: no permits, no spawn.
            let resp = ctx
                .provider
                .call(&job.variant.request, &job.variant.checks, job.sample)
                .await;
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
        let Ok(permit) = global.clone().acquire_owned().await else {
            break;
        };
        ctx.adaptive.acquire().await;
        let ctx2 = ctx.clone();
        let writer = writer.clone();
        let spent = spent.clone();
        let run_id = run_id.clone();
        let cfg = cfg.clone();
        tasks.spawn(async move {
            let started = Instant::now();
            let (result, attempts) = call_with_retries(&ctx2, &job).await;
            ctx2.adaptive.release();
            drop(permit);
            let latency = started.elapsed().as_millis() as u64;
            let cache = result
                .as_ref()
                .ok()
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
                false,
            );
            if let Some(c) = rec.cost_usd {
                *spent.lock().expect("spent") += c;
            }
            let _ = writer
                .send(WriterMsg::Case(Box::new(Outcome {
                    record: rec,
                    tier: job.variant.tier,
                    cache,
                })))
                .await;
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

async fn call_with_retries(
    ctx: &ModelCtx,
    job: &Job,
) -> (std::result::Result<ChatResponse, String>, u32) {
    let mut attempts = 0u32;
    let mut transient_failures = 0u32;
    let mut rate_limits = 0u32;
    loop {
        // Honour a server-requested pause for this model.
        let pause = *ctx.pause_until.lock().expect("pause");
        if let Some(until) = pause {
            let now = Instant::now();
            if until > now {
                tokio::time::sleep(until - now).await;
            }
        }
        if let Some(b) = &ctx.rpm {
            b.take(1.0).await;
        }
        if let Some(b) = &ctx.tpm {
            b.take(
                job.variant.est_tokens as f64
                    + ctx
                        .provider
                        .config()
                        .max_tokens
                        .unwrap_or(crate::provider::DEFAULT_MAX_TOKENS)
                        as f64
                        / 4.0,
            )
            .await;
        }
        attempts += 1;
        ctx.progress.attempts.fetch_add(1, Ordering::Relaxed);
        match ctx
            .provider
            .call_encoded(
                &job.body,
                &job.variant.request,
                &job.variant.checks,
                job.sample,
            )
            .await
        {
            Ok(r) => {
                ctx.adaptive.on_success();
                return (Ok(r), attempts);
            }
            Err(CallError::RateLimited {
                retry_after,
                message,
            }) => {
                ctx.progress.rate_limited.fetch_add(1, Ordering::Relaxed);
                ctx.adaptive.on_rate_limited();
                rate_limits += 1;
                if rate_limits > 30 {
                    return (
                        Err(format!("rate limited {rate_limits} times; last: {message}")),
                        attempts,
                    );
                }
                let wait = retry_after
                    .unwrap_or_else(|| backoff(rate_limits))
                    .min(Duration::from_secs(120));
                {
                    let mut p = ctx.pause_until.lock().expect("pause");
                    let until = Instant::now() + wait;
                    if p.is_none_or(|x| x < until) {
                        *p = Some(until);
                    }
                }
                tokio::time::sleep(wait).await;
            }
            Err(CallError::Transient(message)) => {
                transient_failures += 1;
                if transient_failures > ctx.max_retries {
                    return (
                        Err(format!("{message} (after {attempts} attempts)")),
                        attempts,
                    );
                }
                tokio::time::sleep(backoff(transient_failures)).await;
            }
            Err(CallError::Permanent(message)) => return (Err(message), attempts),
        }
    }
}

/// An rng for jitter and run ids only (never for anything a seed must reproduce).
fn entropy_rng() -> rand_chacha::ChaCha8Rng {
    use rand::SeedableRng;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    rand_chacha::ChaCha8Rng::seed_from_u64(
        nanos
            ^ (std::process::id() as u64) << 32
            ^ COUNTER
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15),
    )
}

/// Exponential backoff with full jitter: up to 0.25 s × 2^n, capped at 20 s.
pub(crate) fn backoff(n: u32) -> Duration {
    let cap = (0.25 * 2f64.powi(n.min(10) as i32)).min(20.0);
    Duration::from_secs_f64(entropy_rng().random_range(cap / 2.0..=cap))
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
            let (status, checks) = grade::grade(&v.checks, &resp);
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
        },
    }
}
