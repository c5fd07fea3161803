//! The HTML report: one self-contained file (no scripts, no fonts, no images, no links out),
//! with charts drawn as inline SVG and the failing outputs in expandable `<details>`.
//!
//! Charts: pass rate by tier per model with interval whiskers; the per-tier delta of each
//! comparison; aggregate and hard-tier trend lines; a probe × axis-value heat map per model.
//! Every piece of text is escaped, model output included.

use super::tables::{self, Align};
use super::{Report, delta_text, interval_text, p_value_text, short_id};
use crate::analysis::{Breakdown, Comparison, Flip, Heatmap, Tally, Trend, findings::pct};
use crate::text::html as escape;
use std::fmt::Write;

const PALETTE: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948",
];

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;margin:0;background:#f6f7f9}
main{max-width:1200px;margin:0 auto;padding:20px 24px 48px;background:#fff;min-height:100vh}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e3e6eb;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
.meta{color:#5b6474;font-size:13px;margin:2px 0}
.warn{background:#fff6db;border:1px solid #f0c14b;border-left:5px solid #e0a800;padding:10px 14px;margin:14px 0;border-radius:4px}
.warn ul{margin:4px 0 0;padding-left:20px}.warn li{margin:3px 0}
.gate{padding:10px 14px;margin:14px 0;border-radius:4px;font-weight:600}
.gate.pass{background:#e6f4ea;border:1px solid #7cc08c;color:#1e6b32}.gate.fail{background:#fdecea;border:1px solid #e3877c;color:#a3261a}
.gate ul{font-weight:400;margin:6px 0 0;padding-left:20px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #dde1e7;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f5;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.all td{font-weight:600;background:#fafbfc}
.few{color:#8a6d00;font-style:italic}
details{border:1px solid #dde1e7;border-radius:4px;margin:6px 0;padding:4px 10px;background:#fcfcfd}
summary{cursor:pointer;font-weight:600}
pre{white-space:pre-wrap;word-break:break-word;background:#f3f4f6;padding:8px;border-radius:4px;font-size:12px;max-height:320px;overflow:auto}
.charts{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
figure{margin:0;flex:0 0 auto;width:min-content}figcaption{font-size:12px;color:#5b6474;margin-top:2px}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
.scroll{overflow-x:auto}
"#;

pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body><main>\n{body}</main></body>\n</html>\n",
        escape(title)
    )
}

fn num(s: impl ToString) -> String {
    let s = s.to_string();
    if s == crate::analysis::TOO_FEW_TEXT {
        format!("<td class=\"n few\">{s}</td>")
    } else {
        format!("<td class=\"n\">{}</td>", escape(&s))
    }
}

fn td(s: &str) -> String {
    format!("<td>{}</td>", escape(s))
}

fn thead(o: &mut String, names: &[&str]) {
    o.push_str("<table><thead><tr>");
    for n in names {
        let _ = write!(o, "<th>{}</th>", escape(n));
    }
    o.push_str("</tr></thead><tbody>\n");
}

/// Writes a table model as an HTML table: left columns as escaped text, right columns as
/// numbers (tabular figures; "too few to say" in its own style), the aggregate row highlighted.
fn table(o: &mut String, m: &tables::Table) {
    let headers: Vec<&str> = m.columns.iter().map(|c| c.header.as_str()).collect();
    thead(o, &headers);
    for r in &m.rows {
        o.push_str(if r.total {
            "<tr class=\"all\">"
        } else {
            "<tr>"
        });
        for (cell, col) in r.cells.iter().zip(&m.columns) {
            let text = cell.raw();
            o.push_str(&match col.align {
                Align::Left => td(&text),
                Align::Right => num(text),
            });
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody></table>\n");
}

/// Renders the report as one HTML page.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "<h1>cliffprobe report</h1>");
    let _ = writeln!(o, "<p class=\"meta\">{}</p>", escape(&r.run_line()));
    let _ = writeln!(o, "<p class=\"meta\">{}</p>", escape(&r.counting_line()));
    if let super::BaselineKind::Run(b) = &r.baseline {
        let _ = writeln!(
            o,
            "<p class=\"meta\">Baseline: run {} (started {})</p>",
            escape(&b.id),
            escape(&b.started_at)
        );
    }
    if !r.findings.is_empty() {
        o.push_str("<div class=\"warn\"><strong>Warnings</strong><ul>");
        for f in &r.findings {
            let _ = write!(o, "<li>{}</li>", escape(&f.message));
        }
        o.push_str("</ul></div>\n");
    }
    if let Some(g) = &r.gate {
        let _ = write!(
            o,
            "<div class=\"gate {}\">Gate {} (on {}{})<ul>",
            if g.passed { "pass" } else { "fail" },
            if g.passed { "passed" } else { "FAILED" },
            g.on.as_str(),
            if r.gate_enforced {
                ""
            } else {
                "; informational: --gate not given"
            }
        );
        for c in &g.checks {
            let _ = write!(
                o,
                "<li>{} {}</li>",
                if c.passed { "✔" } else { "✘" },
                escape(&c.reason)
            );
        }
        if g.checks.is_empty() {
            let _ = write!(o, "<li>{}</li>", escape(&g.reason));
        }
        o.push_str("</ul></div>\n");
    }

    // Charts.
    o.push_str("<h2>Pass rate by tier</h2>\n<div class=\"charts\">");
    let _ = write!(
        o,
        "<figure>{}<figcaption>Bars: pass rate over variants; whiskers: 95% Wilson interval; pale bars: fewer than {} variants (too few to say).</figcaption></figure>",
        tier_chart(&r.models),
        crate::analysis::TOO_FEW
    );
    for c in &r.comparisons {
        let _ = write!(
            o,
            "<figure>{}<figcaption>Delta per tier, {} → {}; whiskers: Newcombe 95% interval; coloured only when the exact McNemar test is significant.</figcaption></figure>",
            delta_chart(c),
            escape(&c.baseline_label()),
            escape(&c.candidate_label())
        );
    }
    o.push_str("</div>\n");
    tier_table(&mut o, r);

    for c in &r.comparisons {
        comparison(&mut o, c);
    }

    if let Some(t) = &r.trend
        && t.points.len() > 1
    {
        let _ = writeln!(o, "<h2>Trend for {}</h2>", escape(&t.model));
        trend_section(&mut o, t);
    }

    class_table(&mut o, r);
    measured_table(&mut o, r);

    if !r.heatmaps.is_empty() {
        o.push_str("<h2>Probe × axis value</h2>\n<p class=\"meta\">Pass rate of each probe's variants that have the axis value (a variant counts once per axis). Grey: no such variant.</p>\n");
        for h in &r.heatmaps {
            let _ = writeln!(
                o,
                "<h3>{}</h3><div class=\"scroll\">{}</div>",
                escape(&h.model),
                heatmap(h)
            );
        }
    }

    for c in &r.comparisons {
        regressions(&mut o, c);
    }
    page(&format!("cliffprobe report · {}", r.run.id), &o)
}

pub(crate) fn tier_table(o: &mut String, r: &Report) {
    table(o, &tables::tiers(r));
}

pub(crate) fn measured_table(o: &mut String, r: &Report) {
    let Some(m) = &r.measured_tiers else {
        return;
    };
    if m.probes.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "<h2>Declared and measured tiers</h2>\n<p class=\"meta\">{}</p>",
        escape(&m.rule)
    );
    table(o, &tables::measured(m));
    let lines = super::moved_lines(m);
    if lines.is_empty() {
        o.push_str("<p>Moved since the last run: none.</p>\n");
    } else {
        o.push_str("<p>Moved since the last run:</p>\n<ul>\n");
        for l in lines {
            let _ = writeln!(o, "<li>{}</li>", escape(&l));
        }
        o.push_str("</ul>\n");
    }
}

pub(crate) fn class_table(o: &mut String, r: &Report) {
    let t = tables::classes(r);
    let _ = writeln!(o, "<h2>{}</h2>", escape(&t.title));
    table(o, &t);
}

pub(crate) fn comparison(o: &mut String, c: &Comparison) {
    let (bl, cl) = (c.baseline_label(), c.candidate_label());
    let _ = writeln!(
        o,
        "<h2>Comparison: {} (baseline) → {} ({} shared variants)</h2>",
        escape(&bl),
        escape(&cl),
        c.aggregate.paired.shared
    );
    for t in tables::comparison(c) {
        table(o, &t);
    }
}

fn flip_summary(f: &Flip) -> String {
    let v = &f.variant;
    format!(
        "{} · {} · {} · variant {}",
        v.probe_id,
        v.tier.as_str(),
        v.axes_label(),
        short_id(&v.variant_id)
    )
}

fn flip_details(o: &mut String, f: &Flip) {
    let v = &f.variant;
    let _ = write!(
        o,
        "<details><summary>{}</summary>",
        escape(&flip_summary(f))
    );
    let _ = write!(
        o,
        "<p class=\"meta\">capability class: {} · samples: {} pass, {} fail, {} error</p>",
        escape(&v.capability),
        v.samples.pass,
        v.samples.fail,
        v.samples.error
    );
    if let Some(e) = &v.evidence {
        if !e.failed_checks.is_empty() {
            o.push_str("<ul>");
            for c in &e.failed_checks {
                let _ = write!(
                    o,
                    "<li>failed <strong>{}</strong>: {}</li>",
                    escape(&c.check),
                    escape(&c.reason)
                );
            }
            o.push_str("</ul>");
        }
        if let Some(err) = &e.error {
            let _ = write!(o, "<p>error: {}</p>", escape(err));
        }
        if let Some((t, stop)) = &e.trajectory {
            let _ = write!(
                o,
                "<p>trajectory ({} model calls{}): {}</p><pre>{}</pre>",
                t.model_calls(),
                stop.map(|s| format!(", stopped: {}", s.as_str()))
                    .unwrap_or_default(),
                escape(&t.compact(2000)),
                escape(&t.transcript())
            );
        }
        let _ = write!(
            o,
            "<pre>{}{}</pre>",
            escape(&e.output),
            if e.truncated { "…" } else { "" }
        );
    }
    o.push_str("</details>\n");
}

fn regressions(o: &mut String, c: &Comparison) {
    let flips = tables::Flips::of(c);
    let hard = &flips.hard;
    let _ = writeln!(
        o,
        "<h2>Hard-tier regressions: {} passed, {} fails ({})</h2>",
        escape(&c.baseline_label()),
        escape(&c.candidate_label()),
        hard.len()
    );
    if hard.is_empty() {
        o.push_str("<p>None.</p>\n");
    }
    // One group per probe family (open when the list is short), one entry per variant.
    let open = if hard.len() <= 12 { " open" } else { "" };
    for group in flips.hard_by_probe() {
        let v0 = &group[0].variant;
        let n = group.len();
        let _ = write!(
            o,
            "<details{open}><summary>{} · {} · {} · {n} regressed</summary>",
            escape(&v0.probe_id),
            v0.tier.as_str(),
            escape(&v0.capability)
        );
        for f in group {
            flip_details(o, f);
        }
        o.push_str("</details>\n");
    }
    let _ = writeln!(
        o,
        "<h3>Flips: {} fixed, {} regressed</h3>",
        flips.fixed.len(),
        flips.regressed
    );
    for (label, list) in [
        ("Fixed", &flips.fixed),
        ("Regressed in easier tiers", &flips.easier),
    ] {
        if list.is_empty() {
            continue;
        }
        let _ = write!(
            o,
            "<details><summary>{label} ({})</summary><ul>",
            list.len()
        );
        for f in list {
            let _ = write!(o, "<li>{}</li>", escape(&flip_summary(f)));
        }
        o.push_str("</ul></details>\n");
    }
}

fn trend_section(o: &mut String, t: &Trend) {
    let _ = writeln!(
        o,
        "<figure>{}<figcaption>Aggregate and hard-tier pass rate per run, oldest first; the gap between them is the hard tail the average hides.</figcaption></figure>",
        trend_chart(t)
    );
    if let Some(w) = &t.warning {
        let _ = writeln!(o, "<div class=\"warn\">{}</div>", escape(&w.message));
    }
    table(o, &tables::trend(t));
}

/// Renders `cliffprobe trend` as one HTML page.
pub fn render_trend(t: &Trend) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "<h1>cliffprobe trend: {}</h1>", escape(&t.model));
    let _ = writeln!(
        o,
        "<p class=\"meta\">Counts are variants; the gap is aggregate minus hard-tier pass rate; a warning when it widened in each of the last {} runs.</p>",
        t.window
    );
    if t.points.is_empty() {
        o.push_str("<p>No runs of this model in the store.</p>");
    } else {
        trend_section(&mut o, t);
    }
    page(&format!("cliffprobe trend · {}", t.model), &o)
}

// ---- charts ----

fn f1(x: f64) -> String {
    format!("{x:.1}")
}

/// Grouped bars: one group per tier (+ all), one bar per model, with interval whiskers.
pub(crate) fn tier_chart(models: &[Breakdown]) -> String {
    let mut groups: Vec<String> = crate::domain::Tier::ALL
        .iter()
        .filter(|t| models.iter().any(|b| b.tier(**t).total() > 0))
        .map(|t| t.as_str().to_string())
        .collect();
    groups.push("all".into());
    let tally = |b: &Breakdown, g: &str| -> Tally {
        if g == "all" {
            b.aggregate
        } else {
            crate::domain::Tier::parse(g)
                .map(|t| b.tier(t))
                .unwrap_or_default()
        }
    };
    let (left, top, plot_h) = (44.0, 28.0, 220.0);
    let bar_w = if models.len() <= 2 { 34.0 } else { 24.0 };
    let group_w = (models.len().max(1) as f64) * (bar_w + 4.0) + 26.0;
    let width = left + group_w * groups.len() as f64 + 10.0;
    let height = top + plot_h + 40.0;
    let mut s = format!(
        "<svg width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"pass rate by tier\">",
        f1(width),
        f1(height),
        f1(width),
        f1(height)
    );
    let y = |rate: f64| top + plot_h * (1.0 - rate);
    for k in 0..=4 {
        let r = k as f64 / 4.0;
        let _ = write!(
            s,
            "<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#e3e6eb\"/><text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\" fill=\"#5b6474\">{}%</text>",
            f1(left),
            f1(width - 6.0),
            f1(y(r)),
            f1(y(r)),
            f1(left - 4.0),
            f1(y(r) + 3.0),
            k * 25
        );
    }
    // Legend.
    let mut lx = left;
    for (i, b) in models.iter().enumerate() {
        let _ = write!(
            s,
            "<rect x=\"{}\" y=\"6\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"15\" font-size=\"11\">{}</text>",
            f1(lx),
            PALETTE[i % PALETTE.len()],
            f1(lx + 14.0),
            escape(&truncate(&b.model, 24))
        );
        lx += 24.0 + 7.0 * truncate(&b.model, 24).chars().count() as f64;
    }
    for (gi, g) in groups.iter().enumerate() {
        let gx = left + 14.0 + group_w * gi as f64;
        for (mi, b) in models.iter().enumerate() {
            let t = tally(b, g);
            let x = gx + (bar_w + 4.0) * mi as f64;
            let color = PALETTE[mi % PALETTE.len()];
            let Some(rate) = t.rate() else {
                let _ = write!(
                    s,
                    "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#8a8f99\">–</text>",
                    f1(x + bar_w / 2.0),
                    f1(y(0.0) - 3.0)
                );
                continue;
            };
            let opacity = if t.too_few() { "0.35" } else { "1" };
            let _ = write!(
                s,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{color}\" fill-opacity=\"{opacity}\"><title>{}: {} {} (n={}) {}</title></rect>",
                f1(x),
                f1(y(rate)),
                f1(bar_w),
                f1(plot_h * rate),
                escape(&b.model),
                escape(g),
                pct(rate),
                t.n(),
                escape(&interval_text(&t))
            );
            if let Some(i) = t.interval() {
                let cx = x + bar_w / 2.0;
                let _ = write!(
                    s,
                    "<path d=\"M{cx1} {lo} V{hi} M{a} {lo} H{b} M{a} {hi} H{b}\" stroke=\"#1d2330\" stroke-width=\"1.2\" fill=\"none\"/>",
                    cx1 = f1(cx),
                    lo = f1(y(i.lo)),
                    hi = f1(y(i.hi)),
                    a = f1(cx - 4.0),
                    b = f1(cx + 4.0)
                );
            }
            let _ = write!(
                s,
                "<text x=\"{}\" y=\"{}\" font-size=\"9\" text-anchor=\"middle\" fill=\"#1d2330\">{}</text>",
                f1(x + bar_w / 2.0),
                f1((y(t.interval().map(|i| i.hi).unwrap_or(rate)) - 3.0).max(top - 2.0)),
                if t.too_few() {
                    format!("n={}", t.n())
                } else {
                    format!("{:.0}", 100.0 * rate)
                }
            );
        }
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\" font-weight=\"{}\">{}</text>",
            f1(gx + (bar_w + 4.0) * models.len() as f64 / 2.0 - 2.0),
            f1(top + plot_h + 18.0),
            if g == "all" { "700" } else { "400" },
            escape(g)
        );
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars: the delta per tier (+ all) with its interval.
pub(crate) fn delta_chart(c: &Comparison) -> String {
    let rows: Vec<_> = c
        .tiers
        .iter()
        .chain(std::iter::once(&c.aggregate))
        .collect();
    let mut span: f64 = 0.05;
    for r in &rows {
        if let Some(d) = r.delta {
            span = span.max(d.abs());
        }
        if let Some(i) = r.interval {
            span = span.max(i.lo.abs()).max(i.hi.abs());
        }
    }
    // A round span, so the ticks (every half span) fall on round numbers of points.
    let span = if span <= 0.05 {
        0.05
    } else {
        ((span * 10.0).ceil() / 10.0).min(1.0)
    };
    let (left, plot_w, row_h, top) = (70.0, 300.0, 30.0, 26.0);
    let width = left + plot_w + 140.0;
    let height = top + row_h * rows.len() as f64 + 24.0;
    let x = |d: f64| left + plot_w * (d + span) / (2.0 * span);
    let mut s = format!(
        "<svg width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"delta per tier\">",
        f1(width),
        f1(height),
        f1(width),
        f1(height)
    );
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"14\" font-size=\"11\" text-anchor=\"middle\" fill=\"#5b6474\">{} − {} (points)</text>",
        f1(left + plot_w / 2.0),
        escape(&truncate(&c.candidate_label(), 30)),
        escape(&truncate(&c.baseline_label(), 30))
    );
    for k in [-1.0, -0.5, 0.0, 0.5, 1.0] {
        let d = span * k;
        let _ = write!(
            s,
            "<line x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\" stroke=\"{3}\"/><text x=\"{0}\" y=\"{4}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#5b6474\">{5}</text>",
            f1(x(d)),
            f1(top - 4.0),
            f1(top + row_h * rows.len() as f64),
            if k == 0.0 { "#5b6474" } else { "#e3e6eb" },
            f1(top + row_h * rows.len() as f64 + 14.0),
            if (100.0 * d).fract().abs() < 1e-9 {
                format!("{:+.0}", 100.0 * d)
            } else {
                format!("{:+.1}", 100.0 * d)
            }
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let cy = top + row_h * i as f64 + row_h / 2.0;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\" font-weight=\"{}\">{}</text>",
            f1(left - 8.0),
            f1(cy + 4.0),
            if r.label == "all" { "700" } else { "400" },
            escape(&r.label)
        );
        let Some(d) = r.delta else {
            continue;
        };
        let color = match (r.paired.significant(), d >= 0.0) {
            (true, true) => "#59a14f",
            (true, false) => "#e15759",
            (false, _) => "#a0a7b4",
        };
        let (x0, x1) = (x(0.0).min(x(d)), x(0.0).max(x(d)));
        let _ = write!(
            s,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"14\" fill=\"{color}\"/>",
            f1(x0),
            f1(cy - 7.0),
            f1((x1 - x0).max(1.0))
        );
        if let Some(iv) = r.interval {
            let _ = write!(
                s,
                "<path d=\"M{a} {y} H{b} M{a} {y0} V{y1} M{b} {y0} V{y1}\" stroke=\"#1d2330\" stroke-width=\"1.2\" fill=\"none\"/>",
                a = f1(x(iv.lo.max(-span))),
                b = f1(x(iv.hi.min(span))),
                y = f1(cy),
                y0 = f1(cy - 5.0),
                y1 = f1(cy + 5.0)
            );
        }
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#1d2330\">{} · p {}</text>",
            f1(left + plot_w + 8.0),
            f1(cy + 4.0),
            escape(&delta_text(r)),
            escape(&p_value_text(&r.paired))
        );
    }
    s.push_str("</svg>");
    s
}

/// Reads one rate off a trend point.
type RateOf = fn(&crate::analysis::TrendPoint) -> Option<f64>;

/// Two lines over the runs: aggregate and hard-tier pass rate.
pub(crate) fn trend_chart(t: &Trend) -> String {
    let (left, top, plot_w, plot_h) = (44.0, 26.0, 560.0, 180.0);
    let width = left + plot_w + 30.0;
    let height = top + plot_h + 46.0;
    let n = t.points.len();
    let x = |i: usize| {
        if n <= 1 {
            left + plot_w / 2.0
        } else {
            left + plot_w * i as f64 / (n - 1) as f64
        }
    };
    let y = |r: f64| top + plot_h * (1.0 - r);
    let mut s = format!(
        "<svg width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"trend\">",
        f1(width),
        f1(height),
        f1(width),
        f1(height)
    );
    for k in 0..=4 {
        let r = k as f64 / 4.0;
        let _ = write!(
            s,
            "<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#e3e6eb\"/><text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\" fill=\"#5b6474\">{}%</text>",
            f1(left),
            f1(left + plot_w),
            f1(y(r)),
            f1(y(r)),
            f1(left - 4.0),
            f1(y(r) + 3.0),
            k * 25
        );
    }
    let series: [(&str, &str, RateOf); 2] = [
        ("aggregate", PALETTE[0], |p| p.aggregate.rate()),
        ("hard tier", PALETTE[1], |p| p.hard.rate()),
    ];
    for (si, (name, color, get)) in series.iter().enumerate() {
        let pts: Vec<(f64, f64)> = t
            .points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| get(p).map(|r| (x(i), y(r))))
            .collect();
        if pts.len() > 1 {
            let d: Vec<String> = pts
                .iter()
                .map(|(a, b)| format!("{},{}", f1(*a), f1(*b)))
                .collect();
            let _ = write!(
                s,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
                d.join(" ")
            );
        }
        for (i, p) in t.points.iter().enumerate() {
            if let Some(r) = get(p) {
                let _ = write!(
                    s,
                    "<circle cx=\"{}\" cy=\"{}\" r=\"3.5\" fill=\"{color}\"><title>{} {}: {}</title></circle>",
                    f1(x(i)),
                    f1(y(r)),
                    escape(&p.run_id),
                    name,
                    pct(r)
                );
            }
        }
        let lx = left + 130.0 * si as f64;
        let _ = write!(
            s,
            "<rect x=\"{}\" y=\"6\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"15\" font-size=\"11\">{name}</text>",
            f1(lx),
            f1(lx + 14.0)
        );
    }
    let step = n.div_ceil(8).max(1);
    for (i, p) in t.points.iter().enumerate() {
        if i % step != 0 && i + 1 != n {
            continue;
        }
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#5b6474\">{}</text>",
            f1(x(i)),
            f1(top + plot_h + 16.0),
            escape(&truncate(&p.started_at, 10))
        );
    }
    s.push_str("</svg>");
    s
}

/// Red (0 %) through amber (50 %) to green (100 %).
pub(crate) fn heat_color(rate: f64) -> String {
    let lerp = |a: f64, b: f64, t: f64| a + (b - a) * t;
    let (r, g, b) = if rate < 0.5 {
        let t = rate / 0.5;
        (
            lerp(215.0, 245.0, t),
            lerp(72.0, 196.0, t),
            lerp(65.0, 80.0, t),
        )
    } else {
        let t = (rate - 0.5) / 0.5;
        (
            lerp(245.0, 76.0, t),
            lerp(196.0, 163.0, t),
            lerp(80.0, 92.0, t),
        )
    };
    format!("#{:02x}{:02x}{:02x}", r as u8, g as u8, b as u8)
}

pub(crate) fn heatmap(h: &Heatmap) -> String {
    if h.columns.is_empty() {
        return "<p class=\"meta\">No axes varied in this run.</p>".into();
    }
    let label_w = 215.0;
    let (cw, ch) = (20.0, 20.0);
    let header = 104.0;
    let width = label_w + cw * h.columns.len() as f64 + 10.0;
    let height = header + ch * h.rows.len() as f64 + 6.0;
    let mut s = format!(
        "<svg width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"heat map\">",
        f1(width),
        f1(height),
        f1(width),
        f1(height)
    );
    // Axis group labels and value labels.
    let mut prev_axis = "";
    for (i, (axis, value)) in h.columns.iter().enumerate() {
        let cx = label_w + cw * i as f64 + cw / 2.0;
        if axis != prev_axis {
            let _ = write!(
                s,
                "<line x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#1d2330\" stroke-width=\"1\"/><text x=\"{3}\" y=\"12\" font-size=\"11\" font-weight=\"700\">{4}</text>",
                f1(label_w + cw * i as f64),
                f1(4.0),
                f1(height - 4.0),
                f1(label_w + cw * i as f64 + 3.0),
                escape(axis)
            );
            prev_axis = axis;
        }
        let _ = write!(
            s,
            "<text transform=\"translate({},{}) rotate(-55)\" font-size=\"10\" fill=\"#1d2330\">{}</text>",
            f1(cx + 3.0),
            f1(header - 4.0),
            escape(&truncate(value, 16))
        );
    }
    for (ri, row) in h.rows.iter().enumerate() {
        let y = header + ch * ri as f64;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{} <tspan fill=\"#5b6474\">({})</tspan></text>",
            f1(label_w - 6.0),
            f1(y + ch / 2.0 + 4.0),
            escape(&truncate(&row.probe, 22)),
            row.tier.as_str()
        );
        for (ci, cell) in row.cells.iter().enumerate() {
            let x = label_w + cw * ci as f64;
            match cell.as_ref().and_then(|t| t.rate().map(|r| (t, r))) {
                Some((t, r)) => {
                    let _ = write!(
                        s,
                        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"#fff\"><title>{} · {}={}: {} of {} pass</title></rect><text x=\"{}\" y=\"{}\" font-size=\"8\" text-anchor=\"middle\" fill=\"#1d2330\">{:.0}</text>",
                        f1(x),
                        f1(y),
                        f1(cw),
                        f1(ch),
                        heat_color(r),
                        escape(&row.probe),
                        escape(&h.columns[ci].0),
                        escape(&h.columns[ci].1),
                        t.passed,
                        t.n(),
                        f1(x + cw / 2.0),
                        f1(y + ch / 2.0 + 3.0),
                        100.0 * r
                    );
                }
                None => {
                    let _ = write!(
                        s,
                        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#eceef1\" stroke=\"#fff\"/>",
                        f1(x),
                        f1(y),
                        f1(cw),
                        f1(ch)
                    );
                }
            }
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::tables::{Cell, Column, Row, Table};

    #[test]
    fn html_tables_escape_text_mark_too_few_and_highlight_the_aggregate_row() {
        let t = Table {
            title: String::new(),
            columns: vec![Column::left("m<"), Column::right("rate")],
            rows: vec![
                Row {
                    cells: vec![Cell::text("<b>"), Cell::num(crate::analysis::TOO_FEW_TEXT)],
                    total: false,
                },
                Row {
                    cells: vec![Cell::text("all"), Cell::num("50.0%")],
                    total: true,
                },
            ],
        };
        let mut o = String::new();
        super::table(&mut o, &t);
        assert_eq!(
            o,
            format!(
                "<table><thead><tr><th>m&lt;</th><th>rate</th></tr></thead><tbody>\n<tr><td>&lt;b&gt;</td><td class=\"n few\">{}</td></tr>\n<tr class=\"all\"><td>all</td><td class=\"n\">50.0%</td></tr>\n</tbody></table>\n",
                crate::analysis::TOO_FEW_TEXT
            )
        );
    }
}
