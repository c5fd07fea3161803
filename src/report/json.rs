//! The JSON report: a documented, versioned schema for scripts.
//!
//! `schema_version` is 2. Fields are only ever added within a version; a rename, a removal or a
//! change of meaning bumps it. Version 2 changed one field: a comparison's `hard_regressions`
//! lists variant ids, each the `variant_id` of an entry of its `regressed`, instead of
//! repeating those entries (on a big run they were a quarter of the document); the trend
//! document did not change.
//!
//! Rates, intervals and p-values are fractions in 0..=1 rounded to 6 decimals; `null` means
//! "nothing to show" (no graded variant, or too few to say — see `counting.too_few_below`).
//!
//! ```text
//! { schema_version, kind: "report",
//!   run: {id, started_at, finished_at, status, models, strategy, seed, repeats},
//!   baseline: {kind: "none"|"model"|"run", model?, run?},
//!   counting: {unit: "variant", rule, interval: "wilson", confidence, too_few_below},
//!   warnings: [{code, message}],
//!   models: [{model, run_id, cases, aggregate: GROUP,
//!             tiers: [GROUP + {tier, failure_share}],
//!             classes: [GROUP + {class, failure_share, probes, failing_probes: [{probe, failing}]}]}],
//!   comparisons: [{baseline: {model, run_id}, candidate: {model, run_id},
//!                  aggregate: DELTA, tiers: [DELTA], classes: [DELTA],
//!                  hard_regressions: [variant_id], fixed: [FLIP], regressed: [FLIP]}],
//!   heatmaps: [{model, columns: [{axis, value}], rows: [{probe, tier, cells: [GROUP|null]}]}],
//!   trend: TREND|null,
//!   gate: {enforced, on: "rate"|"lower", floors: [{tier, min, source}], models, passed, reason,
//!          checks: [{model, subject, limit, value, n, passed, reason}]}|null,
//!   measured_tiers: {thresholds: {easy, medium}, rule, variants: COUNTS,
//!          probes: [{probe, capability, declared, measured|null, pass_fraction|null, passed,
//!                    graded, errors, variants: COUNTS,
//!                    previous: {run, measured, pass_fraction, variants_compared,
//!                               variants_moved, variants_easier, variants_harder}|null}],
//!          moved: [{probe, from, to, direction: "easier"|"harder",
//!                   what: "solved"|"now failing"|"unsolved"|"easier"|"harder", since_run,
//!                   variants_compared, variants_moved}],
//!          variants_compared, variants_moved}|null }
//! COUNTS = {easy, medium, hard, frontier, unmeasured} (variants per measured tier; unmeasured:
//!          only errors)
//! GROUP = {variants, passed, failed, errors, ungraded, rate, interval: {lo, hi}|null, too_few}
//! DELTA = {label, baseline: GROUP, candidate: GROUP, delta, interval, shared, fixed, regressed,
//!          p_value, significant}
//! FLIP  = {variant_id, probe, tier, capability, canonical, axes, baseline, candidate,
//!          evidence: {sample, failed_checks: [{check, reason}], output, truncated, error,
//!          trajectory?, stop_reason?}|null}   (trajectory and stop_reason: episodes only)
//! TREND = {kind: "trend" (top level only), model, window, warning, points: [{run_id, started_at,
//!          aggregate: GROUP, hard: GROUP, gap}]}
//! ```
//!
//! `variants` in a GROUP is the graded count `n` (passed + failed); errors and ungraded are
//! outside it.

use super::{BaselineKind, Report};
use crate::analysis::{
    Breakdown, Comparison, DeltaRow, Flip, Heatmap, Interval, TOO_FEW, Tally, Trend,
};
use crate::store::RunInfo;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Value, json};
use std::io::Write;

/// The schema version of both the report and the trend documents.
pub const SCHEMA_VERSION: u32 = 2;

fn round(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn opt(x: Option<f64>) -> Value {
    x.map(|v| json!(round(v))).unwrap_or(Value::Null)
}

fn interval(i: Option<Interval>) -> Value {
    i.map(|i| json!({"lo": round(i.lo), "hi": round(i.hi)}))
        .unwrap_or(Value::Null)
}

fn group(t: &Tally) -> Value {
    json!({
        "variants": t.n(),
        "passed": t.passed,
        "failed": t.failed,
        "errors": t.errors,
        "ungraded": t.ungraded,
        "rate": opt(t.rate()),
        "interval": interval(t.interval()),
        "too_few": t.too_few(),
    })
}

fn extend(mut v: Value, extra: Value) -> Value {
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

fn run(r: &RunInfo) -> Value {
    json!({
        "id": r.id,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "status": r.status.as_str(),
        "models": r.models,
        "strategy": r.strategy,
        "seed": r.seed,
        "repeats": r.repeats,
    })
}

fn model(b: &Breakdown) -> Value {
    json!({
        "model": b.model,
        "run_id": b.run_id,
        "cases": b.cases,
        "aggregate": group(&b.aggregate),
        "tiers": b.tiers.iter().map(|(t, x)| extend(json!({"tier": t.as_str()}), extend(group(x), json!({"failure_share": opt(b.failure_share(*t))})))).collect::<Vec<_>>(),
        "classes": b.classes.iter().map(|c| extend(json!({"class": c.class}), extend(group(&c.tally), json!({
            "failure_share": opt(b.class_failure_share(c)),
            "probes": c.probes,
            "failing_probes": c.failing_probes.iter().map(|(p, n)| json!({"probe": p, "failing": n})).collect::<Vec<_>>(),
        })))).collect::<Vec<_>>(),
    })
}

fn delta(d: &DeltaRow) -> Value {
    json!({
        "label": d.label,
        "baseline": group(&d.baseline),
        "candidate": group(&d.candidate),
        "delta": opt(d.delta),
        "interval": interval(d.interval),
        "shared": d.paired.shared,
        "fixed": d.paired.fixed,
        "regressed": d.paired.regressed,
        "p_value": opt(d.paired.p_value),
        "significant": d.paired.significant(),
    })
}

/// One flip as JSON. Written field by field (no `Value` tree): a big run lists 10⁵ of them.
fn flip(f: &Flip) -> FlipDoc<'_> {
    let v = &f.variant;
    FlipDoc {
        variant_id: &v.variant_id,
        probe: &v.probe_id,
        tier: v.tier.as_str(),
        capability: &v.capability,
        canonical: v.canonical,
        axes: &v.axes,
        baseline: f.baseline.as_str(),
        candidate: v.verdict.as_str(),
        evidence: v.evidence.as_deref().map(|e| EvidenceDoc {
            sample: e.sample,
            failed_checks: e
                .failed_checks
                .iter()
                .map(|c| CheckDoc {
                    check: &c.check,
                    reason: &c.reason,
                })
                .collect(),
            output: &e.output,
            truncated: e.truncated,
            error: e.error.as_deref(),
            trajectory: e.trajectory.as_ref().map(|(t, _)| t),
            stop_reason: e
                .trajectory
                .as_ref()
                .and_then(|(_, s)| s.map(|s| s.as_str())),
        }),
    }
}

#[derive(Serialize)]
struct FlipDoc<'a> {
    variant_id: &'a str,
    probe: &'a str,
    tier: &'static str,
    capability: &'a str,
    canonical: bool,
    axes: &'a crate::store::SharedAxes,
    baseline: &'static str,
    candidate: &'static str,
    evidence: Option<EvidenceDoc<'a>>,
}

#[derive(Serialize)]
struct EvidenceDoc<'a> {
    sample: u32,
    failed_checks: Vec<CheckDoc<'a>>,
    output: &'a str,
    truncated: bool,
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trajectory: Option<&'a crate::trajectory::Trajectory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_reason: Option<&'a str>,
}

#[derive(Serialize)]
struct CheckDoc<'a> {
    check: &'a str,
    reason: &'a str,
}

/// A comparison, serialised as it is written: its flip lists (hundreds of thousands of entries
/// on a big run) are turned into JSON one flip at a time, never as one tree.
struct ComparisonDoc<'a>(&'a Comparison);

impl Serialize for ComparisonDoc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut m = s.serialize_map(Some(8))?;
        m.serialize_entry(
            "baseline",
            &json!({"model": c.baseline.model, "run_id": c.baseline.run_id}),
        )?;
        m.serialize_entry(
            "candidate",
            &json!({"model": c.candidate.model, "run_id": c.candidate.run_id}),
        )?;
        m.serialize_entry("aggregate", &delta(&c.aggregate))?;
        m.serialize_entry("tiers", &c.tiers.iter().map(delta).collect::<Vec<_>>())?;
        m.serialize_entry("classes", &c.classes.iter().map(delta).collect::<Vec<_>>())?;
        m.serialize_entry("hard_regressions", &HardRegressions(c))?;
        m.serialize_entry("fixed", &Flips(|| c.fixed.iter()))?;
        m.serialize_entry("regressed", &Flips(|| c.regressed.iter()))?;
        m.end()
    }
}

/// The ids of a comparison's hard-tier regressions (their entries are in `regressed`).
struct HardRegressions<'a>(&'a Comparison);

impl Serialize for HardRegressions<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0
                .hard_regressions()
                .map(|f| f.variant.variant_id.as_str()),
        )
    }
}

/// A list of flips, each built as JSON only while it is written.
struct Flips<F>(F);

impl<'a, F, I> Serialize for Flips<F>
where
    F: Fn() -> I,
    I: Iterator<Item = &'a Flip>,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq((self.0)().map(flip))
    }
}

/// The whole report document, written entry by entry in the schema's order; each entry but the
/// comparisons is a small tree.
struct ReportDoc<'a>(&'a Report);

impl Serialize for ReportDoc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let baseline = match &r.baseline {
            BaselineKind::None => json!({"kind": "none"}),
            BaselineKind::Model(m) => json!({"kind": "model", "model": m}),
            BaselineKind::Run(b) => json!({"kind": "run", "run": run(b)}),
        };
        let mut m = s.serialize_map(Some(13))?;
        m.serialize_entry("schema_version", &SCHEMA_VERSION)?;
        m.serialize_entry("kind", "report")?;
        m.serialize_entry("run", &run(&r.run))?;
        m.serialize_entry("baseline", &baseline)?;
        m.serialize_entry(
            "counting",
            &json!({
                "unit": "variant",
                "rule": "a variant passes when a strict majority of its graded samples pass (a tie fails); error and ungraded variants are outside every rate",
                "interval": "wilson",
                "confidence": 0.95,
                "too_few_below": TOO_FEW,
            }),
        )?;
        m.serialize_entry(
            "warnings",
            &r.findings
                .iter()
                .map(|f| json!({"code": f.code, "message": f.message}))
                .collect::<Vec<_>>(),
        )?;
        m.serialize_entry("models", &r.models.iter().map(model).collect::<Vec<_>>())?;
        m.serialize_entry(
            "comparisons",
            &r.comparisons.iter().map(ComparisonDoc).collect::<Vec<_>>(),
        )?;
        m.serialize_entry(
            "heatmaps",
            &r.heatmaps.iter().map(HeatmapDoc).collect::<Vec<_>>(),
        )?;
        m.serialize_entry("trend", &r.trend.as_ref().map(trend))?;
        m.serialize_entry("gate", &gate(r))?;
        m.serialize_entry("measured_tiers", &r.measured_tiers.as_ref().map(measured))?;
        m.end()
    }
}

fn gate(r: &Report) -> Option<Value> {
    r.gate.as_ref().map(|g| {
        json!({
            "enforced": r.gate_enforced,
            "on": g.on.as_str(),
            "floors": r.floors.iter().map(|f| json!({"tier": f.tier.as_str(), "min": round(f.min), "source": f.source})).collect::<Vec<_>>(),
            "models": r.gated_models,
            "passed": g.passed,
            "reason": g.reason,
            "checks": g.checks.iter().map(|c| json!({
                "model": c.model,
                "subject": c.subject,
                "limit": round(c.limit),
                "value": opt(c.value),
                "n": c.n,
                "passed": c.passed,
                "reason": c.reason,
            })).collect::<Vec<_>>(),
        })
    })
}

/// A heat map, serialised as it is written: one row's cells at a time (a big suite has
/// hundreds of probes × dozens of axis values per model).
struct HeatmapDoc<'a>(&'a Heatmap);

impl Serialize for HeatmapDoc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let h = self.0;
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("model", &h.model)?;
        m.serialize_entry(
            "columns",
            &h.columns
                .iter()
                .map(|(a, v)| json!({"axis": a, "value": v}))
                .collect::<Vec<_>>(),
        )?;
        m.serialize_entry("rows", &Rows(h))?;
        m.end()
    }
}

/// The rows of a heat map, each built as JSON only while it is written.
struct Rows<'a>(&'a Heatmap);

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.rows.iter().map(|r| {
            json!({
                "probe": r.probe,
                "tier": r.tier.as_str(),
                "cells": r.cells.iter().map(|c| c.as_ref().map(group).unwrap_or(Value::Null)).collect::<Vec<_>>(),
            })
        }))
    }
}

fn trend(t: &Trend) -> Value {
    json!({
        "model": t.model,
        "window": t.window,
        "warning": t.warning.as_ref().map(|w| json!({"code": w.code, "message": w.message})),
        "points": t.points.iter().map(|p| json!({
            "run_id": p.run_id,
            "started_at": p.started_at,
            "aggregate": group(&p.aggregate),
            "hard": group(&p.hard),
            "gap": opt(p.gap),
        })).collect::<Vec<_>>(),
    })
}

fn tier_counts(c: &crate::analysis::tiers::TierCounts) -> Value {
    json!({"easy": c.easy, "medium": c.medium, "hard": c.hard, "frontier": c.frontier, "unmeasured": c.unmeasured})
}

fn measured(m: &crate::analysis::tiers::MeasuredTiers) -> Value {
    let tier = |t: Option<crate::domain::Tier>| t.map(|t| t.as_str());
    json!({
        "thresholds": {"easy": round(m.thresholds.easy), "medium": round(m.thresholds.medium)},
        "rule": m.rule,
        "variants": tier_counts(&m.variants),
        "probes": m.probes.iter().map(|p| json!({
            "probe": p.probe,
            "capability": p.capability,
            "declared": tier(p.declared),
            "measured": tier(p.measured),
            "pass_fraction": opt(p.pass_fraction),
            "passed": p.passed,
            "graded": p.graded,
            "errors": p.errors,
            "variants": tier_counts(&p.variants),
            "previous": p.previous.as_ref().map(|q| json!({
                "run": q.run,
                "measured": q.measured.as_str(),
                "pass_fraction": round(q.pass_fraction),
                "variants_compared": q.variants_compared,
                "variants_moved": q.variants_moved,
                "variants_easier": q.variants_easier,
                "variants_harder": q.variants_harder,
            })),
        })).collect::<Vec<_>>(),
        "moved": m.moved.iter().map(|mv| json!({
            "probe": mv.probe,
            "from": mv.from.as_str(),
            "to": mv.to.as_str(),
            "direction": mv.direction,
            "what": mv.what,
            "since_run": mv.since_run,
            "variants_compared": mv.variants_compared,
            "variants_moved": mv.variants_moved,
        })).collect::<Vec<_>>(),
        "variants_compared": m.variants_compared,
        "variants_moved": m.variants_moved,
    })
}

/// Renders the report as pretty JSON (with a final newline).
pub fn render(r: &Report) -> String {
    let mut out = Vec::new();
    // Writing into memory cannot fail, and every value here serialises.
    let _ = render_to(&mut out, r);
    String::from_utf8(out).unwrap_or_else(|_| "{}\n".into())
}

/// Writes the report as pretty JSON (with a final newline) to `w`, streaming: the same bytes as
/// [`render`], without holding the document (which lists every flip) in memory.
pub fn render_to(w: &mut impl Write, r: &Report) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, &ReportDoc(r))?;
    w.write_all(b"\n")
}

/// Renders `cliffprobe trend` as JSON.
pub fn render_trend(t: &Trend) -> String {
    let mut doc = json!({"schema_version": SCHEMA_VERSION, "kind": "trend"});
    if let (Some(o), Value::Object(e)) = (doc.as_object_mut(), trend(t)) {
        o.extend(e);
    }
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}
