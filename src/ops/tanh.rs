//! ONNX `Tanh`. https://onnx.ai/onnx/operators/onnx__Tanh.html

use super::Elementwise;
use crate::ir::Scalar;

/// `Tanh`.
#[derive(Clone, Debug, Default)]
pub struct Tanh;

impl Elementwise for Tanh {
    const NAME: &'static str = "Tanh";
    #[inline]
    fn eval<T: Scalar>(&self, x: T) -> T {
        x.tanh()
    }
}
