//! Thresholds on ordered axes: every value from some level on a cause, every value below it
//! cleared, reported as one cause ("length from 8k on, any position").

use super::decision::Decision;
use crate::axes::{AxisName, ORIGINAL};
use serde::Serialize;

/// A cause on an ordered axis that starts at one level.
#[derive(Debug, Clone, Serialize)]
pub struct Threshold {
    /// Axis.
    pub axis: AxisName,
    /// The first failing level (`8k`).
    pub from: String,
    /// The values it covers.
    pub values: Vec<String>,
}

/// The level of each value of an ordered axis, with its name: for length the level of
/// `8k-middle` is `8k` (levels in library order, positions sharing one); for any other ordered
/// axis every value is its own level. `original` has none.
fn levels_of(axis: AxisName, values: &[String]) -> Vec<Option<(usize, String)>> {
    let mut levels: Vec<String> = Vec::new();
    values
        .iter()
        .map(|v| {
            if v == ORIGINAL {
                return None;
            }
            let level = match axis {
                AxisName::Length => v.rsplit_once('-').map_or(v.as_str(), |(l, _)| l),
                _ => v.as_str(),
            };
            let i = match levels.iter().position(|l| l == level) {
                Some(i) => i,
                None => {
                    levels.push(level.to_string());
                    levels.len() - 1
                }
            };
            Some((i, level.to_string()))
        })
        .collect()
}

/// A threshold on an ordered axis: every value from some level on is a cause, every value
/// below it cleared, and more than one value covered.
pub(super) fn threshold(
    axis: AxisName,
    values: &[String],
    decisions: &[Decision],
) -> Option<Threshold> {
    let levels = levels_of(axis, values);
    let max = levels.iter().flatten().map(|(i, _)| *i).max()?;
    for from in 0..=max {
        let ok = levels.iter().zip(decisions).all(|(l, d)| match l {
            None => true,
            Some((i, _)) if *i >= from => *d == Decision::Cause,
            Some(_) => *d == Decision::Cleared,
        });
        let covered: Vec<String> = values
            .iter()
            .zip(&levels)
            .filter(|(_, l)| l.as_ref().is_some_and(|(i, _)| *i >= from))
            .map(|(v, _)| v.clone())
            .collect();
        if ok && covered.len() > 1 {
            let name = levels
                .iter()
                .flatten()
                .find(|(i, _)| *i == from)
                .map(|(_, n)| n.clone())?;
            return Some(Threshold {
                axis,
                from: name,
                values: covered,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_declared_axis_has_thresholds_by_value_order() {
        let vals: Vec<String> = ["original", "mild", "firm", "harsh"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        use Decision::*;
        let t = threshold(
            AxisName::Persona,
            &vals,
            &[Undecided, Cleared, Cause, Cause],
        )
        .expect("a step");
        assert_eq!(t.from, "firm");
        assert_eq!(t.values, vec!["firm", "harsh"]);
    }

    #[test]
    fn threshold_needs_a_clean_step() {
        let vals: Vec<String> = ["original", "2k-start", "2k-end", "8k-start", "8k-end"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        use Decision::*;
        let t = threshold(
            AxisName::Length,
            &vals,
            &[Undecided, Cleared, Cleared, Cause, Cause],
        )
        .expect("a step");
        assert_eq!(t.from, "8k");
        assert_eq!(t.values, vec!["8k-start", "8k-end"]);
        assert!(
            threshold(
                AxisName::Length,
                &vals,
                &[Undecided, Cleared, Cause, Cause, Cause]
            )
            .is_none()
        );
        assert!(
            threshold(
                AxisName::Length,
                &vals,
                &[Undecided, Cleared, Cleared, Cause, Undecided]
            )
            .is_none()
        );
    }
}
