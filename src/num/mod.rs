//! Outward-rounded floating-point arithmetic for sound bounds (the approach of sound
//! floating-point verifiers such as ERAN's DeepPoly, Singh et al. 2019): every lower bound is
//! rounded down and every upper bound up, either per operation (`next_down`/`next_up` after a
//! round-to-nearest result, which is within half an ulp of the exact value) or, for long sums,
//! with Higham's bound |fl(sum) - sum| <= gamma_n * sum |terms|, gamma_n = n u / (1 - n u).

/// Unit roundoff of f64 (2^-53).
pub const UNIT_ROUNDOFF: f64 = 1.1102230246251565e-16;

/// Higham's gamma_n, rounded up: bounds the relative error of an n-term floating-point sum of
/// products. Saturates at infinity when n u >= 1.
pub fn gamma(n: usize) -> f64 {
    let nu = (n as f64 + 1.0) * UNIT_ROUNDOFF;
    if nu >= 0.5 {
        return f64::INFINITY;
    }
    up(up(nu) / down(1.0 - nu))
}

/// The next f64 below `x` (no change for -inf and NaN).
#[inline]
pub fn down(x: f64) -> f64 {
    x.next_down()
}

/// The next f64 above `x`.
#[inline]
pub fn up(x: f64) -> f64 {
    x.next_up()
}

/// The exact rounding error of a + b (TwoSum, Knuth): a + b = s + err exactly.
#[inline]
fn two_sum_err(a: f64, b: f64, s: f64) -> f64 {
    let bb = s - a;
    (a - (s - bb)) + (b - bb)
}

// Directed operations: the round-to-nearest result when it is exact (or already on the right
// side), else one step outward. Exactness comes from TwoSum / FMA residuals; overflow and
// tiny results fall back to always stepping outward.

#[inline]
pub fn add_down(a: f64, b: f64) -> f64 {
    let s = a + b;
    if !s.is_finite() {
        return down(s);
    }
    if two_sum_err(a, b, s) < 0.0 {
        down(s)
    } else {
        s
    }
}
#[inline]
pub fn add_up(a: f64, b: f64) -> f64 {
    let s = a + b;
    if !s.is_finite() {
        return up(s);
    }
    if two_sum_err(a, b, s) > 0.0 {
        up(s)
    } else {
        s
    }
}
#[inline]
pub fn sub_down(a: f64, b: f64) -> f64 {
    add_down(a, -b)
}
#[inline]
pub fn sub_up(a: f64, b: f64) -> f64 {
    add_up(a, -b)
}

/// Products whose FMA residual is exact (no overflow, no underflow).
#[inline]
fn mul_residual(a: f64, b: f64, p: f64) -> Option<f64> {
    (p.is_finite() && p.abs() >= 1e-290).then(|| a.mul_add(b, -p))
}

#[inline]
pub fn mul_down(a: f64, b: f64) -> f64 {
    // 0 * inf is NaN; treat the empty product of a zero coefficient as exactly zero.
    if a == 0.0 || b == 0.0 {
        return 0.0;
    }
    let p = a * b;
    match mul_residual(a, b, p) {
        Some(e) if e >= 0.0 => p,
        _ => down(p),
    }
}
#[inline]
pub fn mul_up(a: f64, b: f64) -> f64 {
    if a == 0.0 || b == 0.0 {
        return 0.0;
    }
    let p = a * b;
    match mul_residual(a, b, p) {
        Some(e) if e <= 0.0 => p,
        _ => up(p),
    }
}
#[inline]
pub fn div_down(a: f64, b: f64) -> f64 {
    down(a / b)
}
#[inline]
pub fn div_up(a: f64, b: f64) -> f64 {
    up(a / b)
}
#[inline]
pub fn sqrt_up(a: f64) -> f64 {
    up(a.sqrt())
}

/// A lower bound of the exact dot product a . b.
pub fn dot_down(a: &[f64], b: &[f64]) -> f64 {
    let (s, abs) = dot_with_abs(a, b);
    sub_down(s, mul_up(gamma(a.len()), abs))
}

/// An upper bound of the exact dot product a . b.
pub fn dot_up(a: &[f64], b: &[f64]) -> f64 {
    let (s, abs) = dot_with_abs(a, b);
    add_up(s, mul_up(gamma(a.len()), abs))
}

/// The rounded dot product and an upper bound of sum |a_i b_i| (computed to within a factor
/// covered by gamma).
fn dot_with_abs(a: &[f64], b: &[f64]) -> (f64, f64) {
    let mut s = 0.0;
    let mut abs = 0.0;
    for (&x, &y) in a.iter().zip(b) {
        if x == 0.0 || y == 0.0 {
            continue;
        }
        let p = x * y;
        s += p;
        abs += p.abs();
    }
    // |fl(sum |p|) - sum |p|| <= gamma_n sum|p|: inflate so `abs` bounds the exact sum.
    (s, up(abs * (1.0 + 2.0 * gamma(a.len()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directed_rounding_brackets_exact_values() {
        // 0.1 + 0.2 is not representable: the bounds bracket the exact sum of the two f64s.
        let (lo, hi) = (add_down(0.1, 0.2), add_up(0.1, 0.2));
        assert!(lo < hi);
        assert!(lo <= 0.30000000000000004 && hi >= 0.30000000000000004);
        let a: Vec<f64> = (0..1000).map(|i| 1.0 / (i as f64 + 1.0)).collect();
        let b: Vec<f64> = (0..1000).map(|i| ((i * 7919) % 13) as f64 - 6.0).collect();
        let lo = dot_down(&a, &b);
        let hi = dot_up(&a, &b);
        // Exact value via pairwise f64 with compensated summation is within [lo, hi].
        let mut s = 0.0f64;
        let mut c = 0.0f64;
        for (x, y) in a.iter().zip(&b) {
            let t = x * y - c;
            let u = s + t;
            c = (u - s) - t;
            s = u;
        }
        assert!(lo <= s && s <= hi, "{lo} {s} {hi}");
        assert!(hi - lo < 1e-10);
        // Exact operations stay exact; inexact ones step outward.
        assert_eq!((add_down(1.0, 2.0), add_up(1.0, 2.0)), (3.0, 3.0));
        assert_eq!((mul_down(3.0, 0.5), mul_up(3.0, 0.5)), (1.5, 1.5));
        let (lo, hi) = (mul_down(0.1, 3.0), mul_up(0.1, 3.0));
        assert!(lo < hi && hi - lo <= 2.0 * f64::EPSILON);
        assert_eq!(add_down(f64::MAX, f64::MAX), f64::MAX);
        assert_eq!(add_up(1e308, 1e308), f64::INFINITY);
        assert!(gamma(10) > 10.0 * UNIT_ROUNDOFF);
    }
}
