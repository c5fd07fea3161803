//! The Wilson score interval for a pass rate, and Newcombe's interval for a difference of two.
//!
//! Both are closed forms: no table lookups, no iteration, so they are deterministic and cheap.
//! Wilson behaves well near 0 % and 100 % and for small n, where the textbook normal interval
//! collapses or leaves [0, 1]; it is what a pass rate of 10 out of 10 needs.

use serde::Serialize;

/// The normal quantile for a two-sided 95 % interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// A closed interval `[lo, hi]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

impl Interval {
    /// Whether `x` lies inside the interval.
    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }
}

/// The Wilson score interval for `k` successes out of `n`, at normal quantile `z`.
/// `None` when `n` is 0.
pub fn wilson(k: u64, n: u64, z: f64) -> Option<Interval> {
    if n == 0 {
        return None;
    }
    let n_f = n as f64;
    let p = k.min(n) as f64 / n_f;
    let z2 = z * z;
    let denom = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denom;
    let half = z * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denom;
    // At 0 and n the bound is exactly 0 or 1; the float sum can miss it by an ulp.
    Some(Interval {
        lo: if k == 0 {
            0.0
        } else {
            (centre - half).max(0.0)
        },
        hi: if k >= n {
            1.0
        } else {
            (centre + half).min(1.0)
        },
    })
}

/// Newcombe's hybrid score interval (his method 10) for the difference `p2 − p1` of two
/// proportions `k1/n1` (baseline) and `k2/n2` (candidate), from their Wilson intervals.
///
/// It treats the two samples as independent. When the same variants are run on both models the
/// samples are positively correlated, so this interval is conservative (too wide); the paired
/// question "did it really change?" is answered by the exact McNemar test instead.
pub fn newcombe_difference(k1: u64, n1: u64, k2: u64, n2: u64, z: f64) -> Option<Interval> {
    let a = wilson(k1, n1, z)?;
    let b = wilson(k2, n2, z)?;
    let p1 = k1 as f64 / n1 as f64;
    let p2 = k2 as f64 / n2 as f64;
    let d = p2 - p1;
    Some(Interval {
        lo: d - ((p2 - b.lo).powi(2) + (a.hi - p1).powi(2)).sqrt(),
        hi: d + ((b.hi - p2).powi(2) + (p1 - a.lo).powi(2)).sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-4
    }

    #[test]
    fn wilson_matches_published_values() {
        // Newcombe (1998), table I: 81/263 → 0.2553–0.3662; 15/148 → 0.0624–0.1605.
        let i = wilson(81, 263, Z95).unwrap();
        assert!(close(i.lo, 0.2553) && close(i.hi, 0.3662), "{i:?}");
        let i = wilson(15, 148, Z95).unwrap();
        assert!(close(i.lo, 0.0624) && close(i.hi, 0.1605), "{i:?}");
        // 0/10 and 10/10 stay inside [0, 1] and are not degenerate.
        let i = wilson(0, 10, Z95).unwrap();
        assert_eq!(i.lo, 0.0);
        assert!(close(i.hi, 0.2775), "{i:?}");
        let i = wilson(10, 10, Z95).unwrap();
        assert!(close(i.lo, 0.7225) && i.hi == 1.0, "{i:?}");
        assert!(wilson(0, 0, Z95).is_none());
    }

    #[test]
    fn newcombe_matches_published_values() {
        // Newcombe (1998), example (a): 56/70 − 48/80 → 0.0524 to 0.3339 (method 10).
        let i = newcombe_difference(48, 80, 56, 70, Z95).unwrap();
        assert!(close(i.lo, 0.0524) && close(i.hi, 0.3339), "{i:?}");
    }
}
