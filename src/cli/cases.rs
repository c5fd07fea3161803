//! The `cases` command: a probe's promoted cases with their history.

use crate::cli::output::{axes_text, right, table};
use anyhow::Result;
use cliffprobe::error::Error;
use cliffprobe::probe::Probe;
use cliffprobe::project::Project;
use cliffprobe::term::sanitize;
use comfy_table::Cell;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `cases` options.
#[derive(Debug, clap::Args)]
pub struct CasesArgs {
    /// Probe id (or a probe file).
    pub probe: String,
    /// Probe files or folders to look in (default: the suite).
    #[arg(long = "suite", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
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
            Cell::new(sanitize(&cliffprobe::grade::excerpt(
                c.reason.as_deref().unwrap_or("–"),
                60,
            ))),
            Cell::new(sanitize(&cliffprobe::grade::excerpt(
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
