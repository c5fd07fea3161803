//! The run's record in the store while a sweep runs: a fresh run id, the run created, joined
//! (a shard) or resumed ([`start_run`]), the lock and lease that keep two processes off one
//! slice ([`claim_slice`]), and how the run ended ([`finish_run`], [`mark_failed`]).

use super::control::Control;
use super::options::SweepOptions;
use super::planner::{PlannedCases, probe_digests};
use crate::axes::AxisLibrary;
use crate::config::{Config, ModelConfig};
use crate::error::{Error, Result};
use crate::probe::LoadedProbe;
use crate::store::{RunInfo, RunStatus, Store, now};
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;

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

/// What keeps two processes from sweeping the same slice of a run at once: the store's sweep
/// lock and the slice's lease, held while they live.
pub(super) struct Claim {
    // Dropped in this order: the lease, then the lock.
    _lease: crate::store::LeaseGuard,
    _lock: crate::store::LockGuard,
}

/// Takes the store's sweep lock (SQLite: a file lock; PostgreSQL: an advisory lock; an
/// unsharded sweep holds it alone, the shards of sharded runs share it) and the lease on this
/// process's run-slice. A lost lease fails the sweep (`control`).
pub(super) fn claim_slice(
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
pub(super) fn start_run(
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

/// Records a failed sweep's run (or slice) as failed and returns the error the caller reports:
/// a planner's input error as it is, else why the sweep failed and how to resume it. What was
/// committed stays (staged rows are settled when the store is next opened).
pub(super) fn mark_failed(
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
        _ => Error::SweepFailed(format!("sweep failed: {reason}; {hint}")),
    }
}

/// Counts what the run (or this process's slice) holds, records how it ended (complete,
/// interrupted or partial, with a note saying why) and returns the run as stored.
pub(super) fn finish_run(
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
