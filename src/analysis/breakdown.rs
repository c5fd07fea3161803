//! One model's results stratified: the aggregate, per tier and per capability class.

use super::tally::Tally;
use super::variant::ModelResults;
use crate::domain::Tier;
use indexmap::IndexMap;
use serde::Serialize;

/// One capability class of one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassTally {
    /// The capability class.
    pub class: String,
    /// Its counts.
    pub tally: Tally,
    /// Probe families in the class, sorted.
    pub probes: Vec<String>,
    /// Probe families with at least one failing variant, sorted by failures (most first).
    pub failing_probes: Vec<(String, u64)>,
}

/// A model's stratified results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakdown {
    /// Model name.
    pub model: String,
    /// Run id.
    pub run_id: String,
    /// Samples read.
    pub cases: u64,
    /// All variants.
    pub aggregate: Tally,
    /// Per tier, easiest first; only tiers with variants.
    pub tiers: Vec<(Tier, Tally)>,
    /// Per class, most failures first (then by name).
    pub classes: Vec<ClassTally>,
}

impl Breakdown {
    /// Stratifies `r`.
    pub fn of(r: &ModelResults) -> Breakdown {
        let mut aggregate = Tally::default();
        let mut tiers: IndexMap<Tier, Tally> = IndexMap::new();
        let mut classes: IndexMap<&str, (Tally, IndexMap<&str, u64>)> = IndexMap::new();
        for v in &r.variants {
            aggregate.add(v);
            tiers.entry(v.tier).or_default().add(v);
            let c = classes.entry(&*v.capability).or_default();
            c.0.add(v);
            let f = c.1.entry(&*v.probe_id).or_default();
            if v.verdict == super::Verdict::Fail {
                *f += 1;
            }
        }
        let tiers = Tier::ALL
            .iter()
            .filter_map(|t| tiers.get(t).map(|x| (*t, *x)))
            .collect();
        let mut classes: Vec<ClassTally> = classes
            .into_iter()
            .map(|(class, (tally, probes))| {
                let mut names: Vec<String> = probes.keys().map(|p| p.to_string()).collect();
                names.sort();
                let mut failing: Vec<(String, u64)> = probes
                    .into_iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(p, n)| (p.to_string(), n))
                    .collect();
                failing.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                ClassTally {
                    class: class.to_string(),
                    tally,
                    probes: names,
                    failing_probes: failing,
                }
            })
            .collect();
        classes.sort_by(|a, b| {
            b.tally
                .failed
                .cmp(&a.tally.failed)
                .then_with(|| a.class.cmp(&b.class))
        });
        Breakdown {
            model: r.model.clone(),
            run_id: r.run_id.clone(),
            cases: r.cases,
            aggregate,
            tiers,
            classes,
        }
    }

    /// The tally of `tier` (empty when the run has none).
    pub fn tier(&self, tier: Tier) -> Tally {
        self.tiers
            .iter()
            .find(|(t, _)| *t == tier)
            .map(|(_, x)| *x)
            .unwrap_or_default()
    }

    /// The tally of class `class` (empty when absent).
    pub fn class(&self, class: &str) -> Tally {
        self.classes
            .iter()
            .find(|c| c.class == class)
            .map(|c| c.tally)
            .unwrap_or_default()
    }

    /// `tier`'s share of all failing variants (the shape of the on-call queue); `None` with no
    /// failures.
    pub fn failure_share(&self, tier: Tier) -> Option<f64> {
        let all = self.aggregate.failed;
        (all > 0).then(|| self.tier(tier).failed as f64 / all as f64)
    }

    /// A class's share of all failing variants.
    pub fn class_failure_share(&self, c: &ClassTally) -> Option<f64> {
        let all = self.aggregate.failed;
        (all > 0).then(|| c.tally.failed as f64 / all as f64)
    }
}
