//! Shrinking a failing variant to its minimal cause: delta debugging over axis changes.
//!
//! A failing variant differs from the canonical by a set of axis changes (`format=xml`,
//! `persona=terse-expert`, …). Brittleness can only name the smallest failing variant the
//! sweep happened to run; shrinking *asks* the model about the configurations in between:
//! [`shrink`] runs Zeller's `ddmin` over the set of changes with an oracle that renders the
//! variant with only those axes changed, calls the model and grades the answer. The result is
//! **1-minimal**: it fails, and taking away any single change of it does not fail.
//!
//! The module is pure: the oracle is any `FnMut(&[T]) -> Outcome`, so the search is unit-tested
//! without a model, and the CLI (`cli/shrink.rs`) supplies the one that calls a model.
//!
//! # Rules
//! - **The canonical first.** The empty configuration (the incident as it happened) is tested
//!   before anything else; when it fails the probe is *broken*, not brittle, and the search
//!   stops ([`Verdict::CanonicalFails`]). The start configuration is tested next and must fail
//!   again ([`Verdict::NotReproduced`] otherwise).
//! - **Errors are never failures.** A configuration whose outcome is [`Outcome::Unresolved`]
//!   (its calls errored) is treated as "does not fail" by the search, so the search never
//!   descends into it, and it is listed: a minimal set next to an unresolved single removal is
//!   reported as not proven 1-minimal ([`Minimal::one_minimal`] is false).
//! - **Each configuration is asked at most once** (memoised); [`Shrink::tested`] lists every
//!   configuration in the order it was first asked, with its outcome.
//! - **Deterministic.** The search has no randomness: the same oracle answers give the same
//!   configurations in the same order.

pub mod oracle;

use serde::Serialize;
use std::collections::HashMap;

/// What the oracle says about one configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The configuration passes.
    Pass,
    /// The configuration fails (with repeats: a strict majority of its samples failed).
    Fail,
    /// Could not tell: the calls errored (timeouts, 5xx, unparseable answers).
    Unresolved,
}

impl Outcome {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Unresolved => "unresolved",
        }
    }

    /// The outcome of `k` samples: `fail` when a strict majority of the `k` failed; `unresolved`
    /// when the failed and errored samples together are a strict majority (the errors could
    /// have decided it); `pass` otherwise. Errors never count as failures.
    pub fn of_samples(passed: u32, failed: u32, errors: u32) -> Outcome {
        let k = passed + failed + errors;
        if 2 * failed > k {
            Outcome::Fail
        } else if 2 * (failed + errors) > k {
            Outcome::Unresolved
        } else {
            Outcome::Pass
        }
    }
}

/// One configuration asked of the oracle: indices into the start's changes, ascending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tested {
    /// The changes kept, as indices into the start configuration.
    pub changes: Vec<usize>,
    /// What the oracle said.
    pub outcome: Outcome,
}

/// A 1-minimal failing configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Minimal {
    /// The changes, as indices into the start configuration, ascending.
    pub changes: Vec<usize>,
    /// True when every configuration with one change fewer was tested and passed; false when
    /// some of them were unresolved (the set is minimal as far as could be told).
    pub one_minimal: bool,
    /// The single removals that were unresolved (indices of the change removed).
    pub unresolved_removals: Vec<usize>,
}

/// How a shrink ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Verdict {
    /// The canonical fails: the probe is broken (or its checks are wrong), not brittle.
    CanonicalFails,
    /// The canonical's calls errored: nothing can be concluded.
    CanonicalUnresolved,
    /// The start configuration passed when asked again (a flaky failure).
    NotReproduced,
    /// The start configuration's calls errored.
    StartUnresolved,
    /// The minimal failing set was found.
    Minimal(Minimal),
}

/// The result of [`shrink`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shrink {
    /// How it ended.
    pub verdict: Verdict,
    /// Every configuration asked, in order, each once.
    pub tested: Vec<Tested>,
}

/// The memoising wrapper around an oracle.
struct Asker<'a, T, F> {
    start: &'a [T],
    oracle: F,
    memo: HashMap<Vec<usize>, Outcome>,
    tested: Vec<Tested>,
}

impl<T: Clone, F: FnMut(&[T]) -> Outcome> Asker<'_, T, F> {
    fn ask(&mut self, changes: &[usize]) -> Outcome {
        let mut key = changes.to_vec();
        key.sort_unstable();
        if let Some(o) = self.memo.get(&key) {
            return *o;
        }
        let config: Vec<T> = key.iter().map(|&i| self.start[i].clone()).collect();
        let outcome = (self.oracle)(&config);
        self.memo.insert(key.clone(), outcome);
        self.tested.push(Tested {
            changes: key,
            outcome,
        });
        outcome
    }
}

/// Shrinks `start` (the changes of a failing variant) to a 1-minimal failing subset, asking
/// `oracle` about configurations (subsets of `start`, in `start`'s order). See the module docs.
pub fn shrink<T: Clone>(start: &[T], oracle: impl FnMut(&[T]) -> Outcome) -> Shrink {
    let mut a = Asker {
        start,
        oracle,
        memo: HashMap::new(),
        tested: Vec::new(),
    };
    let verdict = match a.ask(&[]) {
        Outcome::Fail => Verdict::CanonicalFails,
        Outcome::Unresolved => Verdict::CanonicalUnresolved,
        Outcome::Pass => {
            let all: Vec<usize> = (0..start.len()).collect();
            match a.ask(&all) {
                Outcome::Pass => Verdict::NotReproduced,
                Outcome::Unresolved => Verdict::StartUnresolved,
                Outcome::Fail => {
                    let changes = ddmin(&mut a, all);
                    // 1-minimality: every single removal (asked by ddmin's last round; memoised).
                    let unresolved_removals: Vec<usize> = changes
                        .iter()
                        .filter(|&&c| {
                            let rest: Vec<usize> =
                                changes.iter().copied().filter(|&x| x != c).collect();
                            a.ask(&rest) == Outcome::Unresolved
                        })
                        .copied()
                        .collect();
                    Verdict::Minimal(Minimal {
                        one_minimal: unresolved_removals.is_empty(),
                        changes,
                        unresolved_removals,
                    })
                }
            }
        }
    };
    Shrink {
        verdict,
        tested: a.tested,
    }
}

/// Zeller's ddmin on a failing configuration `c`: split into `n` parts; a failing part, else a
/// failing complement, becomes the new `c`; else split finer, until the parts are single
/// changes. Unresolved counts as "does not fail".
fn ddmin<T: Clone, F: FnMut(&[T]) -> Outcome>(
    a: &mut Asker<'_, T, F>,
    c: Vec<usize>,
) -> Vec<usize> {
    let mut c = c;
    let mut n = 2usize;
    while c.len() >= 2 {
        let parts = split(&c, n);
        if let Some(p) = parts.iter().find(|p| a.ask(p) == Outcome::Fail) {
            c = p.clone();
            n = 2;
            continue;
        }
        let mut reduced = false;
        if parts.len() > 2 {
            for p in &parts {
                let complement: Vec<usize> = c.iter().copied().filter(|x| !p.contains(x)).collect();
                if a.ask(&complement) == Outcome::Fail {
                    c = complement;
                    n = (n - 1).max(2);
                    reduced = true;
                    break;
                }
            }
        }
        if reduced {
            continue;
        }
        if n >= c.len() {
            break;
        }
        n = (2 * n).min(c.len());
    }
    c
}

/// `c` split into `n` contiguous parts of nearly equal size (the first ones one longer).
fn split(c: &[usize], n: usize) -> Vec<Vec<usize>> {
    let n = n.min(c.len()).max(1);
    let (q, r) = (c.len() / n, c.len() % n);
    let mut out = Vec::with_capacity(n);
    let mut at = 0;
    for i in 0..n {
        let len = q + usize::from(i < r);
        out.push(c[at..at + len].to_vec());
        at += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fails_when(required: &'static [&'static str]) -> impl FnMut(&[&str]) -> Outcome {
        move |cfg: &[&str]| {
            if required.iter().all(|r| cfg.contains(r)) {
                Outcome::Fail
            } else {
                Outcome::Pass
            }
        }
    }

    fn minimal<'a>(s: &Shrink, start: &[&'a str]) -> (Vec<&'a str>, bool) {
        match &s.verdict {
            Verdict::Minimal(m) => (m.changes.iter().map(|&i| start[i]).collect(), m.one_minimal),
            other => panic!("expected a minimal set, got {other:?}"),
        }
    }

    const START: [&str; 4] = ["persona=a", "phrasing=b", "length=c", "format=xml"];

    #[test]
    fn a_single_cause_is_found_alone() {
        let s = shrink(&START, fails_when(&["format=xml"]));
        assert_eq!(minimal(&s, &START), (vec!["format=xml"], true));
        // The canonical is asked first, then the start.
        assert_eq!(s.tested[0].changes, Vec::<usize>::new());
        assert_eq!(s.tested[0].outcome, Outcome::Pass);
        assert_eq!(s.tested[1].changes, vec![0, 1, 2, 3]);
        assert_eq!(s.tested[1].outcome, Outcome::Fail);
        // Each configuration once.
        let mut seen: Vec<&Vec<usize>> = s.tested.iter().map(|t| &t.changes).collect();
        let n = seen.len();
        seen.dedup();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), n);
        // Fewer than the 16 subsets.
        assert!(s.tested.len() < 16, "{} configurations", s.tested.len());
    }

    #[test]
    fn every_single_cause_position_is_found() {
        for cause in START {
            let required: &'static [&'static str] = match cause {
                "persona=a" => &["persona=a"],
                "phrasing=b" => &["phrasing=b"],
                "length=c" => &["length=c"],
                _ => &["format=xml"],
            };
            let s = shrink(&START, fails_when(required));
            assert_eq!(minimal(&s, &START), (vec![cause], true));
        }
    }

    #[test]
    fn a_pair_interaction_is_found_and_each_alone_passes() {
        let s = shrink(&START, fails_when(&["persona=a", "format=xml"]));
        assert_eq!(minimal(&s, &START), (vec!["persona=a", "format=xml"], true));
        for single in [vec![0], vec![3]] {
            let t = s.tested.iter().find(|t| t.changes == single).unwrap();
            assert_eq!(t.outcome, Outcome::Pass);
        }
        // Pairs split across the halves, and a triple.
        let s = shrink(&START, fails_when(&["phrasing=b", "length=c"]));
        assert_eq!(minimal(&s, &START), (vec!["phrasing=b", "length=c"], true));
        let s = shrink(&START, fails_when(&["persona=a", "length=c", "format=xml"]));
        assert_eq!(
            minimal(&s, &START),
            (vec!["persona=a", "length=c", "format=xml"], true)
        );
    }

    #[test]
    fn the_result_is_one_minimal_for_every_monotone_cause() {
        // Every non-empty set of required changes over 4 axes.
        for mask in 1u32..16 {
            let required: Vec<usize> = (0..4).filter(|i| mask & (1 << i) != 0).collect();
            let s = shrink(&[0usize, 1, 2, 3], |cfg: &[usize]| {
                if required.iter().all(|r| cfg.contains(r)) {
                    Outcome::Fail
                } else {
                    Outcome::Pass
                }
            });
            match s.verdict {
                Verdict::Minimal(m) => assert_eq!(m.changes, required, "mask {mask}"),
                other => panic!("mask {mask}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_broken_probe_stops_at_the_canonical() {
        let s = shrink(&START, |_: &[&str]| Outcome::Fail);
        assert_eq!(s.verdict, Verdict::CanonicalFails);
        assert_eq!(s.tested.len(), 1);
    }

    #[test]
    fn a_start_that_passes_again_is_not_reproduced() {
        let s = shrink(&START, |_: &[&str]| Outcome::Pass);
        assert_eq!(s.verdict, Verdict::NotReproduced);
        assert_eq!(s.tested.len(), 2);
    }

    #[test]
    fn errors_are_never_failures() {
        // The canonical errors: nothing is concluded.
        let s = shrink(&START, |_: &[&str]| Outcome::Unresolved);
        assert_eq!(s.verdict, Verdict::CanonicalUnresolved);
        // The start errors.
        let s = shrink(&START, |cfg: &[&str]| {
            if cfg.is_empty() {
                Outcome::Pass
            } else {
                Outcome::Unresolved
            }
        });
        assert_eq!(s.verdict, Verdict::StartUnresolved);
        // format=xml fails; every configuration without persona=a errors (say, a 503 on those
        // prompts): the search never treats an error as a failure, so it cannot drop persona=a,
        // and says the result is not proven 1-minimal.
        let s = shrink(&START, |cfg: &[&str]| {
            if cfg.is_empty() {
                Outcome::Pass
            } else if !cfg.contains(&"persona=a") {
                Outcome::Unresolved
            } else if cfg.contains(&"format=xml") {
                Outcome::Fail
            } else {
                Outcome::Pass
            }
        });
        match &s.verdict {
            Verdict::Minimal(m) => {
                assert_eq!(m.changes, vec![0, 3]);
                assert!(!m.one_minimal);
                assert_eq!(m.unresolved_removals, vec![0]);
            }
            other => panic!("{other:?}"),
        }
        assert!(s.tested.iter().any(|t| t.outcome == Outcome::Unresolved));
    }

    #[test]
    fn a_flaky_oracle_still_ends_on_a_failing_set() {
        // Fails on xml only every other time it is asked: memoisation means each
        // configuration's first answer stands, and the result is a set that was seen failing.
        let mut calls = 0;
        let s = shrink(&START, |cfg: &[&str]| {
            calls += 1;
            if cfg.contains(&"format=xml") && calls % 2 == 0 {
                Outcome::Fail
            } else {
                Outcome::Pass
            }
        });
        assert_eq!(calls, s.tested.len());
        if let Verdict::Minimal(m) = &s.verdict {
            let t = s.tested.iter().find(|t| t.changes == m.changes).unwrap();
            assert_eq!(t.outcome, Outcome::Fail);
        }
    }

    #[test]
    fn majority_rule_over_samples() {
        assert_eq!(Outcome::of_samples(0, 1, 0), Outcome::Fail);
        assert_eq!(Outcome::of_samples(1, 0, 0), Outcome::Pass);
        assert_eq!(Outcome::of_samples(0, 0, 1), Outcome::Unresolved);
        assert_eq!(Outcome::of_samples(1, 2, 0), Outcome::Fail);
        assert_eq!(Outcome::of_samples(2, 1, 0), Outcome::Pass);
        // 1 fail + 1 error of 3: the error could have decided it.
        assert_eq!(Outcome::of_samples(1, 1, 1), Outcome::Unresolved);
        // 2 pass + 1 error of 3: a pass whatever the error was.
        assert_eq!(Outcome::of_samples(2, 0, 1), Outcome::Pass);
        // A tie is not a majority.
        assert_eq!(Outcome::of_samples(1, 1, 0), Outcome::Pass);
    }

    #[test]
    fn split_is_contiguous_and_balanced() {
        assert_eq!(split(&[0, 1, 2], 2), vec![vec![0, 1], vec![2]]);
        assert_eq!(
            split(&[0, 1, 2, 3], 4),
            vec![vec![0], vec![1], vec![2], vec![3]]
        );
        assert_eq!(split(&[5, 6], 8), vec![vec![5], vec![6]]);
    }
}
