//! The sign test the benchmarks' comparison of two revisions decides by (`cargo xtask bench
//! --against`): of `n` blocks, each saying which program was faster, how many must agree for the
//! difference to count.

/// The fewest of `n` blocks that must agree for a fair coin to give as many or more one way at
/// most one time in 40 (a two-sided test at 5%); `n + 1` when even all `n` would not (below 6).
pub fn agreeing(n: usize) -> usize {
    let total = 2f64.powi(n as i32);
    // P(X >= k) for X ~ Binomial(n, 1/2).
    let tail = |k: usize| (k..=n).map(|i| binomial(n, i)).sum::<f64>() / total;
    (n / 2 + 1..=n).find(|&k| tail(k) <= 0.025).unwrap_or(n + 1)
}

fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |c, i| c * (n - i) as f64 / (i + 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::agreeing;

    /// By hand: of 10, P(10) = 1/1024, P(9 or more) = 11/1024 = 0.011, P(8 or more) = 56/1024 =
    /// 0.055; of 16, P(13 or more) = (560 + 120 + 16 + 1)/65536 = 0.011, P(12 or more) adds 1820:
    /// 0.038; of 6, P(6) = 1/64 = 0.016, P(5 or more) = 7/64; of 5, P(5) = 1/32 = 0.031.
    #[test]
    fn blocks_needed_are_the_binomial_tails_by_hand() {
        assert_eq!(agreeing(10), 9);
        assert_eq!(agreeing(16), 13);
        assert_eq!(agreeing(6), 6);
        assert_eq!(agreeing(5), 6, "five blocks can never resolve");
    }
}
