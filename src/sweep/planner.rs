//! The planner: per model, threads (each a [`Shard`] of the model's probes) expand the suite
//! as a stream, skip the cases a resumed run already has, answer from the response cache what
//! they can, and hand the rest to the dispatcher as [`Job`]s. Also what a sweep plans
//! ([`plan_counts`], [`points`], [`planned_samples`]).

use super::cache::cache_key;
use super::case::{Job, Prepared, graded_record};
use super::control::Control;
use super::model::ModelCtx;
use super::options::{PlannedPoint, PointPlan, SweepOptions};
use super::queue::JobSender;
use super::writer::{Outcome, WriterMsg};
use crate::axes::AxisLibrary;
use crate::config::ProviderKind;
use crate::error::Result;
use crate::expand::ProbeExpansion;
use crate::grade::CaseStatus;
use crate::grade::check::Check;
use crate::probe::LoadedProbe;
use crate::store::{CaseRecord, ProbeRecord, Store, VariantRecord, WriteOp, now};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;

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

/// What a model's planner threads share: the model, the suite, the options, and where the
/// run's cases and the response cache are read from.
pub(super) struct Planner {
    pub(super) model: Arc<ModelCtx>,
    pub(super) probes: Arc<Vec<LoadedProbe>>,
    pub(super) lib: Arc<AxisLibrary>,
    pub(super) opts: SweepOptions,
    pub(super) run_id: String,
    /// The store, opened by each planner thread for its own reads.
    pub(super) store_path: String,
    pub(super) control: Arc<Control>,
}

impl Planner {
    /// Plans the cases of this `shard` of the model's probes: each probe's row, then per planned
    /// point its variant's row (before its first case), then per sample either nothing (a resumed
    /// run has it), a case graded from the response cache (to the writer), or a [`Job`] for the
    /// dispatcher. Returns when done, or early when the sweep stops or the dispatcher is gone.
    pub(super) fn plan(
        &self,
        shard: Shard,
        mut jobs: JobSender,
        writer: mpsc::Sender<WriterMsg>,
    ) -> Result<()> {
        let Planner {
            model: ctx,
            probes,
            lib,
            opts,
            run_id,
            store_path,
            control,
        } = self;
        let stop = &control.stop;
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
            // Every planner writes the rows of its probes and variants: a case must never arrive
            // at the writer before its variant's row.
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
                let mut row_pending = true;
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
                        let stored = next.answered_from_cache()
                            && reader.has_variant(&prepared.variant_id)?;
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
}

/// How many cases a sweep plans.
pub(super) struct PlannedCases {
    /// Per model, in this process's slice.
    pub(super) per_model: u64,
    /// The cases this process plans (its slice, with `--shard`).
    pub(super) planned: u64,
    /// The whole run's (every shard's).
    pub(super) run_planned: u64,
    /// This process's slice of the run (the whole run, unsharded).
    pub(super) slice: crate::shard::Slice,
}

impl PlannedCases {
    pub(super) fn count(
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
pub(super) struct Shard {
    pub(super) index: usize,
    pub(super) count: usize,
}
