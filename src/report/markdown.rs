//! The Markdown report: fits a pull-request comment or a CI job summary (GitHub-flavoured).
//!
//! Model text is defused: HTML special characters become entities, Markdown punctuation is
//! backslash-escaped, `|` cannot break a table and newlines cannot start a block.

use super::tables::{self, Align, Mark, Segment};
use super::{Report, short_id};
use crate::analysis::{Comparison, Trend};
use crate::text::markdown_inline as md;
use std::fmt::Write;

fn row(o: &mut String, cells: &[String]) {
    let _ = writeln!(o, "| {} |", cells.join(" | "));
}

/// Writes a table model as a GitHub-flavoured table: data text defused, numbers as built,
/// [`Mark::Strong`] in bold, and only the columns the model keeps for Markdown.
fn table(o: &mut String, m: &tables::Table) {
    let shown: Vec<usize> = (0..m.columns.len())
        .filter(|&i| m.columns[i].in_markdown)
        .collect();
    let names: Vec<String> = shown.iter().map(|&i| md(&m.columns[i].header)).collect();
    row(o, &names);
    let sep: Vec<String> = shown
        .iter()
        .map(|&i| match m.columns[i].markdown_align {
            Align::Right => "--:".into(),
            Align::Left => "---".into(),
        })
        .collect();
    row(o, &sep);
    for r in &m.rows {
        let cells: Vec<String> = shown
            .iter()
            .map(|&i| {
                let cell = &r.cells[i];
                let text: String = cell
                    .segments
                    .iter()
                    .map(|s| match s {
                        Segment::Text(x) if m.columns[i].align == Align::Left => md(x),
                        Segment::Text(x) | Segment::Literal(x) => x.clone(),
                    })
                    .collect();
                if cell.mark == Mark::Strong {
                    format!("**{text}**")
                } else {
                    text
                }
            })
            .collect();
        row(o, &cells);
    }
}

/// Renders the report as Markdown.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "## cliffprobe report\n");
    let _ = writeln!(o, "{}\n", md(&r.run_line()));
    let _ = writeln!(o, "_{}_\n", md(&r.counting_line()));
    if let super::BaselineKind::Run(b) = &r.baseline {
        let _ = writeln!(
            o,
            "Baseline: run {} (started {})\n",
            md(&b.id),
            md(&b.started_at)
        );
    }
    if !r.findings.is_empty() {
        let _ = writeln!(o, "> [!WARNING]");
        for f in &r.findings {
            let _ = writeln!(o, "> - {}", md(&f.message));
        }
        let _ = writeln!(o);
    }
    if let Some(g) = &r.gate {
        let _ = writeln!(
            o,
            "**Gate {}**{}: {}\n",
            if g.passed { "passed" } else { "FAILED" },
            if r.gate_enforced {
                ""
            } else {
                " (informational)"
            },
            md(&g.reason)
        );
    }

    let tiers = tables::tiers(r);
    let _ = writeln!(o, "### {}\n", tiers.title);
    table(&mut o, &tiers);
    let _ = writeln!(o);

    for c in &r.comparisons {
        comparison(&mut o, c);
    }

    let classes = tables::classes(r);
    let _ = writeln!(o, "### {}\n", classes.title);
    table(&mut o, &classes);
    let _ = writeln!(o);

    if let Some(m) = &r.measured_tiers
        && !m.probes.is_empty()
    {
        let t = tables::measured(m);
        let _ = writeln!(o, "### {}\n", t.title);
        let _ = writeln!(o, "_{}_\n", md(&m.rule));
        table(&mut o, &t);
        let _ = writeln!(o);
        let lines = super::moved_lines(m);
        if lines.is_empty() {
            let _ = writeln!(o, "Moved since the last run: none.\n");
        } else {
            let _ = writeln!(o, "Moved since the last run:\n");
            for l in lines {
                let _ = writeln!(o, "- {}", md(&l));
            }
            let _ = writeln!(o);
        }
    }
    for c in &r.comparisons {
        regressions(&mut o, c);
    }
    if let Some(t) = &r.trend
        && t.points.len() > 1
    {
        trend_table(&mut o, t);
    }
    if let Some(g) = &r.gate {
        let _ = writeln!(
            o,
            "### Gate (on {}; floors {}; applied to {})\n",
            g.on.as_str(),
            md(&tables::floors_text(r)),
            md(&r.gated_models.join(", "))
        );
        for c in &g.checks {
            let _ = writeln!(
                o,
                "- {} {}",
                if c.passed { "✅" } else { "❌" },
                md(&c.reason)
            );
        }
        let _ = writeln!(o);
    }
    o
}

fn comparison(o: &mut String, c: &Comparison) {
    let (bl, cl) = (c.baseline_label(), c.candidate_label());
    let _ = writeln!(
        o,
        "### Comparison: {} (baseline) → {} ({} shared variants)\n",
        md(&bl),
        md(&cl),
        c.aggregate.paired.shared
    );
    for t in tables::comparison(c) {
        table(o, &t);
        let _ = writeln!(o);
    }
}

fn regressions(o: &mut String, c: &Comparison) {
    let flips = tables::Flips::of(c);
    let hard = &flips.hard;
    let _ = writeln!(
        o,
        "### Hard-tier regressions: {} passed, {} fails ({})\n",
        md(&c.baseline_label()),
        md(&c.candidate_label()),
        hard.len()
    );
    if hard.is_empty() {
        let _ = writeln!(o, "None.\n");
    }
    for f in hard {
        let v = &f.variant;
        let _ = writeln!(
            o,
            "<details><summary>{} · {} · {} · variant {}</summary>\n",
            md(&v.probe_id),
            v.tier.as_str(),
            md(&v.axes_label()),
            md(short_id(&v.variant_id))
        );
        if let Some(e) = &v.evidence {
            for chk in &e.failed_checks {
                let _ = writeln!(o, "- failed **{}**: {}", md(&chk.check), md(&chk.reason));
            }
            if let Some((t, _)) = &e.trajectory {
                let _ = writeln!(o, "- trajectory: {}", md(&t.compact(300)));
            }
            let _ = writeln!(
                o,
                "\n<pre>{}{}</pre>\n",
                crate::text::html(&e.output),
                if e.truncated { "…" } else { "" }
            );
        }
        let _ = writeln!(o, "</details>\n");
    }
    let _ = writeln!(
        o,
        "Flips: {} fixed, {} regressed (all tiers; every flip is listed in the JSON and HTML reports).\n",
        flips.fixed.len(),
        flips.regressed
    );
}

fn trend_table(o: &mut String, t: &Trend) {
    let _ = writeln!(o, "### Trend for {}\n", md(&t.model));
    table(o, &tables::trend(t));
    let _ = writeln!(o);
    if let Some(w) = &t.warning {
        let _ = writeln!(o, "> [!WARNING]\n> {}\n", md(&w.message));
    }
}

#[cfg(test)]
mod tests {
    use super::tables::{Cell, Column, Row, Table};

    fn sample() -> Table {
        let mut t = super::tables::trend(&crate::analysis::Trend {
            model: String::new(),
            points: Vec::new(),
            window: 3,
            warning: None,
        });
        t.rows.push(Row {
            cells: vec![
                Cell::text("r|1"),
                Cell::text("2026-01-01"),
                Cell::num("[50.0%]"),
                Cell::num(4),
                Cell::num("–"),
                Cell::num(0),
                Cell::num("–"),
            ],
            total: false,
        });
        t
    }

    #[test]
    fn markdown_drops_the_columns_the_model_keeps_out_and_escapes_only_data_text() {
        let mut o = String::new();
        super::table(&mut o, &sample());
        assert_eq!(
            o,
            "| run | started | aggregate | hard | gap |\n| --- | --- | --: | --: | --: |\n| r\\|1 | 2026-01-01 | [50.0%] | – | – |\n"
        );
    }

    #[test]
    fn markdown_alignment_can_differ_from_the_other_formats() {
        let t = Table {
            title: String::new(),
            columns: vec![Column::left("a"), Column::right("b")],
            rows: Vec::new(),
        };
        let mut o = String::new();
        super::table(&mut o, &t);
        assert_eq!(o, "| a | b |\n| --- | --: |\n");
    }
}
