//! ONNX `Clip` (ReLU6 and clamps): min/max as attributes (opset 6) or as constant inputs
//! (opset 11+), either bound optional. https://onnx.ai/onnx/operators/onnx__Clip.html

use super::Elementwise;
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
}
