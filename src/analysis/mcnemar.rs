//! The exact McNemar test: did the pass rate change on the cases both models ran?
//!
//! Only the discordant pairs carry information: `b` variants the baseline passed and the
//! candidate fails (regressed), `c` the other way (fixed). Under "no change" each discordant pair
//! is a fair coin, so the two-sided p-value is `min(1, 2 · P(X ≤ min(b, c)))` with
//! `X ~ Binomial(b + c, ½)`. The sum is done in log space (log-factorials by summation), so it
//! is exact to f64 precision for any realistic count and never underflows.

/// The two-sided exact McNemar p-value for `b` and `c` discordant pairs. 1 when there are none.
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // ln(i!) for i = 0..=n.
    let mut ln_fact = Vec::with_capacity(n as usize + 1);
    ln_fact.push(0.0f64);
    for i in 1..=n {
        let prev = ln_fact[i as usize - 1];
        ln_fact.push(prev + (i as f64).ln());
    }
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    let terms: Vec<f64> = (0..=k)
        .map(|i| ln_fact[n as usize] - ln_fact[i as usize] - ln_fact[(n - i) as usize] + ln_half_n)
        .collect();
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let tail = max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln();
    (2.0 * tail.exp()).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::mcnemar_exact;

    #[test]
    fn known_values() {
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert_eq!(mcnemar_exact(3, 3), 1.0);
        // 0 vs 5: 2 · 0.5^5.
        assert!((mcnemar_exact(0, 5) - 0.0625).abs() < 1e-12);
        assert!((mcnemar_exact(5, 0) - 0.0625).abs() < 1e-12);
        // 0 vs 6: 2 · 0.5^6 = 0.03125.
        assert!((mcnemar_exact(0, 6) - 0.03125).abs() < 1e-12);
        // 2 vs 10: 2 · (1 + 12 + 66) / 4096 = 0.0385742…
        assert!((mcnemar_exact(2, 10) - 158.0 / 4096.0).abs() < 1e-12);
        // Large counts do not underflow or overflow.
        let p = mcnemar_exact(1000, 1200);
        assert!(p > 0.0 && p < 1e-4, "{p}");
        assert!(mcnemar_exact(5000, 5000) == 1.0);
    }
}
