//! A graph input placeholder: its value is supplied by the caller.

use super::Operator;
use crate::error::{Error, Result};
use crate::ir::{Scalar, Tensor};

/// The `index`-th model input.
#[derive(Clone, Debug)]
pub struct Input {
    pub index: usize,
}

impl Operator for Input {
    fn name(&self) -> &'static str {
        "Input"
    }
    fn output_shape(&self, _inputs: &[&[usize]]) -> Result<Vec<usize>> {
        Err(Error::InvalidModel("an input's shape comes from the model declaration".into()))
    }
    fn forward<T: Scalar>(&self, _inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        Err(Error::InvalidModel("an input's value comes from the caller".into()))
    }
}
