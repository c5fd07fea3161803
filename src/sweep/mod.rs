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
mod run_record;
mod workers;
mod writer;

pub(crate) use bucket::Bucket;
pub use cache::cache_key;
pub use case::CONTEXT_OVERFLOW;
pub use counts::{ModelUsage, StatusCounts, TierCounts, UsageByModel};
pub use judge::{JUDGE_REPLY_ATTEMPTS, check_judge};
pub use model::SAME_ERROR_STOP;
pub use options::{JudgeSummary, PlannedPoint, PointPlan, SweepOptions, SweepOutcome};
pub use planner::{plan_counts, planned_samples, points, probe_digests};
pub use run_record::{lease_ttl, new_run_id};

use crate::axes::AxisLibrary;
use crate::config::{Config, ModelConfig};
use crate::error::{Error, Result};
use crate::grade::CaseStatus;
use crate::grade::check::Check;
use crate::probe::LoadedProbe;
use crate::progress::ModelProgress;
use crate::provider::Provider;
use crate::store::Store;
use control::Control;
use judge::JudgeCtx;
use planner::PlannedCases;
use run_record::{claim_slice, finish_run, mark_failed, start_run};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::mpsc;
use workers::{Shared, Workers};
use writer::{WRITER_QUEUE, WriterMsg};

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
        .map_err(|e| Error::Runtime(format!("tokio runtime: {e}")))?;
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
