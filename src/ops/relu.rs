//! ONNX `Relu`: max(x, 0). https://onnx.ai/onnx/operators/onnx__Relu.html

use super::{piecewise_lines, Elementwise, Lines};
use crate::ir::Scalar;

/// `Relu`.
#[derive(Clone, Debug, Default)]
pub struct Relu;

impl Elementwise for Relu {
    const NAME: &'static str = "Relu";
    #[inline]
    fn eval<T: Scalar>(&self, x: T) -> T {
        // Written so NaN propagates, as onnxruntime does.
        if x < T::ZERO {
            T::ZERO
        } else {
            x
        }
    }
    fn lines(&self, l: f64, u: f64) -> Lines {
        // Stable neurons: the function itself, exactly (most neurons; no rounded offsets).
        if l >= 0.0 {
            return Lines { a_lo: 1.0, b_lo: 0.0, a_hi: 1.0, b_hi: 0.0 };
        }
        if u <= 0.0 {
            return Lines { a_lo: 0.0, b_lo: 0.0, a_hi: 0.0, b_hi: 0.0 };
        }
        // Upper: the chord. Lower: slope 1 or 0, whichever leaves less area (CROWN's choice).
        let (a_lo, a_hi) = (if u > -l { 1.0 } else { 0.0 }, crate::num::up(u / (u - l)));
        piecewise_lines(l, u, &[0.0], a_lo, a_hi, |x| x.max(0.0), |x| x.max(0.0))
    }
    fn range(&self, l: f64, u: f64) -> (f64, f64) {
        (l.max(0.0), u.max(0.0))
    }
}
