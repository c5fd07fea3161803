//! Plain domain types every layer shares (difficulty tiers, …): names, parsing and display
//! only, no logic and no I/O, so the store, the configuration and the analysis can all use
//! them without importing each other.

use serde::{Deserialize, Serialize};

/// Difficulty tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Almost every model passes.
    Easy,
    /// Some fail.
    Medium,
    /// Most fail.
    Hard,
    /// No model in the panel passes.
    Frontier,
}

impl Tier {
    /// All tiers, easiest first.
    pub const ALL: [Tier; 4] = [Tier::Easy, Tier::Medium, Tier::Hard, Tier::Frontier];

    /// Parses a tier name.
    pub fn parse(s: &str) -> Option<Tier> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "easy" => Tier::Easy,
            "medium" => Tier::Medium,
            "hard" => Tier::Hard,
            "frontier" => Tier::Frontier,
            _ => return None,
        })
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Easy => "easy",
            Tier::Medium => "medium",
            Tier::Hard => "hard",
            Tier::Frontier => "frontier",
        }
    }
}
