//! Aggregate against hard-tier pass rate across runs: the early sign of a cliff is a gap that
//! keeps widening while the aggregate looks fine.

use super::findings::{Finding, pct};
use super::tally::Tally;
use serde::Serialize;

/// Runs looked at for the widening warning, by default.
pub const DEFAULT_WINDOW: usize = 3;

/// One run of one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendPoint {
    /// Run id.
    pub run_id: String,
    /// When the run started.
    pub started_at: String,
    /// All variants.
    pub aggregate: Tally,
    /// Hard-tier variants.
    pub hard: Tally,
    /// Aggregate rate − hard rate; `None` when either has no graded variant.
    pub gap: Option<f64>,
}

impl TrendPoint {
    /// A point from its tallies.
    pub fn new(run_id: String, started_at: String, aggregate: Tally, hard: Tally) -> TrendPoint {
        let gap = match (aggregate.rate(), hard.rate()) {
            (Some(a), Some(h)) => Some(a - h),
            _ => None,
        };
        TrendPoint {
            run_id,
            started_at,
            aggregate,
            hard,
            gap,
        }
    }
}

/// The trend of one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trend {
    /// Model name.
    pub model: String,
    /// Runs in time order (oldest first).
    pub points: Vec<TrendPoint>,
    /// How many of the last runs the widening rule looks at.
    pub window: usize,
    /// Set when the gap widened run after run over the window.
    pub warning: Option<Finding>,
}

impl Trend {
    /// Builds the trend and applies the rule: warn when each of the last `window` runs has a
    /// gap, and the gap grew strictly from each run to the next.
    pub fn new(model: String, points: Vec<TrendPoint>, window: usize) -> Trend {
        let window = window.max(2);
        let mut warning = None;
        if points.len() >= window {
            let tail = &points[points.len() - window..];
            let gaps: Option<Vec<f64>> = tail.iter().map(|p| p.gap).collect();
            if let Some(g) = gaps
                && g.windows(2).all(|w| w[1] > w[0] + 1e-12)
            {
                let first = &tail[0];
                let last = &tail[window - 1];
                warning = Some(Finding {
                    code: "gap-widening",
                    message: format!(
                        "{model}: the gap between aggregate and hard-tier pass rate widened in each of the last {window} runs ({} → {}, {}); aggregate {} → {}, hard {} → {}: the early sign of a capability cliff",
                        pct(g[0]),
                        pct(g[window - 1]),
                        super::findings::points(g[window - 1] - g[0]),
                        pct(first.aggregate.rate().unwrap_or(0.0)),
                        pct(last.aggregate.rate().unwrap_or(0.0)),
                        pct(first.hard.rate().unwrap_or(0.0)),
                        pct(last.hard.rate().unwrap_or(0.0)),
                    ),
                });
            }
        }
        Trend {
            model,
            points,
            window,
            warning,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(i: usize, agg: u64, hard: u64) -> TrendPoint {
        let t = |p: u64| Tally {
            passed: p,
            failed: 100 - p,
            ..Tally::default()
        };
        TrendPoint::new(
            format!("r{i}"),
            format!("2026-01-0{i}T00:00:00Z"),
            t(agg),
            t(hard),
        )
    }

    #[test]
    fn widening_needs_strict_growth_over_the_window() {
        let t = Trend::new(
            "m".into(),
            vec![point(1, 80, 60), point(2, 85, 55), point(3, 90, 50)],
            3,
        );
        assert!(t.warning.is_some());
        let t = Trend::new(
            "m".into(),
            vec![point(1, 80, 60), point(2, 85, 65), point(3, 90, 50)],
            3,
        );
        assert!(t.warning.is_none(), "flat step");
        let t = Trend::new("m".into(), vec![point(1, 80, 60), point(2, 85, 55)], 3);
        assert!(t.warning.is_none(), "fewer runs than the window");
    }
}
