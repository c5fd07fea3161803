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

mod bucket;
mod cache;
mod case;
mod concurrency;
mod control;
mod counts;
mod dispatch;
mod episode;
pub mod invariance;
mod judge;
mod model;
mod options;
mod pacing;
mod planner;
mod queue;
mod writer;

pub(crate) use bucket::Bucket;
pub use cache::cache_key;
pub use case::CONTEXT_OVERFLOW;
pub use counts::{ModelUsage, StatusCounts, TierCounts, UsageByModel};
pub use judge::{JUDGE_REPLY_ATTEMPTS, check_judge};
pub use model::SAME_ERROR_STOP;
pub use options::{JudgeSummary, PlannedPoint, PointPlan, SweepOptions, SweepOutcome};
pub use planner::{plan_counts, planned_samples, points, probe_digests};

use crate::axes::AxisLibrary;
use crate::config::{Config, ModelConfig};
use crate::error::{Error, Result};
use crate::grade::CaseStatus;
use crate::grade::check::Check;
use crate::probe::LoadedProbe;
use crate::progress::ModelProgress;
use crate::provider::Provider;
use crate::store::{RunInfo, RunStatus, Store, now};
use case::Job;
use control::{Control, panic_message};
use dispatch::Dispatcher;
use judge::JudgeCtx;
use model::ModelCtx;
use planner::{Planner, Shard};
use queue::{JOB_QUEUE_BATCHES, JobReceiver, JobSender};
use rand::Rng;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};
use writer::{WRITER_QUEUE, WriterMsg, Written};

/// A fresh run id: `r-YYYYMMDD-HHMMSS-xxxx`.
pub fn new_run_id() -> String {
    let now = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::UTC);
    let tag: u16 = crate::call::entropy_rng().random();
    format!("r-{}-{tag:04x}", now.strftime("%Y%m%d-%H%M%S"))
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
    let models = configured_models(config, &opts)?;
    check_judge(config, &probes)?;
    crate::provider::install_crypto_provider();
    let providers: Vec<Provider> = models
        .iter()
        .map(|(n, c)| Provider::new(n, c))
        .collect::<Result<_>>()?;
    let counts = PlannedCases::count(&probes, &lib, &opts, models.len())?;

    let control = Arc::new(Control {
        budget_requests: opts.budget_requests,
        ..Control::default()
    });
    let mut store = Store::open_url(store_path)?;
    // Held until the sweep returns.
    let _claim = claim_slice(&store, &opts, counts.slice, &control)?;
    store.tune_for_sweep_writer()?;
    // What a killed sweep staged belongs in the tables before this one looks for done cases.
    store.settle()?;
    let run = start_run(&mut store, config, &probes, &lib, &opts, &models, &counts)?;

    let progress: Vec<(String, Arc<ModelProgress>)> = models
        .iter()
        .map(|(n, _)| {
            let p = Arc::new(ModelProgress::default());
            p.planned.store(counts.per_model, Ordering::Relaxed);
            (n.clone(), p)
        })
        .collect();
    let judge = judge_ctx(config, &probes, store_path, &opts, &control, &run.id)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .map_err(|e| Error::Other(format!("tokio runtime: {e}")))?;
    let (wtx, wrx) = mpsc::channel::<WriterMsg>(WRITER_QUEUE);
    let writer = writer::spawn(store, &progress, control.clone(), wrx)?;
    on_ctrl_c(&rt, &control, &run.id);
    let workers = Workers::start(
        &rt,
        &Shared {
            models: &models,
            progress: &progress,
            control: &control,
            judge: &judge,
            opts: &opts,
            run_id: &run.id,
            store_path,
            writer: &wtx,
        },
        providers,
        Arc::new(probes),
        Arc::new(lib),
    )?;
    drop(wtx);

    let display = crate::progress::Display::start(&progress, show_progress);
    let ended = workers.wait(rt, writer, &control);
    display.finish();
    if control.has_failed() {
        return Err(mark_failed(
            store_path,
            &opts,
            &run,
            counts.planned,
            &control,
            ended.planner_error,
        ));
    }
    let written = ended.written?;
    let halted: Vec<String> = ended
        .models
        .iter()
        .filter_map(|c| c.halt_reason())
        .collect();
    let stopped = control.reason();
    let mut tiers = written.tiers;
    let mut store = Store::open_url(store_path)?;
    let invariant_probes: Vec<invariance::InvariantProbe> = ended
        .probes
        .iter()
        .filter_map(|lp| invariance::InvariantProbe::of(&lp.probe))
        .collect();
    for t in invariance::finalise(&mut store, &run.id, &invariant_probes)? {
        recount(&progress, &mut tiers, &t);
    }
    let run = finish_run(&mut store, run, &opts, counts.planned, &stopped, &halted)?;
    Ok(SweepOutcome {
        run,
        progress,
        tiers,
        usage: written.usage,
        wall: started.elapsed(),
        stopped,
        halted,
        judge: judge.map(|j| j.summary()),
    })
}

/// The `[models.NAME]` of every model the options name, in order; refused when one is not
/// configured or none is named.
fn configured_models(config: &Config, opts: &SweepOptions) -> Result<Vec<(String, ModelConfig)>> {
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
    Ok(models)
}

/// How many cases a sweep plans.
struct PlannedCases {
    /// Per model, in this process's slice.
    per_model: u64,
    /// The cases this process plans (its slice, with `--shard`).
    planned: u64,
    /// The whole run's (every shard's).
    run_planned: u64,
    /// This process's slice of the run (the whole run, unsharded).
    slice: crate::shard::Slice,
}

impl PlannedCases {
    fn count(
        probes: &[LoadedProbe],
        lib: &AxisLibrary,
        opts: &SweepOptions,
        models: usize,
    ) -> Result<PlannedCases> {
        let counts = plan_counts(probes, lib, opts)?;
        let variants_planned: u64 = counts.iter().map(|(_, n)| n).sum();
        let per_model = planned_samples(opts.points.as_deref(), variants_planned, opts.repeats);
        let planned = per_model * models as u64;
        let slice = opts.shard.unwrap_or(crate::shard::Slice::WHOLE);
        let run_planned = match opts.shard {
            Some(s) if !s.is_whole() => {
                crate::shard::check_strategy(opts.strategy, s)?;
                let whole = SweepOptions {
                    shard: None,
                    ..opts.clone()
                };
                let n: u64 = plan_counts(probes, lib, &whole)?
                    .iter()
                    .map(|(_, n)| n)
                    .sum();
                n * opts.repeats as u64 * models as u64
            }
            _ => planned,
        };
        Ok(PlannedCases {
            per_model,
            planned,
            run_planned,
            slice,
        })
    }
}

/// What keeps two processes from sweeping the same slice of a run at once: the store's sweep
/// lock and the slice's lease, held while they live.
struct Claim {
    // Dropped in this order: the lease, then the lock.
    _lease: crate::store::LeaseGuard,
    _lock: crate::store::LockGuard,
}

/// Takes the store's sweep lock (SQLite: a file lock; PostgreSQL: an advisory lock; an
/// unsharded sweep holds it alone, the shards of sharded runs share it) and the lease on this
/// process's run-slice. A lost lease fails the sweep (`control`).
fn claim_slice(
    store: &Store,
    opts: &SweepOptions,
    slice: crate::shard::Slice,
    control: &Arc<Control>,
) -> Result<Claim> {
    // Asked before this process takes the file lock: whether every earlier holder is gone.
    let dead_before = if opts.shard.is_some() {
        store.leases_dead_before()?
    } else {
        // The store's exclusive lock, taken below: no other sweep of this store is alive.
        i64::MAX
    };
    let lock = if opts.shard.is_some() {
        store.acquire_shared_lock()?
    } else {
        store.acquire_lock(&format!("sweep {}", opts.run_id))?
    };
    let lease = {
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
    Ok(Claim {
        _lease: lease,
        _lock: lock,
    })
}

/// The run this sweep writes to: a new one, the one resumed (with `--replan`, re-planned), or,
/// sharded, the run this shard joins or creates, with its slice begun. Says on stderr what
/// resumes it.
fn start_run(
    store: &mut Store,
    config: &Config,
    probes: &[LoadedProbe],
    lib: &AxisLibrary,
    opts: &SweepOptions,
    models: &[(String, ModelConfig)],
    counts: &PlannedCases,
) -> Result<RunInfo> {
    let PlannedCases {
        planned,
        run_planned,
        slice,
        ..
    } = *counts;
    Ok(match (opts.resume, store.run(&opts.run_id)?) {
        _ if opts.shard.is_some() => {
            let digests = probe_digests(probes, lib)?;
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
            let r = new_run(opts, models, probes, config, run_planned, digests);
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
                r.probe_digests = Some(probe_digests(probes, lib)?);
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
                opts,
                models,
                probes,
                config,
                planned,
                probe_digests(probes, lib)?,
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
    })
}

/// The judge's context when the suite has judge checks and the configuration a `[judge]`.
fn judge_ctx(
    config: &Config,
    probes: &[LoadedProbe],
    store_path: &str,
    opts: &SweepOptions,
    control: &Arc<Control>,
    run_id: &str,
) -> Result<Option<Arc<JudgeCtx>>> {
    let needs_judge = probes
        .iter()
        .any(|p| p.probe.checks.iter().any(|c| matches!(c, Check::Judge(_))));
    Ok(match (&config.judge, needs_judge) {
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
                run_id,
            )?))
        }
        _ => None,
    })
}

/// Ctrl-C: the first stops gracefully, the second exits at once (the store stays consistent).
fn on_ctrl_c(rt: &tokio::runtime::Runtime, control: &Arc<Control>, run_id: &str) {
    let control = control.clone();
    let run_id = run_id.to_string();
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

/// What every model's planners and dispatcher are started with.
struct Shared<'a> {
    models: &'a [(String, ModelConfig)],
    progress: &'a [(String, Arc<ModelProgress>)],
    control: &'a Arc<Control>,
    judge: &'a Option<Arc<JudgeCtx>>,
    opts: &'a SweepOptions,
    run_id: &'a str,
    store_path: &'a str,
    writer: &'a mpsc::Sender<WriterMsg>,
}

/// The sweep's running parts: every model's planner threads and dispatcher task.
struct Workers {
    planners: Vec<std::thread::JoinHandle<Result<()>>>,
    dispatchers: Vec<tokio::task::JoinHandle<()>>,
    models: Vec<Arc<ModelCtx>>,
    probes: Arc<Vec<LoadedProbe>>,
}

/// How the workers ended.
struct Ended {
    /// The first error a planner returned.
    planner_error: Option<Error>,
    /// What the writer committed.
    written: Result<Written>,
    models: Vec<Arc<ModelCtx>>,
    probes: Arc<Vec<LoadedProbe>>,
}

impl Workers {
    /// Starts, per model, its planner threads (the model's probes dealt round-robin over the
    /// cores left per model) and its dispatcher on `rt`.
    fn start(
        rt: &tokio::runtime::Runtime,
        s: &Shared<'_>,
        providers: Vec<Provider>,
        probes: Arc<Vec<LoadedProbe>>,
        lib: Arc<AxisLibrary>,
    ) -> Result<Workers> {
        let opts = s.opts;
        let global = Arc::new(Semaphore::new(opts.concurrency.max(1)));
        let spent = Arc::new(Mutex::new(0.0f64));
        let mut planners = Vec::new();
        let mut dispatchers = Vec::new();
        let mut models: Vec<Arc<ModelCtx>> = Vec::new();
        // Planner threads per model: the cores not already taken by other models' planners
        // (at least one, at most four, never more than there are probes).
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let planner_shards = (cores / s.models.len().max(1))
            .clamp(1, 4)
            .min(probes.len().max(1));
        for (idx, provider) in providers.into_iter().enumerate() {
            let (name, cfg) = s.models[idx].clone();
            let ctx = Arc::new(ModelCtx::new(
                &name,
                provider,
                cfg.max_concurrency.unwrap_or(opts.concurrency),
                s.progress[idx].1.clone(),
                s.control.clone(),
                s.run_id,
            ));
            models.push(ctx.clone());
            let (jtx, jrx) = mpsc::channel::<Vec<Job>>(JOB_QUEUE_BATCHES);
            // Planner threads: the model's probes are dealt round-robin to `shards` threads, so
            // rendering, encoding, hashing and cache lookups use every core when there are
            // fewer models than cores (one planner per model left a cached re-run bound by one
            // thread).
            let planner = Arc::new(Planner {
                model: ctx.clone(),
                probes: probes.clone(),
                lib: lib.clone(),
                opts: opts.clone(),
                run_id: s.run_id.to_string(),
                store_path: s.store_path.to_string(),
                control: s.control.clone(),
            });
            for index in 0..planner_shards {
                let planner = planner.clone();
                let jobs = JobSender::new(jtx.clone());
                let writer = s.writer.clone();
                let shard = Shard {
                    index,
                    count: planner_shards,
                };
                let thread = std::thread::Builder::new()
                    .name(format!("cliffprobe-plan-{name}"))
                    .spawn(move || planner.plan(shard, jobs, writer))
                    .map_err(|e| Error::Other(format!("planner thread: {e}")))?;
                planners.push(thread);
            }
            drop(jtx);
            let dispatcher = Arc::new(Dispatcher {
                model: ctx,
                judge: s.judge.clone(),
                cfg,
                global: global.clone(),
                writer: s.writer.clone(),
                control: s.control.clone(),
                spent: spent.clone(),
                budget_usd: opts.budget_usd,
                run_id: s.run_id.to_string(),
            });
            dispatchers.push(rt.spawn(dispatcher.run(JobReceiver::new(jrx))));
        }
        Ok(Workers {
            planners,
            dispatchers,
            models,
            probes,
        })
    }

    /// Waits for the planners, then the dispatchers (on `rt`, shut down after them), then the
    /// writer. A planner's error or any panic fails the sweep (`control`).
    fn wait(
        self,
        rt: tokio::runtime::Runtime,
        writer: std::thread::JoinHandle<Result<Written>>,
        control: &Control,
    ) -> Ended {
        let mut planner_error = None;
        for p in self.planners {
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
        let dispatchers = self.dispatchers;
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
        Ended {
            planner_error,
            written,
            models: self.models,
            probes: self.probes,
        }
    }
}

/// Records a failed sweep's run (or slice) as failed and returns the error the caller reports:
/// a planner's input error as it is, else why the sweep failed and how to resume it. What was
/// committed stays (staged rows are settled when the store is next opened).
fn mark_failed(
    store_path: &str,
    opts: &SweepOptions,
    run: &RunInfo,
    planned: u64,
    control: &Control,
    planner_error: Option<Error>,
) -> Error {
    let reason = control
        .reason()
        .unwrap_or_else(|| "the sweep failed".into());
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
    match planner_error {
        Some(e) if e.is_input() => e,
        _ => Error::Other(format!("sweep failed: {reason}; {hint}")),
    }
}

/// Counts what the run (or this process's slice) holds, records how it ended (complete,
/// interrupted or partial, with a note saying why) and returns the run as stored.
fn finish_run(
    store: &mut Store,
    run: RunInfo,
    opts: &SweepOptions,
    planned: u64,
    stopped: &Option<String>,
    halted: &[String],
) -> Result<RunInfo> {
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
        .chain(halted)
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
    Ok(store.run(&run.id)?.unwrap_or(run))
}

/// Moves one case from its old status's counters to its new one's (after invariance grading).
fn recount(
    progress: &[(String, Arc<ModelProgress>)],
    tiers: &mut TierCounts,
    t: &invariance::Transition,
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
