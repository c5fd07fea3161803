//! Counts of variants in one group (a tier, a class, everything) and the rate they give.

use super::variant::{VariantResult, Verdict};
use super::wilson::{Interval, Z95, wilson};
use serde::Serialize;

/// Below this many graded variants a group gets no interval and no test: "too few to say".
///
/// The rule: with fewer than 10 variants, a 95 % interval spans most of [0, 1] and an exact test
/// can hardly reach significance, so printing numbers would suggest a precision that is not
/// there. The rate itself is still shown (it is what happened), and the floor gate still uses it.
pub const TOO_FEW: u64 = 10;

/// The words printed instead of an interval or a test below [`TOO_FEW`].
pub const TOO_FEW_TEXT: &str = "too few to say";

/// Variant counts of one group for one model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Tally {
    /// Variants that passed.
    pub passed: u64,
    /// Variants that failed.
    pub failed: u64,
    /// Variants with no graded sample (every sample errored): outside the rate.
    pub errors: u64,
    /// Variants still ungraded (judge checks): outside the rate.
    pub ungraded: u64,
}

impl Tally {
    /// Counts one variant.
    pub fn add(&mut self, v: &VariantResult) {
        match v.verdict {
            Verdict::Pass => self.passed += 1,
            Verdict::Fail => self.failed += 1,
            Verdict::Error => self.errors += 1,
            Verdict::Ungraded => self.ungraded += 1,
        }
    }

    /// Graded variants: the `n` of the rate.
    pub fn n(&self) -> u64 {
        self.passed + self.failed
    }

    /// Every variant in the group, graded or not.
    pub fn total(&self) -> u64 {
        self.n() + self.errors + self.ungraded
    }

    /// The pass rate, `None` with no graded variant.
    pub fn rate(&self) -> Option<f64> {
        (self.n() > 0).then(|| self.passed as f64 / self.n() as f64)
    }

    /// Whether there are too few graded variants for an interval or a test.
    pub fn too_few(&self) -> bool {
        self.n() < TOO_FEW
    }

    /// The 95 % Wilson interval, `None` when [too few](Self::too_few).
    pub fn interval(&self) -> Option<Interval> {
        if self.too_few() {
            None
        } else {
            self.interval_any()
        }
    }

    /// The 95 % Wilson interval whatever n is (the gate's `lower` mode needs one).
    pub fn interval_any(&self) -> Option<Interval> {
        wilson(self.passed, self.n(), Z95)
    }
}
