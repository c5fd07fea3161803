//! Pass rate per probe × axis value: which values of which axes carry the failures.

use super::tally::Tally;
use super::variant::ModelResults;
use crate::axes::{AxisName, ORIGINAL};

const TOOLS: &str = AxisName::Tools.as_str();
use crate::domain::Tier;
use crate::store::SharedAxes;
use foldhash::{HashMap, HashMapExt};
use indexmap::IndexMap;
use serde::Serialize;
use std::sync::Arc;

/// One probe's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeatRow {
    /// Probe id.
    pub probe: String,
    /// Its tier.
    pub tier: Tier,
    /// One cell per column; `None` when no variant of the probe has that value.
    pub cells: Vec<Option<Tally>>,
}

/// The heat map of one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Heatmap {
    /// Model name.
    pub model: String,
    /// `(axis, value)` columns: axes in order of first appearance, values sorted.
    pub columns: Vec<(String, String)>,
    /// Rows, hardest tier first, then by probe id.
    pub rows: Vec<HeatRow>,
}

impl Heatmap {
    /// Builds the heat map of `r`.
    ///
    /// A run has few distinct axes maps and few probes, shared by all their variants (see
    /// [`crate::store::SharedAxes`]): both are looked up by pointer, so a million variants cost
    /// a million pointer-keyed lookups, not string hashing per axis.
    pub fn of(r: &ModelResults) -> Heatmap {
        // The distinct axes maps, in order of first appearance.
        let mut maps: HashMap<usize, usize> = HashMap::new();
        let mut distinct: Vec<&SharedAxes> = Vec::new();
        for v in &r.variants {
            maps.entry(Arc::as_ptr(&v.axes) as usize)
                .or_insert_with(|| {
                    distinct.push(&v.axes);
                    distinct.len() - 1
                });
        }
        let mut axes: IndexMap<&str, Vec<&str>> = IndexMap::new();
        for m in &distinct {
            for (a, x) in m.iter() {
                let vals = axes.entry(a.as_str()).or_default();
                if !vals.contains(&x.as_str()) {
                    vals.push(x.as_str());
                }
            }
        }
        // Stored maps leave out `tools` when it is `original` (see `VariantAxes::to_map`): a
        // map without it is at `tools=original`.
        for (a, vals) in axes.iter_mut() {
            if *a == TOOLS
                && !vals.contains(&ORIGINAL)
                && distinct.iter().any(|m| !m.contains_key(*a))
            {
                vals.push(ORIGINAL);
            }
        }
        let axes_named: Vec<&str> = axes.keys().copied().collect();
        let mut columns = Vec::new();
        for (a, mut vals) in axes {
            vals.sort();
            columns.extend(vals.into_iter().map(|v| (a.to_string(), v.to_string())));
        }
        let index: HashMap<(&str, &str), usize> = columns
            .iter()
            .enumerate()
            .map(|(i, (a, v))| ((a.as_str(), v.as_str()), i))
            .collect();
        // The columns of each distinct axes map.
        let cells_of: Vec<Vec<usize>> = distinct
            .iter()
            .map(|m| {
                let left_out = axes_named
                    .iter()
                    .filter(|a| **a == TOOLS && !m.contains_key(**a))
                    .map(|a| (*a, ORIGINAL));
                m.iter()
                    .map(|(a, x)| (a.as_str(), x.as_str()))
                    .chain(left_out)
                    .filter_map(|k| index.get(&k).copied())
                    .collect()
            })
            .collect();
        let mut rows: IndexMap<&str, HeatRow> = IndexMap::new();
        // Probe ids are interned: the row of the previous variant's probe is usually the one.
        let mut by_probe: HashMap<usize, usize> = HashMap::new();
        for v in &r.variants {
            let ri = *by_probe
                .entry(Arc::as_ptr(&v.probe_id) as *const u8 as usize)
                .or_insert_with(|| {
                    let row = rows.entry(&*v.probe_id);
                    let i = row.index();
                    row.or_insert_with(|| HeatRow {
                        probe: v.probe_id.to_string(),
                        tier: v.tier,
                        cells: vec![None; columns.len()],
                    });
                    i
                });
            let row = &mut rows[ri];
            for &i in &cells_of[maps[&(Arc::as_ptr(&v.axes) as usize)]] {
                row.cells[i].get_or_insert_with(Tally::default).add(v);
            }
        }
        let mut rows: Vec<HeatRow> = rows.into_values().collect();
        rows.sort_by(|a, b| b.tier.cmp(&a.tier).then_with(|| a.probe.cmp(&b.probe)));
        Heatmap {
            model: r.model.clone(),
            columns,
            rows,
        }
    }
}
