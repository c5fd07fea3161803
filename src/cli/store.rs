//! The `store` command: operations on a whole store. `store copy` moves a store's history to
//! another store, SQLite or PostgreSQL, in either direction (see the store's `copy` module).

use anyhow::Result;
use cliffprobe::store::Store;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use std::process::ExitCode;

/// `store` options.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

/// The `store` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Copy every run, case, cache entry and replay of one store into another (SQLite ↔
    /// PostgreSQL), keys unchanged, in one transaction.
    Copy(CopyArgs),
}

/// `store copy` options.
#[derive(Debug, clap::Args)]
pub struct CopyArgs {
    /// The store to read: a SQLite path (sqlite://PATH) or postgresql://USER@HOST/DB.
    #[arg(long, value_name = "STORE")]
    pub from: String,
    /// The store to write (created and migrated if needed); none of the source's run or
    /// replay ids may already be in it.
    #[arg(long, value_name = "STORE")]
    pub to: String,
    /// Print the rows copied per table as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `cliffprobe store …`.
pub fn store_cmd(a: &StoreArgs) -> Result<ExitCode> {
    match &a.command {
        StoreCommand::Copy(c) => copy_cmd(c),
    }
}

fn copy_cmd(a: &CopyArgs) -> Result<ExitCode> {
    let from_file = a
        .from
        .strip_prefix("sqlite://")
        .or_else(|| a.from.strip_prefix("sqlite:"))
        .unwrap_or(&a.from);
    if !from_file.contains("://") && !std::path::Path::new(from_file).is_file() {
        return Err(cliffprobe::error::Error::field(
            "<command line>",
            "--from",
            format!("no store at {from_file}"),
        )
        .into());
    }
    let source = Store::open_url(&a.from)?;
    let mut dest = Store::open_url(&a.to)?;
    let counts = source.copy_to(&mut dest)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&counts)?);
    } else {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        t.set_header(["table", "rows"]);
        for (name, n) in &counts.tables {
            t.add_row([name.clone(), n.to_string()]);
        }
        println!(
            "copied {} into {}\n{t}",
            source.path().display(),
            dest.path().display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
