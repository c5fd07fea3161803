//! The `brittleness`, `promote` and `cases` commands: option handling and printing over
//! [`crate::brittleness`] and [`crate::promote`].

use crate::brittleness::{self, Brittleness, Filter, ProbeBrittleness};
use crate::cli::Project;
use crate::error::Error;
use crate::probe::Probe;
use crate::promote;
use crate::store::Store;
use crate::term::sanitize;
use anyhow::Result;
use comfy_table::{Attribute, Cell, CellAlignment, Color, Table, presets::UTF8_FULL_CONDENSED};
use indexmap::IndexMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
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

/// `promote` options.
#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// Run id (default: the latest).
    pub run: Option<String>,
    /// Print the diff of each probe file; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Most promoted cases kept per probe.
    #[arg(long, default_value_t = promote::DEFAULT_CAP)]
    pub cap: usize,
    /// The store (path or sqlite:// URL).
    #[arg(long)]
    pub store: Option<String>,
    /// Probe files or folders (default: the suite).
    #[arg(long = "suite", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// `cases` options.
#[derive(Debug, clap::Args)]
pub struct CasesArgs {
    /// Probe id (or a probe file).
    pub probe: String,
    /// Probe files or folders to look in (default: the suite).
    #[arg(long = "suite", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

pub(crate) fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    if !std::io::stdout().is_terminal() {
        t.force_no_tty();
    }
    t.set_header(headers.iter().map(Cell::new).collect::<Vec<_>>());
    t
}

fn pct(x: Option<f64>) -> String {
    x.map(|r| format!("{:.1}%", 100.0 * r))
        .unwrap_or_else(|| "–".into())
}

pub(crate) fn axes_text(axes: &IndexMap<String, String>) -> String {
    if axes.is_empty() {
        "(canonical)".into()
    } else {
        sanitize(
            &axes
                .iter()
                .map(|(a, v)| format!("{a}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
        )
    }
}

/// Runs `cliffprobe brittleness`.
pub fn brittleness_cmd(project: &Project, a: &BrittlenessArgs) -> Result<ExitCode> {
    let json = crate::cli::wants_json(&a.format)?;
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

pub(crate) fn right(s: String) -> Cell {
    Cell::new(s).set_alignment(CellAlignment::Right)
}

/// Runs `cliffprobe promote`.
pub fn promote_cmd(project: &Project, a: &PromoteArgs) -> Result<ExitCode> {
    let store = project.open_store(a.store.as_deref())?;
    let run = store.resolve_run(a.run.as_deref())?;
    promote_run(project, &store, &run.id, &a.paths, a.cap, a.dry_run)?;
    Ok(ExitCode::SUCCESS)
}

/// `sweep --promote`: promotes the run just swept.
pub fn promote_after_sweep(
    project: &Project,
    store_url: &str,
    run_id: &str,
    paths: &[PathBuf],
) -> Result<()> {
    let store = Store::open_url(store_url)?;
    promote_run(project, &store, run_id, paths, promote::DEFAULT_CAP, false)
}

fn promote_run(
    project: &Project,
    store: &Store,
    run_id: &str,
    paths: &[PathBuf],
    cap: usize,
    dry_run: bool,
) -> Result<()> {
    if cap == 0 {
        return Err(Error::field("<command line>", "--cap", "must be at least 1").into());
    }
    let run = store.resolve_run(Some(run_id))?;
    let files = project.probe_files(paths)?;
    let plan = promote::plan(store, &run, &files, cap)?;
    for w in &plan.warnings {
        eprintln!("warning: {}", sanitize(w));
    }
    if plan.candidates == 0 {
        println!(
            "promote: run {} has no failing or flaky non-canonical variant; nothing to promote",
            run.id
        );
        return Ok(());
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for f in &plan.files {
        if dry_run && f.changes() {
            write!(
                out,
                "{}",
                sanitize(&promote::unified_diff(&f.path, &f.before, &f.after))
            )?;
        }
    }
    let written = if dry_run { 0 } else { promote::apply(&plan)? };
    for f in &plan.files {
        writeln!(
            out,
            "promote: {}: {} new, {} updated, {} evicted ({} case{}){}",
            f.path.display(),
            f.stats.added.len(),
            f.stats.updated.len(),
            f.stats.evicted.len(),
            f.cases,
            if f.cases == 1 { "" } else { "s" },
            if f.changes() { "" } else { "; unchanged" }
        )?;
    }
    let changed = plan.files.iter().filter(|f| f.changes()).count();
    if dry_run {
        writeln!(
            out,
            "dry run: {changed} probe file(s) would change; nothing written"
        )?;
    } else {
        writeln!(
            out,
            "promoted run {}: {written} probe file(s) written (review them with `git diff`)",
            run.id
        )?;
    }
    Ok(())
}

/// Runs `cliffprobe cases`.
pub fn cases_cmd(project: &Project, a: &CasesArgs) -> Result<ExitCode> {
    let as_path = PathBuf::from(&a.probe);
    let (path, probe) = if as_path.is_file() {
        (as_path.clone(), Probe::load(&as_path)?)
    } else {
        let mut hit = None;
        for f in project.probe_files(&a.paths)? {
            let p = Probe::load(&f)?;
            if p.id == a.probe {
                hit = Some((f, p));
                break;
            }
        }
        hit.ok_or_else(|| {
            Error::field(
                "<command line>",
                "PROBE",
                format!("no probe `{}` in {}", a.probe, project.suite().display()),
            )
        })?
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if probe.cases.is_empty() {
        writeln!(
            out,
            "probe {} ({}) has no promoted cases",
            probe.id,
            path.display()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&[
        "variant",
        "axes",
        "failed on",
        "failures",
        "first seen",
        "last seen",
        "reason",
        "excerpt",
    ]);
    for c in &probe.cases {
        t.add_row(vec![
            Cell::new(&c.variant),
            Cell::new(axes_text(&c.axes)),
            Cell::new(sanitize(&c.failed_on.join(", "))),
            right(c.failures.to_string()),
            Cell::new(c.first_seen.as_deref().unwrap_or("–")),
            Cell::new(c.last_seen.as_deref().unwrap_or("–")),
            Cell::new(sanitize(&crate::grade::excerpt(
                c.reason.as_deref().unwrap_or("–"),
                60,
            ))),
            Cell::new(sanitize(&crate::grade::excerpt(
                c.excerpt.as_deref().unwrap_or("–"),
                60,
            ))),
        ]);
    }
    writeln!(out, "{t}")?;
    writeln!(
        out,
        "probe {} ({}): {} promoted case{}, run in every sweep",
        probe.id,
        path.display(),
        probe.cases.len(),
        if probe.cases.len() == 1 { "" } else { "s" }
    )?;
    Ok(ExitCode::SUCCESS)
}
