//! The adaptive strategy: a pairwise covering array first, then follow-up rounds inside the
//! same run, each planned from the evidence stored so far, until every axis value is shown a
//! cause or cleared, or the call budget ends.
//!
//! # Decisions
//! Per probe × model, every value `v` of every varying axis is judged on its **clean variants**:
//! the graded variants with `v` whose other changed values are neither decided causes nor
//! suspects (values whose clean variants fail often — cleared ones included when a quarter of
//! them fail, a flaky value's look —, or, before they have any, whose cases fail in at least
//! half) nor `v`'s partner in a shown interaction. A variant fails when most of its samples fail: samples of one variant are
//! not independent evidence. A clean variant of `v` therefore fails because of `v`, or by chance.
//! With `k` of `n` clean variants failing:
//! - **cause** when `P(X ≥ k | n, ½) ≤ α / m`: `v` makes most otherwise-clean variants fail;
//! - **cleared** when `P(X ≤ k | n, ½) ≤ α / m`: most of them pass;
//! - **undecided** otherwise,
//!
//! with `α` = [`ALPHA`] and `m` the number of values judged (Bonferroni over the probe ×
//! model). A value that fails only together with another value is cleared here: a single-value
//! cause is never claimed for half of a pair.
//!
//! # Interactions
//! A pair of values of two axes, each cleared alone, seen failing together in a clean variant
//! (no suspect value besides) — or two values that are suspects only because they keep meeting
//! (neither a cause nor failing in most of its clean variants, the pair failing in most of at
//! least two of its variants with no other suspect) — is tested on more clean variants with both; it is an
//! **interaction** when `P(X ≥ k | n, ½) ≤ α / M`, `M` every possible pair of values of the
//! probe (fixed in advance, not the pairs the data suggested), and dismissed once most of its
//! variants pass. Once every value is decided, the rounds cover each pair of cleared values in
//! some clean variant, so a pair that the covering array only met on a dirty background still
//! gets its chance. Once a pair is shown, a variant with both values is no evidence about
//! either value alone, so each half is judged (and cleared) on its other variants.
//!
//! # Witnesses and 1-minimality
//! For every cause the rounds run the canonical with only the cause's values changed (and, for
//! an interaction, each of its two values alone). A cause is reported **1-minimal** when that
//! variant failed and every variant with one of its values reverted passed (the canonical, for
//! a single value).
//!
//! # Follow-up rounds
//! Every undecided value gets new points with that value and background values drawn from the
//! still undecided (never suspect) and the cleared values of the other axes (not those whose
//! clean variants still fail a quarter of the time: a flaky value's chance failures would be
//! blamed on its neighbours), so one point is clean evidence for up to five values at once,
//! distinct from every point already run. Values still undecided past the decisive number of
//! clean variants (a pass rate near the middle, often a flaky value) and flaky values come
//! last, after the pair coverage.
//!
//! A value is **parked** when it is undecided past the decisive count, a quarter or more of
//! its clean variants fail, and yet `P(X ≤ k | n, ½) ≤` [`FUTILITY`]: more evidence would most
//! likely clear it and almost never make it a cause. It gets new points only in a round in
//! which nothing else asks for any (no open pair, no pair coverage, no other value), so a
//! value failing at random a third of the time no longer eats the budget the causes and the
//! interactions need. Parking decides nothing: the value stays undecided until the test above
//! decides it. A round's points go through the ordinary sweep ([`crate::sweep::run`], resumed, with
//! [`SweepOptions::points`](crate::sweep::SweepOptions::points)), so the cache, the limits, the retries and the store are the
//! sweep's. The budget counts the run's cases (a cached answer included), a repeat's new
//! samples included.
//!
//! # Repeats where the model is flaky
//! A round re-runs, with [`REPEAT_SAMPLES`] samples (through the plan's per-point sample
//! count, [`PlannedPoint::samples`](crate::sweep::PlannedPoint::samples): the sweep keeps the samples already graded and runs the
//! rest), the canonical variant once, and a few failing clean variants of each value still
//! undecided past the decisive count. A prompt that fails for a fixed reason fails again; one
//! that fails at random does not. A value is **flaky** when the samples of one of its
//! variants disagree and no flakier value (one on more disagreeing variants) on that variant
//! explains it; when the canonical's samples disagree, every value is.
//!
//! Further repeats go only where a majority could change a decision: a flaky value whose
//! clean variants fail in at least half has its variants run once topped up to
//! [`REPEAT_SAMPLES`] samples and its new points get as many (a cause is never claimed on
//! single samples of a flaky value), and so does every point once the canonical is flaky. A
//! flaky value passing in most of its clean variants runs its new points once: a single
//! failing sample only makes it harder to clear (the error is on the safe side), and a new
//! variant teaches more than two more samples of an old one. Each variant counts once in the
//! test above, by the majority of its samples (the samples of one variant are not independent
//! evidence about the value), so a value failing at random in fewer than half of the calls is
//! cleared rather than flagged, once enough variants are in, or parked. A flaky value is
//! never background for another value's evidence. The report gives per value the repeats run
//! on its variants and whether it is flaky.
//!
//! # Error rates and looking again
//! The tests are re-run on all the evidence after every round, and a value decided gets no
//! more points: a sequential design with at most [`MAX_ROUNDS`] looks, each at `α / m`. The
//! looks are not separately corrected for; what keeps the repeated looks honest is that a
//! value is only ever looked at again with more variants, that a harmless value's failure
//! rate sits far below the ½ the cause test is against (its chance of ever crossing the bound
//! is far below `α / m` per look), and that the values whose rate sits nearest ½ — where
//! repeated looks would matter — are parked rather than sampled until they cross. The survey
//! in `tests/it/adaptive.rs` (`adaptive_survey`) measures the false alarms that result.

//! # Thresholds
//! An ordered axis whose values from some level on are all causes and below it all cleared is
//! reported as one threshold cause ("length from 8k on, any position"), not as one cause per
//! value. Length is always ordered (levels in library order, the position a second factor);
//! a persona, phrasing or format library file declares its values ordered with
//! `ordered: true` (each value its own level, in file order).

mod decision;
mod evidence;
mod planner;
mod report;
mod rounds;
mod statistics;
mod threshold;

pub use decision::Decision;
pub use report::{
    AdaptiveReport, GroupDecisions, Interaction, MinimalCause, Minimality, ValueDecision,
    render_text,
};
pub use rounds::run;
pub use statistics::binom_upper_half;
pub use threshold::Threshold;

use crate::axes::AxisName;

/// Family-wise error rate of the per-value decisions of one probe × model.
pub const ALPHA: f64 = 0.05;

/// The default budget, as a fraction of the full product's cases (at least three times the
/// covering array, at most the full product).
pub const DEFAULT_BUDGET_FRACTION: f64 = 0.048;

/// Most follow-up rounds one run makes.
pub const MAX_ROUNDS: usize = 40;

/// Samples a variant gets once its value is shown flaky (its samples disagree) or the
/// canonical is: odd, so a variant's majority is never a tie.
pub const REPEAT_SAMPLES: u32 = 3;

/// The level of the futility test that parks a value (see `planner::parked`): not corrected for the
/// number of values, since parking only withholds the budget and never makes a decision.
pub const FUTILITY: f64 = 0.05;

/// The number of axes: a variant's value indices fit in a fixed array.
const AXES: usize = AxisName::ALL.len();

/// A pair of values: (axis index, value index) × 2, the lower axis first.
type ValuePair = ((usize, usize), (usize, usize));

/// The value lists of a probe, per axis in [`AxisName::ALL`] order.
type Values = Vec<(AxisName, Vec<String>)>;

#[cfg(test)]
mod tests {
    use super::decision::{State, decide, flaky_values};
    use super::evidence::{Group, Obs};
    use super::planner::{axes_of, decisive_count, parked, plan_group, sizes};
    use super::report::report_group;
    use super::*;
    use crate::axes::ORIGINAL;
    use crate::render::VariantAxes;
    use crate::sweep::PlannedPoint;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::HashSet;

    /// A full product of 11 personas × 3 formats, failing exactly on format `x`.
    #[test]
    fn decide_calls_the_failing_value_a_cause_and_clears_the_other() {
        let personas: Vec<String> = std::iter::once(ORIGINAL.to_string())
            .chain((1..=10).map(|i| format!("p{i}")))
            .collect();
        let values: Values = vec![
            (AxisName::Persona, personas),
            (AxisName::Phrasing, vec![ORIGINAL.into()]),
            (AxisName::Length, vec![ORIGINAL.into()]),
            (
                AxisName::Format,
                vec![ORIGINAL.into(), "x".into(), "y".into()],
            ),
        ];
        let mut obs = Vec::new();
        for p in 0..11 {
            for f in 0..3 {
                let fail = (f == 1) as u64;
                obs.push(Obs {
                    idx: [p, 0, 0, f, 0],
                    pass: 1 - fail,
                    fail,
                });
            }
        }
        let g = Group {
            model: "m".into(),
            probe: "p".into(),
            obs,
        };
        let st = decide(&g, &values);
        assert_eq!(st.decision[3][1], Decision::Cause);
        assert_eq!(st.counts[3][1][..2], [11, 11]);
        assert_eq!(st.decision[3][2], Decision::Cleared);
        // A persona's clean variants exclude format x: two each, not enough either way.
        assert_eq!(st.decision[0][1], Decision::Undecided, "{:?}", st.counts[0]);
        assert_eq!(st.counts[0][1][..2], [2, 0]);
        assert!(st.pairs.is_empty());
        let r = report_group(&g, &values, &st, &[AxisName::Length]);
        assert_eq!(r.causes, vec!["format=x"]);
        assert_eq!(r.canonical, "pass");
        assert_eq!(r.minimal[0].one_minimal, Minimality::Shown);
    }

    /// 11 personas × 11 phrasings × 3 formats on a model that fails 3 prompts in 8 whatever
    /// the values, and always on format `x`: the strict suspect rule would make nearly every
    /// value a suspect (no clean variant left); the group is decided leniently and `x` is a
    /// cause, no persona or phrasing is.
    #[test]
    fn a_noisy_model_is_decided_with_the_lenient_suspect_rule() {
        let names = |p: &str| -> Vec<String> {
            std::iter::once(ORIGINAL.to_string())
                .chain((1..=10).map(|i| format!("{p}{i}")))
                .collect()
        };
        let values: Values = vec![
            (AxisName::Persona, names("p")),
            (AxisName::Phrasing, names("q")),
            (AxisName::Length, vec![ORIGINAL.into()]),
            (
                AxisName::Format,
                vec![ORIGINAL.into(), "x".into(), "y".into()],
            ),
        ];
        let mut obs = Vec::new();
        for p in 0..11 {
            for q in 0..11 {
                for f in 0..3 {
                    let fail = (f == 1 || (p * 7 + q * 13 + f * 5) % 8 < 3) as u64;
                    obs.push(Obs {
                        idx: [p, q, 0, f, 0],
                        pass: 1 - fail,
                        fail,
                    });
                }
            }
        }
        let g = Group {
            model: "m".into(),
            probe: "p".into(),
            obs,
        };
        let st = decide(&g, &values);
        assert!(st.noisy);
        assert_eq!(st.decision[3][1], Decision::Cause, "{:?}", st.counts[3]);
        assert_ne!(st.decision[3][2], Decision::Cause);
        for a in 0..2 {
            for i in 1..11 {
                assert_ne!(st.decision[a][i], Decision::Cause, "axis {a} value {i}");
            }
        }
    }

    /// Personas `p1`–`p3` × formats `x`, `y`: `p1`'s variants run three times and their
    /// samples disagree (with format `x` and `y` beside it); `p2 × x` fails three times out of
    /// three.
    fn flaky_group() -> (Group, Values) {
        let values: Values = vec![
            (
                AxisName::Persona,
                vec![ORIGINAL.into(), "p1".into(), "p2".into(), "p3".into()],
            ),
            (AxisName::Phrasing, vec![ORIGINAL.into()]),
            (AxisName::Length, vec![ORIGINAL.into()]),
            (
                AxisName::Format,
                vec![ORIGINAL.into(), "x".into(), "y".into()],
            ),
        ];
        let obs = vec![
            Obs {
                idx: [0, 0, 0, 0, 0],
                pass: 3,
                fail: 0,
            },
            Obs {
                idx: [1, 0, 0, 0, 0],
                pass: 2,
                fail: 1,
            },
            Obs {
                idx: [1, 0, 0, 1, 0],
                pass: 1,
                fail: 2,
            },
            Obs {
                idx: [1, 0, 0, 2, 0],
                pass: 2,
                fail: 1,
            },
            Obs {
                idx: [2, 0, 0, 1, 0],
                pass: 0,
                fail: 3,
            },
            Obs {
                idx: [3, 0, 0, 2, 0],
                pass: 1,
                fail: 0,
            },
        ];
        let g = Group {
            model: "m".into(),
            probe: "p".into(),
            obs,
        };
        (g, values)
    }

    #[test]
    fn disagreeing_samples_are_blamed_on_the_flakiest_value() {
        let (g, values) = flaky_group();
        let flaky = flaky_values(&g, &sizes(&values));
        // p1 is on three disagreeing variants; x and y on one each, always beside p1.
        assert!(flaky[0][1]);
        assert!(!flaky[3][1] && !flaky[3][2]);
        // Samples that agree (p2 × x failing three times) are a fixed failure, not flakiness.
        assert!(!flaky[0][2]);
        let st = decide(&g, &values);
        assert!(!st.canonical_flaky);
        // Each variant counts once, by its majority: both p1 variants clean for it (format x
        // fails in most of its variants, a suspect) pass by majority, though each failed once.
        assert_eq!(st.counts[0][1][..2], [2, 0]);
        let r = report_group(&g, &values, &st, &[]);
        let p1 = r.values.iter().find(|v| v.value == "p1").unwrap();
        assert!(p1.flaky);
        assert_eq!(p1.repeats, 6);
        assert_eq!((p1.cases, p1.failed), (9, 4));
        assert_eq!(r.repeats, 2 + 6 + 2);
    }

    #[test]
    fn a_flaky_canonical_makes_every_value_flaky_and_counts_it_by_majority() {
        let (mut g, values) = flaky_group();
        g.obs[0] = Obs {
            idx: [0; AXES],
            pass: 2,
            fail: 1,
        };
        let st = decide(&g, &values);
        assert!(st.canonical_flaky);
        let r = report_group(&g, &values, &st, &[]);
        assert!(r.canonical_flaky);
        assert_eq!(r.canonical, "pass");
        assert!(r.values.iter().all(|v| v.flaky));
    }

    /// Plans a round for `g` and returns the points and their cost in new samples, checked
    /// against the samples each point already has.
    fn plan_once(g: &Group, values: &Values) -> (State, Vec<PlannedPoint>) {
        let st = decide(g, values);
        let mut seen: HashSet<VariantAxes> =
            g.obs.iter().map(|o| axes_of(values, &o.idx)).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut out = Vec::new();
        let made = plan_group(g, values, &st, &mut rng, &mut seen, 40, 1, &mut out);
        // The cost counts only the samples not yet run.
        let cost: usize = out
            .iter()
            .map(|p| {
                let have = g
                    .obs
                    .iter()
                    .find(|o| axes_of(values, &o.idx) == p.axes)
                    .map_or(0, |o| o.samples());
                (p.samples as u64 - have.min(p.samples as u64)) as usize
            })
            .sum();
        assert_eq!(made, cost);
        assert!(made <= 40);
        (st, out)
    }

    #[test]
    fn a_flaky_value_leaning_to_cause_gets_repeats_and_its_single_samples_are_topped_up_first() {
        // p1 is flaky and its clean variants fail by majority: a cause would be claimed on
        // majorities, so a round tops up its variants run once before making new ones, each
        // with three samples.
        let (mut g, values) = flaky_group();
        g.obs[1] = Obs {
            idx: [1, 0, 0, 0, 0],
            pass: 1,
            fail: 2,
        };
        g.obs[3] = Obs {
            idx: [1, 0, 0, 2, 0],
            pass: 0,
            fail: 1,
        };
        let (st, out) = plan_once(&g, &values);
        assert!(st.flaky[0][1]);
        let p1: Vec<&PlannedPoint> = out.iter().filter(|p| p.axes.persona == "p1").collect();
        assert!(!p1.is_empty(), "{out:?}");
        assert!(p1.iter().all(|p| p.samples == REPEAT_SAMPLES), "{out:?}");
        let topped = axes_of(&values, &[1, 0, 0, 2, 0]);
        assert!(p1.iter().any(|p| p.axes == topped), "{out:?}");
    }

    #[test]
    fn a_flaky_value_leaning_to_pass_gets_single_samples() {
        // p1 is flaky but its clean variants pass by majority: a single failing sample only
        // makes it harder to clear, so nothing is topped up and no point runs more than once.
        let (mut g, mut values) = flaky_group();
        g.obs[3] = Obs {
            idx: [1, 0, 0, 2, 0],
            pass: 1,
            fail: 0,
        };
        // A format nobody has met yet: the round has new points to make.
        values[3].1.push("z".into());
        let (st, out) = plan_once(&g, &values);
        assert!(st.flaky[0][1]);
        assert!(!out.is_empty());
        assert!(out.iter().all(|p| p.samples == 1), "{out:?}");
    }

    /// A value past the decisive count, failing in a third of its clean variants: parked
    /// while others want evidence, planned once nothing else is asked.
    #[test]
    fn a_value_clearly_below_half_is_parked_behind_the_others() {
        let personas: Vec<String> = std::iter::once(ORIGINAL.to_string())
            .chain((1..=5).map(|i| format!("p{i}")))
            .collect();
        let phrasings: Vec<String> = std::iter::once(ORIGINAL.to_string())
            .chain((1..=40).map(|i| format!("q{i}")))
            .collect();
        let values: Values = vec![
            (AxisName::Persona, personas),
            (AxisName::Phrasing, phrasings),
            (AxisName::Length, vec![ORIGINAL.into()]),
            (AxisName::Format, vec![ORIGINAL.into()]),
        ];
        // p1 on 39 phrasings, failing on 13 (a third); p2–p5 on the same, passing.
        let mut obs = vec![Obs {
            idx: [0; AXES],
            pass: 1,
            fail: 0,
        }];
        for q in 1..=39 {
            let fail = (q % 3 == 0) as u64;
            obs.push(Obs {
                idx: [1, q, 0, 0, 0],
                pass: 1 - fail,
                fail,
            });
        }
        for q in 1..=39 {
            for p in 2..=5 {
                obs.push(Obs {
                    idx: [p, q, 0, 0, 0],
                    pass: 1,
                    fail: 0,
                });
            }
        }
        let g = Group {
            model: "m".into(),
            probe: "p".into(),
            obs,
        };
        let decisive = decisive_count(&values);
        let st = decide(&g, &values);
        assert_eq!(st.decision[0][1], Decision::Undecided, "{:?}", st.counts[0]);
        assert!(parked(&st, 0, 1, decisive));
        assert!(!parked(&st, 0, 2, decisive));
        // q40 has no variant yet: the round makes points for it.
        let (_, out) = plan_once(&g, &values);
        assert!(!out.is_empty());
        // Its one point is the flakiness probe: a failing variant of it re-run, no new one.
        let run: HashSet<VariantAxes> = g.obs.iter().map(|o| axes_of(&values, &o.idx)).collect();
        assert!(
            out.iter()
                .filter(|p| p.axes.persona == "p1")
                .all(|p| run.contains(&p.axes)),
            "{out:?}"
        );
    }
}
