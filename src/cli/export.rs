//! The `export` command: every case of a run streamed as JSON lines or CSV, to stdout or
//! (atomically) to `--out`.

use anyhow::Result;
use cliffprobe::error::Error;
use cliffprobe::project::Project;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `export` options.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Run id (default: the latest).
    pub run: Option<String>,
    /// jsonl or csv.
    #[arg(long, default_value = "jsonl")]
    pub format: String,
    /// Output file (default: stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The store (path or sqlite:// URL).
    #[arg(long)]
    pub store: Option<String>,
}

/// Runs `cliffprobe export`.
pub fn export(project: &Project, a: &ExportArgs) -> Result<ExitCode> {
    let format = match a.format.as_str() {
        "jsonl" => cliffprobe::export::ExportFormat::Jsonl,
        "csv" => cliffprobe::export::ExportFormat::Csv,
        other => {
            return Err(Error::field(
                "<command line>",
                "--format",
                format!("unknown export format `{other}`; expected jsonl or csv"),
            )
            .into());
        }
    };
    let store = project.open_store(a.store.as_deref())?;
    let run = store.resolve_run(a.run.as_deref())?;
    let n = match &a.out {
        Some(path) => {
            let tmp = path.with_extension("partial");
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?,
            );
            let n = cliffprobe::export::export(&store, &run, format, &mut f)?;
            f.flush()?;
            drop(f);
            std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
            n
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            let n = cliffprobe::export::export(&store, &run, format, &mut w)?;
            w.flush()?;
            n
        }
    };
    eprintln!("exported {n} cases of run {}", run.id);
    if let Some(p) = store
        .shard_progress(&run.id)?
        .filter(|p| p.slices > 1 && !p.is_complete())
    {
        eprintln!(
            "warning: run {} is incomplete: {}; the export holds only the cases stored so far",
            run.id,
            p.summary()
        );
    }
    Ok(ExitCode::SUCCESS)
}
