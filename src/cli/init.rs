//! The `init` command: a new project (cliffprobe.toml, templates/ and an empty probes/).

use anyhow::{Context, Result};
use cliffprobe::axes::AxisLibrary;
use cliffprobe::error::Error;
use cliffprobe::probe::{self};
use std::path::PathBuf;
use std::process::ExitCode;

/// `init` options.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Folder to initialise (default: the current one).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

pub(crate) fn init(a: &InitArgs) -> Result<ExitCode> {
    let mut files: Vec<(PathBuf, &str)> = vec![(
        a.dir.join("cliffprobe.toml"),
        cliffprobe::config::DEFAULT_CONFIG,
    )];
    for (name, text) in AxisLibrary::default_files() {
        files.push((a.dir.join("templates").join(name), text));
    }
    if !a.force {
        let existing: Vec<String> = files
            .iter()
            .filter(|(p, _)| p.exists())
            .map(|(p, _)| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(Error::Refused(format!(
                "{} already exist; use --force to overwrite",
                existing.join(", ")
            ))
            .into());
        }
    }
    for (p, text) in &files {
        probe::write_atomic(p, text)?;
        println!("wrote {}", p.display());
    }
    let probes = a.dir.join("probes");
    std::fs::create_dir_all(&probes).with_context(|| format!("creating {}", probes.display()))?;
    println!("created {}/", probes.display());
    println!(
        "\nnext: cliffprobe templatize INCIDENT.yaml   (turn an incident into a probe family)"
    );
    println!(
        "      cliffprobe sweep                      (run the suite against the models in cliffprobe.toml)"
    );
    Ok(ExitCode::SUCCESS)
}
