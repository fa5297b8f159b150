//! Small numeric helpers shared by the detectors: normal tail probabilities in log space.
//!
//! Tail probabilities of interest go down to 1e-12 and beyond, so they are computed as
//! logarithms from the start (no `1 - cdf` cancellation).

/// Natural log of `erfc(x)` for `x >= 0` (Numerical Recipes' Chebyshev fit, relative error
/// below 1.2e-7 everywhere, no underflow for large `x`).
pub(crate) fn ln_erfc(x: f64) -> f64 {
    let x = x.max(0.0);
    let t = 1.0 / (1.0 + 0.5 * x);
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    t.ln() + poly
}

/// `-log10` of the two-sided normal tail probability `P(|Z| >= |z|)`.
pub(crate) fn neg_log10_two_sided(z: f64) -> f64 {
    -ln_erfc(z.abs() * std::f64::consts::FRAC_1_SQRT_2) / std::f64::consts::LN_10
}

/// The `z` whose two-sided normal tail probability `P(|Z| >= z)` is `p` (bisection; for
/// settings, not for every step). About 0 for `p >= 1`.
pub(crate) fn normal_quantile_two_sided(p: f64) -> f64 {
    let target = -p.clamp(1e-300, 1.0).log10();
    let (mut lo, mut hi) = (0.0, 40.0);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if neg_log10_two_sided(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_sided_tail_matches_known_quantiles() {
        // P(|Z| >= 1.959964) = 0.05, P(|Z| >= 3) = 0.0026998, P(|Z| >= 6) = 1.973e-9.
        let p = |z: f64| 10f64.powf(-neg_log10_two_sided(z));
        assert!((p(1.959964) - 0.05).abs() < 1e-6);
        assert!((p(3.0) - 0.002_699_8).abs() < 1e-7);
        assert!((p(6.0) / 1.973e-9 - 1.0).abs() < 1e-3);
        assert!((p(0.0) - 1.0).abs() < 1e-6);
        // Far tails stay finite and monotone.
        assert!(neg_log10_two_sided(40.0) > neg_log10_two_sided(30.0));
        assert!(neg_log10_two_sided(40.0).is_finite());
    }

    #[test]
    fn the_quantile_inverts_the_tail() {
        assert!((normal_quantile_two_sided(0.05) - 1.959_964).abs() < 1e-5);
        assert!((normal_quantile_two_sided(2e-4) - 3.719_016).abs() < 1e-5);
        assert!(normal_quantile_two_sided(1.0) < 1e-6);
    }
}
