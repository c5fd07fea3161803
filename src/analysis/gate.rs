//! The release gate: the floors committed before the candidate was evaluated, checked.
//!
//! A floor is a minimum pass rate for a tier. The gate fails when a gated model's tier rate (or,
//! in `lower` mode, the lower bound of its 95 % Wilson interval) is under its floor, when a
//! floored tier has no graded variant at all (a floor that cannot be shown to hold does not
//! hold), or when hard-tier regressions exceed the allowed number.

use super::breakdown::Breakdown;
use super::findings::pct;
use crate::domain::Tier;
use serde::Serialize;

/// Slack for comparing a rate with a floor written in decimal (45/100 against 0.45).
const EPS: f64 = 1e-9;

/// What a floor is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GateOn {
    /// The tier's pass rate.
    #[default]
    Rate,
    /// The lower bound of the tier's 95 % Wilson interval (stricter).
    Lower,
}

impl GateOn {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            GateOn::Rate => "rate",
            GateOn::Lower => "lower",
        }
    }
}

/// A minimum pass rate for one tier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Floor {
    /// The tier.
    pub tier: Tier,
    /// Minimum, 0..=1.
    pub min: f64,
    /// `config` or `command line`.
    pub source: &'static str,
}

/// One check of the gate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateCheck {
    /// Model checked (empty for the regression count).
    pub model: String,
    /// `easy`…`frontier`, or `hard-regressions`.
    pub subject: String,
    /// The floor (or the maximum number of regressions).
    pub limit: f64,
    /// The value compared (rate, lower bound or count); `None` when there was nothing to measure.
    pub value: Option<f64>,
    /// Graded variants behind the value.
    pub n: u64,
    /// Whether this check holds.
    pub passed: bool,
    /// In words.
    pub reason: String,
}

/// The gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateResult {
    /// What floors are compared with.
    pub on: GateOn,
    /// Every check, floors first.
    pub checks: Vec<GateCheck>,
    /// True when every check holds.
    pub passed: bool,
    /// One line: why it passed or failed.
    pub reason: String,
}

/// Evaluates the floors on every gated model, and the regression limit.
pub fn evaluate(
    floors: &[Floor],
    on: GateOn,
    gated: &[&Breakdown],
    max_regressions: Option<u64>,
    hard_regressions: u64,
) -> GateResult {
    let mut checks = Vec::new();
    for b in gated {
        for f in floors {
            let t = b.tier(f.tier);
            let value = match on {
                GateOn::Rate => t.rate(),
                GateOn::Lower => t.interval_any().map(|i| i.lo),
            };
            let what = match on {
                GateOn::Rate => "pass rate",
                GateOn::Lower => "interval lower bound",
            };
            let few = if t.too_few() && t.n() > 0 {
                format!(
                    " ({} variants: too few to say, floor applied anyway)",
                    t.n()
                )
            } else {
                String::new()
            };
            let (passed, reason) = match value {
                None => (
                    false,
                    format!(
                        "{} has no graded {} variants: the {} floor {} cannot be shown to hold",
                        b.model,
                        f.tier.as_str(),
                        f.tier.as_str(),
                        pct(f.min)
                    ),
                ),
                Some(v) if v + EPS >= f.min => (
                    true,
                    format!(
                        "{} {} {what} {} ≥ floor {} (n={}){few}",
                        b.model,
                        f.tier.as_str(),
                        pct(v),
                        pct(f.min),
                        t.n()
                    ),
                ),
                Some(v) => (
                    false,
                    format!(
                        "{} {} {what} {} < floor {} (n={}){few}",
                        b.model,
                        f.tier.as_str(),
                        pct(v),
                        pct(f.min),
                        t.n()
                    ),
                ),
            };
            checks.push(GateCheck {
                model: b.model.clone(),
                subject: f.tier.as_str().into(),
                limit: f.min,
                value,
                n: t.n(),
                passed,
                reason,
            });
        }
    }
    if let Some(max) = max_regressions {
        let passed = hard_regressions <= max;
        checks.push(GateCheck {
            model: String::new(),
            subject: "hard-regressions".into(),
            limit: max as f64,
            value: Some(hard_regressions as f64),
            n: hard_regressions,
            passed,
            reason: format!(
                "{hard_regressions} hard-tier regression{} {} maximum {max}",
                if hard_regressions == 1 { "" } else { "s" },
                if passed { "≤" } else { ">" }
            ),
        });
    }
    let passed = checks.iter().all(|c| c.passed);
    let reason = if checks.is_empty() {
        "no floors configured and no --max-regressions: nothing to gate on".to_string()
    } else {
        let failing: Vec<&str> = checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.reason.as_str())
            .collect();
        if failing.is_empty() {
            checks
                .iter()
                .map(|c| c.reason.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        } else {
            failing.join("; ")
        }
    };
    GateResult {
        on,
        checks,
        passed,
        reason,
    }
}
