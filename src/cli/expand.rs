//! The `expand` command: the variants of probe families, streamed as JSON lines.

use anyhow::Result;
use cliffprobe::error::Error;
use cliffprobe::expand::{AxisFilter, ProbeExpansion, Strategy};
use cliffprobe::probe::Probe;
use cliffprobe::project::Project;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `expand` options.
#[derive(Debug, clap::Args)]
pub struct ExpandArgs {
    /// Probe files or folders (default: the suite).
    pub paths: Vec<PathBuf>,
    /// full | pairwise | adaptive (its first round: pairwise) | sample:N | one-at-a-time (default: from config, else pairwise).
    #[arg(long)]
    pub strategy: Option<Strategy>,
    /// Seed for every random choice (default: from config, else 0).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Axes that vary, optionally with values: `persona,format=xml|csv`.
    #[arg(long)]
    pub axes: Option<AxisFilter>,
    /// Only count the variants per probe.
    #[arg(long)]
    pub count: bool,
    /// Allow expansions larger than the safety limit.
    #[arg(long)]
    pub yes: bool,
}

pub(crate) fn expand(project: &Project, a: &ExpandArgs) -> Result<ExitCode> {
    let strategy = project.strategy(a.strategy)?;
    let seed = a.seed.or(project.config.sweep.seed).unwrap_or(0);
    let filter = a.axes.clone().unwrap_or_default();
    let lib = project.library()?;
    let files = project.probe_files(&a.paths)?;
    // Load every probe first: a bad file fails before anything is printed.
    let mut probes = Vec::with_capacity(files.len());
    for f in &files {
        probes.push(Probe::load(f)?);
    }
    if strategy == Strategy::Full && !a.yes {
        let mut total: u64 = 0;
        for p in &probes {
            let v = cliffprobe::expand::axis_values(p, &lib, &filter)?;
            total += v.iter().map(|(_, x)| x.len() as u64).product::<u64>();
        }
        if total > cliffprobe::limits::MAX_VARIANTS_WITHOUT_YES {
            return Err(Error::Refused(format!("`full` would create {total} variants (limit {} without --yes); use --yes, or --strategy pairwise / sample:N", cliffprobe::limits::MAX_VARIANTS_WITHOUT_YES)).into());
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    for p in &probes {
        let x = ProbeExpansion::new(p, &lib)?;
        if a.count {
            let n = x.points(strategy, seed, &filter)?.count();
            writeln!(out, "{}\t{n}", p.id)?;
            continue;
        }
        let mut line = Vec::new();
        for axes in x.points(strategy, seed, &filter)? {
            line.clear();
            x.write_json_line(axes, &mut line)?;
            out.write_all(&line)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
