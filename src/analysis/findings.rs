//! The sentences a report must open with: the capability cliff spelled out in words.
//!
//! An average can rise while the hard tail stays unsolved; these checks turn that shape into
//! warnings, so the report cannot be read as "the average went up" alone.

use super::breakdown::Breakdown;
use super::compare::Comparison;
use crate::domain::Tier;
use serde::Serialize;

/// A rise in the hard tier's share of failures at least this large (in rate units) is flagged.
pub const CONCENTRATION_STEP: f64 = 0.05;

/// One warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable code for scripts: `aggregate-up-hard-flat`, `aggregate-up-hard-down`,
    /// `failures-concentrate-hard`, `hard-regressions`, `no-hard-tier`, `gap-widening`.
    pub code: &'static str,
    /// The sentence.
    pub message: String,
}

/// Percent with one decimal.
pub fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// Signed percentage points with one decimal.
pub fn points(x: f64) -> String {
    format!("{:+.1} points", 100.0 * x)
}

/// Formats a p-value for people.
pub fn p_text(p: f64) -> String {
    if p < 0.0001 {
        "p < 0.0001".into()
    } else {
        format!("p = {p:.4}")
    }
}

/// The warnings for one comparison, most important first.
pub fn comparison_findings(c: &Comparison, base: &Breakdown, cand: &Breakdown) -> Vec<Finding> {
    let mut out = Vec::new();
    let (bl, cl) = (c.baseline_label(), c.candidate_label());
    let hard = c.tier(Tier::Hard).filter(|r| r.delta.is_some());
    let agg_rose = c.aggregate.delta.is_some_and(|d| d > 0.0);
    let agg = |c: &Comparison| {
        format!(
            "{} → {}",
            pct(c.aggregate.baseline.rate().unwrap_or(0.0)),
            pct(c.aggregate.candidate.rate().unwrap_or(0.0))
        )
    };
    match hard {
        None => out.push(Finding {
            code: "no-hard-tier",
            message: format!(
                "{bl} → {cl}: no graded hard-tier variants on both sides, so this comparison says \
                 nothing about the hard tail"
            ),
        }),
        Some(h) if agg_rose => {
            let d = h.delta.unwrap_or(0.0);
            let rates = format!(
                "{} → {}",
                pct(h.baseline.rate().unwrap_or(0.0)),
                pct(h.candidate.rate().unwrap_or(0.0))
            );
            let test = match h.paired.p_value {
                Some(p) => format!(
                    "exact McNemar {} on {} shared variants",
                    p_text(p),
                    h.paired.shared
                ),
                None => format!(
                    "{} shared variants: {}",
                    h.paired.shared,
                    super::TOO_FEW_TEXT
                ),
            };
            if d < 0.0 {
                out.push(Finding {
                    code: "aggregate-up-hard-down",
                    message: format!(
                        "{bl} → {cl}: the aggregate rose ({}) while the hard tier FELL ({rates}, {}; {test})",
                        agg(c),
                        points(d)
                    ),
                });
            } else if !h.paired.significant() {
                let what = if h.paired.p_value.is_none() {
                    "cannot be told apart from no change"
                } else {
                    "is not significant"
                };
                out.push(Finding {
                    code: "aggregate-up-hard-flat",
                    message: format!(
                        "{bl} → {cl}: the aggregate rose ({}) while the hard tier stayed flat: its own change ({rates}, {}) {what} ({test})",
                        agg(c),
                        points(d)
                    ),
                });
            }
        }
        Some(_) => {}
    }
    if let (Some(bs), Some(cs)) = (
        base.failure_share(Tier::Hard),
        cand.failure_share(Tier::Hard),
    ) && cs - bs >= CONCENTRATION_STEP
    {
        out.push(Finding {
            code: "failures-concentrate-hard",
            message: format!(
                "{bl} → {cl}: failures now concentrate in the hard tier: {} of {cl}'s failing variants are hard (was {} for {bl}); failing variants {} → {}",
                pct(cs),
                pct(bs),
                base.aggregate.failed,
                cand.aggregate.failed
            ),
        });
    }
    let n = c.hard_regressions().count();
    if n > 0 {
        out.push(Finding {
            code: "hard-regressions",
            message: format!(
                "{bl} → {cl}: {n} hard/frontier variant{} that {bl} passed now fail{} on {cl} (each listed under \"Hard-tier regressions\")",
                if n == 1 { "" } else { "s" },
                if n == 1 { "s" } else { "" }
            ),
        });
    }
    out
}
