//! Statistics for randomized smoothing (Cohen, Rosenfeld & Kolter, ICML 2019): one-sided
//! Clopper-Pearson bounds (Clopper & Pearson 1934), the two-sided binomial test of PREDICT, and
//! the normal quantile giving the radius, each rounded so the reported value is conservative.
//!
//! Clopper-Pearson bounds are not taken from a Beta inverse CDF (statrs' is slightly
//! anti-conservative in these tails): we bisect on a binomial tail we sum ourselves and accept a
//! point only when its computed tail is below `alpha * (1 - tail_margin(n))`, which covers the
//! tail's own rounding error, so every returned lower bound is below the exact one.

use statrs::function::erf::erfc_inv;
use statrs::function::gamma::ln_gamma;

/// Relative slack on alpha covering the error of the computed tails: 1e-8 + 1e-13 n. The error
/// comes from the cancellation in ln C(n, k) (terms up to n ln n, so a few ulp of that: 6e-10 at
/// n = 1e5, 1e-6 at n = 1e8) and the term recurrence (~n * 2e-16); the slack is 10x above both.
pub fn tail_margin(n: u64) -> f64 {
    1e-8 + 1e-13 * n as f64
}

/// Largest sample count the error analysis above covers.
pub const MAX_N: u64 = 100_000_000;

/// ln P(X = k) for X ~ Bin(n, p), 0 < p < 1.
fn ln_pmf(n: u64, k: u64, p: f64) -> f64 {
    let (nf, kf) = (n as f64, k as f64);
    ln_gamma(nf + 1.0) - ln_gamma(kf + 1.0) - ln_gamma(nf - kf + 1.0) + kf * p.ln() + (nf - kf) * (-p).ln_1p()
}

/// P(X >= k) for X ~ Bin(n, p), summed from k upwards with the term ratio recurrence (relative
/// to the first term, so nothing underflows before the final scaling).
pub fn upper_tail(n: u64, k: u64, p: f64) -> f64 {
    if k == 0 || p >= 1.0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    let r = p / (1.0 - p);
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    let mut j = k;
    while j < n {
        term *= (n - j) as f64 / (j + 1) as f64 * r;
        sum += term;
        j += 1;
        // Past the mode the terms shrink at least geometrically: stop once negligible.
        if term < sum * 1e-18 && (j as f64) > (n as f64) * p {
            break;
        }
    }
    (ln_pmf(n, k, p) + sum.ln()).exp().min(1.0)
}

/// P(X <= k) for X ~ Bin(n, p), summed from k downwards.
pub fn lower_tail(n: u64, k: u64, p: f64) -> f64 {
    if k >= n || p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return 0.0;
    }
    let r = (1.0 - p) / p;
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    let mut j = k;
    while j > 0 {
        term *= j as f64 / (n - j + 1) as f64 * r;
        sum += term;
        j -= 1;
        if term < sum * 1e-18 && (j as f64) < (n as f64) * p {
            break;
        }
    }
    (ln_pmf(n, k, p) + sum.ln()).exp().min(1.0)
}

/// One-sided Clopper-Pearson lower confidence bound at level `alpha` for k successes in n
/// trials: a value at most the exact bound `sup{p : P_p(X >= k) <= alpha}`.
pub fn cp_lower(k: u64, n: u64, alpha: f64) -> f64 {
    if k == 0 || n == 0 {
        return 0.0;
    }
    let target = alpha * (1.0 - tail_margin(n));
    // Invariant: the computed tail at `lo` is <= target (lo = 0 has tail 0).
    let (mut lo, mut hi) = (0.0f64, k as f64 / n as f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if upper_tail(n, k, mid) <= target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// One-sided Clopper-Pearson upper confidence bound at level `alpha`: at least the exact bound.
pub fn cp_upper(k: u64, n: u64, alpha: f64) -> f64 {
    if n == 0 || k >= n {
        return 1.0;
    }
    let target = alpha * (1.0 - tail_margin(n));
    // Invariant: the computed lower tail at `hi` is <= target (hi = 1 has tail 0).
    let (mut lo, mut hi) = (k as f64 / n as f64, 1.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if lower_tail(n, k, mid) <= target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// Two-sided binomial test p-value of `k_a` successes out of `k_a + k_b` at p = 1/2, rounded up
/// (PREDICT abstains when it exceeds alpha, so rounding up only abstains more).
pub fn binom_test_half(k_a: u64, k_b: u64) -> f64 {
    let m = k_a + k_b;
    if m == 0 || k_a == k_b {
        return 1.0;
    }
    let k = k_a.min(k_b);
    (2.0 * lower_tail(m, k, 0.5) * (1.0 + tail_margin(m))).min(1.0)
}

/// The standard normal quantile, as statrs computes it (2.5e-16 relative); `None` outside (0, 1).
pub fn phi_inv(p: f64) -> Option<f64> {
    if !(p > 0.0 && p < 1.0) {
        return None;
    }
    Some(-std::f64::consts::SQRT_2 * erfc_inv(2.0 * p))
}

/// The standard normal CDF.
pub fn phi(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// The next representable f64 below `x` (outward rounding; `f64::next_down` needs Rust 1.86).
pub fn next_down(x: f64) -> f64 {
    if x.is_nan() || x == f64::NEG_INFINITY {
        return x;
    }
    if x == 0.0 {
        return -f64::from_bits(1);
    }
    let b = x.to_bits();
    f64::from_bits(if x > 0.0 { b - 1 } else { b + 1 })
}

/// The next representable f64 above `x`.
pub fn next_up(x: f64) -> f64 {
    -next_down(-x)
}

/// Cohen's radius sigma * PhiInverse(p_lower), rounded down: the quantile is lowered by a
/// relative 1e-12 (4000x its error) and each product rounded down. `None` when p_lower <= 1/2
/// (abstain). The negated comparisons are deliberate: a NaN input must abstain, not certify.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
pub fn radius_lower(sigma: f64, p_lower: f64) -> Option<f64> {
    if !(p_lower > 0.5) {
        return None;
    }
    let z = phi_inv(p_lower)?;
    let z = next_down(z - z.abs() * 1e-12);
    if !(z > 0.0) {
        return Some(0.0);
    }
    Some(next_down(sigma * z).max(0.0))
}

/// An upper bound on sigma * PhiInverse(p_upper), rounded up (for "radius < R" decisions).
pub fn radius_upper(sigma: f64, p_upper: f64) -> f64 {
    if p_upper >= 1.0 {
        return f64::INFINITY;
    }
    match phi_inv(p_upper) {
        Some(z) => next_up(sigma * next_up(z + z.abs() * 1e-12)),
        None => f64::NEG_INFINITY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_match_direct_sums() {
        for &(n, p) in &[(10u64, 0.3), (50, 0.9), (1, 0.5), (37, 0.01)] {
            let pmf = |k: u64| (ln_pmf(n, k, p)).exp();
            for k in 0..=n {
                let up: f64 = (k..=n).map(pmf).sum();
                let lo: f64 = (0..=k).map(pmf).sum();
                assert!((upper_tail(n, k, p) - up).abs() <= 1e-12 * up.max(1e-300), "{n} {k} {p}");
                assert!((lower_tail(n, k, p) - lo).abs() <= 1e-12 * lo.max(1e-300), "{n} {k} {p}");
            }
        }
    }

    #[test]
    fn cp_edge_cases() {
        assert_eq!(cp_lower(0, 10, 0.05), 0.0);
        // k = n: the bound is alpha^(1/n).
        let b = cp_lower(100, 100, 0.001);
        let exact = 0.001f64.powf(0.01);
        assert!(b <= exact && b > exact * (1.0 - 1e-9), "{b} {exact}");
        assert_eq!(cp_upper(10, 10, 0.05), 1.0);
        assert!(radius_lower(1.0, 0.5).is_none());
        assert_eq!(next_down(1.0), 1.0 - f64::EPSILON / 2.0);
    }
}
