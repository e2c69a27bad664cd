//! Exact (Clopper-Pearson 1934) binomial confidence intervals, computed in f64 by bisection on
//! the binomial CDF (a direct log-space sum) and widened outward, so they are conservative.

/// Two-sided Clopper-Pearson interval for `k` successes in `n` trials at confidence `confidence`
/// (e.g. 0.95). Each one-sided bound has level `(1 - confidence) / 2`. `n == 0` gives `[0, 1]`.
pub fn clopper_pearson(k: u64, n: u64, confidence: f64) -> (f64, f64) {
    if n == 0 || k > n || !(confidence > 0.0 && confidence < 1.0) {
        return (0.0, 1.0);
    }
    let tail = (1.0 - confidence) / 2.0;
    let lower = if k == 0 {
        0.0
    } else {
        // P(X >= k; p) increases with p: the bound is where it equals `tail`; keep the low side.
        let (lo, _) = bisect(|p| upper_tail(k, n, p) <= tail);
        (lo - MARGIN).max(0.0)
    };
    let upper = if k == n {
        1.0
    } else {
        // P(X <= k; p) decreases with p: the bound is where it equals `tail`; keep the high side.
        let (_, hi) = bisect(|p| lower_tail(k, n, p) > tail);
        (hi + MARGIN).min(1.0)
    };
    (lower, upper)
}

/// Absolute widening that covers the f64 error of the CDF sums (relative error ~ n * 1e-16).
const MARGIN: f64 = 1e-9;

/// Bisection on [0, 1] for the point where the monotone predicate `below` switches from true
/// (at small p) to false. Returns the final bracket (lo: below holds, hi: it does not).
fn bisect(below: impl Fn(f64) -> bool) -> (f64, f64) {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if below(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo, hi)
}

/// ln pmf of Binomial(n, p) at i, for 0 < p < 1, given ln C(n, i).
fn log_terms(n: u64, p: f64, range: std::ops::RangeInclusive<u64>) -> f64 {
    let (lp, lq) = (p.ln(), (-p).ln_1p());
    // ln C(n, i), advanced incrementally from i = 0.
    let mut lc = 0.0f64;
    let mut terms = Vec::with_capacity((range.end() - range.start() + 1) as usize);
    for i in 0..=*range.end() {
        if i > 0 {
            lc += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        if i >= *range.start() {
            terms.push(lc + i as f64 * lp + (n - i) as f64 * lq);
        }
    }
    let m = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln()
}

/// P(X <= k) for X ~ Binomial(n, p).
pub fn lower_tail(k: u64, n: u64, p: f64) -> f64 {
    if p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return if k >= n { 1.0 } else { 0.0 };
    }
    log_terms(n, p, 0..=k.min(n)).exp().min(1.0)
}

/// P(X >= k) for X ~ Binomial(n, p).
pub fn upper_tail(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    log_terms(n, p, k..=n).exp().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_values() {
        // R: binom.test(7, 10)$conf.int -> 0.3475471 0.9332605
        let (l, u) = clopper_pearson(7, 10, 0.95);
        assert!((l - 0.3475471).abs() < 1e-6 && (u - 0.9332605).abs() < 1e-6, "{l} {u}");
        // binom.test(0, 10): 0 0.3084971
        let (l, u) = clopper_pearson(0, 10, 0.95);
        assert!(l == 0.0 && (u - 0.3084971).abs() < 1e-6);
        // binom.test(50, 100): 0.3983211 0.6016789
        let (l, u) = clopper_pearson(50, 100, 0.95);
        assert!((l - 0.3983211).abs() < 1e-6 && (u - 0.6016789).abs() < 1e-6, "{l} {u}");
        assert_eq!(clopper_pearson(10, 10, 0.95).1, 1.0);
        assert_eq!(clopper_pearson(0, 0, 0.95), (0.0, 1.0));
    }

    #[test]
    fn conservative_and_large_n() {
        let (l, u) = clopper_pearson(9_000, 10_000, 0.99);
        assert!(upper_tail(9_000, 10_000, l) <= 0.005 && lower_tail(9_000, 10_000, u) <= 0.005);
        assert!(l < 0.9 && u > 0.9 && u - l < 0.02);
    }
}
