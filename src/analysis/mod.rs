//! Statistics over stored cases: pure functions from case rows to numbers and warnings.
//!
//! This is where the report's honesty lives, so its rules are stated once, here:
//!
//! - **The unit is the variant.** Samples of one variant are folded by majority
//!   ([`variant::fold`]); a temperature-0 model repeating itself is not new evidence.
//! - **Errors are not failures.** A variant whose every sample errored is counted apart and never
//!   enters a rate, an interval or a test.
//! - **Intervals are 95 % Wilson** ([`wilson::wilson`]); deltas get Newcombe's hybrid interval;
//!   "did it change on the same cases" is the exact McNemar test on the shared variants.
//! - **Too few to say**: below [`TOO_FEW`] graded variants a group gets no interval and no test,
//!   and the report prints [`TOO_FEW_TEXT`] instead.
//!
//! Nothing here reads the store or prints: the CLI streams rows in through [`Collector`], and
//! the report module renders what comes out.

pub mod breakdown;
pub mod compare;
pub mod findings;
pub mod gate;
pub mod heatmap;
pub mod mcnemar;
pub mod measured;
pub mod tally;
pub mod tiers;
pub mod trend;
pub mod variant;
pub mod wilson;

pub use breakdown::{Breakdown, ClassTally};
pub use compare::{ALPHA, Comparison, DeltaRow, Flip, Paired, Side};
pub use findings::Finding;
pub use gate::{Floor, GateCheck, GateOn, GateResult};
pub use heatmap::Heatmap;
pub use mcnemar::mcnemar_exact;
pub use tally::{TOO_FEW, TOO_FEW_TEXT, Tally};
pub use trend::{Trend, TrendPoint};
pub use variant::{Collector, Evidence, ModelResults, VariantResult, Verdict};
pub use wilson::{Interval, wilson};
