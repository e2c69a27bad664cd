//! ONNX `LeakyRelu`: x for x >= 0, alpha * x otherwise (alpha defaults to 0.01).
//! https://onnx.ai/onnx/operators/onnx__LeakyRelu.html

use super::{chord, piecewise_lines, Elementwise, Lines};
use crate::ir::Scalar;

/// `LeakyRelu` with slope `alpha` for negative inputs.
#[derive(Clone, Debug)]
pub struct LeakyRelu {
    pub alpha: f64,
}

impl Elementwise for LeakyRelu {
    const NAME: &'static str = "LeakyRelu";
    #[inline]
    fn eval<T: Scalar>(&self, x: T) -> T {
        if x < T::ZERO {
            T::from_f64(self.alpha) * x
        } else {
            x
        }
    }
    fn lines(&self, l: f64, u: f64) -> Lines {
        let a = self.alpha;
        let f_lo = |x: f64| if x < 0.0 { crate::num::mul_down(a, x) } else { x };
        let f_hi = |x: f64| if x < 0.0 { crate::num::mul_up(a, x) } else { x };
        let (a_lo, a_hi) = if l >= 0.0 {
            (1.0, 1.0)
        } else if u <= 0.0 {
            (a, a)
        } else {
            // For alpha <= 1 the function is convex: chord above, a supporting line below.
            let c = chord(l, u, a * l, u);
            let (lo_slope, hi_slope) =
                if a <= 1.0 { (if u >= -l { 1.0 } else { a }, c) } else { (c, if u >= -l { 1.0 } else { a }) };
            (lo_slope, hi_slope)
        };
        piecewise_lines(l, u, &[0.0], a_lo, a_hi, f_lo, f_hi)
    }
    fn range(&self, l: f64, u: f64) -> (f64, f64) {
        let f_lo = |x: f64| if x < 0.0 { crate::num::mul_down(self.alpha, x) } else { x };
        let f_hi = |x: f64| if x < 0.0 { crate::num::mul_up(self.alpha, x) } else { x };
        if self.alpha >= 0.0 {
            (f_lo(l), f_hi(u))
        } else {
            // Non-monotone for negative alpha: the minimum is at 0 or an end.
            let lo = f_lo(l).min(f_lo(u)).min(if l < 0.0 && u > 0.0 { 0.0 } else { f64::INFINITY });
            (lo, f_hi(l).max(f_hi(u)))
        }
    }
}
