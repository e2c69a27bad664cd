//! ONNX `Mul` (numpy broadcasting), with a constant on either side or two variable inputs.
//! https://onnx.ai/onnx/operators/onnx__Mul.html

use super::broadcast::{binary_affine, binary_op_forward, binary_op_shape};
use super::Operator;
use super::RelaxInput;
use crate::bounds::affine::Relaxation;
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
        binary_op_forward("Mul", self.constant.as_ref(), self.constant_first, inputs, |a, b| a * b)
    }
    fn parameter_count(&self) -> usize {
        self.constant.as_ref().map_or(0, |c| c.len())
    }
    fn relaxation(&self, r: &RelaxInput<'_>) -> Result<Relaxation> {
        match binary_affine("Mul", self.constant.as_ref(), self.constant_first, &r.in_shapes, r.out_shape)? {
            Some(m) => Ok(Relaxation::Affine(m)),
            None => Err(crate::error::Error::InvalidModel(
                "Mul of two variable tensors (or a constant divided by one) has no linear relaxation yet".into(),
            )),
        }
    }
}
