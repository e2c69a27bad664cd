//! ONNX `Sub` (numpy broadcasting), with a constant on either side or two variable inputs.
//! https://onnx.ai/onnx/operators/onnx__Sub.html

use super::broadcast::{binary_affine, binary_op_forward, binary_op_shape};
use super::Operator;
use super::RelaxInput;
use crate::bounds::affine::Relaxation;
use crate::error::Result;
use crate::ir::{Param, Scalar, Tensor};

/// `Sub`: with `constant`, one variable input combined with it (the constant is the first operand
/// when `constant_first`); without, two variable inputs.
#[derive(Clone, Debug)]
pub struct Sub {
    pub constant: Option<Param>,
    pub constant_first: bool,
}

impl Operator for Sub {
    fn name(&self) -> &'static str {
        "Sub"
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        binary_op_shape("Sub", self.constant.as_ref(), inputs)
    }
    fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        binary_op_forward("Sub", self.constant.as_ref(), self.constant_first, inputs, |a, b| a - b)
    }
    fn parameter_count(&self) -> usize {
        self.constant.as_ref().map_or(0, |c| c.len())
    }
    fn relaxation(&self, r: &RelaxInput<'_>) -> Result<Relaxation> {
        match binary_affine("Sub", self.constant.as_ref(), self.constant_first, &r.in_shapes, r.out_shape)? {
            Some(m) => Ok(Relaxation::Affine(m)),
            None => Err(crate::error::Error::InvalidModel(
                "Sub of two variable tensors (or a constant divided by one) has no linear relaxation yet".into(),
            )),
        }
    }
}
