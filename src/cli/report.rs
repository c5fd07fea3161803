//! The `report` command: its options, building the report from the store
//! ([`cliffprobe::report::build`] has the rules: which comparison, the floors, the gate) and
//! writing it; `--gate` makes the verdict the exit status (1 when it fails) and prints the
//! reason either way.

use super::output::{use_color, write_output};
use anyhow::Result;
use cliffprobe::analysis::GateOn;
use cliffprobe::project::Project;
use cliffprobe::report::build::{ReportOptions, build_from};
use cliffprobe::report::{self, Format, Report};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `report` options.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Run id (default: the latest run).
    pub run: Option<String>,
    /// Compare with a run (the same model names in that run) or with a model of this run.
    #[arg(long, value_name = "RUN|MODEL")]
    pub baseline: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    pub format: FormatArg,
    /// Write to this file (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// A floor, TIER=RATE (0.45 or 45%); repeatable; overrides `[floors]` in cliffprobe.toml.
    #[arg(long = "floor", value_name = "TIER=RATE")]
    pub floors: Vec<String>,
    /// Exit 1 when the gate fails (a floor not met, too many hard-tier regressions).
    #[arg(long)]
    pub gate: bool,
    /// Compare floors with the pass rate, or with the lower bound of its 95% interval.
    #[arg(long, value_enum, default_value_t = GateOnArg::Rate)]
    pub gate_on: GateOnArg,
    /// Fail the gate when more hard-tier variants than this regressed.
    #[arg(long, value_name = "N")]
    pub max_regressions: Option<u64>,
    /// The store (path or sqlite:// URL).
    #[arg(long)]
    pub store: Option<String>,
}

/// `--format` of `report`: a [`Format`] as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// Aligned tables for a terminal or a log.
    Text,
    /// Versioned JSON for scripts.
    Json,
    /// For a pull-request comment or a CI job summary.
    Markdown,
    /// JUnit XML: one testcase per variant and model.
    Junit,
    /// One self-contained HTML file with inline SVG charts.
    Html,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Text => Format::Text,
            FormatArg::Json => Format::Json,
            FormatArg::Markdown => Format::Markdown,
            FormatArg::Junit => Format::Junit,
            FormatArg::Html => Format::Html,
        }
    }
}

/// `--gate-on` of `report`: a [`GateOn`] as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GateOnArg {
    /// The tier's pass rate.
    Rate,
    /// The lower bound of the tier's 95 % Wilson interval (stricter).
    Lower,
}

impl From<GateOnArg> for GateOn {
    fn from(g: GateOnArg) -> GateOn {
        match g {
            GateOnArg::Rate => GateOn::Rate,
            GateOnArg::Lower => GateOn::Lower,
        }
    }
}

impl ReportArgs {
    /// The options that shape the report (the rest say where it goes).
    pub fn options(&self) -> ReportOptions {
        ReportOptions {
            run: self.run.clone(),
            baseline: self.baseline.clone(),
            format: self.format.into(),
            floors: self.floors.clone(),
            gate: self.gate,
            gate_on: self.gate_on.into(),
            max_regressions: self.max_regressions,
        }
    }
}

/// Builds the report for `a` (no printing): what `cliffprobe report` renders.
pub fn build(project: &Project, a: &ReportArgs) -> Result<Report> {
    let store = project.open_store(a.store.as_deref())?;
    Ok(build_from(project, &store, &a.options(), true)?)
}

/// Runs `cliffprobe report`.
pub fn report(project: &Project, a: &ReportArgs) -> Result<ExitCode> {
    let r = build(project, a)?;
    if Format::from(a.format) == Format::Json && a.out.is_none() {
        // Streamed: on a big run the document is hundreds of MB (every flip with its evidence).
        let mut so = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
        report::json::render_to(&mut so, &r)?;
        so.flush()?;
        return gate_exit(a, &r);
    }
    let text = match Format::from(a.format) {
        Format::Text => report::text::render(&r, use_color(a.out.as_ref())),
        Format::Json => report::json::render(&r),
        Format::Markdown => report::markdown::render(&r),
        Format::Junit => report::junit::render(&r),
        Format::Html => report::html::render(&r),
    };
    write_output(a.out.as_ref(), &text)?;
    drop(text);
    gate_exit(a, &r)
}

/// The exit status of `report` once the report is written: the gate's verdict with `--gate`.
fn gate_exit(a: &ReportArgs, r: &Report) -> Result<ExitCode> {
    if !a.gate {
        return Ok(ExitCode::SUCCESS);
    }
    let Some(g) = &r.gate else {
        return Ok(ExitCode::SUCCESS);
    };
    // Text and Markdown on stdout already end with the gate; elsewhere say it on stderr.
    if a.out.is_some() || !matches!(a.format, FormatArg::Text | FormatArg::Markdown) {
        eprintln!(
            "gate {}: {}",
            if g.passed { "passed" } else { "failed" },
            cliffprobe::term::sanitize(&g.reason)
        );
    }
    Ok(if g.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
