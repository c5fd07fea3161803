//! The variants passing in a run, per model, read by one brief walk: what the run page needs
//! to count the variants still failing on both sides of a comparison, which the report's
//! comparison rows do not carry.

use crate::domain::Tier;
use crate::grade::CaseStatus;
use crate::report::Report;
use crate::store::Store;
use crate::view::ViewError;
use indexmap::IndexMap;

/// A variant id as a number: its 16 hex digits, or (for any other form) a hash of it.
fn variant_key(id: &str) -> u64 {
    if id.len() == 16
        && let Ok(n) = u64::from_str_radix(id, 16)
    {
        return n;
    }
    let mut h = blake3::Hasher::new();
    h.update(id.as_bytes());
    let bytes = h.finalize();
    u64::from_le_bytes(bytes.as_bytes()[..8].try_into().unwrap_or([0; 8]))
}

/// The variants of one model in one run that pass (majority of graded samples, as the report
/// folds them): key, tier, class index; sorted by key. 16 bytes a variant.
type Passing = Vec<(u64, Tier, u32)>;

/// The passing variants of every model of `runs` (a class index into `classes`).
pub(super) struct PassingVariants {
    classes: Vec<String>,
    of: IndexMap<(String, String), Passing>,
}

/// One brief walk per run, folding each variant's samples as the walk passes them (rows come
/// by variant, model and sample) and keeping only the passing ones.
pub(super) fn passing_variants(
    store: &Store,
    runs: &[String],
) -> Result<PassingVariants, ViewError> {
    use crate::analysis::variant::{Samples, Verdict, fold};
    let mut classes: Vec<String> = Vec::new();
    let mut of: IndexMap<(String, String), Passing> = IndexMap::new();
    for run in runs {
        // The variant and model being folded, and their samples so far.
        let mut current: Option<(String, String, Tier, u32)> = None;
        let mut samples = Samples::default();
        let mut per_model: IndexMap<String, Passing> = IndexMap::new();
        let flush = |cur: &Option<(String, String, Tier, u32)>,
                     s: &Samples,
                     per_model: &mut IndexMap<String, Passing>| {
            if let Some((v, m, tier, class)) = cur
                && fold(s) == Verdict::Pass
            {
                per_model
                    .entry(m.clone())
                    .or_default()
                    .push((variant_key(v), *tier, *class));
            }
        };
        store.for_each_case_brief(run, |row| {
            let same = current
                .as_ref()
                .is_some_and(|(v, m, _, _)| v == row.variant_id && m == row.model);
            if !same {
                flush(&current, &samples, &mut per_model);
                samples = Samples::default();
                let class = match classes.iter().position(|c| c == row.capability) {
                    Some(i) => i as u32,
                    None => {
                        classes.push(row.capability.to_string());
                        (classes.len() - 1) as u32
                    }
                };
                current = Some((
                    row.variant_id.to_string(),
                    row.model.to_string(),
                    row.tier,
                    class,
                ));
            }
            match row.status {
                CaseStatus::Pass => samples.pass += 1,
                CaseStatus::Fail => samples.fail += 1,
                CaseStatus::Error => samples.error += 1,
                CaseStatus::Ungraded => samples.ungraded += 1,
            }
            Ok(())
        })?;
        flush(&current, &samples, &mut per_model);
        for (model, mut list) in per_model {
            list.sort_unstable_by_key(|e| e.0);
            of.insert((run.clone(), model), list);
        }
    }
    Ok(PassingVariants { classes, of })
}

/// Per comparison of `r`: how many shared variants pass on both sides, keyed `tier:NAME` and
/// `class:NAME`.
pub(super) fn both_pass_counts(p: &PassingVariants, r: &Report) -> Vec<IndexMap<String, u64>> {
    let empty = Passing::new();
    let side = |run: &str, model: &str| {
        p.of.get(&(run.to_string(), model.to_string()))
            .unwrap_or(&empty)
    };
    let mut out = Vec::new();
    for c in &r.comparisons {
        let mut counts: IndexMap<String, u64> = IndexMap::new();
        let base = side(&c.baseline.run_id, &c.baseline.model);
        let cand = side(&c.candidate.run_id, &c.candidate.model);
        for (key, tier, class) in cand {
            if base.binary_search_by_key(key, |e| e.0).is_ok() {
                *counts.entry(format!("tier:{}", tier.as_str())).or_default() += 1;
                *counts
                    .entry(format!("class:{}", p.classes[*class as usize]))
                    .or_default() += 1;
            }
        }
        out.push(counts);
    }
    out
}
