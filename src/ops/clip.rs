//! ONNX `Clip` (ReLU6 and clamps): min/max as attributes (opset 6) or as constant inputs
//! (opset 11+), either bound optional. https://onnx.ai/onnx/operators/onnx__Clip.html

use super::{chord, piecewise_lines, Elementwise, Lines};
use crate::ir::Scalar;

/// `Clip` to `[min, max]`; a missing bound is unbounded.
#[derive(Clone, Debug)]
pub struct Clip {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Elementwise for Clip {
    const NAME: &'static str = "Clip";
    #[inline]
    fn eval<T: Scalar>(&self, x: T) -> T {
        let mut y = x;
        if let Some(lo) = self.min {
            let lo = T::from_f64(lo);
            if y < lo {
                y = lo;
            }
        }
        if let Some(hi) = self.max {
            let hi = T::from_f64(hi);
            if y > hi {
                y = hi;
            }
        }
        y
    }
    fn lines(&self, l: f64, u: f64) -> Lines {
        let lo = self.min.unwrap_or(f64::NEG_INFINITY);
        let hi = self.max.unwrap_or(f64::INFINITY);
        let f = |x: f64| x.max(lo).min(hi);
        let (fl, fu) = (f(l), f(u));
        // Slopes: exact on a linear piece; otherwise the chord on one side and, on the other,
        // the better of the two pieces' slopes; across both kinks, lines through the kinks.
        let (a_lo, a_hi) = if u <= lo || l >= hi {
            (0.0, 0.0)
        } else if l >= lo && u <= hi {
            (1.0, 1.0)
        } else if l < lo && u > hi {
            ((hi - lo) / (u - lo), (hi - lo) / (hi - l))
        } else if l < lo {
            // convex part (lower kink only)
            (if u - lo >= lo - l { 1.0 } else { 0.0 }, chord(l, u, fl, fu))
        } else {
            // concave part (upper kink only)
            (chord(l, u, fl, fu), if hi - l >= u - hi { 1.0 } else { 0.0 })
        };
        piecewise_lines(l, u, &[lo, hi], a_lo, a_hi, f, f)
    }
    fn range(&self, l: f64, u: f64) -> (f64, f64) {
        let lo = self.min.unwrap_or(f64::NEG_INFINITY);
        let hi = self.max.unwrap_or(f64::INFINITY);
        (l.max(lo).min(hi), u.max(lo).min(hi))
    }
}
