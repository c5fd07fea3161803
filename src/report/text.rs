//! The text report: aligned tables, warnings first, colour only when asked (on a terminal).

use super::tables::{self, Align, Mark, Segment};
use super::{Report, short_id};
use crate::analysis::{Comparison, Flip, Trend};
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
}

/// One line of model text, safe for a terminal.
fn clean(s: &str, max: usize) -> String {
    crate::grade::excerpt(&sanitize(s), max)
}

/// Lays a table model out with comfy-table: data text made safe for a terminal (and clipped
/// where the model says), numbers right-aligned, marks shown as colour only when asked.
fn table(st: &Style, m: &tables::Table) -> Table {
    let headers: Vec<String> = m.columns.iter().map(|c| sanitize(&c.header)).collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut t = st.table(&headers);
    for row in &m.rows {
        let cells = row.cells.iter().zip(&m.columns).map(|(cell, col)| {
            let text: String = cell
                .segments
                .iter()
                .map(|s| match s {
                    Segment::Text(x) if col.align == Align::Left => sanitize(x),
                    Segment::Text(x) | Segment::Literal(x) => x.clone(),
                })
                .collect();
            let text = match cell.clip {
                Some(max) => crate::grade::excerpt(&text, max),
                None => text,
            };
            let c = match cell.mark {
                Mark::Warn => Cell::new(st.warn(&text)),
                _ => Cell::new(text),
            };
            let c = match col.align {
                Align::Right => c.set_alignment(CellAlignment::Right),
                Align::Left => c,
            };
            match cell.mark {
                Mark::Loss if st.color => c.fg(Color::Red),
                Mark::Gain if st.color => c.fg(Color::Green),
                _ => c,
            }
        });
        t.add_row(cells.collect::<Vec<_>>());
    }
    t
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

    let tiers = tables::tiers(r);
    let _ = writeln!(o, "{}", st.heading(&tiers.title));
    let _ = writeln!(o, "{}", table(&st, &tiers));
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

    let classes = tables::classes(r);
    let _ = writeln!(o, "{}", st.heading(&classes.title));
    let _ = writeln!(o, "{}", table(&st, &classes));
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
    let t = tables::measured(m);
    let _ = writeln!(o, "{}", st.heading(&t.title));
    let _ = writeln!(o, "{}", m.rule);
    let _ = writeln!(o, "{}", table(st, &t));
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
    for t in tables::comparison(c) {
        let _ = writeln!(o, "{}", table(st, &t));
    }
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
    let flips = tables::Flips::of(c);
    let hard = &flips.hard;
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
    for group in flips.hard_by_probe() {
        let v0 = &group[0].variant;
        let n = group.len();
        let _ = writeln!(
            o,
            "  {} ({}, \"{}\"): {n} regressed",
            sanitize(&v0.probe_id),
            v0.tier.as_str(),
            clean(&v0.capability, 60)
        );
        for f in group {
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
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{}",
        st.heading(&format!(
            "Flips: {} fixed, {} regressed ({} in easier tiers)",
            flips.fixed.len(),
            flips.regressed,
            flips.easier.len()
        ))
    );
    for (label, list) in [("fixed", &flips.fixed), ("regressed", &flips.easier)] {
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
    let _ = writeln!(
        o,
        "{}",
        st.heading(&format!(
            "Gate on {}: floors {}; applied to {}",
            g.on.as_str(),
            tables::floors_text(r),
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
    let _ = writeln!(o, "{}", table(st, &tables::trend(tr)));
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

#[cfg(test)]
mod tests {
    use super::tables::{Cell, Column, Row, Table};

    #[test]
    fn text_tables_strip_terminal_codes_and_clip_where_the_model_says() {
        let mut long = Cell::text("a\u{1b}[31mb ".repeat(10));
        long.clip = Some(5);
        let t = Table {
            title: String::new(),
            columns: vec![Column::left("x"), Column::right("n")],
            rows: vec![Row {
                cells: vec![long, Cell::num(7)],
                total: false,
            }],
        };
        let out = super::table(&super::Style { color: false }, &t).to_string();
        assert!(out.contains("ab ab…"), "{out}");
        assert!(!out.contains('\u{1b}'), "{out}");
        assert!(out.contains("│  7 │") || out.contains("┆ 7 │"), "{out}");
    }
}
