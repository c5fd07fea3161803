//! The viewer's pages: what each one reads from the store and the analyses, and the template
//! context it renders.

use super::links::{CaseFilter, Links, Sides, key_text, param, query_pairs};
use super::{PAGE_SIZE, SCAN_LIMIT, Site, ViewError};
use crate::analysis::{Comparison, Flip, Heatmap};
use crate::brittleness::{Brittleness, ProbeBrittleness};
use crate::domain::Tier;
use crate::grade::CaseStatus;
use crate::report::{Format, Report, html, rate_text, short_id};
use crate::store::{CaseQuery, CaseRecord, CompareQuery, RunInfo, Store};
use indexmap::IndexMap;
use minijinja::{Environment, Value};
use serde_json::json;

/// A page of the viewer, with what it shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// Every run, and the trend of `model` (default: the first configured model).
    Runs {
        /// The trend's model.
        model: Option<String>,
    },
    /// One run, compared with `baseline` (a run or a model; default as `cliffprobe report`).
    Run {
        /// Run id.
        run: String,
        /// `--baseline` of the report.
        baseline: Option<String>,
    },
    /// A probe family for a model (every model when `None`).
    Family {
        /// Run id.
        run: String,
        /// Probe id.
        probe: String,
        /// Model.
        model: Option<String>,
    },
    /// A run's cases, filtered.
    Cases {
        /// Run id.
        run: String,
        /// Filters and page.
        filter: CaseFilter,
    },
    /// One case.
    Case {
        /// Run id.
        run: String,
        /// Model.
        model: String,
        /// Variant id.
        variant: String,
        /// Sample.
        sample: u32,
    },
    /// Two sides variant by variant.
    Compare {
        /// The sides (`None`: choose them).
        sides: Option<Sides>,
        /// Only the rows whose status differs.
        changed: bool,
        /// Start after this (variant, sample).
        after: Option<(String, u32)>,
    },
    /// The answers of two sides to one variant and sample.
    Diff {
        /// The sides.
        sides: Sides,
        /// Variant id.
        variant: String,
        /// Sample.
        sample: u32,
    },
}

impl Route {
    /// The route of a server path (percent-decoded segments) and raw query string, or `None`
    /// when no page lives there.
    pub fn parse(segments: &[String], query: Option<&str>) -> Result<Option<Route>, ViewError> {
        let pairs = query_pairs(query);
        let s: Vec<&str> = segments.iter().map(String::as_str).collect();
        let owned = |x: &str| x.to_string();
        Ok(Some(match s.as_slice() {
            [] => Route::Runs {
                model: param(&pairs, "model").map(owned),
            },
            ["run", run] => Route::Run {
                run: owned(run),
                baseline: param(&pairs, "baseline").map(owned),
            },
            ["run", run, "cases"] => Route::Cases {
                run: owned(run),
                filter: CaseFilter::from_query(&pairs)?,
            },
            ["run", run, "family", probe] => Route::Family {
                run: owned(run),
                probe: owned(probe),
                model: param(&pairs, "model").map(owned),
            },
            ["run", run, "case", model, variant, sample] => Route::Case {
                run: owned(run),
                model: owned(model),
                variant: owned(variant),
                sample: match sample.parse() {
                    Ok(n) => n,
                    Err(_) => return Ok(None),
                },
            },
            ["compare"] => {
                let sides = if param(&pairs, "a").is_some() || param(&pairs, "am").is_some() {
                    Some(Sides::from_query(&pairs)?)
                } else {
                    None
                };
                let after = match param(&pairs, "after") {
                    Some(a) => {
                        let (v, n) = a.rsplit_once('~').ok_or_else(|| {
                            ViewError::BadRequest(
                                "query parameter `after`: not VARIANT~SAMPLE".into(),
                            )
                        })?;
                        let n = n.parse().map_err(|_| {
                            ViewError::BadRequest(
                                "query parameter `after`: not VARIANT~SAMPLE".into(),
                            )
                        })?;
                        Some((v.to_string(), n))
                    }
                    None => None,
                };
                Route::Compare {
                    sides,
                    changed: param(&pairs, "changed").is_some_and(|v| v != "0"),
                    after,
                }
            }
            ["diff"] => Route::Diff {
                sides: Sides::from_query(&pairs)?,
                variant: param(&pairs, "variant").map(owned).ok_or_else(|| {
                    ViewError::BadRequest("query parameter `variant`: missing".into())
                })?,
                sample: param(&pairs, "sample")
                    .unwrap_or("0")
                    .parse()
                    .map_err(|_| {
                        ViewError::BadRequest("query parameter `sample`: not a number".into())
                    })?,
            },
            _ => return Ok(None),
        }))
    }
}

/// The template environment: every template embedded, HTML auto-escaping, control characters
/// made visible.
pub(super) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, src) in [
        ("base.html", include_str!("../templates/base.html")),
        ("runs.html", include_str!("../templates/runs.html")),
        ("run.html", include_str!("../templates/run.html")),
        ("family.html", include_str!("../templates/family.html")),
        ("cases.html", include_str!("../templates/cases.html")),
        ("case.html", include_str!("../templates/case.html")),
        ("compare.html", include_str!("../templates/compare.html")),
        ("diff.html", include_str!("../templates/diff.html")),
        ("error.html", include_str!("../templates/error.html")),
    ] {
        env.add_template(name, src)
            .unwrap_or_else(|e| panic!("embedded template {name}: {e}"));
    }
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    env.set_formatter(|out, state, value| {
        if !value.is_safe()
            && let Some(s) = value.as_str()
            && s.chars().any(is_hidden_control)
        {
            return minijinja::escape_formatter(out, state, &Value::from(visible(s)));
        }
        minijinja::escape_formatter(out, state, value)
    });
    env
}

fn is_hidden_control(c: char) -> bool {
    (c.is_control() && !matches!(c, '\n' | '\t')) || is_bidi_control(c)
}

/// The bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069): an
/// answer holding one can make the text after it read differently from what it is ("Trojan
/// Source"), so they are shown, not obeyed. Right-to-left letters and the plain marks
/// (U+200E, U+200F) are left alone.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with control characters (other than newline and tab) replaced by visible symbols:
/// ESC as `␛`, NUL as `␀`, … (U+2400 block), DEL as `␡`, C1 controls and bidirectional
/// overrides as `\u{…}`.
pub fn visible(s: &str) -> String {
    s.chars()
        .map(|c| match c as u32 {
            n if n < 0x20 && !matches!(c, '\n' | '\t') => char::from_u32(0x2400 + n)
                .map(String::from)
                .unwrap_or_default(),
            0x7f => "␡".to_string(),
            n if is_hidden_control(c) => format!("\\u{{{n:x}}}"),
            _ => c.to_string(),
        })
        .collect()
}

fn render_page(
    site: &Site,
    name: &str,
    links: &Links,
    title: &str,
    mut ctx: serde_json::Value,
) -> Result<String, ViewError> {
    let nav = json!({
        "runs": links.runs(),
        "compare": links.compare_home(),
        "css": links.asset("view.css"),
        "js": links.asset("view.js"),
        "bundle": links.is_bundle(),
        "title": title,
    });
    if let Some(o) = ctx.as_object_mut() {
        o.insert("nav".into(), nav);
    }
    let t = site.env.get_template(name)?;
    Ok(t.render(minijinja::value::Serde(&ctx))?)
}

impl Links {
    /// The compare page without sides chosen.
    pub fn compare_home(&self) -> Option<String> {
        match self {
            Links::Server => Some("/compare".into()),
            Links::Bundle { .. } => None,
        }
    }
}

pub(super) fn render(site: &Site, route: &Route, links: &Links) -> Result<String, ViewError> {
    match route {
        Route::Runs { model } => runs_page(site, model.as_deref(), links),
        Route::Run { run, baseline } => run_page(site, run, baseline.as_deref(), links),
        Route::Family { run, probe, model } => {
            family_page(site, run, probe, model.as_deref(), links)
        }
        Route::Cases { run, filter } => cases_page(site, run, filter, links),
        Route::Case {
            run,
            model,
            variant,
            sample,
        } => case_page(site, run, model, variant, *sample, links),
        Route::Compare {
            sides,
            changed,
            after,
        } => compare_page(site, sides.as_ref(), *changed, after.clone(), links),
        Route::Diff {
            sides,
            variant,
            sample,
        } => diff_page(site, sides, variant, *sample, links),
    }
}

pub(super) fn render_error(site: &Site, e: &ViewError, links: &Links) -> String {
    let title = match e.status() {
        404 => "Not found",
        400 => "Bad request",
        _ => "Error",
    };
    render_page(
        site,
        "error.html",
        links,
        title,
        json!({"status": e.status(), "title": title, "message": e.message()}),
    )
    .unwrap_or_else(|_| format!("{} {}", e.status(), crate::text::html(e.message())))
}

fn run_of(store: &Store, id: &str) -> Result<RunInfo, ViewError> {
    store
        .run(id)?
        .ok_or_else(|| ViewError::NotFound(format!("no run `{id}` in the store")))
}

// ---------------------------------------------------------------- runs

fn status_counts(
    site: &Site,
    store: &Store,
    run: &str,
) -> Result<std::sync::Arc<super::StatusCounts>, ViewError> {
    let generation = store.run_generation(run)?;
    site.counts.get((run.to_string(), generation), || {
        Ok(store.status_counts(run)?)
    })
}

/// Where a status is counted in a `[pass, fail, error, ungraded]` array.
fn status_index(s: CaseStatus) -> usize {
    match s {
        CaseStatus::Pass => 0,
        CaseStatus::Fail => 1,
        CaseStatus::Error => 2,
        CaseStatus::Ungraded => 3,
    }
}

pub(super) fn runs_page(
    site: &Site,
    model: Option<&str>,
    links: &Links,
) -> Result<String, ViewError> {
    site.with_store(|store| {
        let mut runs = store.runs()?;
        // A bundle lists its own run, and draws the trend up to it: the runs before it and
        // that run (the later ones had not happened when it was the run under review).
        let trend_runs = match links {
            Links::Bundle { run, .. } => {
                let upto = runs.iter().position(|r| &r.id == run).map_or(0, |i| i + 1);
                let earlier = runs[..upto].to_vec();
                runs.retain(|r| &r.id == run);
                earlier
            }
            _ => runs.clone(),
        };
        let mut rows = Vec::new();
        let mut all_models: Vec<String> = Vec::new();
        for r in runs.iter().rev() {
            let counts = status_counts(site, store, &r.id)?;
            let mut per: IndexMap<&str, [u64; 4]> = IndexMap::new();
            for (m, s, n) in counts.iter() {
                per.entry(m.as_str()).or_default()[status_index(*s)] += n;
            }
            let generation = store.run_generation(&r.id)?;
            let gate = site
                .run_pages
                .peek(&(r.id.clone(), None, generation))
                .and_then(|s| s.gate.clone());
            for m in &r.models {
                if !all_models.contains(m) {
                    all_models.push(m.clone());
                }
            }
            rows.push(json!({
                "id": r.id,
                "href": links.run(&r.id, None),
                "cases_href": links.cases(&r.id, &CaseFilter::default()),
                "started": r.started_at,
                "finished": r.finished_at,
                "status": r.status.as_str(),
                "planned": r.planned,
                "note": r.note,
                "models": r.models.iter().map(|m| {
                    let c = per.get(m.as_str()).copied().unwrap_or_default();
                    json!({"name": m, "id": r.model_ids.get(m), "pass": c[0], "fail": c[1], "error": c[2], "ungraded": c[3]})
                }).collect::<Vec<_>>(),
                "stored": per.values().map(|c| c.iter().sum::<u64>()).sum::<u64>(),
                "gate": gate,
            }));
        }
        if let Some(m) = model
            && !all_models.iter().any(|x| x == m)
        {
            return Err(ViewError::BadRequest(format!(
                "query parameter `model`: `{m}` is not a model of any run ({})",
                all_models.join(", ")
            )));
        }
        // The trend's model: asked for, else the first configured model any run has.
        let focus = model.map(str::to_string).or_else(|| {
            site.project
                .config
                .models
                .keys()
                .find(|m| all_models.contains(m))
                .cloned()
                .or_else(|| all_models.first().cloned())
        });
        let trend = match &focus {
            Some(m) if !trend_runs.is_empty() => {
                let key: Vec<(String, Option<i64>)> = trend_runs
                    .iter()
                    .map(|r| Ok((r.id.clone(), store.run_generation(&r.id)?)))
                    .collect::<Result<_, crate::Error>>()?;
                let t = site.trends.get((m.clone(), key), || {
                    let points = trend_points(site, store, &trend_runs, m)?;
                    Ok(crate::analysis::Trend::new(
                        m.clone(),
                        points,
                        crate::analysis::trend::DEFAULT_WINDOW,
                    ))
                })?;
                Some(json!({
                    "model": m,
                    "svg": (!t.points.is_empty()).then(|| html::trend_chart(&t)),
                    "warning": t.warning.as_ref().map(|w| w.message.clone()),
                    "points": t.points.iter().rev().map(|p| json!({
                        "run": p.run_id,
                        "href": links.run(&p.run_id, None),
                        "aggregate": rate_text(&p.aggregate),
                        "hard": rate_text(&p.hard),
                        "gap": p.gap.map(|g| format!("{:.1} pts", 100.0 * g)),
                    })).collect::<Vec<_>>(),
                }))
            }
            _ => None,
        };
        let model_links: Vec<_> = all_models
            .iter()
            .map(|m| json!({"name": m, "href": links.runs_for_model(m), "current": Some(m) == focus.as_ref()}))
            .collect();
        render_page(
            site,
            "runs.html",
            links,
            "Runs",
            json!({"runs": rows, "trend": trend, "models": model_links, "store": crate::store::engine::redact(&site.store_path.display().to_string())}),
        )
    })
}

/// How many of the latest runs the server computes in the background from its start.
pub(super) const WARM_RUNS: usize = 3;

/// The trend points of `model` over `runs`. A run's point comes from its run page when that is
/// computed already, else from the run summary `report` keeps in the store, else from a walk
/// of the run (of that model only).
fn trend_points(
    site: &Site,
    store: &Store,
    runs: &[RunInfo],
    model: &str,
) -> Result<Vec<crate::analysis::TrendPoint>, ViewError> {
    let mut points = Vec::new();
    for run in runs.iter().filter(|r| r.models.iter().any(|m| m == model)) {
        let generation = store.run_generation(&run.id)?;
        if let Some(p) = site.run_pages.peek(&(run.id.clone(), None, generation))
            && let Some((_, aggregate, hard)) = p.trend.iter().find(|(m, _, _)| m == model)
        {
            points.push(crate::analysis::TrendPoint::new(
                run.id.clone(),
                run.started_at.clone(),
                *aggregate,
                *hard,
            ));
            continue;
        }
        points.extend(
            crate::report::build::trend_points(store, std::slice::from_ref(run), model, None)
                .map_err(|e| ViewError::Internal(super::chain_text(&e)))?,
        );
    }
    Ok(points)
}

// ---------------------------------------------------------------- run

/// How many flips of each kind a run page lists per comparison (the rest are one link away,
/// on the compare page).
const FLIPS_SHOWN: usize = 25;

/// How many probes a run page's heat map shows per model.
const HEAT_ROWS: usize = 30;

/// What a run page shows, kept once computed: the rendered report sections (charts and
/// tables, from the report's HTML renderer), the counts and the first flips of each
/// comparison; the report's per-variant data is let go.
pub(super) struct RunSummary {
    run: RunInfo,
    /// Per model: its trend point's tallies (aggregate, hard tier).
    trend: Vec<(String, crate::analysis::Tally, crate::analysis::Tally)>,
    sections: String,
    findings: Vec<String>,
    gate: Option<serde_json::Value>,
    comparisons: Vec<ComparisonSummary>,
    heatmaps: Vec<Heatmap>,
    baseline_label: Option<String>,
    models: Vec<String>,
}

struct ComparisonSummary {
    baseline: (String, String),
    candidate: (String, String),
    label: String,
    fixed: usize,
    regressed: usize,
    hard_regressed: usize,
    /// Per tier then per class: label, shared, fixed (newly passing), regressed (newly
    /// failing), still failing.
    rows: Vec<(String, String, u64, u64, u64, u64)>,
    shown_hard: Vec<FlipSummary>,
    shown_fixed: Vec<FlipSummary>,
}

struct FlipSummary {
    variant_id: String,
    probe: String,
    tier: Tier,
    axes: String,
    capability: String,
}

impl FlipSummary {
    fn of(f: &Flip) -> FlipSummary {
        FlipSummary {
            variant_id: f.variant.variant_id.clone(),
            probe: f.variant.probe_id.to_string(),
            tier: f.variant.tier,
            axes: f.variant.axes_label(),
            capability: f.variant.capability.to_string(),
        }
    }
}

/// Still failing per tier and class: graded on both sides and failing on both. The report
/// counts shared variants, fixes and regressions; the variants failing on both sides are
/// shared − fixed − regressed − passing on both, and passing on both is what the candidate
/// passed minus what it fixed, over the shared variants; a comparison's rows do not carry
/// it, so it is counted here from the flips and tallies available.
fn still_failing_rows(
    c: &Comparison,
    both_pass: &IndexMap<String, u64>,
) -> Vec<(String, String, u64, u64, u64, u64)> {
    let mut out = Vec::new();
    for (kind, rows) in [("tier", &c.tiers), ("class", &c.classes)] {
        for d in rows.iter() {
            let bp = both_pass
                .get(&format!("{kind}:{}", d.label))
                .copied()
                .unwrap_or(0);
            let still = d
                .paired
                .shared
                .saturating_sub(d.paired.fixed + d.paired.regressed + bp);
            out.push((
                kind.to_string(),
                d.label.clone(),
                d.paired.shared,
                d.paired.fixed,
                d.paired.regressed,
                still,
            ));
        }
    }
    out
}

pub(super) fn run_summary(
    site: &Site,
    run: &str,
    baseline: Option<&str>,
) -> Result<std::sync::Arc<RunSummary>, ViewError> {
    site.with_store(|store| {
        let info = run_of(store, run)?;
        let generation = store.run_generation(run)?;
        site.run_pages.get(
            (run.to_string(), baseline.map(str::to_string), generation),
            || compute_run_summary(site, store, info, baseline),
        )
    })
}

fn compute_run_summary(
    site: &Site,
    store: &Store,
    info: RunInfo,
    baseline: Option<&str>,
) -> Result<RunSummary, ViewError> {
    let args = crate::report::build::ReportOptions {
        run: Some(info.id.clone()),
        baseline: baseline.map(str::to_string),
        format: Format::Html,
        floors: Vec::new(),
        gate: false,
        gate_on: crate::analysis::GateOn::Rate,
        max_regressions: None,
    };
    // The runs a comparison can involve: this one, and the baseline when it names a run. Their
    // passing variants (for "still failing") are read on a second thread, through a
    // connection of its own, while this one builds the report.
    let mut runs = vec![info.id.clone()];
    if let Some(b) = baseline
        && b != info.id
        && store.run(b)?.is_some()
    {
        runs.push(b.to_string());
    }
    let other = store.reopen()?;
    let (report, passing) = std::thread::scope(|scope| {
        let reader = scope.spawn(move || passing_variants(&other, &runs));
        let report = crate::report::build::build_from(&site.project, store, &args, false);
        let passing = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (report, passing)
    });
    let report: Report = match report {
        Ok(r) => r,
        Err(e) => {
            let msg = super::chain_text(&e);
            return Err(match e {
                // The report speaks of its command-line flag; the page of its query parameter.
                crate::Error::Input { message, .. } => {
                    ViewError::BadRequest(format!("query parameter `baseline`: {message}"))
                }
                crate::Error::Refused(_) => ViewError::NotFound(msg),
                _ => ViewError::Internal(msg),
            });
        }
    };
    let both_pass = both_pass_counts(&passing?, &report);
    let mut sections = String::new();
    sections.push_str("<div class=\"charts\">");
    sections.push_str(&format!(
        "<figure>{}<figcaption>Pass rate by tier; whiskers: 95% Wilson interval; pale: too few to say.</figcaption></figure>",
        html::tier_chart(&report.models)
    ));
    for c in &report.comparisons {
        sections.push_str(&format!(
            "<figure>{}<figcaption>Delta per tier, {} → {}.</figcaption></figure>",
            html::delta_chart(c),
            crate::text::html(&c.baseline_label()),
            crate::text::html(&c.candidate_label())
        ));
    }
    sections.push_str("</div>\n<h2>Tiers × models</h2>\n");
    html::tier_table(&mut sections, &report);
    for c in &report.comparisons {
        html::comparison(&mut sections, c);
    }
    if let Some(t) = &report.trend
        && t.points.len() > 1
    {
        sections.push_str(&format!(
            "<h2>Trend for {}</h2><figure>{}<figcaption>Aggregate and hard-tier pass rate per run, oldest first.</figcaption></figure>",
            crate::text::html(&t.model),
            html::trend_chart(t)
        ));
    }
    html::class_table(&mut sections, &report);
    html::measured_table(&mut sections, &report);
    let comparisons = report
        .comparisons
        .iter()
        .enumerate()
        .map(|(i, c)| ComparisonSummary {
            baseline: (c.baseline.run_id.clone(), c.baseline.model.clone()),
            candidate: (c.candidate.run_id.clone(), c.candidate.model.clone()),
            label: format!("{} → {}", c.baseline_label(), c.candidate_label()),
            fixed: c.fixed.len(),
            regressed: c.regressed.len(),
            hard_regressed: c.hard_regressions().count(),
            rows: still_failing_rows(c, &both_pass[i]),
            shown_hard: c
                .hard_regressions()
                .take(FLIPS_SHOWN)
                .map(FlipSummary::of)
                .collect(),
            shown_fixed: c
                .fixed
                .iter()
                .take(FLIPS_SHOWN)
                .map(FlipSummary::of)
                .collect(),
        })
        .collect();
    let gate = report.gate.as_ref().map(|g| {
        json!({
            "passed": g.passed,
            "reason": g.reason,
            "on": g.on.as_str(),
            "checks": g.checks.iter().map(|c| json!({"passed": c.passed, "reason": c.reason})).collect::<Vec<_>>(),
        })
    });
    Ok(RunSummary {
        trend: report
            .models
            .iter()
            .map(|b| (b.model.clone(), b.aggregate, b.tier(Tier::Hard)))
            .collect(),
        models: report.models.iter().map(|b| b.model.clone()).collect(),
        baseline_label: match &report.baseline {
            crate::report::BaselineKind::None => None,
            crate::report::BaselineKind::Model(m) => Some(format!("model {m} of this run")),
            crate::report::BaselineKind::Run(r) => Some(format!("run {}", r.id)),
        },
        run: report.run,
        sections,
        findings: report.findings.iter().map(|f| f.message.clone()).collect(),
        gate,
        comparisons,
        heatmaps: report.heatmaps,
    })
}

/// A variant id as a number: its 16 hex digits, or (for any other form) a hash of it.
fn variant_key(id: &str) -> u64 {
    if id.len() == 16
        && let Ok(n) = u64::from_str_radix(id, 16)
    {
        return n;
    }
    let mut h = blake3::Hasher::new();
    h.update(id.as_bytes());
    let bytes = h.finalize();
    u64::from_le_bytes(bytes.as_bytes()[..8].try_into().unwrap_or([0; 8]))
}

/// The variants of one model in one run that pass (majority of graded samples, as the report
/// folds them): key, tier, class index; sorted by key. 16 bytes a variant.
type Passing = Vec<(u64, Tier, u32)>;

/// The passing variants of every model of `runs` (a class index into `classes`).
struct PassingVariants {
    classes: Vec<String>,
    of: IndexMap<(String, String), Passing>,
}

/// One brief walk per run, folding each variant's samples as the walk passes them (rows come
/// by variant, model and sample) and keeping only the passing ones.
fn passing_variants(store: &Store, runs: &[String]) -> Result<PassingVariants, ViewError> {
    use crate::analysis::variant::{Samples, Verdict, fold};
    let mut classes: Vec<String> = Vec::new();
    let mut of: IndexMap<(String, String), Passing> = IndexMap::new();
    for run in runs {
        // The variant and model being folded, and their samples so far.
        let mut current: Option<(String, String, Tier, u32)> = None;
        let mut samples = Samples::default();
        let mut per_model: IndexMap<String, Passing> = IndexMap::new();
        let flush = |cur: &Option<(String, String, Tier, u32)>,
                     s: &Samples,
                     per_model: &mut IndexMap<String, Passing>| {
            if let Some((v, m, tier, class)) = cur
                && fold(s) == Verdict::Pass
            {
                per_model
                    .entry(m.clone())
                    .or_default()
                    .push((variant_key(v), *tier, *class));
            }
        };
        store.for_each_case_brief(run, |row| {
            let same = current
                .as_ref()
                .is_some_and(|(v, m, _, _)| v == row.variant_id && m == row.model);
            if !same {
                flush(&current, &samples, &mut per_model);
                samples = Samples::default();
                let class = match classes.iter().position(|c| c == row.capability) {
                    Some(i) => i as u32,
                    None => {
                        classes.push(row.capability.to_string());
                        (classes.len() - 1) as u32
                    }
                };
                current = Some((
                    row.variant_id.to_string(),
                    row.model.to_string(),
                    row.tier,
                    class,
                ));
            }
            match row.status {
                CaseStatus::Pass => samples.pass += 1,
                CaseStatus::Fail => samples.fail += 1,
                CaseStatus::Error => samples.error += 1,
                CaseStatus::Ungraded => samples.ungraded += 1,
            }
            Ok(())
        })?;
        flush(&current, &samples, &mut per_model);
        for (model, mut list) in per_model {
            list.sort_unstable_by_key(|e| e.0);
            of.insert((run.clone(), model), list);
        }
    }
    Ok(PassingVariants { classes, of })
}

/// Per comparison of `r`: how many shared variants pass on both sides, keyed `tier:NAME` and
/// `class:NAME`.
fn both_pass_counts(p: &PassingVariants, r: &Report) -> Vec<IndexMap<String, u64>> {
    let empty = Passing::new();
    let side = |run: &str, model: &str| {
        p.of.get(&(run.to_string(), model.to_string()))
            .unwrap_or(&empty)
    };
    let mut out = Vec::new();
    for c in &r.comparisons {
        let mut counts: IndexMap<String, u64> = IndexMap::new();
        let base = side(&c.baseline.run_id, &c.baseline.model);
        let cand = side(&c.candidate.run_id, &c.candidate.model);
        for (key, tier, class) in cand {
            if base.binary_search_by_key(key, |e| e.0).is_ok() {
                *counts.entry(format!("tier:{}", tier.as_str())).or_default() += 1;
                *counts
                    .entry(format!("class:{}", p.classes[*class as usize]))
                    .or_default() += 1;
            }
        }
        out.push(counts);
    }
    out
}

fn flip_json(
    links: &Links,
    run: &str,
    model: &str,
    f: &FlipSummary,
    sides: &Sides,
) -> serde_json::Value {
    json!({
        "variant": short_id(&f.variant_id),
        "probe": f.probe,
        "tier": f.tier.as_str(),
        "axes": f.axes,
        "class": f.capability,
        "href": links.case(run, model, &f.variant_id, 0),
        "diff": links.diff(sides, &f.variant_id, 0),
        "family": links.family(run, &f.probe, model),
    })
}

fn heat_json(links: &Links, run: &str, h: &Heatmap) -> serde_json::Value {
    let rows: Vec<_> = h
        .rows
        .iter()
        .take(HEAT_ROWS)
        .map(|row| {
            json!({
                "probe": row.probe,
                "tier": row.tier.as_str(),
                "href": links.family(run, &row.probe, &h.model),
                "cells": row.cells.iter().enumerate().map(|(i, c)| {
                    let (axis, value) = &h.columns[i];
                    c.as_ref().map(|t| {
                        let f = CaseFilter {
                            model: Some(h.model.clone()),
                            probe: Some(row.probe.clone()),
                            axes: vec![(axis.clone(), value.clone())],
                            ..Default::default()
                        };
                        json!({
                            "rate": t.rate().map(|r| format!("{:.0}", 100.0 * r)),
                            "color": t.rate().map(html::heat_color),
                            "href": links.cases(run, &f),
                        })
                    })
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "model": h.model,
        "columns": h.columns.iter().map(|(a, v)| json!({"axis": a, "value": v})).collect::<Vec<_>>(),
        "rows": rows,
        "more": h.rows.len().saturating_sub(HEAT_ROWS),
    })
}

fn run_page(
    site: &Site,
    run: &str,
    baseline: Option<&str>,
    links: &Links,
) -> Result<String, ViewError> {
    if let Some(page) = pending_run_page(site, run, links)? {
        return Ok(page);
    }
    let s = run_summary(site, run, baseline)?;
    let (others, counts) = site.with_store(|store| {
        let runs = store.runs()?;
        Ok((
            runs.into_iter()
                .filter(|r| r.id != run)
                .map(|r| r.id)
                .rev()
                .take(50)
                .collect::<Vec<_>>(),
            status_counts(site, store, run)?,
        ))
    })?;
    let comparisons: Vec<_> = s
        .comparisons
        .iter()
        .map(|c| {
            let sides = Sides {
                run_a: c.baseline.0.clone(),
                model_a: c.baseline.1.clone(),
                run_b: c.candidate.0.clone(),
                model_b: c.candidate.1.clone(),
            };
            json!({
                "label": c.label,
                "fixed": c.fixed,
                "regressed": c.regressed,
                "hard_regressed": c.hard_regressed,
                "compare": links.compare(&sides, true),
                "rows": c.rows.iter().map(|(kind, label, shared, fixed, regressed, still)| json!({
                    "kind": kind, "label": label, "shared": shared, "fixed": fixed, "regressed": regressed, "still": still,
                })).collect::<Vec<_>>(),
                "hard": c.shown_hard.iter().map(|f| flip_json(links, &c.candidate.0, &c.candidate.1, f, &sides)).collect::<Vec<_>>(),
                "fixed_list": c.shown_fixed.iter().map(|f| flip_json(links, &c.candidate.0, &c.candidate.1, f, &sides)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut per: IndexMap<&str, [u64; 4]> = IndexMap::new();
    for (m, st, n) in counts.iter() {
        per.entry(m.as_str()).or_default()[status_index(*st)] += n;
    }
    let models: Vec<_> = s
        .run
        .models
        .iter()
        .map(|m| {
            let c = per.get(m.as_str()).copied().unwrap_or_default();
            json!({
                "name": m,
                "id": s.run.model_ids.get(m),
                "pass": c[0], "fail": c[1], "error": c[2], "ungraded": c[3],
                "cases": links.cases(run, &CaseFilter { model: Some(m.clone()), ..Default::default() }),
                "failing": links.cases(run, &CaseFilter { model: Some(m.clone()), status: Some(CaseStatus::Fail), ..Default::default() }),
            })
        })
        .collect();
    let r = &s.run;
    render_page(
        site,
        "run.html",
        links,
        &format!("Run {}", r.id),
        json!({
            "run": {
                "id": r.id, "status": r.status.as_str(), "started": r.started_at, "finished": r.finished_at,
                "strategy": r.strategy, "seed": r.seed, "repeats": r.repeats, "planned": r.planned,
                "note": r.note, "version": r.version, "axes": r.axes,
            },
            "cases_href": links.cases(run, &CaseFilter::default()),
            "models": models,
            "baseline": baseline,
            "baseline_label": s.baseline_label,
            "baseline_choices": if links.is_bundle() { Vec::new() } else { s.models.iter().cloned().chain(others).collect() },
            "findings": s.findings,
            "gate": s.gate,
            "sections": Value::from_safe_string(s.sections.clone()),
            "comparisons": comparisons,
            "heatmaps": s.heatmaps.iter().map(|h| heat_json(links, run, h)).collect::<Vec<_>>(),
        }),
    )
}

/// The page of a run none of whose cases is stored yet (a sweep that has just started: it
/// settles its cases into the store every ~100,000 cases and at its end), or `None` when the
/// run has cases. The run exists, so this is its page, not a 404.
fn pending_run_page(site: &Site, run: &str, links: &Links) -> Result<Option<String>, ViewError> {
    let info = site.with_store(|store| {
        let info = run_of(store, run)?;
        let counts = status_counts(site, store, run)?;
        Ok(counts.iter().all(|(_, _, n)| *n == 0).then_some(info))
    })?;
    let Some(r) = info else { return Ok(None) };
    let pending = format!(
        "No case of this run is in the store yet (status {}): a sweep stores its cases as it \
         goes, in batches, and at its end. Reload this page to see them.",
        r.status.as_str()
    );
    let models: Vec<_> = r
        .models
        .iter()
        .map(|m| json!({"name": m, "id": r.model_ids.get(m), "pass": 0, "fail": 0, "error": 0, "ungraded": 0}))
        .collect();
    render_page(
        site,
        "run.html",
        links,
        &format!("Run {}", r.id),
        json!({
            "run": {
                "id": r.id, "status": r.status.as_str(), "started": r.started_at, "finished": r.finished_at,
                "strategy": r.strategy, "seed": r.seed, "repeats": r.repeats, "planned": r.planned,
                "note": r.note, "version": r.version, "axes": r.axes,
            },
            "models": models,
            "pending": pending,
        }),
    )
    .map(Some)
}

// ---------------------------------------------------------------- family

fn brittleness_of(
    site: &Site,
    store: &Store,
    run: &RunInfo,
) -> Result<std::sync::Arc<Brittleness>, ViewError> {
    let generation = store.run_generation(&run.id)?;
    site.brittleness.get((run.id.clone(), generation), || {
        Ok(crate::brittleness::analyze(
            store,
            run,
            &crate::brittleness::Filter::default(),
        )?)
    })
}

fn family_json(links: &Links, run: &str, p: &ProbeBrittleness) -> serde_json::Value {
    let base = CaseFilter {
        model: Some(p.model.clone()),
        probe: Some(p.probe.clone()),
        ..Default::default()
    };
    let axes: Vec<_> = p
        .axes
        .iter()
        .map(|(axis, values)| {
            json!({
                "axis": axis,
                "values": values.iter().map(|(value, st)| {
                    let f = CaseFilter { axes: vec![(axis.clone(), value.clone())], ..base.clone() };
                    let failing = CaseFilter { status: Some(CaseStatus::Fail), ..f.clone() };
                    json!({
                        "value": value,
                        "cases": st.cases,
                        "passed": st.passed,
                        "rate": st.pass_rate.map(|r| format!("{:.0}%", 100.0 * r)),
                        "color": st.pass_rate.map(html::heat_color),
                        "significant": st.significant,
                        "p": st.p_value.map(|p| format!("{p:.4}")),
                        "href": links.cases(run, &f),
                        "failing": links.cases(run, &failing),
                    })
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "probe": p.probe,
        "model": p.model,
        "class": p.capability,
        "tier": p.tier.as_str(),
        "label": p.label.as_str(),
        "canonical_passed": p.canonical_passed,
        "cases": p.cases,
        "passed": p.passed,
        "rate": p.pass_rate.map(|r| format!("{:.1}%", 100.0 * r)),
        "errors": p.errors,
        "ungraded": p.ungraded,
        "variants": p.variants,
        "failing_variants": p.failing_variants,
        "axes": axes,
        "interactions": p.interactions.iter().take(20).map(|i| json!({
            "axes": i.axes.iter().map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join(", "),
            "cases": i.cases, "passed": i.passed,
        })).collect::<Vec<_>>(),
        "minimal": p.minimal_failing.as_ref().map(|m| m.iter().map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join(", ")),
        "minimal_href": p.minimal_failing_variant.as_ref().and_then(|v| links.case(run, &p.model, v, 0)),
        "minimal_variant": p.minimal_failing_variant.as_deref().map(short_id),
        "flaky": p.flaky.iter().take(20).map(|f| json!({
            "variant": short_id(&f.variant),
            "href": links.case(run, &p.model, &f.variant, 0),
            "axes": f.axes.iter().map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join(", "),
            "cases": f.cases, "passed": f.passed,
        })).collect::<Vec<_>>(),
        "all_cases": links.cases(run, &base),
        "failing_cases": links.cases(run, &CaseFilter { status: Some(CaseStatus::Fail), ..base.clone() }),
        "self": links.family(run, &p.probe, &p.model),
    })
}

/// The promoted cases of `probe`, read from its file in the project (the version the run
/// recorded, when the file is still there): `(axes, failed on, failures, last seen)`.
fn promoted_cases(site: &Site, store: &Store, probe: &str) -> Vec<serde_json::Value> {
    let Ok(paths) = store.probe_paths(probe) else {
        return Vec::new();
    };
    for path in paths {
        let file = site.project.rooted(std::path::PathBuf::from(&path));
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let Ok(p) = crate::probe::Probe::parse(&file, &text) else {
            continue;
        };
        return p
            .cases
            .iter()
            .map(|c| {
                json!({
                    "variant": short_id(&c.variant),
                    "axes": c.axes.iter().map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join(", "),
                    "failed_on": c.failed_on.join(", "),
                    "failures": c.failures,
                    "last_seen": c.last_seen,
                })
            })
            .collect();
    }
    Vec::new()
}

fn family_page(
    site: &Site,
    run: &str,
    probe: &str,
    model: Option<&str>,
    links: &Links,
) -> Result<String, ViewError> {
    site.with_store(|store| {
        let info = run_of(store, run)?;
        let b = brittleness_of(site, store, &info)?;
        let of_probe: Vec<&ProbeBrittleness> = b.results.iter().filter(|p| p.probe == probe).collect();
        if of_probe.is_empty() {
            if info.probes.iter().any(|p| p == probe) {
                return Err(ViewError::NotFound(format!(
                    "no graded case of probe `{probe}` is stored in run `{run}` yet (status {})",
                    info.status.as_str()
                )));
            }
            return Err(ViewError::NotFound(format!("no probe `{probe}` in run `{run}`")));
        }
        let shown: Vec<&ProbeBrittleness> = match model {
            Some(m) => {
                let v: Vec<_> = of_probe.iter().copied().filter(|p| p.model == m).collect();
                if v.is_empty() {
                    return Err(ViewError::NotFound(format!("model `{m}` did not run probe `{probe}` in run `{run}`")));
                }
                v
            }
            None => of_probe.clone(),
        };
        render_page(
            site,
            "family.html",
            links,
            &format!("{probe} · {}", model.unwrap_or("every model")),
            json!({
                "run": run,
                "run_href": links.run(run, None),
                "probe": probe,
                "model": model,
                "models": of_probe.iter().map(|p| json!({"name": p.model, "href": links.family(run, probe, &p.model), "current": Some(p.model.as_str()) == model})).collect::<Vec<_>>(),
                "families": shown.iter().map(|p| family_json(links, run, p)).collect::<Vec<_>>(),
                "promoted": promoted_cases(site, store, probe),
            }),
        )
    })
}

// ---------------------------------------------------------------- cases

fn cases_page(site: &Site, run: &str, f: &CaseFilter, links: &Links) -> Result<String, ViewError> {
    site.with_store(|store| {
        let info = run_of(store, run)?;
        let classes = store.classes_of(&info.probes)?;
        check_choice("model", f.model.as_deref(), &info.models, run)?;
        check_choice("class", f.class.as_deref(), &classes, run)?;
        check_choice("probe", f.probe.as_deref(), &info.probes, run)?;
        let q = CaseQuery {
            run: run.to_string(),
            model: f.model.clone(),
            tier: f.tier,
            class: f.class.clone(),
            probe: f.probe.clone(),
            axes: f.axes.clone(),
            status: f.status,
            failed_check: f.check.clone(),
            text: f.text.clone(),
            after: f.after.clone(),
            limit: PAGE_SIZE,
            scan: if links.is_bundle() { usize::MAX >> 1 } else { SCAN_LIMIT },
        };
        let page = store.list_cases(&q)?;
        let items: Vec<_> = page.items.iter().map(|c| case_item_json(links, run, c)).collect();
        let next = page.next.as_ref().and_then(|k| {
            links.cases(run, &CaseFilter { after: Some(k.clone()), ..f.clone() })
        });
        let first = f
            .after
            .is_some()
            .then(|| links.cases(run, &CaseFilter { after: None, ..f.clone() }))
            .flatten();
        render_page(
            site,
            "cases.html",
            links,
            &format!("Cases of {run}"),
            json!({
                "run": run,
                "run_href": links.run(run, None),
                "filter": {
                    "model": f.model, "tier": f.tier.map(Tier::as_str), "class": f.class, "probe": f.probe,
                    "axes": f.axes.iter().map(|(a, v)| format!("{a}:{v}")).collect::<Vec<_>>(),
                    "status": f.status.map(CaseStatus::as_str), "check": f.check, "q": f.text,
                    "active": !f.is_unfiltered(),
                },
                "choices": {
                    "models": info.models,
                    "tiers": Tier::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
                    "classes": classes,
                    "probes": info.probes,
                    "statuses": ["pass", "fail", "error", "ungraded"],
                },
                "items": items,
                "next": next,
                "first": first,
                "scanned": page.scanned,
                "stopped_early": page.stopped_early,
                "after": f.after.as_ref().map(key_text),
                "form": !links.is_bundle(),
            }),
        )
    })
}

/// A filter that names a model, class or probe the run does not have is a bad request, not an
/// empty list: the form could not show it as selected, so a refresh would silently drop it.
fn check_choice(
    param: &str,
    value: Option<&str>,
    choices: &[String],
    run: &str,
) -> Result<(), ViewError> {
    match value {
        Some(v) if !choices.iter().any(|c| c == v) => Err(ViewError::BadRequest(format!(
            "query parameter `{param}`: `{v}` is not a {param} of run `{run}` ({})",
            choices.join(", ")
        ))),
        _ => Ok(()),
    }
}

/// One row of a cases list.
fn case_item_json(links: &Links, run: &str, c: &crate::store::CaseListItem) -> serde_json::Value {
    json!({
        "href": links.case(run, &c.key.model, &c.key.variant_id, c.key.sample),
        "variant": short_id(&c.key.variant_id),
        "model": c.key.model,
        "sample": c.key.sample,
        "status": c.status.as_str(),
        "probe": c.probe_id,
        "family": links.family(run, &c.probe_id, &c.key.model),
        "tier": c.tier.as_str(),
        "class": c.capability,
        "canonical": c.canonical,
        "axes": c.axes.iter().filter(|(_, v)| v.as_str() != crate::axes::ORIGINAL).map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join(", "),
        "failed": c.failed_checks.join(", "),
        "excerpt": c.error.clone().unwrap_or_else(|| c.excerpt.clone()),
        "latency": c.latency_ms,
    })
}

/// The cases page of a bundle: the given cases (those the bundle holds pages for), without
/// the filter form.
pub(super) fn bundle_cases_page(
    site: &Site,
    run: &str,
    items: &[crate::store::CaseListItem],
    note: &str,
    links: &Links,
) -> Result<String, ViewError> {
    render_page(
        site,
        "cases.html",
        links,
        &format!("Cases of {run}"),
        json!({
            "run": run,
            "run_href": links.run(run, None),
            "filter": {"active": false},
            "items": items.iter().map(|c| case_item_json(links, run, c)).collect::<Vec<_>>(),
            "note": note,
            "form": false,
        }),
    )
}

/// The (probe, model) pairs of a run's brittleness analysis, for a bundle's family pages.
pub(super) fn families_of(site: &Site, run: &RunInfo) -> Result<Vec<(String, String)>, ViewError> {
    site.with_store(|store| {
        Ok(brittleness_of(site, store, run)?
            .results
            .iter()
            .map(|p| (p.probe.clone(), p.model.clone()))
            .collect())
    })
}

// ---------------------------------------------------------------- case

fn case_of(
    store: &Store,
    run: &str,
    model: &str,
    variant: &str,
    sample: u32,
) -> Result<Option<CaseRecord>, ViewError> {
    Ok(store
        .variant_cases(run, model, variant)?
        .into_iter()
        .find(|c| c.sample == sample))
}

fn case_json(c: &CaseRecord) -> serde_json::Value {
    json!({
        "model": c.model,
        "sample": c.sample,
        "status": c.status.as_str(),
        "output": c.output,
        "tool_calls": c.tool_calls.iter().map(|t| json!({"name": t.function.name, "arguments": t.function.arguments, "id": t.id})).collect::<Vec<_>>(),
        "checks": c.checks.iter().map(|v| json!({
            "check": v.check,
            "verdict": match v.passed { Some(true) => "pass", Some(false) => "fail", None => "ungraded" },
            "reason": v.reason,
        })).collect::<Vec<_>>(),
        "latency": c.latency_ms,
        "input_tokens": c.input_tokens,
        "output_tokens": c.output_tokens,
        "cost": c.cost_usd.map(|x| format!("${x:.6}")),
        "error": c.error,
        "cached": c.cached,
        "attempts": c.attempts,
        "finish_reason": c.finish_reason,
        "finished_at": c.finished_at,
        "stop_reason": c.stop_reason.map(|s| s.as_str()),
        "trajectory": c.trajectory.as_ref().map(|t| t.steps.iter().enumerate().map(|(i, s)| json!({
            "step": i + 1,
            "text": s.text,
            "calls": s.tool_calls.iter().map(|t| json!({"name": t.function.name, "arguments": t.function.arguments, "id": t.id})).collect::<Vec<_>>(),
            "results": s.results.iter().map(|r| json!({"call_id": r.call_id, "tool": r.tool, "content": r.content, "source": r.source, "mutating": r.mutating})).collect::<Vec<_>>(),
            "tokens": s.input_tokens + s.output_tokens,
            "cached": s.cached,
        })).collect::<Vec<_>>()),
    })
}

/// The conversation the model saw for a variant: re-rendered from the probe file the run
/// recorded, when that file still holds the same probe version (its digest) and renders to the
/// same variant id; otherwise a sentence saying why it cannot be shown.
fn conversation(site: &Site, v: &crate::store::VariantInfo) -> Result<serde_json::Value, String> {
    let path = v
        .path
        .as_ref()
        .ok_or("the run did not record the probe file")?;
    let file = site.project.rooted(std::path::PathBuf::from(path));
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("the probe file {} cannot be read ({e})", file.display()))?;
    let probe = crate::probe::Probe::parse(&file, &text)
        .map_err(|e| format!("the probe file {} does not parse: {e}", file.display()))?;
    if probe.digest() != v.probe_digest {
        return Err(format!(
            "the probe file {} has changed since this run (digest {} now, {} then)",
            file.display(),
            short_id(&probe.digest()),
            short_id(&v.probe_digest)
        ));
    }
    let lib = site
        .library
        .get_or_init(|| site.project.library().map_err(|e| super::chain_text(&e)))
        .as_ref()
        .map_err(|e| format!("the axis library cannot be loaded: {e}"))?;
    let x = crate::expand::ProbeExpansion::new(&probe, lib).map_err(|e| e.to_string())?;
    let variant = x
        .variant(crate::render::VariantAxes::from_map(&v.axes))
        .map_err(|e| e.to_string())?;
    if variant.variant != v.id {
        return Err(format!(
            "rendering the probe file now gives variant {} for these axes, not {}: the axis \
             library (templates/) has changed since this run",
            short_id(&variant.variant),
            short_id(&v.id)
        ));
    }
    Ok(json!({
        "messages": variant.request.messages.iter().map(|m| json!({
            "role": m.role,
            "content": m.content,
            "name": m.name,
            "tool_call_id": m.tool_call_id,
            "tool_calls": m.tool_calls.iter().map(|t| json!({"name": t.function.name, "arguments": t.function.arguments, "id": t.id})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "tools": variant.request.tools.iter().map(|t| serde_json::to_string_pretty(t).unwrap_or_default()).collect::<Vec<_>>(),
    }))
}

fn case_page(
    site: &Site,
    run: &str,
    model: &str,
    variant: &str,
    sample: u32,
    links: &Links,
) -> Result<String, ViewError> {
    site.with_store(|store| {
        let info = run_of(store, run)?;
        let case = case_of(store, run, model, variant, sample)?.ok_or_else(|| {
            ViewError::NotFound(format!(
                "no case of model `{model}`, variant `{variant}`, sample {sample} in run `{run}`"
            ))
        })?;
        let v = store.variant_info(variant)?.ok_or_else(|| {
            ViewError::NotFound(format!("no variant `{variant}` in the store"))
        })?;
        let mut others = Vec::new();
        for m in info.models.iter().filter(|m| *m != model) {
            if let Some(c) = case_of(store, run, m, variant, sample)? {
                let sides = Sides {
                    run_a: run.to_string(),
                    model_a: model.to_string(),
                    run_b: run.to_string(),
                    model_b: m.clone(),
                };
                let mut j = case_json(&c);
                if let Some(o) = j.as_object_mut() {
                    o.insert("href".into(), json!(links.case(run, m, variant, sample)));
                    o.insert("diff".into(), json!(links.diff(&sides, variant, sample)));
                }
                others.push(j);
            }
        }
        let samples: Vec<_> = (0..info.repeats.max(1))
            .map(|s| json!({"n": s, "href": links.case(run, model, variant, s), "current": s == sample}))
            .collect();
        let (conv, conv_missing) = match conversation(site, &v) {
            Ok(c) => (Some(c), None),
            Err(why) => (None, Some(why)),
        };
        render_page(
            site,
            "case.html",
            links,
            &format!("{} · {model} · {}", v.probe_id, short_id(variant)),
            json!({
                "run": run,
                "run_href": links.run(run, None),
                "variant": v.id,
                "probe": v.probe_id,
                "family": links.family(run, &v.probe_id, model),
                "class": v.capability,
                "tier": v.tier.map(Tier::as_str),
                "canonical": v.canonical,
                "axes": v.axes.iter().map(|(a, x)| json!({"axis": a, "value": x})).collect::<Vec<_>>(),
                "case": case_json(&case),
                "samples": if info.repeats > 1 { samples } else { Vec::new() },
                "others": others,
                "conversation": conv,
                "conversation_missing": conv_missing,
            }),
        )
    })
}

// ---------------------------------------------------------------- compare

fn side_choices(store: &Store) -> Result<Vec<serde_json::Value>, ViewError> {
    Ok(store
        .runs()?
        .iter()
        .rev()
        .take(50)
        .map(|r| json!({"id": r.id, "models": r.models}))
        .collect())
}

fn compare_page(
    site: &Site,
    sides: Option<&Sides>,
    changed: bool,
    after: Option<(String, u32)>,
    links: &Links,
) -> Result<String, ViewError> {
    site.with_store(|store| {
        let choices = side_choices(store)?;
        let Some(sides) = sides else {
            return render_page(
                site,
                "compare.html",
                links,
                "Compare",
                json!({"choices": choices, "sides": null}),
            );
        };
        for (run, model) in [(&sides.run_a, &sides.model_a), (&sides.run_b, &sides.model_b)] {
            let info = run_of(store, run)?;
            if !info.models.contains(model) {
                return Err(ViewError::NotFound(format!("run `{run}` has no model `{model}`")));
            }
        }
        let page = store.compare_cases(&CompareQuery {
            run_a: sides.run_a.clone(),
            model_a: sides.model_a.clone(),
            run_b: sides.run_b.clone(),
            model_b: sides.model_b.clone(),
            changed_only: changed,
            after: after.clone(),
            limit: PAGE_SIZE,
            scan: SCAN_LIMIT,
        })?;
        let base = links.compare(sides, changed).unwrap_or_default();
        let rows: Vec<_> = page
            .rows
            .iter()
            .map(|r| {
                json!({
                    "variant": short_id(&r.variant_id),
                    "sample": r.sample,
                    "probe": r.probe_id,
                    "tier": r.tier.map(Tier::as_str),
                    "axes": r.axes.iter().filter(|(_, v)| v.as_str() != crate::axes::ORIGINAL).map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join(", "),
                    "a": r.status_a.as_str(),
                    "b": r.status_b.as_str(),
                    "changed": r.status_a != r.status_b,
                    "a_href": links.case(&sides.run_a, &sides.model_a, &r.variant_id, r.sample),
                    "b_href": links.case(&sides.run_b, &sides.model_b, &r.variant_id, r.sample),
                    "diff": links.diff(sides, &r.variant_id, r.sample),
                })
            })
            .collect();
        let next = page.next.as_ref().map(|(v, s)| {
            let q: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("after", &format!("{v}~{s}"))
                .finish();
            format!("{base}&{q}")
        });
        let label = |run: &str, model: &str| {
            if sides.run_a == sides.run_b {
                model.to_string()
            } else {
                format!("{model}@{run}")
            }
        };
        render_page(
            site,
            "compare.html",
            links,
            "Compare",
            json!({
                "choices": choices,
                "sides": {"a": sides.run_a, "am": sides.model_a, "b": sides.run_b, "bm": sides.model_b},
                "label_a": label(&sides.run_a, &sides.model_a),
                "label_b": label(&sides.run_b, &sides.model_b),
                "changed": changed,
                "toggle": links.compare(sides, !changed),
                "rows": rows,
                "next": next,
                "first": after.is_some().then_some(base.clone()),
                "scanned": page.scanned,
                "stopped_early": page.stopped_early,
            }),
        )
    })
}

fn diff_page(
    site: &Site,
    sides: &Sides,
    variant: &str,
    sample: u32,
    links: &Links,
) -> Result<String, ViewError> {
    site.with_store(|store| {
        let a = case_of(store, &sides.run_a, &sides.model_a, variant, sample)?;
        let b = case_of(store, &sides.run_b, &sides.model_b, variant, sample)?;
        let (Some(a), Some(b)) = (a, b) else {
            return Err(ViewError::NotFound(format!(
                "variant `{variant}` sample {sample} was not run on both sides"
            )));
        };
        let v = store.variant_info(variant)?;
        let answer = |c: &CaseRecord| {
            let mut s = c.output.clone();
            for t in &c.tool_calls {
                s.push_str(&format!("\n[tool call] {}({})", t.function.name, t.function.arguments));
            }
            if let Some(e) = &c.error {
                s.push_str(&format!("\n[error] {e}"));
            }
            s
        };
        let lines = super::diff::diff_lines(&answer(&a), &answer(&b));
        render_page(
            site,
            "diff.html",
            links,
            &format!("Diff · {}", short_id(variant)),
            json!({
                "variant": variant,
                "probe": v.as_ref().map(|v| v.probe_id.clone()),
                "axes": v.as_ref().map(|v| v.axes.iter().map(|(a, x)| format!("{a}={x}")).collect::<Vec<_>>().join(", ")),
                "sample": sample,
                "a": case_json(&a),
                "b": case_json(&b),
                "a_label": format!("{} @ {}", sides.model_a, sides.run_a),
                "b_label": format!("{} @ {}", sides.model_b, sides.run_b),
                "a_href": links.case(&sides.run_a, &sides.model_a, variant, sample),
                "b_href": links.case(&sides.run_b, &sides.model_b, variant, sample),
                "compare": links.compare(sides, true),
                "lines": lines,
                "identical": lines.iter().all(|l| l.op == "same"),
            }),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible() {
        assert_eq!(visible("a\x1b[31mred\x07\n\tb\u{7f}"), "a␛[31mred␇\n\tb␡");
        assert_eq!(visible("\u{9b}x"), "\\u{9b}x");
        assert_eq!(
            visible("a\u{202e}DESOLC\u{202c}\u{2067}b\u{2069}"),
            "a\\u{202e}DESOLC\\u{202c}\\u{2067}b\\u{2069}"
        );
        assert_eq!(visible("\u{200f}שלום مرحبا"), "\u{200f}שלום مرحبا");
    }

    #[test]
    fn routes_parse_from_paths_and_queries() {
        let segs = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Route::parse(&segs(&["run", "r1", "case", "m", "v", "2"]), None).unwrap(),
            Some(Route::Case {
                run: "r1".into(),
                model: "m".into(),
                variant: "v".into(),
                sample: 2
            })
        );
        assert_eq!(
            Route::parse(&segs(&["run", "r1", "case", "m", "v", "x"]), None).unwrap(),
            None
        );
        assert_eq!(Route::parse(&segs(&["nope"]), None).unwrap(), None);
        assert!(Route::parse(&segs(&["run", "r", "cases"]), Some("tier=bogus")).is_err());
    }

    #[test]
    fn templates_escape_hostile_text() {
        let env = environment();
        let t = env.template_from_named_str("t.html", "{{ x }}").unwrap();
        let out = t
            .render(
                minijinja::context! { x => "<script>alert(1)</script></textarea>\x1b[31m\u{202e}" },
            )
            .unwrap();
        assert!(!out.contains("<script>"), "{out}");
        assert!(!out.contains("</textarea>"), "{out}");
        assert!(out.contains("␛[31m"), "{out}");
        assert!(
            !out.contains('\u{202e}') && out.contains("\\u{202e}"),
            "{out}"
        );
    }
}
