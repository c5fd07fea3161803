//! Baseline against candidate: deltas with intervals, the paired test, and the flips.
//!
//! The two sides are two models of one run, or one model in two runs. Variants are matched by
//! id (a content hash, so the same variant in two runs has the same id while its probe is
//! unchanged); only variants graded on both sides are *shared* and enter the paired test.

use super::breakdown::Breakdown;
use super::mcnemar::mcnemar_exact;
use super::tally::Tally;
use super::variant::{ModelResults, VariantResult, Verdict};
use super::wilson::{Interval, Z95, newcombe_difference};
use crate::domain::Tier;
use foldhash::HashMap;
use serde::Serialize;

/// The significance level of the paired test.
pub const ALPHA: f64 = 0.05;

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Side {
    /// Model name.
    pub model: String,
    /// Run id.
    pub run_id: String,
}

impl Side {
    /// `model` or `model@run` when the runs differ.
    pub fn label(&self, other: &Side) -> String {
        if self.run_id == other.run_id {
            self.model.clone()
        } else {
            format!("{}@{}", self.model, self.run_id)
        }
    }
}

/// The paired test on the shared variants of one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Paired {
    /// Variants graded on both sides.
    pub shared: u64,
    /// Failed on the baseline, pass now.
    pub fixed: u64,
    /// Passed on the baseline, fail now.
    pub regressed: u64,
    /// Exact McNemar two-sided p-value; `None` when too few shared variants to say.
    pub p_value: Option<f64>,
}

impl Paired {
    /// Whether the change is significant at [`ALPHA`] (false when too few to say).
    pub fn significant(&self) -> bool {
        self.p_value.is_some_and(|p| p < ALPHA)
    }
}

/// One row of a comparison: a tier, a class or the aggregate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeltaRow {
    /// `all`, a tier name or a class.
    pub label: String,
    /// Baseline counts.
    pub baseline: Tally,
    /// Candidate counts.
    pub candidate: Tally,
    /// Candidate rate − baseline rate; `None` when a side has no graded variant.
    pub delta: Option<f64>,
    /// Newcombe's 95 % interval of the delta; `None` when either side is too few to say.
    pub interval: Option<Interval>,
    /// The paired test.
    pub paired: Paired,
}

impl DeltaRow {
    fn new(label: String, baseline: Tally, candidate: Tally, paired: Paired) -> DeltaRow {
        let delta = match (baseline.rate(), candidate.rate()) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let interval = if baseline.too_few() || candidate.too_few() {
            None
        } else {
            newcombe_difference(
                baseline.passed,
                baseline.n(),
                candidate.passed,
                candidate.n(),
                Z95,
            )
        };
        DeltaRow {
            label,
            baseline,
            candidate,
            delta,
            interval,
            paired,
        }
    }
}

/// A variant whose verdict changed between the sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flip {
    /// The variant as the candidate ran it (with its evidence when it now fails).
    pub variant: VariantResult,
    /// The baseline's verdict.
    pub baseline: Verdict,
}

/// A full comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The reference (production model, or the earlier run).
    pub baseline: Side,
    /// What is being evaluated.
    pub candidate: Side,
    /// All variants.
    pub aggregate: DeltaRow,
    /// Per tier present on either side, easiest first.
    pub tiers: Vec<DeltaRow>,
    /// Per capability class present on either side, sorted by name.
    pub classes: Vec<DeltaRow>,
    /// Failed on the baseline, pass now (every tier).
    pub fixed: Vec<Flip>,
    /// Passed on the baseline, fail now (every tier).
    pub regressed: Vec<Flip>,
}

/// Finds a candidate's variant among the baseline's. Results from the store come sorted by
/// probe, then variant id ([`super::Collector::finish`]), and a variant id belongs to one probe
/// (the store has one row per variant): then a merge walk finds them with no index (a big run
/// has hundreds of thousands of variants per side). Anything else gets a hash index.
enum Matcher<'a> {
    Sorted {
        base: &'a [VariantResult],
        next: usize,
    },
    Indexed(HashMap<&'a str, &'a VariantResult>),
}

fn sort_key(v: &VariantResult) -> (&str, &str) {
    (&v.probe_id, &v.variant_id)
}

fn sorted(vs: &[VariantResult]) -> bool {
    vs.is_sorted_by(|a, b| sort_key(a) < sort_key(b))
}

impl<'a> Matcher<'a> {
    /// `candidate`: the variants that will be looked up, in this order.
    fn new(base: &'a [VariantResult], candidate: &[VariantResult]) -> Matcher<'a> {
        if sorted(base) && sorted(candidate) {
            Matcher::Sorted { base, next: 0 }
        } else {
            Matcher::Indexed(base.iter().map(|v| (v.variant_id.as_str(), v)).collect())
        }
    }

    /// The baseline's variant with `v`'s id (asked in the candidate's order).
    fn find(&mut self, v: &VariantResult) -> Option<&'a VariantResult> {
        match self {
            Matcher::Indexed(m) => m.get(v.variant_id.as_str()).copied(),
            Matcher::Sorted { base, next } => {
                let key = sort_key(v);
                while *next < base.len() && sort_key(&base[*next]) < key {
                    *next += 1;
                }
                base.get(*next).filter(|b| sort_key(b) == key)
            }
        }
    }
}

impl Comparison {
    /// Compares `candidate` against `baseline`.
    pub fn new(
        baseline: &ModelResults,
        b: &Breakdown,
        candidate: &ModelResults,
        c: &Breakdown,
    ) -> Comparison {
        let mut base = Matcher::new(&baseline.variants, &candidate.variants);
        let mut fixed = Vec::new();
        let mut regressed = Vec::new();
        let mut pairs: Vec<(&VariantResult, bool, bool)> = Vec::new();
        for v in &candidate.variants {
            let Some(old) = base.find(v) else {
                continue;
            };
            if !(old.verdict.is_graded() && v.verdict.is_graded()) {
                continue;
            }
            let was = old.verdict == Verdict::Pass;
            let now = v.verdict == Verdict::Pass;
            pairs.push((v, was, now));
            let flip = || Flip {
                variant: v.clone(),
                baseline: old.verdict,
            };
            match (was, now) {
                (false, true) => fixed.push(flip()),
                (true, false) => regressed.push(flip()),
                _ => {}
            }
        }
        let paired = |keep: &dyn Fn(&VariantResult) -> bool| {
            let mut p = Paired::default();
            for (v, was, now) in &pairs {
                if !keep(v) {
                    continue;
                }
                p.shared += 1;
                match (was, now) {
                    (false, true) => p.fixed += 1,
                    (true, false) => p.regressed += 1,
                    _ => {}
                }
            }
            if p.shared >= super::tally::TOO_FEW {
                p.p_value = Some(mcnemar_exact(p.regressed, p.fixed));
            }
            p
        };
        let aggregate = DeltaRow::new("all".into(), b.aggregate, c.aggregate, paired(&|_| true));
        let tiers = Tier::ALL
            .iter()
            .filter(|t| b.tier(**t).total() + c.tier(**t).total() > 0)
            .map(|t| {
                DeltaRow::new(
                    t.as_str().into(),
                    b.tier(*t),
                    c.tier(*t),
                    paired(&|v| v.tier == *t),
                )
            })
            .collect();
        let mut names: Vec<&str> = b
            .classes
            .iter()
            .chain(&c.classes)
            .map(|x| x.class.as_str())
            .collect();
        names.sort();
        names.dedup();
        let classes = names
            .into_iter()
            .map(|n| {
                DeltaRow::new(
                    n.into(),
                    b.class(n),
                    c.class(n),
                    paired(&|v| &*v.capability == n),
                )
            })
            .collect();
        Comparison {
            baseline: Side {
                model: baseline.model.clone(),
                run_id: baseline.run_id.clone(),
            },
            candidate: Side {
                model: candidate.model.clone(),
                run_id: candidate.run_id.clone(),
            },
            aggregate,
            tiers,
            classes,
            fixed,
            regressed,
        }
    }

    /// The row of `tier`, if present.
    pub fn tier(&self, tier: Tier) -> Option<&DeltaRow> {
        self.tiers.iter().find(|r| r.label == tier.as_str())
    }

    /// Hard- and frontier-tier variants that passed on the baseline and fail now.
    pub fn hard_regressions(&self) -> impl Iterator<Item = &Flip> {
        self.regressed
            .iter()
            .filter(|f| matches!(f.variant.tier, Tier::Hard | Tier::Frontier))
    }

    /// `baseline` label.
    pub fn baseline_label(&self) -> String {
        self.baseline.label(&self.candidate)
    }

    /// `candidate` label.
    pub fn candidate_label(&self) -> String {
        self.candidate.label(&self.baseline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::variant::Samples;
    use std::sync::Arc;

    fn v(probe: &str, id: &str, pass: bool) -> VariantResult {
        VariantResult {
            variant_id: id.into(),
            probe_id: Arc::from(probe),
            capability: Arc::from("c"),
            tier: Tier::Hard,
            canonical: false,
            axes: Arc::default(),
            samples: Samples {
                pass: u32::from(pass),
                fail: u32::from(!pass),
                ..Samples::default()
            },
            verdict: if pass { Verdict::Pass } else { Verdict::Fail },
            evidence: None,
        }
    }

    fn results(model: &str, variants: Vec<VariantResult>) -> ModelResults {
        ModelResults {
            model: model.into(),
            run_id: "r1".into(),
            cases: variants.len() as u64,
            variants,
        }
    }

    fn flips(c: &Comparison) -> (Vec<String>, Vec<String>, u64) {
        let ids = |fs: &[Flip]| fs.iter().map(|f| f.variant.variant_id.clone()).collect();
        (ids(&c.fixed), ids(&c.regressed), c.aggregate.paired.shared)
    }

    #[test]
    fn the_merge_walk_pairs_like_the_index() {
        // Sorted by probe, then id (the store's order); "x9" only on the baseline, "a0" only on
        // the candidate.
        let base = vec![
            v("p1", "b2", true),
            v("p1", "x9", true),
            v("p2", "a1", false),
            v("p2", "c3", true),
        ];
        let cand = vec![
            v("p1", "a0", false),
            v("p1", "b2", false),
            v("p2", "a1", true),
            v("p2", "c3", true),
        ];
        let compare = |b: Vec<VariantResult>, c: Vec<VariantResult>| {
            let (b, c) = (results("prod", b), results("cand", c));
            let (bb, cb) = (Breakdown::of(&b), Breakdown::of(&c));
            flips(&Comparison::new(&b, &bb, &c, &cb))
        };
        let merged = compare(base.clone(), cand.clone());
        assert_eq!(merged, (vec!["a1".to_string()], vec!["b2".to_string()], 3));
        // Unsorted sides take the index: same pairs.
        let mut rev = base.clone();
        rev.reverse();
        assert_eq!(compare(rev, cand.clone()), merged);
        let mut rev = cand;
        rev.reverse();
        let (mut fixed, mut regressed, shared) = compare(base, rev);
        fixed.sort();
        regressed.sort();
        assert_eq!((fixed, regressed, shared), merged);
    }
}
