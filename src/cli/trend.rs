//! The `trend` command: the aggregate and hard-tier pass rates of one model over the runs in
//! the store, and a warning when the gap widened run after run.

use super::output::{use_color, write_output};
use anyhow::Result;
use cliffprobe::analysis::{Trend, trend::DEFAULT_WINDOW};
use cliffprobe::error::Error;
use cliffprobe::project::Project;
use cliffprobe::report::{self, build::trend_points};
use std::path::PathBuf;
use std::process::ExitCode;

/// Output format of `trend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TrendFormat {
    /// Aligned table.
    Text,
    /// Versioned JSON.
    Json,
    /// Self-contained HTML page.
    Html,
}

/// `trend` options.
#[derive(Debug, clap::Args)]
pub struct TrendArgs {
    /// The model (default: the first configured model found in the store).
    #[arg(long)]
    pub model: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TrendFormat::Text)]
    pub format: TrendFormat,
    /// Write to this file (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Warn when the gap widened in each of the last N runs.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WINDOW)]
    pub window: usize,
    /// The store (path or sqlite:// URL).
    #[arg(long)]
    pub store: Option<String>,
}

/// Runs `cliffprobe trend`.
pub fn trend(project: &Project, a: &TrendArgs) -> Result<ExitCode> {
    let store = project.open_store(a.store.as_deref())?;
    let runs = store.runs()?;
    if runs.is_empty() {
        // The store's own message: "no runs yet: run `cliffprobe sweep` first".
        store.resolve_run(None)?;
    }
    let model = match &a.model {
        Some(m) => {
            if !runs.iter().any(|r| r.models.contains(m)) {
                let mut known: Vec<&String> = runs.iter().flat_map(|r| &r.models).collect();
                known.sort();
                known.dedup();
                return Err(Error::field(
                    "<command line>",
                    "--model",
                    format!(
                        "no run in the store has model `{m}`; models seen: {}",
                        known
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
                .into());
            }
            m.clone()
        }
        None => project
            .config
            .models
            .keys()
            .find(|m| runs.iter().any(|r| r.models.contains(m)))
            .cloned()
            .or_else(|| runs.last().and_then(|r| r.models.first().cloned()))
            .ok_or_else(|| Error::Refused("the runs in the store have no models".into()))?,
    };
    let points = trend_points(&store, &runs, &model, None)?;
    let t = Trend::new(model, points, a.window);
    let text = match a.format {
        TrendFormat::Text => report::text::render_trend(&t, use_color(a.out.as_ref())),
        TrendFormat::Json => report::json::render_trend(&t),
        TrendFormat::Html => report::html::render_trend(&t),
    };
    write_output(a.out.as_ref(), &text)?;
    Ok(ExitCode::SUCCESS)
}
