//! The text report: aligned tables, warnings first, colour only when asked (on a terminal).

use super::{
    Report, delta_interval_text, delta_text, interval_text, p_value_text, rate_text, share_text,
    short_id,
};
use crate::analysis::{Comparison, Flip, Trend, findings::pct};
use crate::term::sanitize;
use comfy_table::{Cell, CellAlignment, Color, Table, presets::UTF8_FULL_CONDENSED};
use std::fmt::Write;

/// How many flips per direction the text lists (JSON and HTML list them all).
const FLIP_LIST_MAX: usize = 20;

struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\u{1b}[{code}m{s}\u{1b}[0m")
        } else {
            s.to_string()
        }
    }
    fn heading(&self, s: &str) -> String {
        self.paint("1", s)
    }
    fn warn(&self, s: &str) -> String {
        self.paint("1;33", s)
    }
    fn bad(&self, s: &str) -> String {
        self.paint("1;31", s)
    }
    fn good(&self, s: &str) -> String {
        self.paint("1;32", s)
    }
    fn table(&self, headers: &[&str]) -> Table {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        if self.color {
            t.enforce_styling();
        } else {
            t.force_no_tty();
        }
        t.set_header(headers.iter().map(Cell::new).collect::<Vec<_>>());
        t
    }
    fn signed(&self, text: String, value: Option<f64>, significant: bool) -> Cell {
        let c = Cell::new(text).set_alignment(CellAlignment::Right);
        match value {
            Some(v) if self.color && significant && v < 0.0 => c.fg(Color::Red),
            Some(v) if self.color && significant && v > 0.0 => c.fg(Color::Green),
            _ => c,
        }
    }
}

fn right(s: impl ToString) -> Cell {
    Cell::new(s.to_string()).set_alignment(CellAlignment::Right)
}

/// One line of model text, safe for a terminal.
fn clean(s: &str, max: usize) -> String {
    crate::grade::excerpt(&sanitize(s), max)
}

/// Renders the report as text; `color` adds ANSI colours (only for a terminal).
pub fn render(r: &Report, color: bool) -> String {
    let st = Style { color };
    let mut o = String::new();
    let _ = writeln!(o, "{}", st.heading("cliffprobe report"));
    let _ = writeln!(o, "{}", sanitize(&r.run_line()));
    let _ = writeln!(o, "{}", r.counting_line());
    if let super::BaselineKind::Run(b) = &r.baseline {
        let _ = writeln!(
            o,
            "baseline: run {} (started {})",
            sanitize(&b.id),
            sanitize(&b.started_at)
        );
    }
    let _ = writeln!(o);

    if !r.findings.is_empty() {
        let _ = writeln!(o, "{}", st.warn("WARNINGS"));
        for f in &r.findings {
            let _ = writeln!(o, "  {} {}", st.warn("!"), sanitize(&f.message));
        }
        let _ = writeln!(o);
    }
    if let Some(g) = &r.gate {
        let head = if g.passed {
            st.good("GATE PASSED")
        } else {
            st.bad("GATE FAILED")
        };
        let _ = writeln!(
            o,
            "{head}{}",
            if r.gate_enforced {
                ""
            } else {
                " (informational: --gate not given)"
            }
        );
        let _ = writeln!(o);
    }

    // Tiers.
    let _ = writeln!(o, "{}", st.heading("Pass rate by tier (variants)"));
    let mut t = st.table(&[
        "model",
        "tier",
        "n",
        "passed",
        "pass rate",
        "95% interval",
        "errors",
        "share of failures",
    ]);
    for b in &r.models {
        for (tier, x) in &b.tiers {
            t.add_row(vec![
                Cell::new(sanitize(&b.model)),
                Cell::new(tier.as_str()),
                right(x.n()),
                right(x.passed),
                right(rate_text(x)),
                right(interval_text(x)),
                right(x.errors + x.ungraded),
                right(share_text(b.failure_share(*tier))),
            ]);
        }
        let a = &b.aggregate;
        t.add_row(vec![
            Cell::new(sanitize(&b.model)),
            Cell::new("all"),
            right(a.n()),
            right(a.passed),
            right(rate_text(a)),
            right(interval_text(a)),
            right(a.errors + a.ungraded),
            right(format!("{} failing", a.failed)),
        ]);
    }
    let _ = writeln!(o, "{t}");
    let ungraded: u64 = r.models.iter().map(|b| b.aggregate.ungraded).sum();
    if ungraded > 0 {
        let _ = writeln!(
            o,
            "(errors column includes {ungraded} ungraded variants: a check could not be graded, e.g. an invariant variant without a canonical answer)"
        );
    }
    let _ = writeln!(o);

    for c in &r.comparisons {
        comparison(&mut o, &st, c);
    }

    // Classes.
    let _ = writeln!(
        o,
        "{}",
        st.heading("By capability class: where failures concentrate")
    );
    let mut t = st.table(&[
        "model",
        "capability class",
        "n",
        "pass rate",
        "95% interval",
        "failing",
        "share of failures",
        "failing probe families",
    ]);
    for b in &r.models {
        for c in &b.classes {
            let probes = if c.failing_probes.is_empty() {
                "–".to_string()
            } else {
                c.failing_probes
                    .iter()
                    .map(|(p, n)| format!("{} ({n})", sanitize(p)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            t.add_row(vec![
                Cell::new(sanitize(&b.model)),
                Cell::new(clean(&c.class, 50)),
                right(c.tally.n()),
                right(rate_text(&c.tally)),
                right(interval_text(&c.tally)),
                right(c.tally.failed),
                right(share_text(b.class_failure_share(c))),
                Cell::new(probes),
            ]);
        }
    }
    let _ = writeln!(o, "{t}");
    let _ = writeln!(o);

    if let Some(m) = &r.measured_tiers {
        measured(&mut o, &st, m);
    }

    for c in &r.comparisons {
        regressions(&mut o, &st, c);
    }

    if let Some(tr) = &r.trend
        && tr.points.len() > 1
    {
        trend_body(&mut o, &st, tr);
    }

    gate(&mut o, &st, r);
    o
}

fn measured(o: &mut String, st: &Style, m: &crate::analysis::tiers::MeasuredTiers) {
    if m.probes.is_empty() {
        return;
    }
    let _ = writeln!(o, "{}", st.heading("Declared and measured tiers"));
    let _ = writeln!(o, "{}", m.rule);
    let mut t = st.table(&super::MEASURED_HEADERS);
    for row in super::measured_rows(m) {
        let mut cells = vec![Cell::new(clean(&row[0], 60))];
        cells.push(Cell::new(&row[1]));
        cells.push(if row[1] != row[2] && row[2] != "–" {
            Cell::new(st.warn(&row[2]))
        } else {
            Cell::new(&row[2])
        });
        cells.extend(row[3..].iter().map(right));
        t.add_row(cells);
    }
    let _ = writeln!(o, "{t}");
    let lines = super::moved_lines(m);
    if lines.is_empty() {
        let _ = writeln!(o, "Moved since the last run: none.");
    } else {
        let _ = writeln!(o, "Moved since the last run:");
        for l in lines {
            let _ = writeln!(o, "  {}", sanitize(&l));
        }
    }
    let _ = writeln!(o);
}

fn comparison(o: &mut String, st: &Style, c: &Comparison) {
    let (bl, cl) = (
        sanitize(&c.baseline_label()),
        sanitize(&c.candidate_label()),
    );
    let _ = writeln!(
        o,
        "{}",
        st.heading(&format!(
            "Comparison: {bl} (baseline) → {cl} ({} shared variants)",
            c.aggregate.paired.shared
        ))
    );
    let headers = [
        "tier",
        bl.as_str(),
        cl.as_str(),
        "delta",
        "95% interval of delta",
        "shared",
        "fixed",
        "regressed",
        "McNemar p",
    ];
    let mut t = st.table(&headers);
    for row in c.tiers.iter().chain(std::iter::once(&c.aggregate)) {
        t.add_row(vec![
            Cell::new(&row.label),
            right(rate_text(&row.baseline)),
            right(rate_text(&row.candidate)),
            st.signed(delta_text(row), row.delta, row.paired.significant()),
            right(delta_interval_text(row)),
            right(row.paired.shared),
            right(row.paired.fixed),
            right(row.paired.regressed),
            right(p_value_text(&row.paired)),
        ]);
    }
    let _ = writeln!(o, "{t}");
    let mut t = st.table(&[
        "capability class",
        bl.as_str(),
        cl.as_str(),
        "delta",
        "95% interval of delta",
        "shared",
        "fixed",
        "regressed",
        "McNemar p",
    ]);
    for row in &c.classes {
        t.add_row(vec![
            Cell::new(clean(&row.label, 50)),
            right(rate_text(&row.baseline)),
            right(rate_text(&row.candidate)),
            st.signed(delta_text(row), row.delta, row.paired.significant()),
            right(delta_interval_text(row)),
            right(row.paired.shared),
            right(row.paired.fixed),
            right(row.paired.regressed),
            right(p_value_text(&row.paired)),
        ]);
    }
    let _ = writeln!(o, "{t}");
    let _ = writeln!(
        o,
        "McNemar: exact two-sided test on the variants graded on both sides; significant below p = 0.05."
    );
    let _ = writeln!(o);
}

fn flip_line(f: &Flip) -> String {
    format!(
        "{} · {} · {} · variant {}",
        sanitize(&f.variant.probe_id),
        f.variant.tier.as_str(),
        clean(&f.variant.axes_label(), 200),
        short_id(&f.variant.variant_id)
    )
}

fn regressions(o: &mut String, st: &Style, c: &Comparison) {
    let (bl, cl) = (
        sanitize(&c.baseline_label()),
        sanitize(&c.candidate_label()),
    );
    let hard: Vec<&Flip> = c.hard_regressions().collect();
    let _ = writeln!(
        o,
        "{}",
        st.heading(&format!(
            "Hard-tier regressions: {bl} passed, {cl} fails ({})",
            hard.len()
        ))
    );
    if hard.is_empty() {
        let _ = writeln!(o, "  none");
    }
    // Grouped by probe family; one entry per variant: axes, then what failed and what it said.
    let mut i = 0;
    while i < hard.len() {
        let v0 = &hard[i].variant;
        let n = hard[i..]
            .iter()
            .take_while(|f| f.variant.probe_id == v0.probe_id)
            .count();
        let _ = writeln!(
            o,
            "  {} ({}, \"{}\"): {n} regressed",
            sanitize(&v0.probe_id),
            v0.tier.as_str(),
            clean(&v0.capability, 60)
        );
        for f in &hard[i..i + n] {
            let v = &f.variant;
            let _ = writeln!(
                o,
                "    {}  {}",
                short_id(&v.variant_id),
                clean(&v.axes_label(), 200)
            );
            if let Some(e) = &v.evidence {
                let mut parts: Vec<String> = e
                    .failed_checks
                    .iter()
                    .map(|c| format!("{}: {}", sanitize(&c.check), clean(&c.reason, 160)))
                    .collect();
                parts.push(format!(
                    "output: \"{}\"",
                    clean(&e.output, 120).replace('"', "\\\"")
                ));
                let _ = writeln!(o, "              {}", parts.join(" · "));
                if let Some((t, stop)) = &e.trajectory {
                    let _ = writeln!(
                        o,
                        "              trajectory: {}{}",
                        clean(&t.compact(300), 300),
                        stop.map(|s| format!(" [{}]", s.as_str()))
                            .unwrap_or_default()
                    );
                }
            }
        }
        i += n;
    }
    let _ = writeln!(o);
    let others: Vec<&Flip> = c
        .regressed
        .iter()
        .filter(|f| {
            !matches!(
                f.variant.tier,
                crate::domain::Tier::Hard | crate::domain::Tier::Frontier
            )
        })
        .collect();
    let _ = writeln!(
        o,
        "{}",
        st.heading(&format!(
            "Flips: {} fixed, {} regressed ({} in easier tiers)",
            c.fixed.len(),
            c.regressed.len(),
            others.len()
        ))
    );
    for (label, list) in [
        ("fixed", c.fixed.iter().collect::<Vec<_>>()),
        ("regressed", others),
    ] {
        if list.is_empty() {
            continue;
        }
        for f in list.iter().take(FLIP_LIST_MAX) {
            let _ = writeln!(o, "  {label:<9} {}", flip_line(f));
        }
        if list.len() > FLIP_LIST_MAX {
            let _ = writeln!(
                o,
                "  … and {} more {label} (all in --format json or html)",
                list.len() - FLIP_LIST_MAX
            );
        }
    }
    let _ = writeln!(o);
}

fn gate(o: &mut String, st: &Style, r: &Report) {
    let Some(g) = &r.gate else {
        let _ = writeln!(
            o,
            "{} no floors configured ([floors] in cliffprobe.toml or --floor TIER=RATE)",
            st.heading("Gate:")
        );
        return;
    };
    let floors = r
        .floors
        .iter()
        .map(|f| format!("{} ≥ {} ({})", f.tier.as_str(), pct(f.min), f.source))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        o,
        "{}",
        st.heading(&format!(
            "Gate on {}: floors {}; applied to {}",
            g.on.as_str(),
            if floors.is_empty() {
                "none".into()
            } else {
                floors
            },
            sanitize(&r.gated_models.join(", "))
        ))
    );
    for c in &g.checks {
        let mark = if c.passed {
            st.good("ok  ")
        } else {
            st.bad("FAIL")
        };
        let _ = writeln!(o, "  {mark} {}", sanitize(&c.reason));
    }
    let verdict = if g.passed {
        st.good("gate passed")
    } else {
        st.bad("gate failed")
    };
    let _ = writeln!(o, "{verdict}: {}", sanitize(&g.reason));
}

fn trend_body(o: &mut String, st: &Style, tr: &Trend) {
    let _ = writeln!(
        o,
        "{}",
        st.heading(&format!(
            "Trend for {}: aggregate vs hard tier, oldest run first",
            sanitize(&tr.model)
        ))
    );
    let mut t = st.table(&["run", "started", "aggregate", "n", "hard", "n", "gap"]);
    for p in &tr.points {
        t.add_row(vec![
            Cell::new(sanitize(&p.run_id)),
            Cell::new(sanitize(&p.started_at)),
            right(rate_text(&p.aggregate)),
            right(p.aggregate.n()),
            right(rate_text(&p.hard)),
            right(p.hard.n()),
            right(
                p.gap
                    .map(|g| format!("{:.1} pts", 100.0 * g))
                    .unwrap_or_else(|| "–".into()),
            ),
        ]);
    }
    let _ = writeln!(o, "{t}");
    match &tr.warning {
        Some(w) => {
            let _ = writeln!(o, "  {} {}", st.warn("!"), sanitize(&w.message));
        }
        None if tr.points.len() < tr.window => {
            let _ = writeln!(
                o,
                "  {} run{} so far: the widening check needs {} runs",
                tr.points.len(),
                if tr.points.len() == 1 { "" } else { "s" },
                tr.window
            );
        }
        None => {
            let _ = writeln!(
                o,
                "  the gap did not widen run after run over the last {} runs",
                tr.window
            );
        }
    }
    let _ = writeln!(o);
}

/// Renders `cliffprobe trend` as text.
pub fn render_trend(tr: &Trend, color: bool) -> String {
    let st = Style { color };
    let mut o = String::new();
    let _ = writeln!(o, "{}", st.heading("cliffprobe trend"));
    let _ = writeln!(
        o,
        "Counts are variants; the gap is aggregate pass rate minus hard-tier pass rate; a warning when it widened in each of the last {} runs.",
        tr.window
    );
    let _ = writeln!(o);
    if tr.points.is_empty() {
        let _ = writeln!(o, "no runs of {} in the store", sanitize(&tr.model));
        return o;
    }
    trend_body(&mut o, &st, tr);
    o
}
