//! Perturbation sets: {x : ||x - x0||_p <= eps} for p in {inf, 2, 1}, intersected with a box
//! [lo, hi] (the valid input range, or a VNN-LIB box on its own).

use crate::error::{Error, Result};
use crate::num::{add_up, mul_up};

/// The norm of a perturbation ball.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Norm {
    #[serde(rename = "inf")]
    Inf,
    #[serde(rename = "2")]
    L2,
    #[serde(rename = "1")]
    L1,
}

impl std::str::FromStr for Norm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Norm> {
        match s.to_ascii_lowercase().as_str() {
            "inf" | "linf" | "l_inf" => Ok(Norm::Inf),
            "2" | "l2" => Ok(Norm::L2),
            "1" | "l1" => Ok(Norm::L1),
            _ => Err(Error::InvalidArgument(format!("unknown norm '{s}' (use inf, 2 or 1)"))),
        }
    }
}

impl std::fmt::Display for Norm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Norm::Inf => "inf",
            Norm::L2 => "2",
            Norm::L1 => "1",
        })
    }
}

impl Norm {
    /// ||v||_q for the dual norm q of this norm (1/p + 1/q = 1), rounded up (sums of
    /// non-negative terms inflated by Higham's gamma_n).
    pub fn dual_norm_up(self, v: &[f64]) -> f64 {
        let inflate = 1.0 + 2.0 * crate::num::gamma(v.len() + 1);
        match self {
            // dual of inf is 1
            Norm::Inf => crate::num::up(v.iter().map(|x| x.abs()).sum::<f64>() * inflate),
            Norm::L2 => crate::num::sqrt_up(crate::num::up(v.iter().map(|x| x * x).sum::<f64>() * inflate)),
            Norm::L1 => v.iter().fold(0.0f64, |m, x| m.max(x.abs())),
        }
    }
}

/// A set of inputs (one sample, flattened): the ball of radius `eps` around `center` in
/// `norm`, intersected with the box [`lo`, `hi`] (which may be infinite).
#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    pub center: Vec<f64>,
    pub norm: Norm,
    pub eps: f64,
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
}

impl Region {
    /// The Lp ball of radius `eps` around `center`, optionally clipped to [clip.0, clip.1].
    pub fn ball(center: Vec<f64>, norm: Norm, eps: f64, clip: Option<(f64, f64)>) -> Result<Region> {
        if !(eps >= 0.0 && eps.is_finite()) {
            return Err(Error::InvalidArgument(format!("radius {eps} must be finite and >= 0")));
        }
        if let Some(i) = center.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!("input element {i} is {}", center[i])));
        }
        let (lo, hi) = match clip {
            Some((a, b)) if a <= b => (vec![a; center.len()], vec![b; center.len()]),
            Some((a, b)) => return Err(Error::InvalidArgument(format!("clip range [{a}, {b}] is empty"))),
            None => (vec![f64::NEG_INFINITY; center.len()], vec![f64::INFINITY; center.len()]),
        };
        if let Some(i) = center.iter().zip(lo.iter().zip(&hi)).position(|(c, (l, h))| c < l || c > h) {
            return Err(Error::InvalidArgument(format!(
                "input element {i} = {} lies outside the clip range [{}, {}]",
                center[i], lo[i], hi[i]
            )));
        }
        Ok(Region { center, norm, eps, lo, hi })
    }

    /// A plain box [lo, hi].
    pub fn from_box(lo: Vec<f64>, hi: Vec<f64>) -> Result<Region> {
        if lo.len() != hi.len() {
            return Err(Error::Shape(format!("box bounds of lengths {} and {}", lo.len(), hi.len())));
        }
        for (i, (l, h)) in lo.iter().zip(&hi).enumerate() {
            if !(l.is_finite() && h.is_finite() && l <= h) {
                return Err(Error::InvalidArgument(format!("box element {i}: [{l}, {h}] is not a finite interval")));
            }
        }
        let center: Vec<f64> = lo.iter().zip(&hi).map(|(l, h)| l + (h - l) / 2.0).collect();
        // The Linf ball of the largest half-width around the centre contains the box; the box
        // itself carries the exact set.
        let eps = lo.iter().zip(&hi).map(|(l, h)| (h - l) / 2.0).fold(0.0f64, f64::max);
        let eps = crate::num::up(eps);
        Ok(Region { center, norm: Norm::Inf, eps, lo, hi })
    }

    pub fn len(&self) -> usize {
        self.center.len()
    }

    pub fn is_empty(&self) -> bool {
        self.center.is_empty()
    }

    /// The smallest box containing the region (element-wise), rounded outward.
    pub fn bounding_box(&self) -> (Vec<f64>, Vec<f64>) {
        let lo = self.center.iter().zip(&self.lo).map(|(&c, &l)| crate::num::sub_down(c, self.eps).max(l)).collect();
        let hi = self.center.iter().zip(&self.hi).map(|(&c, &h)| add_up(c, self.eps).min(h)).collect();
        (lo, hi)
    }

    /// Whether a point lies in the region (for tests and attacks), up to `tol` in the norm.
    pub fn contains(&self, x: &[f64], tol: f64) -> bool {
        if x.len() != self.center.len() {
            return false;
        }
        let in_box = x.iter().zip(self.lo.iter().zip(&self.hi)).all(|(&v, (&l, &h))| v >= l - tol && v <= h + tol);
        let d: Vec<f64> = x.iter().zip(&self.center).map(|(a, b)| a - b).collect();
        let n = match self.norm {
            Norm::Inf => d.iter().fold(0.0f64, |m, v| m.max(v.abs())),
            Norm::L2 => d.iter().map(|v| v * v).sum::<f64>().sqrt(),
            Norm::L1 => d.iter().map(|v| v.abs()).sum(),
        };
        in_box && n <= self.eps + tol
    }

    /// A guaranteed lower bound of min over the region of a·x (a: one row), rounded down.
    /// For Lp balls with a box, both the ball's dual-norm bound and the bounding box's bound
    /// hold; the larger is returned.
    pub fn min_linear(&self, a: &[f64]) -> f64 {
        let (blo, bhi) = self.bounding_box();
        self.min_linear_in(a, &blo, &bhi)
    }

    /// A point of the region (approximately) minimising a . x: the box corner for L-inf, the
    /// ball's extreme point (moved into the box) for L2 and L1. Used to steer optimisers;
    /// soundness never depends on it.
    pub fn minimizer(&self, a: &[f64], blo: &[f64], bhi: &[f64]) -> Vec<f64> {
        let corner = |i: usize| if a[i] >= 0.0 { blo[i] } else { bhi[i] };
        match self.norm {
            Norm::Inf => (0..a.len()).map(corner).collect(),
            Norm::L2 => {
                let n = a.iter().map(|v| v * v).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
                (0..a.len()).map(|i| (self.center[i] - self.eps * a[i] / n).clamp(blo[i], bhi[i])).collect()
            }
            Norm::L1 => {
                let k = (0..a.len()).max_by(|&i, &j| a[i].abs().total_cmp(&a[j].abs())).unwrap_or(0);
                let mut x = self.center.clone();
                if !x.is_empty() {
                    x[k] = (x[k] - self.eps * a[k].signum()).clamp(blo[k], bhi[k]);
                }
                x
            }
        }
    }

    /// [`min_linear`](Region::min_linear) with the bounding box computed once by the caller.
    pub fn min_linear_in(&self, a: &[f64], blo: &[f64], bhi: &[f64]) -> f64 {
        self.min_linear_gathered(a, &self.center, blo, bhi)
    }

    /// [`min_linear_in`](Region::min_linear_in) for a sparse row: coefficients `a` on the
    /// input elements `idx` (the others zero).
    pub fn min_linear_sparse(&self, idx: &[usize], a: &[f64], blo: &[f64], bhi: &[f64]) -> f64 {
        let gather = |v: &[f64]| idx.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        self.min_linear_gathered(a, &gather(&self.center), &gather(blo), &gather(bhi))
    }

    /// The bound of `min_linear_in` over the elements given (zero coefficients elsewhere
    /// add nothing to any of its sums or norms): `a`, the centre `c` and the box, gathered.
    fn min_linear_gathered(&self, a: &[f64], c: &[f64], blo: &[f64], bhi: &[f64]) -> f64 {
        // Box bound: sum of min(a*lo, a*hi) in round-to-nearest, then lowered by Higham's
        // bound on the rounding of the products and the sum (gamma_n times the sum of |terms|).
        let (mut sum, mut abs) = (0.0f64, 0.0f64);
        let mut n = 0usize;
        for ((&ai, &l), &h) in a.iter().zip(blo).zip(bhi) {
            if ai == 0.0 {
                continue;
            }
            let t = if ai >= 0.0 { ai * l } else { ai * h };
            sum += t;
            abs += t.abs();
            n += 1;
        }
        let g = crate::num::gamma(n + 1);
        let slack = if abs == 0.0 { 0.0 } else { mul_up(crate::num::up(abs * (1.0 + 2.0 * g)), g) };
        let box_bound = crate::num::sub_down(sum, slack);
        if self.norm == Norm::Inf {
            return box_bound;
        }
        let dot = crate::num::dot_down(a, c);
        let ball = crate::num::sub_down(dot, mul_up(self.eps, self.norm.dual_norm_up(a)));
        if ball.is_nan() {
            box_bound
        } else {
            ball.max(box_bound)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_minimum_over_balls() {
        let c = vec![1.0, -1.0];
        let a = [3.0, 4.0];
        // a.c = -1; L2 ball radius 1: -1 - 5 = -6; Linf: -1 - 7 = -8; L1: -1 - 4 = -5.
        let r2 = Region::ball(c.clone(), Norm::L2, 1.0, None).unwrap();
        assert!((r2.min_linear(&a) + 6.0).abs() < 1e-12 && r2.min_linear(&a) <= -6.0);
        let ri = Region::ball(c.clone(), Norm::Inf, 1.0, None).unwrap();
        assert!(ri.min_linear(&a) <= -8.0 && ri.min_linear(&a) > -8.0 - 1e-12);
        let r1 = Region::ball(c.clone(), Norm::L1, 1.0, None).unwrap();
        assert!(r1.min_linear(&a) <= -5.0 && r1.min_linear(&a) > -5.0 - 1e-12);
        // The clip box can be tighter than the ball.
        let rc = Region::ball(vec![0.0, 0.0], Norm::L1, 10.0, Some((0.0, 0.5))).unwrap();
        assert_eq!(rc.min_linear(&[1.0, 1.0]), 0.0);
    }

    #[test]
    fn bad_regions() {
        assert!(Region::ball(vec![0.0], Norm::L2, -1.0, None).is_err());
        assert!(Region::ball(vec![f64::NAN], Norm::L2, 1.0, None).is_err());
        assert!(Region::ball(vec![2.0], Norm::L2, 1.0, Some((0.0, 1.0))).is_err());
        assert!(Region::from_box(vec![1.0], vec![0.0]).is_err());
        assert!("l3".parse::<Norm>().is_err());
    }
}
