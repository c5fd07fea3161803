//! Pass rate per probe × axis value: which values of which axes carry the failures.

use super::tally::Tally;
use super::variant::ModelResults;
use crate::probe::Tier;
use indexmap::IndexMap;
use serde::Serialize;
use std::collections::HashMap;

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
    pub fn of(r: &ModelResults) -> Heatmap {
        let mut axes: IndexMap<&str, Vec<&str>> = IndexMap::new();
        for v in &r.variants {
            for (a, x) in v.axes.iter() {
                let vals = axes.entry(a.as_str()).or_default();
                if !vals.contains(&x.as_str()) {
                    vals.push(x.as_str());
                }
            }
        }
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
        let mut rows: IndexMap<&str, HeatRow> = IndexMap::new();
        for v in &r.variants {
            let row = rows.entry(&*v.probe_id).or_insert_with(|| HeatRow {
                probe: v.probe_id.to_string(),
                tier: v.tier,
                cells: vec![None; columns.len()],
            });
            for (a, x) in v.axes.iter() {
                if let Some(i) = index.get(&(a.as_str(), x.as_str())) {
                    row.cells[*i].get_or_insert_with(Tally::default).add(v);
                }
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
