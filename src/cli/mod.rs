//! The command line: the clap definitions of every command, dispatch to the command's file,
//! and errors mapped to exit statuses. Each command's options and printing live in a file of
//! their own (`init.rs` … `store.rs`); what they share for output is in `output.rs`. This is the
//! binary's module: the library never imports it.
//!
//! Exit statuses: 0 success; 1 a failed run (store, network) or a failed gate; 2 bad input
//! (a file, a field, an option), with nothing written. A closed stdout pipe is success.

mod brittleness;
mod cases;
mod expand;
mod export;
mod init;
mod models;
mod output;
mod paraphrase;
mod promote;
mod replay;
mod report;
mod shrink;
mod store;
mod sweep;
mod templatize;
mod tiers;
mod trend;
mod unlock;
mod validate;
mod view;

use anyhow::Result;
use clap::{Parser, Subcommand};
use cliffprobe::error::Error;
use cliffprobe::project::Project;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Turn LLM production incidents into families of variants, sweep them against models, and
/// report pass rates per difficulty tier and capability class.
#[derive(Debug, Parser)]
#[command(name = "cliffprobe", version, about, max_term_width = 100)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = "cliffprobe.toml")]
    pub config: PathBuf,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands, in pipeline order.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write cliffprobe.toml, templates/ and an empty probes/ for a new project.
    Init(init::InitArgs),
    /// Turn an incident (native record, or captured OpenAI/Anthropic request) into a probe family.
    Templatize(templatize::TemplatizeArgs),
    /// Ask a model for paraphrases of probe questions, per persona, and freeze them into the files.
    Paraphrase(crate::cli::paraphrase::ParaphraseArgs),
    /// Check probe files; report every problem with file, line and field.
    Validate(validate::ValidateArgs),
    /// Stream the variants of probe families as JSON lines.
    Expand(expand::ExpandArgs),
    /// Run the variants against the configured models, grade them and store every case.
    Sweep(crate::cli::sweep::SweepArgs),
    /// Stream every case of a run as JSON lines or CSV.
    Export(crate::cli::export::ExportArgs),
    /// Pass rates per tier and capability class, deltas, regressions and the floors gate.
    Report(crate::cli::report::ReportArgs),
    /// Aggregate vs hard-tier pass rate across runs, and whether the gap is widening.
    Trend(crate::cli::trend::TrendArgs),
    /// Declared vs measured tier per probe (pass fraction over the panel), and what moved.
    Tiers(crate::cli::tiers::TiersArgs),
    /// Per probe × model: which variants break the model, along which axis, the minimal change.
    Brittleness(crate::cli::brittleness::BrittlenessArgs),
    /// Write the failing and flaky variants of a run back into their probe files as hard cases.
    Promote(crate::cli::promote::PromoteArgs),
    /// Shrink a failing variant to its minimal cause (delta debugging over axes, calling the model).
    Shrink(crate::cli::shrink::ShrinkArgs),
    /// List a probe's promoted cases with their history.
    Cases(crate::cli::cases::CasesArgs),
    /// Re-run logged production calls on a candidate model and report the decisions that flip.
    Replay(crate::cli::replay::ReplayArgs),
    /// Browse runs, families, cases and comparisons in a local, read-only web viewer.
    View(crate::cli::view::ViewArgs),
    /// Show who holds the store's sweep lock; remove a lock its process left behind.
    Unlock(crate::cli::unlock::UnlockArgs),
    /// List the configured models; with --check, find out whether each can be swept.
    Models(crate::cli::models::ModelsArgs),
    /// Operations on a whole store: `store copy --from SQLITE --to POSTGRES` (and back).
    Store(crate::cli::store::StoreArgs),
}

/// Entry point: parse, run, map errors to exit statuses.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            let input = e
                .chain()
                .any(|c| c.downcast_ref::<Error>().is_some_and(Error::is_input));
            eprintln!("error: {}", cliffprobe::term::sanitize(&chain_message(&e)));
            ExitCode::from(if input { 2 } else { 1 })
        }
    }
}

/// A closed stdout (`cliffprobe expand | head`) is success, whether the write failed directly
/// or inside serde_json (which wraps the io error without exposing it as a source).
/// The error and its causes joined by `: ` (as `{:#}` does), skipping a cause whose text the
/// message already ends with: `Error::Io` shows its io error itself, which is also its source,
/// so `{:#}` printed "No such file or directory (os error 2)" twice.
fn chain_message(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for c in e.chain() {
        let part = c.to_string();
        if msg.ends_with(&part) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&part);
    }
    msg
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

fn run(cli: Cli) -> Result<ExitCode> {
    // Without a cliffprobe.toml the defaults apply; a --config that names a missing file is a
    // typo, not a wish for defaults.
    if !matches!(cli.command, Command::Init(_))
        && cli.config != Path::new("cliffprobe.toml")
        && !cli.config.exists()
    {
        return Err(Error::field(
            "<command line>",
            "--config",
            format!("no configuration file at {}", cli.config.display()),
        )
        .into());
    }
    match cli.command {
        Command::Init(a) => init::init(&a),
        Command::Templatize(a) => templatize::templatize_cmd(&Project::load(&cli.config)?, &a),
        Command::Paraphrase(a) => {
            crate::cli::paraphrase::paraphrase_cmd(&Project::load(&cli.config)?, &a)
        }
        Command::Validate(a) => validate::validate(&Project::load(&cli.config)?, &a),
        Command::Expand(a) => expand::expand(&Project::load(&cli.config)?, &a),
        Command::Sweep(a) => crate::cli::sweep::sweep(&Project::load(&cli.config)?, &a),
        Command::Export(a) => crate::cli::export::export(&Project::load(&cli.config)?, &a),
        Command::Report(a) => crate::cli::report::report(&Project::load(&cli.config)?, &a),
        Command::Trend(a) => crate::cli::trend::trend(&Project::load(&cli.config)?, &a),
        Command::Tiers(a) => crate::cli::tiers::tiers_cmd(&Project::load(&cli.config)?, &a),
        Command::Brittleness(a) => {
            crate::cli::brittleness::brittleness_cmd(&Project::load(&cli.config)?, &a)
        }
        Command::Promote(a) => crate::cli::promote::promote_cmd(&Project::load(&cli.config)?, &a),
        Command::Shrink(a) => crate::cli::shrink::shrink_cmd(&Project::load(&cli.config)?, &a),
        Command::Cases(a) => crate::cli::cases::cases_cmd(&Project::load(&cli.config)?, &a),
        Command::Replay(a) => crate::cli::replay::replay_cmd(&Project::load(&cli.config)?, &a),
        Command::View(a) => crate::cli::view::view_cmd(Project::load(&cli.config)?, &a),
        Command::Unlock(a) => crate::cli::unlock::unlock_cmd(&Project::load(&cli.config)?, &a),
        Command::Models(a) => crate::cli::models::models_cmd(&Project::load(&cli.config)?, &a),
        Command::Store(a) => crate::cli::store::store_cmd(&a),
    }
}
