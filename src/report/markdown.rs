//! The Markdown report: fits a pull-request comment or a CI job summary (GitHub-flavoured).
//!
//! Model text is defused: HTML special characters become entities, Markdown punctuation is
//! backslash-escaped, `|` cannot break a table and newlines cannot start a block.

use super::{
    Report, delta_interval_text, delta_text, interval_text, p_value_text, rate_text, share_text,
    short_id,
};
use crate::analysis::{Comparison, Trend, findings::pct};
use crate::text::markdown_inline as md;
use std::fmt::Write;

fn row(o: &mut String, cells: &[String]) {
    let _ = writeln!(o, "| {} |", cells.join(" | "));
}

fn header(o: &mut String, names: &[&str], right_from: usize) {
    let names: Vec<String> = names.iter().map(|n| md(n)).collect();
    row(o, &names);
    let sep: Vec<String> = (0..names.len())
        .map(|i| {
            if i >= right_from {
                "--:".into()
            } else {
                "---".into()
            }
        })
        .collect();
    row(o, &sep);
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

    let _ = writeln!(o, "### Pass rate by tier (variants)\n");
    header(
        &mut o,
        &[
            "model",
            "tier",
            "n",
            "passed",
            "pass rate",
            "95% interval",
            "errors",
            "share of failures",
        ],
        2,
    );
    for b in &r.models {
        for (t, x) in &b.tiers {
            row(
                &mut o,
                &[
                    md(&b.model),
                    t.as_str().into(),
                    x.n().to_string(),
                    x.passed.to_string(),
                    rate_text(x),
                    interval_text(x),
                    (x.errors + x.ungraded).to_string(),
                    share_text(b.failure_share(*t)),
                ],
            );
        }
        let a = &b.aggregate;
        row(
            &mut o,
            &[
                md(&b.model),
                "**all**".into(),
                a.n().to_string(),
                a.passed.to_string(),
                format!("**{}**", rate_text(a)),
                interval_text(a),
                (a.errors + a.ungraded).to_string(),
                format!("{} failing", a.failed),
            ],
        );
    }
    let _ = writeln!(o);

    for c in &r.comparisons {
        comparison(&mut o, c);
    }

    let _ = writeln!(o, "### By capability class: where failures concentrate\n");
    header(
        &mut o,
        &[
            "model",
            "capability class",
            "n",
            "pass rate",
            "95% interval",
            "failing",
            "share of failures",
            "failing probe families",
        ],
        2,
    );
    for b in &r.models {
        for c in &b.classes {
            row(
                &mut o,
                &[
                    md(&b.model),
                    md(&c.class),
                    c.tally.n().to_string(),
                    rate_text(&c.tally),
                    interval_text(&c.tally),
                    c.tally.failed.to_string(),
                    share_text(b.class_failure_share(c)),
                    if c.failing_probes.is_empty() {
                        "–".into()
                    } else {
                        c.failing_probes
                            .iter()
                            .map(|(p, n)| format!("{} ({n})", md(p)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                ],
            );
        }
    }
    let _ = writeln!(o);

    if let Some(m) = &r.measured_tiers
        && !m.probes.is_empty()
    {
        let _ = writeln!(o, "### Declared and measured tiers\n");
        let _ = writeln!(o, "_{}_\n", md(&m.rule));
        header(&mut o, &super::MEASURED_HEADERS, 3);
        for cells in super::measured_rows(m) {
            row(&mut o, &cells.iter().map(|c| md(c)).collect::<Vec<_>>());
        }
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
        let floors = r
            .floors
            .iter()
            .map(|f| format!("{} ≥ {} ({})", f.tier.as_str(), pct(f.min), f.source))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            o,
            "### Gate (on {}; floors {}; applied to {})\n",
            g.on.as_str(),
            if floors.is_empty() {
                "none".into()
            } else {
                md(&floors)
            },
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
    for (first, rows) in [
        (
            "tier",
            c.tiers
                .iter()
                .chain(std::iter::once(&c.aggregate))
                .collect::<Vec<_>>(),
        ),
        ("capability class", c.classes.iter().collect()),
    ] {
        header(
            o,
            &[
                first,
                &bl,
                &cl,
                "delta",
                "95% interval of delta",
                "shared",
                "fixed",
                "regressed",
                "McNemar p",
            ],
            1,
        );
        for d in rows {
            row(
                o,
                &[
                    md(&d.label),
                    rate_text(&d.baseline),
                    rate_text(&d.candidate),
                    delta_text(d),
                    delta_interval_text(d),
                    d.paired.shared.to_string(),
                    d.paired.fixed.to_string(),
                    d.paired.regressed.to_string(),
                    p_value_text(&d.paired),
                ],
            );
        }
        let _ = writeln!(o);
    }
}

fn regressions(o: &mut String, c: &Comparison) {
    let hard: Vec<_> = c.hard_regressions().collect();
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
        c.fixed.len(),
        c.regressed.len()
    );
}

fn trend_table(o: &mut String, t: &Trend) {
    let _ = writeln!(o, "### Trend for {}\n", md(&t.model));
    header(o, &["run", "started", "aggregate", "hard", "gap"], 2);
    for p in &t.points {
        row(
            o,
            &[
                md(&p.run_id),
                md(&p.started_at),
                rate_text(&p.aggregate),
                rate_text(&p.hard),
                p.gap
                    .map(|g| format!("{:.1} pts", 100.0 * g))
                    .unwrap_or_else(|| "–".into()),
            ],
        );
    }
    let _ = writeln!(o);
    if let Some(w) = &t.warning {
        let _ = writeln!(o, "> [!WARNING]\n> {}\n", md(&w.message));
    }
}
