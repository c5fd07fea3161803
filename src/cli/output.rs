//! What the commands share for their output: `--format text|json`, writing a document to
//! stdout or (atomically) to `--out`, colour only on a terminal, and the house table style.

use anyhow::Result;
use cliffprobe::error::Error;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

pub(crate) use cliffprobe::term::{right, table};

/// `--format text|json` of the analysis commands: true for JSON; anything else is an input
/// error naming the flag.
pub(crate) fn wants_json(format: &str) -> std::result::Result<bool, Error> {
    match format {
        "text" => Ok(false),
        "json" => Ok(true),
        other => Err(Error::field(
            "<command line>",
            "--format",
            format!("unknown format `{other}`; expected text or json"),
        )),
    }
}

/// Writes `text` to `out` (atomically, then says so on stderr), else to stdout.
pub(crate) fn write_output(out: Option<&PathBuf>, text: &str) -> Result<()> {
    match out {
        Some(p) => {
            cliffprobe::probe::write_atomic(p, text)?;
            eprintln!("wrote {}", p.display());
        }
        None => {
            let mut so = std::io::stdout().lock();
            so.write_all(text.as_bytes())?;
            so.flush()?;
        }
    }
    Ok(())
}

/// Colour: only on a terminal, and not with `NO_COLOR`.
pub(crate) fn use_color(out: Option<&PathBuf>) -> bool {
    out.is_none() && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// A variant's axis values as `axis=value, …` (`(canonical)` for none), terminal-safe.
pub(crate) fn axes_text(axes: &indexmap::IndexMap<String, String>) -> String {
    if axes.is_empty() {
        "(canonical)".into()
    } else {
        cliffprobe::term::sanitize(
            &axes
                .iter()
                .map(|(a, v)| format!("{a}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
        )
    }
}
