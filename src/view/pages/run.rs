//! The run page: the report's sections for one run (charts, tables, findings, the gate), its
//! comparisons with the first flips of each, and its heat maps; computed once per run,
//! baseline and generation and kept as a [`RunSummary`].

use super::passing::{both_pass_counts, passing_variants};
use super::template::render_page;
use super::{run_of, status_counts, status_index};
use crate::analysis::{Comparison, Flip, Heatmap};
use crate::domain::Tier;
use crate::grade::CaseStatus;
use crate::report::{Format, Report, html, short_id};
use crate::store::{RunInfo, Store};
use crate::view::links::{CaseFilter, Links, Sides};
use crate::view::{Site, ViewError};
use indexmap::IndexMap;
use minijinja::Value;
use serde_json::json;

/// How many flips of each kind a run page lists per comparison (the rest are one link away,
/// on the compare page).
const FLIPS_SHOWN: usize = 25;

/// How many probes a run page's heat map shows per model.
const HEAT_ROWS: usize = 30;

/// What a run page shows, kept once computed: the rendered report sections (charts and
/// tables, from the report's HTML renderer), the counts and the first flips of each
/// comparison; the report's per-variant data is let go.
pub(in crate::view) struct RunSummary {
    run: RunInfo,
    /// Per model: its trend point's tallies (aggregate, hard tier).
    pub(super) trend: Vec<(String, crate::analysis::Tally, crate::analysis::Tally)>,
    sections: String,
    findings: Vec<String>,
    pub(super) gate: Option<serde_json::Value>,
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

pub(in crate::view) fn run_summary(
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
            let msg = crate::view::chain_text(&e);
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

pub(super) fn run_page(
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
