//! The `tiers` command, and the store walk behind the report's measured-tiers section: per
//! probe, the declared and the measured tier, and the probes whose measured tier moved since
//! their last earlier run ([`cliffprobe::analysis::tiers`] has the rule).

use crate::cli::output::{right, table};
use anyhow::Result;
use cliffprobe::analysis::tiers::MeasuredTiers;
use cliffprobe::project::Project;
use cliffprobe::store::RunInfo;
use cliffprobe::term::sanitize;
use comfy_table::Cell;
use std::io::Write;
use std::process::ExitCode;

/// `tiers` options.
#[derive(Debug, clap::Args)]
pub struct TiersArgs {
    /// Run id (default: the latest).
    pub run: Option<String>,
    /// text or json.
    #[arg(long, default_value = "text")]
    pub format: String,
    /// The store (path or sqlite:// URL).
    #[arg(long)]
    pub store: Option<String>,
}

/// Runs `cliffprobe tiers`.
pub fn tiers_cmd(project: &Project, a: &TiersArgs) -> Result<ExitCode> {
    let json = crate::cli::output::wants_json(&a.format)?;
    let store = project.open_store(a.store.as_deref())?;
    let run = store.resolve_run(a.run.as_deref())?;
    let m =
        cliffprobe::analysis::measured::measure(&store, &run, &project.config.tiers.thresholds())?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if json {
        serde_json::to_writer_pretty(&mut out, &m)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", render_text(&m, &run))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn tier_text(t: Option<cliffprobe::domain::Tier>) -> &'static str {
    t.map(|t| t.as_str()).unwrap_or("–")
}

/// The measured tiers as text: a table per probe, then what moved.
pub fn render_text(m: &MeasuredTiers, run: &RunInfo) -> String {
    let mut o = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(
        o,
        "measured tiers of run {} ({} model{}, {} sample{} per variant)",
        m.run,
        run.models.len(),
        if run.models.len() == 1 { "" } else { "s" },
        run.repeats,
        if run.repeats == 1 { "" } else { "s" }
    );
    let _ = writeln!(o, "rule: {}", m.rule);
    if m.probes.is_empty() {
        let _ = writeln!(o, "no cases in run {}", m.run);
        return o;
    }
    // The report's measured-tiers columns, plus two only this command shows.
    let headers: Vec<&str> = cliffprobe::report::MEASURED_HEADERS
        .iter()
        .copied()
        .chain(["unmeasured", "previous"])
        .collect();
    let mut t = table(&headers);
    for p in &m.probes {
        t.add_row(vec![
            Cell::new(sanitize(&p.probe)),
            Cell::new(tier_text(p.declared)),
            Cell::new(tier_text(p.measured)),
            right(match p.pass_fraction {
                Some(f) => format!("{:.1}% ({}/{})", 100.0 * f, p.passed, p.graded),
                None => "–".into(),
            }),
            right(p.variants.easy.to_string()),
            right(p.variants.medium.to_string()),
            right(p.variants.hard.to_string()),
            right(p.variants.frontier.to_string()),
            right(p.variants.unmeasured.to_string()),
            Cell::new(match &p.previous {
                Some(q) => format!("{} in {}", q.measured.as_str(), q.run),
                None => "–".into(),
            }),
        ]);
    }
    let _ = writeln!(o, "{t}");
    let v = &m.variants;
    let _ = writeln!(
        o,
        "variants: {} easy, {} medium, {} hard, {} frontier, {} unmeasured (only errors)",
        v.easy, v.medium, v.hard, v.frontier, v.unmeasured
    );
    if m.variants_compared == 0 {
        let _ = writeln!(
            o,
            "no earlier run measured these variants: nothing to compare with yet"
        );
    } else {
        let _ = writeln!(
            o,
            "{} of {} variants measured in their probe's last earlier run changed measured tier",
            m.variants_moved, m.variants_compared
        );
    }
    if m.moved.is_empty() {
        let _ = writeln!(o, "moved since the last run: none");
    } else {
        let _ = writeln!(o, "moved since the last run:");
        for mv in &m.moved {
            let _ = writeln!(o, "  {}", mv.sentence(&sanitize(&mv.probe)));
        }
    }
    o
}
