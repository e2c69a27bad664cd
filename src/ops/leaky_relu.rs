//! ONNX `LeakyRelu`: x for x >= 0, alpha * x otherwise (alpha defaults to 0.01).
//! https://onnx.ai/onnx/operators/onnx__LeakyRelu.html

use super::Elementwise;
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
}
