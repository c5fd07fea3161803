//! The sweep summary's counters: cases per status for each model × tier, and each model's
//! tokens and cost. Named fields, so a reader never has to know which index is `fail`.

use crate::domain::Tier;
use crate::grade::CaseStatus;
use indexmap::IndexMap;

/// Cases per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// `pass` cases.
    pub pass: u64,
    /// `fail` cases.
    pub fail: u64,
    /// `error` cases.
    pub error: u64,
    /// `ungraded` cases.
    pub ungraded: u64,
}

impl StatusCounts {
    /// The counter of one status.
    pub fn of_mut(&mut self, status: CaseStatus) -> &mut u64 {
        match status {
            CaseStatus::Pass => &mut self.pass,
            CaseStatus::Fail => &mut self.fail,
            CaseStatus::Error => &mut self.error,
            CaseStatus::Ungraded => &mut self.ungraded,
        }
    }

    /// Counts one more case of `status`.
    pub fn add(&mut self, status: CaseStatus) {
        *self.of_mut(status) += 1;
    }

    /// Moves one case from `from` to `to` (after a regrade). Saturating: a resumed run did not
    /// count the cases it kept.
    pub fn moved(&mut self, from: CaseStatus, to: CaseStatus) {
        let c = self.of_mut(from);
        *c = c.saturating_sub(1);
        self.add(to);
    }
}

/// Per model × tier case counts, for the summary.
pub type TierCounts = IndexMap<(String, Tier), StatusCounts>;

/// One model's tokens and cost over a sweep (fresh answers; cached ones cost nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ModelUsage {
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost in US dollars (0 without prices).
    pub cost_usd: f64,
}

/// Tokens and cost per model.
pub type UsageByModel = IndexMap<String, ModelUsage>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_status_and_moves_saturate() {
        let mut c = StatusCounts::default();
        c.add(CaseStatus::Pass);
        c.add(CaseStatus::Ungraded);
        c.moved(CaseStatus::Ungraded, CaseStatus::Fail);
        c.moved(CaseStatus::Error, CaseStatus::Pass);
        assert_eq!(
            c,
            StatusCounts {
                pass: 2,
                fail: 1,
                error: 0,
                ungraded: 0
            }
        );
    }
}
