//! The `brittleness` command: option handling and printing over [`cliffprobe::brittleness`].

use crate::cli::output::{axes_text, right, table};
use anyhow::Result;
use cliffprobe::brittleness::{self, Brittleness, Filter, ProbeBrittleness};
use cliffprobe::error::Error;
use cliffprobe::project::Project;
use cliffprobe::term::sanitize;
use comfy_table::{Attribute, Cell, Color};
use std::io::Write;
use std::process::ExitCode;

/// `brittleness` options.
#[derive(Debug, clap::Args)]
pub struct BrittlenessArgs {
    /// Run id (default: the latest).
    pub run: Option<String>,
    /// Only probes whose id or capability contains this text.
    #[arg(long)]
    pub probe: Option<String>,
    /// Only this model.
    #[arg(long)]
    pub model: Option<String>,
    /// text or json.
    #[arg(long, default_value = "text")]
    pub format: String,
    /// The store (path or sqlite:// URL).
    #[arg(long)]
    pub store: Option<String>,
}

fn pct(x: Option<f64>) -> String {
    x.map(|r| format!("{:.1}%", 100.0 * r))
        .unwrap_or_else(|| "–".into())
}

/// Runs `cliffprobe brittleness`.
pub fn brittleness_cmd(project: &Project, a: &BrittlenessArgs) -> Result<ExitCode> {
    let json = crate::cli::output::wants_json(&a.format)?;
    let store = project.open_store(a.store.as_deref())?;
    let run = store.resolve_run(a.run.as_deref())?;
    if let Some(m) = &a.model
        && !run.models.contains(m)
    {
        return Err(Error::field(
            "<command line>",
            "--model",
            format!(
                "run {} has no model `{m}`; its models are {}",
                run.id,
                run.models.join(", ")
            ),
        )
        .into());
    }
    let filter = Filter {
        probe: a.probe.clone(),
        model: a.model.clone(),
    };
    let b = brittleness::analyze(&store, &run, &filter)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if json {
        serde_json::to_writer_pretty(&mut out, &b)?;
        writeln!(out)?;
    } else {
        print_text(&mut out, &b)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn print_text(out: &mut impl Write, b: &Brittleness) -> Result<()> {
    if b.results.is_empty() {
        writeln!(out, "run {}: no cases match", b.run)?;
        return Ok(());
    }
    let repeats = b.repeats > 1;
    let mut start = 0;
    while start < b.results.len() {
        let probe = &b.results[start].probe;
        let end = b.results[start..]
            .iter()
            .position(|r| &r.probe != probe)
            .map_or(b.results.len(), |n| start + n);
        print_probe(out, &b.results[start..end], repeats)?;
        start = end;
    }
    writeln!(
        out,
        "run {}: ! = significantly worse than the other values of its axis (one-sided Fisher \
         exact test, Holm-corrected per probe × model, α = {}); errors are outside every rate",
        b.run,
        brittleness::ALPHA
    )?;
    Ok(())
}

fn print_probe(out: &mut impl Write, rows: &[ProbeBrittleness], repeats: bool) -> Result<()> {
    let first = &rows[0];
    writeln!(
        out,
        "probe {}  (capability \"{}\", declared tier {})",
        sanitize(&first.probe),
        sanitize(&first.capability),
        first.tier.as_str()
    )?;
    let mut headers = vec![
        "model",
        "label",
        "canonical",
        "cases",
        "passed",
        "pass rate",
        "errors",
    ];
    let k_header = format!("pass^{}", first.k.unwrap_or(1));
    if repeats {
        headers.push("pass@1");
        headers.push(&k_header);
    }
    headers.push("minimal failing variant");
    let mut t = table(&headers);
    for r in rows {
        let label = Cell::new(r.label.as_str());
        let label = match r.label {
            brittleness::Label::Brittle | brittleness::Label::Broken => {
                label.fg(Color::Red).add_attribute(Attribute::Bold)
            }
            brittleness::Label::Flaky => label.fg(Color::Yellow),
            _ => label,
        };
        let mut row = vec![
            Cell::new(sanitize(&r.model)),
            label,
            Cell::new(match r.canonical_passed {
                Some(true) => "pass",
                Some(false) => "fail",
                None => "–",
            }),
            right(r.cases.to_string()),
            right(r.passed.to_string()),
            right(pct(r.pass_rate)),
            right(r.errors.to_string()),
        ];
        if repeats {
            row.push(right(pct(r.pass_at_1)));
            row.push(right(pct(r.pass_hat_k)));
        }
        row.push(Cell::new(match &r.minimal_failing {
            Some(m) => axes_text(m),
            None => "–".into(),
        }));
        t.add_row(row);
    }
    writeln!(out, "{t}")?;

    // Axis attribution: one row per axis value, one column per model.
    let mut values: Vec<(String, String)> = Vec::new();
    for r in rows {
        for (axis, vals) in &r.axes {
            for v in vals.keys() {
                let key = (axis.clone(), v.clone());
                if !values.contains(&key) {
                    values.push(key);
                }
            }
        }
    }
    if !values.is_empty() {
        let mut headers: Vec<String> = vec!["axis".into(), "value".into()];
        headers.extend(rows.iter().map(|r| sanitize(&r.model)));
        let mut t = table(&headers.iter().map(String::as_str).collect::<Vec<_>>());
        // Pad the counts so the percentages line up down each column.
        let frac_width = rows
            .iter()
            .flat_map(|r| r.axes.values().flat_map(|m| m.values()))
            .map(|s| format!("({}/{})", s.passed, s.cases).len())
            .max()
            .unwrap_or(0);
        let any_significant = rows
            .iter()
            .flat_map(|r| r.axes.values().flat_map(|m| m.values()))
            .any(|s| s.significant);
        for (axis, value) in &values {
            let mut row = vec![Cell::new(sanitize(axis)), Cell::new(sanitize(value))];
            for r in rows {
                let Some(s) = r.axes.get(axis).and_then(|m| m.get(value)) else {
                    row.push(right("–".into()));
                    continue;
                };
                let worst = r.axes[axis]
                    .values()
                    .filter_map(|x| x.pass_rate)
                    .fold(f64::INFINITY, f64::min);
                let counts = format!(
                    "({}/{}){}",
                    s.passed,
                    s.cases,
                    if s.significant { " !" } else { "" }
                );
                let width = frac_width + if any_significant { 2 } else { 0 };
                let text = format!("{} {counts:<width$}", pct(s.pass_rate));
                let mut cell = right(text);
                if s.significant {
                    cell = cell.fg(Color::Red).add_attribute(Attribute::Bold);
                } else if s.pass_rate.is_some_and(|p| p < 1.0 && p <= worst) {
                    cell = cell.fg(Color::Yellow);
                }
                row.push(cell);
            }
            t.add_row(row);
        }
        writeln!(out, "{t}")?;
    }
    for r in rows {
        for i in &r.interactions {
            writeln!(
                out,
                "  {}: {} fail together ({}/{} passed) although each alone passes",
                sanitize(&r.model),
                axes_text(&i.axes).replace(", ", " × "),
                i.passed,
                i.cases
            )?;
        }
        if !r.flaky.is_empty() {
            let list: Vec<String> = r
                .flaky
                .iter()
                .map(|f| {
                    format!(
                        "{} [{}] {}/{}",
                        f.variant,
                        axes_text(&f.axes),
                        f.passed,
                        f.cases
                    )
                })
                .collect();
            writeln!(
                out,
                "  {}: {} flaky variant{}: {}",
                sanitize(&r.model),
                r.flaky.len(),
                if r.flaky.len() == 1 { "" } else { "s" },
                list.join("; ")
            )?;
        }
    }
    writeln!(out)?;
    Ok(())
}
