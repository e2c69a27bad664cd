//! A constant tensor that remains a node because a variable operator consumes it as a whole
//! input (e.g. one branch of a Concat). Constants feeding arithmetic are folded into their
//! users' parameters instead.

use super::Operator;
use super::RelaxInput;
use crate::bounds::affine::{AffineMap, Relaxation};
use crate::error::Result;
use crate::ir::{Param, Scalar, Tensor};

/// A constant value.
#[derive(Clone, Debug)]
pub struct Constant {
    pub value: Param,
}

impl Operator for Constant {
    fn name(&self) -> &'static str {
        "Constant"
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        super::arity("Constant", inputs.len(), 0)?;
        Ok(self.value.shape().to_vec())
    }
    fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        super::arity("Constant", inputs.len(), 0)?;
        Ok(T::param(&self.value).clone())
    }
    fn parameter_count(&self) -> usize {
        self.value.len()
    }
    fn relaxation(&self, _r: &RelaxInput<'_>) -> Result<Relaxation> {
        Ok(Relaxation::Affine(AffineMap::exact(vec![], self.value.f64.data().to_vec())))
    }
}
