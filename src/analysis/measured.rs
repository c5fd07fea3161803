//! Measured tiers read from the store: a run's per-probe tallies, and each probe's most
//! recent earlier run with graded results for it, for [`tiers::measure`] to compare (that
//! module has the rule). What `cliffprobe tiers` prints and the report's measured-tiers section.

use crate::analysis::tiers::{self, MeasuredTiers, ProbeSamples, TierCollector};
use crate::config::Thresholds;
use crate::error::Result;
use crate::store::{RunInfo, Store};
use indexmap::IndexMap;
use std::collections::{HashMap, HashSet};

/// Streams the cases of `run` into per-variant tallies, keeping only the probes `keep` accepts.
fn collect(
    store: &Store,
    run: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<IndexMap<String, ProbeSamples>> {
    let mut c = TierCollector::new();
    store.for_each_case_brief(run, |row| {
        if keep(row.probe_id) {
            c.push(row);
        }
        Ok(())
    })?;
    Ok(c.finish())
}

/// Measured tiers of `run`, each probe compared with the most recent earlier run (in start
/// order) that has graded results for it. Earlier runs are walked newest first and only until
/// every probe has found its run; each walk keeps only the probes still looking.
pub fn measure(store: &Store, run: &RunInfo, th: &Thresholds) -> Result<MeasuredTiers> {
    let current = collect(store, &run.id, |_| true)?;
    measure_from(store, run, th, current)
}

/// Like [`measure`], with the run's own tallies already collected (the report folds the run
/// once for everything it shows).
pub fn measure_from(
    store: &Store,
    run: &RunInfo,
    th: &Thresholds,
    current: IndexMap<String, ProbeSamples>,
) -> Result<MeasuredTiers> {
    let mut looking: HashSet<String> = current
        .iter()
        .filter(|(_, p)| p.pooled().graded > 0)
        .map(|(id, _)| id.clone())
        .collect();
    let runs = store.runs()?;
    let upto = runs.iter().position(|r| r.id == run.id).unwrap_or(0);
    let mut previous: HashMap<String, (String, ProbeSamples)> = HashMap::new();
    for earlier in runs[..upto].iter().rev() {
        if looking.is_empty() {
            break;
        }
        let found = collect(store, &earlier.id, |p| looking.contains(p))?;
        for (id, p) in found {
            if p.pooled().graded > 0 {
                looking.remove(&id);
                previous.insert(id, (earlier.id.clone(), p));
            }
        }
    }
    Ok(tiers::measure(&run.id, th, &current, &previous))
}
