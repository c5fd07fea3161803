//! The evidence the rounds decide on: a run's graded cases read back from the store into one
//! [`Group`] per probe × model, each variant an [`Obs`] of its value indices and its passing
//! and failing samples.

use super::{AXES, Values};
use crate::axes::ORIGINAL;
use crate::error::Result;
use crate::grade::CaseStatus;
use crate::render::VariantAxes;
use crate::store::Store;
use std::collections::{HashMap, HashSet};

/// One variant's graded samples.
#[derive(Debug, Clone, Default)]
pub(super) struct Obs {
    /// Value index per axis (0 = original), in [`crate::axes::AxisName::ALL`] order.
    pub(super) idx: [usize; AXES],
    pub(super) pass: u64,
    pub(super) fail: u64,
}

impl Obs {
    /// Failed in most of its graded samples: the variant's outcome. The tests count variants,
    /// not samples, since the samples of one variant are not independent evidence.
    pub(super) fn failing(&self) -> bool {
        2 * self.fail > self.pass + self.fail
    }

    /// Graded samples.
    pub(super) fn samples(&self) -> u64 {
        self.pass + self.fail
    }

    /// Its samples disagree: the same prompt both passed and failed.
    pub(super) fn disagrees(&self) -> bool {
        self.pass > 0 && self.fail > 0
    }

    /// The canonical variant: no axis changed.
    pub(super) fn is_canonical(&self) -> bool {
        self.idx.iter().all(|&i| i == 0)
    }
}

/// The evidence of one probe × model.
#[derive(Debug, Clone)]
pub(super) struct Group {
    pub(super) model: String,
    pub(super) probe: String,
    pub(super) obs: Vec<Obs>,
}

/// The points already run, per probe.
type Seen = HashMap<String, HashSet<VariantAxes>>;

/// Reads the run's graded cases into per probe × model evidence; returns it and the number of
/// cases stored (errors included).
pub(super) fn gather(
    store: &Store,
    run: &str,
    values: &HashMap<String, Values>,
) -> Result<(Vec<Group>, u64, Seen)> {
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    let mut by_variant: HashMap<(usize, String), usize> = HashMap::new();
    let mut seen: HashMap<String, HashSet<VariantAxes>> = HashMap::new();
    let mut total = 0u64;
    store.for_each_case_brief(run, |row| {
        total += 1;
        let Some(vals) = values.get(row.probe_id) else {
            return Ok(());
        };
        let mut idx = [0usize; AXES];
        let mut axes = VariantAxes::default();
        for (k, (axis, list)) in vals.iter().enumerate() {
            let v = row
                .axes
                .get(axis.as_str())
                .map(String::as_str)
                .unwrap_or(ORIGINAL);
            match list.iter().position(|x| x == v) {
                Some(i) => idx[k] = i,
                None => return Ok(()),
            }
            axes.set(*axis, v.to_string());
        }
        seen.entry(row.probe_id.to_string())
            .or_default()
            .insert(axes);
        let key = (row.model.to_string(), row.probe_id.to_string());
        let gi = *index.entry(key).or_insert_with(|| {
            groups.push(Group {
                model: row.model.to_string(),
                probe: row.probe_id.to_string(),
                obs: Vec::new(),
            });
            groups.len() - 1
        });
        let oi = *by_variant
            .entry((gi, row.variant_id.to_string()))
            .or_insert_with(|| {
                groups[gi].obs.push(Obs {
                    idx,
                    ..Obs::default()
                });
                groups[gi].obs.len() - 1
            });
        match row.status {
            CaseStatus::Pass => groups[gi].obs[oi].pass += 1,
            CaseStatus::Fail => groups[gi].obs[oi].fail += 1,
            _ => {}
        }
        Ok(())
    })?;
    Ok((groups, total, seen))
}
