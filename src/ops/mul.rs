//! ONNX `Mul` (numpy broadcasting), with a constant on either side or two variable inputs.
//! https://onnx.ai/onnx/operators/onnx__Mul.html

use super::broadcast::{binary_op_forward, binary_op_shape};
use super::Operator;
use crate::error::Result;
use crate::ir::{Param, Scalar, Tensor};

/// `Mul`: with `constant`, one variable input combined with it (the constant is the first operand
/// when `constant_first`); without, two variable inputs.
#[derive(Clone, Debug)]
pub struct Mul {
    pub constant: Option<Param>,
    pub constant_first: bool,
}

impl Operator for Mul {
    fn name(&self) -> &'static str {
        "Mul"
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        binary_op_shape("Mul", self.constant.as_ref(), inputs)
    }
    fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        binary_op_forward(
            "Mul",
            self.constant.as_ref(),
            self.constant_first,
            inputs,
            |a, b| a * b,
        )
    }
    fn parameter_count(&self) -> usize {
        self.constant.as_ref().map_or(0, |c| c.len())
    }
}
