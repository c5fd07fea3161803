//! The axis values of one variant ([`VariantAxes`]): the key a variant is rendered, stored
//! and reported by.

use crate::axes::{AxisName, ORIGINAL};
use indexmap::IndexMap;

/// The axis values of one variant, `original` where unchanged.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct VariantAxes {
    /// Persona value.
    pub persona: String,
    /// Phrasing value.
    pub phrasing: String,
    /// Length value (`8k-middle`).
    pub length: String,
    /// Format value.
    pub format: String,
    /// Tools value (see [`crate::tool_catalog`]); `original` when absent from the JSON read,
    /// as in what was written before the axis existed.
    #[serde(default = "original")]
    pub tools: String,
}

fn original() -> String {
    ORIGINAL.to_string()
}

impl Default for VariantAxes {
    fn default() -> Self {
        VariantAxes {
            persona: ORIGINAL.into(),
            phrasing: ORIGINAL.into(),
            length: ORIGINAL.into(),
            format: ORIGINAL.into(),
            tools: ORIGINAL.into(),
        }
    }
}

impl VariantAxes {
    /// The value of one axis.
    pub fn get(&self, axis: AxisName) -> &str {
        match axis {
            AxisName::Persona => &self.persona,
            AxisName::Phrasing => &self.phrasing,
            AxisName::Length => &self.length,
            AxisName::Format => &self.format,
            AxisName::Tools => &self.tools,
        }
    }

    /// Sets the value of one axis.
    pub fn set(&mut self, axis: AxisName, v: String) {
        match axis {
            AxisName::Persona => self.persona = v,
            AxisName::Phrasing => self.phrasing = v,
            AxisName::Length => self.length = v,
            AxisName::Format => self.format = v,
            AxisName::Tools => self.tools = v,
        }
    }

    /// True when every axis is `original`.
    pub fn is_canonical(&self) -> bool {
        AxisName::ALL.iter().all(|a| self.get(*a) == ORIGINAL)
    }

    /// How many axes differ from `original`.
    pub fn changed(&self) -> usize {
        AxisName::ALL
            .iter()
            .filter(|a| self.get(**a) != ORIGINAL)
            .count()
    }

    /// As an ordered map, for files and the store. `tools` is left out when `original` (as
    /// in JSON): a variant's stored axes read as they did before the axis existed.
    pub fn to_map(&self) -> IndexMap<String, String> {
        AxisName::ALL
            .iter()
            .filter(|a| **a != AxisName::Tools || self.tools != ORIGINAL)
            .map(|a| (a.as_str().to_string(), self.get(*a).to_string()))
            .collect()
    }

    /// From a map; missing axes are `original`.
    pub fn from_map(m: &IndexMap<String, String>) -> VariantAxes {
        let mut v = VariantAxes::default();
        for a in AxisName::ALL {
            if let Some(x) = m.get(a.as_str()) {
                v.set(a, x.clone());
            }
        }
        v
    }
}
