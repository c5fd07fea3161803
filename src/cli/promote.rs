//! The `promote` command (and `sweep --promote`): the failing and flaky variants of a run
//! written back into their probe files as hard cases, through [`cliffprobe::promote`].

use anyhow::Result;
use cliffprobe::error::Error;
use cliffprobe::project::Project;
use cliffprobe::promote;
use cliffprobe::store::Store;
use cliffprobe::term::sanitize;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

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
