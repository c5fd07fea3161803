//! The driver of an adaptive sweep ([`run`]): the covering array, then follow-up rounds, each
//! gathered, decided and planned from the evidence stored so far, until every value is decided
//! or the budget or the rounds end.

use super::decision::{Decision, PairDecision, State, decide};
use super::evidence::gather;
use super::planner::plan_group;
use super::report::{AdaptiveReport, finish};
use super::{DEFAULT_BUDGET_FRACTION, MAX_ROUNDS, REPEAT_SAMPLES, Values};
use crate::axes::AxisLibrary;
use crate::config::Config;
use crate::error::Result;
use crate::expand::axis_values;
use crate::probe::LoadedProbe;
use crate::render::VariantAxes;
use crate::store::Store;
use crate::sweep::{self, PlannedPoint, PointPlan, SweepOptions};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::sync::Arc;

/// Runs an adaptive sweep: round 0 with the options as given (strategy `adaptive` plans the
/// covering array), then follow-up rounds. `budget` caps the run's cases; `None` means
/// [`DEFAULT_BUDGET_FRACTION`] of the full product.
pub fn run(
    config: &Config,
    store_path: &str,
    probes: Vec<LoadedProbe>,
    lib: AxisLibrary,
    opts: SweepOptions,
    show_progress: bool,
) -> Result<(sweep::SweepOutcome, AdaptiveReport)> {
    let mut values: HashMap<String, Values> = HashMap::new();
    let mut full: u64 = 0;
    for lp in &probes {
        let v = axis_values(&lp.probe, &lib, &opts.axes)?;
        full += v.iter().map(|(_, l)| l.len() as u64).product::<u64>();
        values.insert(lp.probe.id.clone(), v);
    }
    let per_point = opts.models.len() as u64 * opts.repeats as u64;
    let full_cases = full * per_point;
    // The default: a fraction of the full product, but never less than three covering arrays
    // (a small probe's covering array alone can exceed 4 % of its product), nor more than
    // the full product.
    let round0: u64 = sweep::plan_counts(&probes, &lib, &opts)?
        .iter()
        .map(|(_, n)| n * per_point)
        .sum();
    let budget = opts.budget_requests.unwrap_or_else(|| {
        (((full_cases as f64) * DEFAULT_BUDGET_FRACTION).ceil() as u64)
            .max(3 * round0)
            .min(full_cases)
    });
    // The budget counts cases and the planner sizes every round to fit it, so no round's sweep
    // is cut by a request cap: a cap reached mid-round would keep whichever cases finished
    // first (an episode makes several requests per case), and two runs with one seed would
    // differ. A budget the user gave still caps the covering array's requests.
    let mut outcome = sweep::run(
        config,
        store_path,
        probes.clone(),
        lib.clone(),
        opts.clone(),
        show_progress,
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0xada9_71fe);
    let mut rounds = 0;
    let ended;
    loop {
        let store = Store::open_url(store_path)?;
        let (groups, cases, mut seen) = gather(&store, &outcome.run.id, &values)?;
        drop(store);
        let states: Vec<State> = groups
            .iter()
            .map(|g| decide(g, &values[&g.probe]))
            .collect();
        // The report of this run as it stands, whichever way the rounds end.
        let report = |ended: String| {
            let mut r = finish(
                &groups,
                &states,
                &values,
                &lib.ordered,
                rounds,
                cases,
                budget,
                full_cases,
                ended,
            );
            r.run = outcome.run.id.clone();
            r
        };
        if outcome.stopped.is_some() || !outcome.halted.is_empty() {
            ended = format!(
                "the sweep stopped: {}",
                outcome
                    .stopped
                    .clone()
                    .unwrap_or_else(|| "a model was halted".into())
            );
            let r = report(ended);
            return Ok((outcome, r));
        }
        let undecided = states.iter().any(|s| {
            s.decision
                .iter()
                .any(|row| row.iter().skip(1).any(|d| *d == Decision::Undecided))
                || s.pairs.iter().any(|p| p.decision == PairDecision::Open)
        });
        // Samples per model left: a point's samples run on every model.
        let remaining = budget.saturating_sub(cases) / (opts.models.len() as u64).max(1);
        if remaining == 0 {
            ended = if undecided {
                "budget spent".into()
            } else {
                "every value decided; budget spent".into()
            };
        } else if rounds >= MAX_ROUNDS {
            ended = format!("{MAX_ROUNDS} follow-up rounds made");
        } else {
            let mut plan = PointPlan::new();
            let left = remaining as usize;
            // A round is small enough for the evidence to steer the next one.
            let cap = (left / 2).max(8).min(left);
            let mut taken = 0;
            for (g, s) in groups.iter().zip(&states) {
                if taken >= cap {
                    break;
                }
                let vals = &values[&g.probe];
                let pts = plan.entry(g.probe.clone()).or_default();
                taken += plan_group(
                    g,
                    vals,
                    s,
                    &mut rng,
                    seen.entry(g.probe.clone()).or_default(),
                    cap - taken,
                    opts.repeats,
                    pts,
                );
            }
            // Two models of one probe may ask for the same repeat: each point once, with the
            // most samples asked (the sweep runs a point's samples once, for every model).
            for pts in plan.values_mut() {
                let mut at: HashMap<VariantAxes, usize> = HashMap::new();
                let mut merged: Vec<PlannedPoint> = Vec::with_capacity(pts.len());
                for p in pts.drain(..) {
                    match at.get(&p.axes) {
                        Some(&k) => merged[k].samples = merged[k].samples.max(p.samples),
                        None => {
                            at.insert(p.axes.clone(), merged.len());
                            merged.push(p);
                        }
                    }
                }
                *pts = merged;
            }
            if taken == 0 {
                ended = if undecided && remaining < REPEAT_SAMPLES.max(opts.repeats) as u64 {
                    "budget spent".into()
                } else if undecided {
                    "no new variant left to ask".into()
                } else {
                    "every value decided".into()
                };
            } else {
                rounds += 1;
                if show_progress {
                    let open: usize = states
                        .iter()
                        .map(|s| {
                            s.decision
                                .iter()
                                .flat_map(|row| row.iter().skip(1))
                                .filter(|d| **d == Decision::Undecided)
                                .count()
                        })
                        .sum();
                    eprintln!(
                        "adaptive round {rounds}: {taken} new sample(s) per model; {open} value(s) undecided, {cases} of {budget} cases spent"
                    );
                }
                let mut o = opts.clone();
                o.resume = true;
                o.replan = false;
                o.points = Some(Arc::new(plan));
                o.budget_requests = None;
                outcome = sweep::run(
                    config,
                    store_path,
                    probes.clone(),
                    lib.clone(),
                    o,
                    show_progress,
                )?;
                continue;
            }
        }
        let r = report(ended);
        record_planned(store_path, &r.run, cases)?;
        return Ok((outcome, r));
    }
}

/// Records the run's planned count as the cases the rounds asked for (each round's sweep
/// planned only its own points), so the run reads as complete with what it holds.
fn record_planned(store_path: &str, run: &str, cases: u64) -> Result<()> {
    let store = Store::open_url(store_path)?;
    let _lock = store.acquire_lock(&format!("sweep {run}"))?;
    let Some(mut info) = store.run(run)? else {
        return Ok(());
    };
    if info.planned == cases {
        return Ok(());
    }
    info.planned = cases;
    store.begin_run(&info)?;
    store.finish_run(
        &info.id,
        info.status,
        info.finished_at.as_deref().unwrap_or(""),
        info.note.as_deref(),
    )
}
