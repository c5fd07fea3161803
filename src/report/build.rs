//! Building a [`Report`] from the store: choosing what to compare, reading the run's results
//! (and the flips' evidence), the floors and the gate, the measured tiers and the trend.
//!
//! One code path for `cliffprobe report` and the viewer's run page: both call [`build_from`]
//! with the [`ReportOptions`] they were given, and render the same value.
//!
//! Which comparison a report makes:
//! - no baseline: the models of the run in configured order; the first is the baseline
//!   (production), each other model a candidate. A one-model run has no comparison.
//! - baseline RUN: every model of this run against the same model name in RUN.
//! - baseline MODEL: MODEL of this run against each other model of the run.
//!
//! Floors apply to the candidates (to every model when there is no comparison).

use super::{BaselineKind, Format, Report};
use crate::analysis::{
    Breakdown, Collector, Comparison, Floor, GateOn, Heatmap, ModelResults, Trend, TrendPoint,
    gate, trend::DEFAULT_WINDOW,
};
use crate::domain::Tier;
use crate::error::{Error, Result};
use crate::project::Project;
use crate::store::{RunInfo, Store};
use indexmap::IndexMap;

/// How many runs (up to the reported one) the report's trend looks back over.
const REPORT_TREND_RUNS: usize = 30;

/// What to report on, and how to judge it: the options of `cliffprobe report` that shape the
/// [`Report`] value (where it is written is the caller's business).
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Run id (`None`: the latest).
    pub run: Option<String>,
    /// A run id or a model of this run to compare against (`None`: the first model).
    pub baseline: Option<String>,
    /// The format it will be rendered in: JUnit lists every failing variant's evidence.
    pub format: Format,
    /// `TIER=RATE` floors given on the command line, over the config's `[floors]`.
    pub floors: Vec<String>,
    /// Whether the gate decides the exit status (a gate with nothing to gate on is refused).
    pub gate: bool,
    /// What the floors are compared with.
    pub gate_on: GateOn,
    /// The most hard-tier regressions the gate accepts.
    pub max_regressions: Option<u64>,
}

/// The variant results of `run` (of model `only`, if given), counted from a brief walk: without
/// evidence, which [`EvidenceQueue`] fetches for the variants a report lists.
fn collect(store: &Store, run: &str, only: Option<&str>) -> Result<IndexMap<String, ModelResults>> {
    let mut c = Collector::new();
    store.for_each_case_brief(run, |row| {
        if only.is_none_or(|m| m == row.model) {
            c.push_brief(run, row);
        }
        Ok(())
    })?;
    Ok(c.finish())
}

/// The variant results of `run` with the evidence of every failing variant: what a JUnit
/// report needs (one test case per variant, each failure with its output).
fn collect_with_evidence(store: &Store, run: &str) -> Result<IndexMap<String, ModelResults>> {
    let mut c = Collector::new();
    store.for_each_case(run, |row| {
        c.push(&row);
        Ok(())
    })?;
    Ok(c.finish())
}

/// The flips whose evidence a report still has to read, in chunks that threads take in turn,
/// each through a store connection of its own ([`EvidenceQueue::work`]).
///
/// The evidence is read after the brief walk, by primary key, sample by sample in sample order:
/// exactly what a full walk would have picked. The lookups go in variant-id order, and a chunk
/// is a run of consecutive ids, so each connection still reads the run's pages (kept in key
/// order) forwards instead of at random: a big run lists ~10⁵ flips.
struct EvidenceQueue<'a> {
    chunks: std::sync::Mutex<std::vec::IntoIter<EvidenceChunk<'a>>>,
}

/// Consecutive flips (by variant id) of one comparison's candidate.
struct EvidenceChunk<'a> {
    run: String,
    model: String,
    variants: Vec<&'a mut crate::analysis::variant::VariantResult>,
}

impl<'a> EvidenceQueue<'a> {
    /// Flips per chunk: small enough for two threads to finish together, big enough for the
    /// lock to cost nothing.
    const CHUNK: usize = 256;

    /// The flips of `comparisons` that have evidence to read and none yet.
    fn new(comparisons: &'a mut [Comparison]) -> EvidenceQueue<'a> {
        let mut chunks = Vec::new();
        for c in comparisons {
            let mut wanted: Vec<&mut crate::analysis::variant::VariantResult> = c
                .fixed
                .iter_mut()
                .chain(c.regressed.iter_mut())
                .map(|f| &mut f.variant)
                .filter(|v| v.evidence.is_none() && v.has_evidence_samples())
                .collect();
            wanted.sort_unstable_by(|a, b| a.variant_id.cmp(&b.variant_id));
            let mut wanted = wanted.into_iter().peekable();
            while wanted.peek().is_some() {
                chunks.push(EvidenceChunk {
                    run: c.candidate.run_id.clone(),
                    model: c.candidate.model.clone(),
                    variants: wanted.by_ref().take(Self::CHUNK).collect(),
                });
            }
        }
        EvidenceQueue {
            chunks: std::sync::Mutex::new(chunks.into_iter()),
        }
    }

    /// Reads chunks through `store` until none is left, in one read transaction: a lookup in
    /// a transaction of its own takes and drops the file's locks, and those go through one
    /// process-wide mutex in SQLite, which two reading threads would otherwise queue on. On an
    /// error the queue is emptied, so that the other threads stop too, and the error returned.
    fn work(&self, store: &Store) -> Result<()> {
        store.begin_read()?;
        let read = self.read(store);
        let ended = store.end_read();
        read?;
        ended?;
        Ok(())
    }

    /// The chunks left. A thread that panicked holding the lock left the queue intact (taking
    /// a chunk is one `next`), so a poisoned lock is used as it is.
    fn left(&self) -> std::sync::MutexGuard<'_, std::vec::IntoIter<EvidenceChunk<'a>>> {
        self.chunks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self, store: &Store) -> Result<()> {
        loop {
            let next = self.left().next();
            let Some(chunk) = next else {
                return Ok(());
            };
            for v in chunk.variants {
                let cases = match store.variant_cases(&chunk.run, &chunk.model, &v.variant_id) {
                    Ok(cases) => cases,
                    Err(e) => {
                        self.left().by_ref().for_each(drop);
                        return Err(e);
                    }
                };
                for case in &cases {
                    v.take_evidence(case);
                }
            }
        }
    }
}

/// Models in report order: configured order first, then the run's order, then the rest.
fn ordered(
    project: &Project,
    run: &RunInfo,
    results: &IndexMap<String, ModelResults>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in project
        .config
        .models
        .keys()
        .chain(run.models.iter())
        .chain(results.keys())
    {
        if results.contains_key(m) && !out.contains(m) {
            out.push(m.clone());
        }
    }
    out
}

fn option_error(field: &str, message: String) -> Error {
    Error::field("<command line>", field, message)
}

/// Parses `0.45`, `45%` into a fraction.
fn parse_rate(s: &str) -> Option<f64> {
    let s = s.trim();
    let v = match s.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().ok()? / 100.0,
        None => s.parse::<f64>().ok()?,
    };
    (v.is_finite() && (0.0..=1.0).contains(&v)).then_some(v)
}

/// The floors in force: the config's, then `--floor` overrides, in tier order.
fn floors(project: &Project, cli: &[String]) -> Result<Vec<Floor>> {
    let mut out: IndexMap<Tier, Floor> = IndexMap::new();
    let cfg_path = project.config_path.clone().unwrap_or_default();
    for (name, v) in &project.config.floors {
        let tier = Tier::parse(name).ok_or_else(|| {
            Error::field(
                &cfg_path,
                format!("floors.{name}"),
                format!("unknown tier `{name}`; expected easy, medium, hard or frontier"),
            )
        })?;
        if !(v.is_finite() && (0.0..=1.0).contains(v)) {
            return Err(Error::field(
                &cfg_path,
                format!("floors.{name}"),
                format!("{v} is not a pass rate between 0 and 1"),
            ));
        }
        out.insert(
            tier,
            Floor {
                tier,
                min: *v,
                source: "config",
            },
        );
    }
    for f in cli {
        let (t, v) = f.split_once('=').ok_or_else(|| {
            option_error(
                "--floor",
                format!("`{f}` is not TIER=RATE (e.g. hard=0.45)"),
            )
        })?;
        let tier = Tier::parse(t).ok_or_else(|| {
            option_error(
                "--floor",
                format!("unknown tier `{t}`; expected easy, medium, hard or frontier"),
            )
        })?;
        let min = parse_rate(v).ok_or_else(|| {
            option_error(
                "--floor",
                format!("`{v}` is not a pass rate between 0 and 1 (or 0% and 100%)"),
            )
        })?;
        out.insert(
            tier,
            Floor {
                tier,
                min,
                source: "command line",
            },
        );
    }
    let mut v: Vec<Floor> = out.into_values().collect();
    v.sort_by_key(|f| f.tier);
    Ok(v)
}

/// What a trend point needs of a run, kept as its run summary (see the store's `summary`
/// module) so that a trend never walks an earlier run twice.
#[derive(serde::Serialize, serde::Deserialize)]
struct TrendTallies {
    aggregate: crate::analysis::Tally,
    hard: crate::analysis::Tally,
}

/// The run-summary kind of [`TrendTallies`]; a new layout takes a new kind.
const TREND_SUMMARY: &str = "trend-point/1";

impl TrendTallies {
    fn of(b: &Breakdown) -> TrendTallies {
        TrendTallies {
            aggregate: b.aggregate,
            hard: b.tier(Tier::Hard),
        }
    }

    /// Keeps these tallies as the summary of `model` in `run` at `generation` (best effort).
    fn save(&self, store: &Store, run: &str, model: &str, generation: Option<i64>) {
        if let (Some(g), Ok(body)) = (generation, serde_json::to_string(self)) {
            let _ = store.save_run_summary(run, model, TREND_SUMMARY, g, &body);
        }
    }
}

/// Keeps the trend point of every model of the run being reported (`generation`: the run's,
/// read before it was walked), unless already kept: a later trend or report then never walks
/// this run for any of them.
fn keep_trend_points(
    store: &Store,
    run: &str,
    generation: Option<i64>,
    breakdowns: &IndexMap<String, Breakdown>,
) -> Result<()> {
    for (model, b) in breakdowns {
        if store.run_summary(run, model, TREND_SUMMARY)?.is_none() {
            TrendTallies::of(b).save(store, run, model, generation);
        }
    }
    Ok(())
}

/// The trend points of `model` over `runs`: for the run being reported (`current`: its id and
/// the model's breakdown) from its results; for any other run from its run summary, or from a
/// walk that then leaves the summary.
pub fn trend_points(
    store: &Store,
    runs: &[RunInfo],
    model: &str,
    current: Option<(&str, &Breakdown)>,
) -> Result<Vec<TrendPoint>> {
    let mut points = Vec::new();
    for run in runs {
        if !run.models.iter().any(|m| m == model) {
            continue;
        }
        let t = match current {
            Some((id, b)) if id == run.id => TrendTallies::of(b),
            _ => {
                let kept = store
                    .run_summary(&run.id, model, TREND_SUMMARY)?
                    .and_then(|body| serde_json::from_str::<TrendTallies>(&body).ok());
                match kept {
                    Some(t) => t,
                    None => {
                        let generation = store.run_generation(&run.id)?;
                        match collect(store, &run.id, Some(model))?.shift_remove(model) {
                            Some(r) => {
                                let t = TrendTallies::of(&Breakdown::of(&r));
                                t.save(store, &run.id, model, generation);
                                t
                            }
                            None => continue,
                        }
                    }
                }
            }
        };
        points.push(TrendPoint::new(
            run.id.clone(),
            run.started_at.clone(),
            t.aggregate,
            t.hard,
        ));
    }
    Ok(points)
}

/// Builds the report for `a` from `store` (which may be read-only: the trend points it would
/// keep are then simply not kept). Without `evidence` the flips carry no outputs (no look-up
/// per flip): what the viewer's run page needs, which links each flip to its case instead.
pub fn build_from(
    project: &Project,
    store: &Store,
    a: &ReportOptions,
    evidence: bool,
) -> Result<Report> {
    let run = store.resolve_run(a.run.as_deref())?;
    // Before the walk: a summary saved from this walk must not outlive a write made during it.
    let generation = store.run_generation(&run.id)?;
    // Only JUnit shows every failing variant's evidence; the other formats show it for the flips.
    let results = if a.format == Format::Junit {
        collect_with_evidence(store, &run.id)?
    } else {
        collect(store, &run.id, None)?
    };
    if results.is_empty() {
        return Err(Error::Refused(format!(
            "run `{}` has no cases yet (status {}): nothing to report",
            run.id, run.status
        )));
    }
    let order = ordered(project, &run, &results);
    let breakdowns: IndexMap<String, Breakdown> = order
        .iter()
        .map(|m| (m.clone(), Breakdown::of(&results[m])))
        .collect();

    // Which comparisons.
    let mut comparisons = Vec::new();
    let mut findings = Vec::new();
    let mut gated: Vec<String> = Vec::new();
    let baseline = match a.baseline.as_deref() {
        Some(b) if b == run.id => {
            return Err(option_error(
                "--baseline",
                format!("`{b}` is the run being reported; name an earlier run or a model"),
            ));
        }
        Some(b) => match store.run(b)? {
            Some(base_run) => {
                let base = collect(store, &base_run.id, None)?;
                for m in &order {
                    if let Some(br) = base.get(m) {
                        let bb = Breakdown::of(br);
                        let c = Comparison::new(br, &bb, &results[m], &breakdowns[m]);
                        findings.extend(crate::analysis::findings::comparison_findings(
                            &c,
                            &bb,
                            &breakdowns[m],
                        ));
                        comparisons.push(c);
                        gated.push(m.clone());
                    }
                }
                if comparisons.is_empty() {
                    return Err(option_error(
                        "--baseline",
                        format!(
                            "run `{b}` has none of this run's models ({}); its models: {}",
                            order.join(", "),
                            base.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
                BaselineKind::Run(Box::new(base_run))
            }
            None if results.contains_key(b) => BaselineKind::Model(b.to_string()),
            None => {
                return Err(option_error(
                    "--baseline",
                    format!(
                        "`{b}` is neither a run in the store nor a model of run `{}` (models: {})",
                        run.id,
                        order.join(", ")
                    ),
                ));
            }
        },
        None if order.len() >= 2 => BaselineKind::Model(order[0].clone()),
        None => BaselineKind::None,
    };
    if let BaselineKind::Model(bm) = &baseline {
        for m in order.iter().filter(|m| *m != bm) {
            let c = Comparison::new(&results[bm], &breakdowns[bm], &results[m], &breakdowns[m]);
            findings.extend(crate::analysis::findings::comparison_findings(
                &c,
                &breakdowns[bm],
                &breakdowns[m],
            ));
            comparisons.push(c);
            gated.push(m.clone());
        }
    }
    if gated.is_empty() {
        gated = order.clone();
    }
    let floors = floors(project, &a.floors)?;
    let hard_regressions: u64 = comparisons
        .iter()
        .map(|c| c.hard_regressions().count() as u64)
        .sum();
    let gate = if floors.is_empty() && a.max_regressions.is_none() {
        if a.gate {
            return Err(option_error(
                "--gate",
                "nothing to gate on: no [floors] in cliffprobe.toml, no --floor TIER=RATE and no --max-regressions N".into(),
            ));
        }
        None
    } else {
        let gated_b: Vec<&Breakdown> = gated.iter().map(|m| &breakdowns[m]).collect();
        Some(gate::evaluate(
            &floors,
            a.gate_on,
            &gated_b,
            a.max_regressions,
            hard_regressions,
        ))
    };

    // The flips' evidence (~10⁵ primary-key lookups on a big run) is read on a second thread,
    // through a connection of its own, while this one measures the tiers, walks the trend and
    // draws the heat maps (they need the results, the lookups only the comparisons); then this
    // thread joins the reading through its own connection.
    let evidence_store = store.reopen()?;
    let mut no_flips: Vec<Comparison> = Vec::new();
    let evidence = EvidenceQueue::new(if evidence {
        &mut comparisons
    } else {
        &mut no_flips
    });
    let (measured_tiers, trend, heatmaps, results) = std::thread::scope(|scope| {
        let evidence = &evidence;
        let reader = scope.spawn(move || evidence.work(&evidence_store));
        let rest = (|| -> Result<_> {
            // Measured tiers: this run's samples from the results already folded, earlier
            // runs read.
            let mut tier_samples = crate::analysis::tiers::TierCollector::new();
            for v in results.values().flat_map(|m| &m.variants) {
                tier_samples.push_variant(v);
            }
            let measured_tiers = crate::analysis::measured::measure_from(
                store,
                &run,
                &project.config.tiers.thresholds(),
                tier_samples.finish(),
            )?;
            // Trend of the focus model, over the runs up to this one.
            let focus = gated[0].clone();
            let all_runs = store.runs()?;
            let upto = all_runs
                .iter()
                .position(|r| r.id == run.id)
                .map(|i| i + 1)
                .unwrap_or(all_runs.len());
            let window = &all_runs[upto.saturating_sub(REPORT_TREND_RUNS)..upto];
            keep_trend_points(store, &run.id, generation, &breakdowns)?;
            let points = trend_points(store, window, &focus, Some((&run.id, &breakdowns[&focus])))?;
            let trend = Trend::new(focus, points, DEFAULT_WINDOW);
            let heatmaps: Vec<Heatmap> = order.iter().map(|m| Heatmap::of(&results[m])).collect();
            let mut results = results;
            // Only JUnit lists every variant; the other formats are done with the results
            // here, and letting them go while the evidence is still being read keeps the two
            // largest parts of a big report from peaking together.
            let results: Vec<ModelResults> = if a.format == Format::Junit {
                order
                    .iter()
                    .filter_map(|m| results.shift_remove(m))
                    .collect()
            } else {
                drop(results);
                Vec::new()
            };
            Ok((measured_tiers, trend, heatmaps, results))
        })();
        let mine = match &rest {
            Ok(_) => evidence.work(store),
            Err(_) => Ok(()),
        };
        let theirs = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        theirs?;
        mine?;
        rest
    })?;
    if let Some(w) = &trend.warning {
        findings.push(w.clone());
    }
    let measured_tiers = Some(measured_tiers);
    let (findings, gate) = incomplete_shards(store, &run, findings, gate)?;
    Ok(Report {
        run,
        baseline,
        models: breakdowns.into_values().collect(),
        results,
        comparisons,
        findings,
        heatmaps,
        trend: Some(trend),
        floors,
        gated_models: gated,
        gate,
        gate_enforced: a.gate,
        measured_tiers,
    })
}

/// A sharded run whose slices are not all complete is said to be so first, and fails the gate:
/// its rates cover only the shards that ran, so they are not the run's.
fn incomplete_shards(
    store: &Store,
    run: &crate::store::RunInfo,
    mut findings: Vec<crate::analysis::Finding>,
    mut gate: Option<crate::analysis::GateResult>,
) -> Result<(
    Vec<crate::analysis::Finding>,
    Option<crate::analysis::GateResult>,
)> {
    let Some(progress) = store
        .shard_progress(&run.id)?
        .filter(|p| p.slices > 1 && !p.is_complete())
    else {
        return Ok((findings, gate));
    };
    let summary = progress.summary();
    findings.insert(
        0,
        crate::analysis::Finding {
            code: "incomplete-run",
            message: format!(
                "run {} is incomplete: {summary}. These results cover only the cases stored so \
                 far, not the whole run; resume a shard with `cliffprobe sweep --resume {} \
                 --shard I/{}`",
                run.id, run.id, progress.slices
            ),
        },
    );
    if let Some(g) = &mut gate {
        g.passed = false;
        g.reason = format!(
            "the run is incomplete ({summary}): a gate needs every shard complete; {}",
            g.reason
        );
    }
    Ok((findings, gate))
}
