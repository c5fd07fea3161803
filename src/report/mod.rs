//! Reports: one [`Report`] value, rendered as text, JSON, Markdown, JUnit XML or HTML.
//!
//! The report is built once (by [`build`], from the store, through [`crate::analysis`]) and
//! every format renders the same value, so the formats cannot disagree about a number. Every
//! renderer is pure and deterministic: same report, same bytes (no clock, no randomness), which
//! is what makes the snapshot tests possible.
//!
//! Text from models and probe files is data: each renderer escapes it for its format (terminal
//! control characters stripped, XML/HTML escaped, Markdown table cells defused).

pub mod build;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod replay;
pub mod tables;
pub mod text;

use crate::analysis::tiers::MeasuredTiers;
use crate::analysis::{
    Breakdown, Comparison, DeltaRow, Finding, Floor, GateResult, Heatmap, ModelResults, Paired,
    TOO_FEW_TEXT, Tally, Trend,
};
use crate::store::RunInfo;

/// Output format of `cliffprobe report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned tables for a terminal or a log.
    Text,
    /// Versioned JSON for scripts.
    Json,
    /// For a pull-request comment or a CI job summary.
    Markdown,
    /// JUnit XML: one testcase per variant and model.
    Junit,
    /// One self-contained HTML file with inline SVG charts.
    Html,
}

/// How the baseline was chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum BaselineKind {
    /// No comparison (one model, no `--baseline`).
    None,
    /// Models of the same run: the first configured model against the others (or `--baseline
    /// MODEL`).
    Model(String),
    /// The same models in another run (`--baseline RUN`).
    Run(Box<RunInfo>),
}

/// Everything a report shows.
#[derive(Debug, Clone)]
pub struct Report {
    /// The run reported on.
    pub run: RunInfo,
    /// How the comparisons were chosen.
    pub baseline: BaselineKind,
    /// Every model of the run, stratified, in report order (configured order first).
    pub models: Vec<Breakdown>,
    /// The variant results behind `models`, same order: filled for JUnit, which lists every
    /// variant; empty for the other formats, which show only counts and flips.
    pub results: Vec<ModelResults>,
    /// Baseline → candidate comparisons.
    pub comparisons: Vec<Comparison>,
    /// Warnings for the top of the report, most important first.
    pub findings: Vec<Finding>,
    /// Probe × axis-value pass rates, one per model.
    pub heatmaps: Vec<Heatmap>,
    /// Aggregate vs hard-tier rate over the runs up to this one, for the focus model.
    pub trend: Option<Trend>,
    /// The floors in force (config, overridden by `--floor`).
    pub floors: Vec<Floor>,
    /// The models the floors apply to (the candidates; every model when there is no comparison).
    pub gated_models: Vec<String>,
    /// The gate's verdict (present when floors or a regression limit exist).
    pub gate: Option<GateResult>,
    /// Whether `--gate` was given (the verdict sets the exit status).
    pub gate_enforced: bool,
    /// Declared vs measured tier per probe, and what moved since the last run.
    pub measured_tiers: Option<MeasuredTiers>,
}

impl Report {
    /// Hard-tier regressions over every comparison.
    pub fn hard_regression_count(&self) -> usize {
        self.comparisons
            .iter()
            .map(|c| c.hard_regressions().count())
            .sum()
    }

    /// One line describing the run.
    pub fn run_line(&self) -> String {
        let r = &self.run;
        format!(
            "run {} · {} · started {} · strategy {}, seed {}, {} sample{} per variant",
            r.id,
            r.status,
            r.started_at,
            r.strategy,
            r.seed,
            r.repeats,
            if r.repeats == 1 { "" } else { "s" }
        )
    }

    /// The counting rule, in one sentence.
    pub fn counting_line(&self) -> String {
        format!(
            "Counts are variants, not samples (a variant passes when most of its graded samples pass); 95% Wilson intervals; \"{TOO_FEW_TEXT}\" below {} variants; errors are outside the rates.",
            crate::analysis::TOO_FEW
        )
    }
}

/// Percent with one decimal, or `–`.
pub fn rate_text(t: &Tally) -> String {
    t.rate()
        .map(crate::analysis::findings::pct)
        .unwrap_or_else(|| "–".into())
}

/// `[lo%, hi%]`, or "too few to say" (or `–` with nothing graded).
pub fn interval_text(t: &Tally) -> String {
    if t.n() == 0 {
        return "–".into();
    }
    match t.interval() {
        Some(i) => format!("[{:.1}%, {:.1}%]", 100.0 * i.lo, 100.0 * i.hi),
        None => TOO_FEW_TEXT.into(),
    }
}

/// `+2.9 pts`, or `–`.
pub fn delta_text(r: &DeltaRow) -> String {
    r.delta
        .map(|d| format!("{:+.1} pts", 100.0 * d))
        .unwrap_or_else(|| "–".into())
}

/// `[−0.9, +5.6] pts`, or "too few to say".
pub fn delta_interval_text(r: &DeltaRow) -> String {
    if r.delta.is_none() {
        return "–".into();
    }
    match r.interval {
        Some(i) => format!("[{:+.1}, {:+.1}] pts", 100.0 * i.lo, 100.0 * i.hi),
        None => TOO_FEW_TEXT.into(),
    }
}

/// The McNemar p-value, or "too few to say".
pub fn p_value_text(p: &Paired) -> String {
    match p.p_value {
        Some(x) if x < 0.0001 => "< 0.0001".into(),
        Some(x) => format!("{x:.4}"),
        None if p.shared == 0 => "–".into(),
        None => TOO_FEW_TEXT.into(),
    }
}

/// Share of failures as a percent, or `–`.
pub fn share_text(x: Option<f64>) -> String {
    x.map(crate::analysis::findings::pct)
        .unwrap_or_else(|| "–".into())
}

/// The first 8 characters of a variant id.
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Column names of the measured-tiers table.
pub const MEASURED_HEADERS: [&str; 8] = [
    "probe",
    "declared",
    "measured",
    "pass fraction",
    "easy",
    "medium",
    "hard",
    "frontier",
];

/// The measured-tiers table's rows (raw text: each renderer escapes it), in probe order.
pub fn measured_rows(m: &MeasuredTiers) -> Vec<[String; 8]> {
    let tier = |t: Option<crate::domain::Tier>| t.map(|t| t.as_str()).unwrap_or("–").to_string();
    m.probes
        .iter()
        .map(|p| {
            [
                p.probe.clone(),
                tier(p.declared),
                tier(p.measured),
                match p.pass_fraction {
                    Some(f) => format!("{:.1}% ({}/{})", 100.0 * f, p.passed, p.graded),
                    None => "–".into(),
                },
                p.variants.easy.to_string(),
                p.variants.medium.to_string(),
                p.variants.hard.to_string(),
                p.variants.frontier.to_string(),
            ]
        })
        .collect()
}

/// One sentence per probe whose measured tier moved (raw text).
pub fn moved_lines(m: &MeasuredTiers) -> Vec<String> {
    m.moved.iter().map(|mv| mv.sentence(&mv.probe)).collect()
}
