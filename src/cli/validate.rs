//! The `validate` command: checks probe files and reports every problem with file, line and
//! field.

use anyhow::Result;
use cliffprobe::expand::ProbeExpansion;
use cliffprobe::probe::Probe;
use cliffprobe::project::Project;
use std::path::PathBuf;
use std::process::ExitCode;

/// `validate` options.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Probe files or folders (default: the suite).
    pub paths: Vec<PathBuf>,
}

pub(crate) fn validate(project: &Project, a: &ValidateArgs) -> Result<ExitCode> {
    let files = project.probe_files(&a.paths)?;
    let lib = project.library()?;
    let mut bad = 0;
    let mut ids: std::collections::HashMap<String, PathBuf> = std::collections::HashMap::new();
    for f in &files {
        match Probe::load(f) {
            Ok(p) => {
                if let Some(prev) = ids.insert(p.id.clone(), f.clone()) {
                    bad += 1;
                    eprintln!(
                        "{}: field `id`: `{}` is also the id of {}",
                        f.display(),
                        p.id,
                        prev.display()
                    );
                    continue;
                }
                if let Err(e) = ProbeExpansion::new(&p, &lib)
                    .and_then(|x| x.variant(cliffprobe::render::VariantAxes::default()))
                {
                    bad += 1;
                    eprintln!("{}: {e}", f.display());
                    continue;
                }
                if let Some(set) = &p.paraphrases
                    && let Some(unknown) = set.personas.keys().find(|k| {
                        *k != cliffprobe::axes::ORIGINAL
                            && !lib.personas.iter().any(|x| &x.name == *k)
                    })
                {
                    bad += 1;
                    eprintln!(
                        "{}: field `paraphrases.personas.{unknown}`: unknown persona (not in the axis library): remove it or add the persona to templates/persona.yaml",
                        f.display()
                    );
                }
            }
            Err(e) => {
                bad += 1;
                eprintln!("{}", cliffprobe::term::sanitize(&e.to_string()));
            }
        }
    }
    if bad > 0 {
        eprintln!("{bad} of {} probe files have problems", files.len());
        return Ok(ExitCode::from(2));
    }
    println!("{} probe files OK", files.len());
    Ok(ExitCode::SUCCESS)
}
