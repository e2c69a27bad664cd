//! ONNX `Sigmoid`: 1 / (1 + exp(-x)). https://onnx.ai/onnx/operators/onnx__Sigmoid.html

use super::Elementwise;
use crate::ir::Scalar;

/// `Sigmoid`.
#[derive(Clone, Debug, Default)]
pub struct Sigmoid;

impl Elementwise for Sigmoid {
    const NAME: &'static str = "Sigmoid";
    #[inline]
    fn eval<T: Scalar>(&self, x: T) -> T {
        // Two branches so exp never overflows.
        if x >= T::ZERO {
            T::ONE / (T::ONE + (-x).exp())
        } else {
            let e = x.exp();
            e / (T::ONE + e)
        }
    }
}
