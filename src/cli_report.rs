//! The `report` and `trend` commands: choosing what to compare, reading the store, the gate.
//!
//! Which comparison a report makes:
//! - no `--baseline`: the models of the run in configured order; the first is the baseline
//!   (production), each other model a candidate. A one-model run has no comparison.
//! - `--baseline RUN`: every model of this run against the same model name in RUN.
//! - `--baseline MODEL`: MODEL of this run against each other model of the run.
//!
//! Floors apply to the candidates (to every model when there is no comparison). `--gate` makes
//! the verdict the exit status (1 when it fails) and prints the reason either way.

use crate::analysis::{
    Breakdown, Collector, Comparison, Floor, GateOn, Heatmap, ModelResults, Trend, TrendPoint,
    gate, trend::DEFAULT_WINDOW,
};
use crate::cli::Project;
use crate::domain::Tier;
use crate::error::Error;
use crate::report::{self, BaselineKind, Format, Report};
use crate::store::{RunInfo, Store};
use anyhow::Result;
use indexmap::IndexMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// How many runs (up to the reported one) the report's trend looks back over.
const REPORT_TREND_RUNS: usize = 30;

/// `report` options.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Run id (default: the latest run).
    pub run: Option<String>,
    /// Compare with a run (the same model names in that run) or with a model of this run.
    #[arg(long, value_name = "RUN|MODEL")]
    pub baseline: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write to this file (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// A floor, TIER=RATE (0.45 or 45%); repeatable; overrides `[floors]` in cliffprobe.toml.
    #[arg(long = "floor", value_name = "TIER=RATE")]
    pub floors: Vec<String>,
    /// Exit 1 when the gate fails (a floor not met, too many hard-tier regressions).
    #[arg(long)]
    pub gate: bool,
    /// Compare floors with the pass rate, or with the lower bound of its 95% interval.
    #[arg(long, value_enum, default_value_t = GateOn::Rate)]
    pub gate_on: GateOn,
    /// Fail the gate when more hard-tier variants than this regressed.
    #[arg(long, value_name = "N")]
    pub max_regressions: Option<u64>,
    /// The store (path or sqlite:// URL).
    #[arg(long)]
    pub store: Option<String>,
}

/// Output format of `trend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TrendFormat {
    /// Aligned table.
    Text,
    /// Versioned JSON.
    Json,
    /// Self-contained HTML page.
    Html,
}

/// `trend` options.
#[derive(Debug, clap::Args)]
pub struct TrendArgs {
    /// The model (default: the first configured model found in the store).
    #[arg(long)]
    pub model: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TrendFormat::Text)]
    pub format: TrendFormat,
    /// Write to this file (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Warn when the gap widened in each of the last N runs.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WINDOW)]
    pub window: usize,
    /// The store (path or sqlite:// URL).
    #[arg(long)]
    pub store: Option<String>,
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
                        return Err(e.into());
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

fn cli_error(field: &str, message: String) -> anyhow::Error {
    Error::field("<command line>", field, message).into()
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
            )
            .into());
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
            cli_error(
                "--floor",
                format!("`{f}` is not TIER=RATE (e.g. hard=0.45)"),
            )
        })?;
        let tier = Tier::parse(t).ok_or_else(|| {
            cli_error(
                "--floor",
                format!("unknown tier `{t}`; expected easy, medium, hard or frontier"),
            )
        })?;
        let min = parse_rate(v).ok_or_else(|| {
            cli_error(
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
pub(crate) fn trend_points(
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

fn write_output(out: Option<&PathBuf>, text: &str) -> Result<()> {
    match out {
        Some(p) => {
            crate::probe::write_atomic(p, text)?;
            eprintln!("wrote {}", p.display());
        }
        None => {
            let mut so = std::io::stdout().lock();
            so.write_all(text.as_bytes())?;
            so.flush()?;
        }
    }
    Ok(())
}

fn use_color(out: Option<&PathBuf>) -> bool {
    out.is_none() && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Builds the report for `a` (no printing): what `cliffprobe report` renders.
pub fn build(project: &Project, a: &ReportArgs) -> Result<Report> {
    let store = project.open_store(a.store.as_deref())?;
    build_from(project, &store, a, true)
}

/// Builds the report for `a` from `store` (which may be read-only: the trend points it would
/// keep are then simply not kept). Without `evidence` the flips carry no outputs (no look-up
/// per flip): what the viewer's run page needs, which links each flip to its case instead.
pub fn build_from(
    project: &Project,
    store: &Store,
    a: &ReportArgs,
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
        ))
        .into());
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
            return Err(cli_error(
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
                    return Err(cli_error(
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
                return Err(cli_error(
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
            return Err(cli_error(
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
            let measured_tiers = crate::cli_tiers::measure_from(
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

/// Runs `cliffprobe report`.
pub fn report(project: &Project, a: &ReportArgs) -> Result<ExitCode> {
    let r = build(project, a)?;
    if a.format == Format::Json && a.out.is_none() {
        // Streamed: on a big run the document is hundreds of MB (every flip with its evidence).
        let mut so = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
        report::json::render_to(&mut so, &r)?;
        so.flush()?;
        return gate_exit(a, &r);
    }
    let text = match a.format {
        Format::Text => report::text::render(&r, use_color(a.out.as_ref())),
        Format::Json => report::json::render(&r),
        Format::Markdown => report::markdown::render(&r),
        Format::Junit => report::junit::render(&r),
        Format::Html => report::html::render(&r),
    };
    write_output(a.out.as_ref(), &text)?;
    drop(text);
    gate_exit(a, &r)
}

/// The exit status of `report` once the report is written: the gate's verdict with `--gate`.
fn gate_exit(a: &ReportArgs, r: &Report) -> Result<ExitCode> {
    if !a.gate {
        return Ok(ExitCode::SUCCESS);
    }
    let Some(g) = &r.gate else {
        return Ok(ExitCode::SUCCESS);
    };
    // Text and Markdown on stdout already end with the gate; elsewhere say it on stderr.
    if a.out.is_some() || !matches!(a.format, Format::Text | Format::Markdown) {
        eprintln!(
            "gate {}: {}",
            if g.passed { "passed" } else { "failed" },
            crate::term::sanitize(&g.reason)
        );
    }
    Ok(if g.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Runs `cliffprobe trend`.
pub fn trend(project: &Project, a: &TrendArgs) -> Result<ExitCode> {
    let store = project.open_store(a.store.as_deref())?;
    let runs = store.runs()?;
    if runs.is_empty() {
        // The store's own message: "no runs yet: run `cliffprobe sweep` first".
        store.resolve_run(None)?;
    }
    let model = match &a.model {
        Some(m) => {
            if !runs.iter().any(|r| r.models.contains(m)) {
                let mut known: Vec<&String> = runs.iter().flat_map(|r| &r.models).collect();
                known.sort();
                known.dedup();
                return Err(cli_error(
                    "--model",
                    format!(
                        "no run in the store has model `{m}`; models seen: {}",
                        known
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            m.clone()
        }
        None => project
            .config
            .models
            .keys()
            .find(|m| runs.iter().any(|r| r.models.contains(m)))
            .cloned()
            .or_else(|| runs.last().and_then(|r| r.models.first().cloned()))
            .ok_or_else(|| Error::Refused("the runs in the store have no models".into()))?,
    };
    let points = trend_points(&store, &runs, &model, None)?;
    let t = Trend::new(model, points, a.window);
    let text = match a.format {
        TrendFormat::Text => report::text::render_trend(&t, use_color(a.out.as_ref())),
        TrendFormat::Json => report::json::render_trend(&t),
        TrendFormat::Html => report::html::render_trend(&t),
    };
    write_output(a.out.as_ref(), &text)?;
    Ok(ExitCode::SUCCESS)
}
