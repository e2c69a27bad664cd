//! ONNX `Relu`: max(x, 0). https://onnx.ai/onnx/operators/onnx__Relu.html

use super::Elementwise;
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
}
