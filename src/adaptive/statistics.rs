//! The binomial tail the cause, cleared and interaction tests are made with.

/// `ln C(n, k)`.
fn ln_choose(n: u64, k: u64) -> f64 {
    let lf = |x: u64| (1..=x).map(|i| (i as f64).ln()).sum::<f64>();
    lf(n) - lf(k) - lf(n - k)
}

/// `P(X ≥ k)` for `X ~ Binomial(n, ½)`.
pub fn binom_upper_half(n: u64, k: u64) -> f64 {
    (k..=n)
        .map(|i| (ln_choose(n, i) - n as f64 * std::f64::consts::LN_2).exp())
        .sum::<f64>()
        .min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_tail() {
        assert!((binom_upper_half(10, 10) - 1.0 / 1024.0).abs() < 1e-12);
        assert!((binom_upper_half(4, 0) - 1.0).abs() < 1e-12);
        assert!((binom_upper_half(2, 1) - 0.75).abs() < 1e-12);
    }
}
