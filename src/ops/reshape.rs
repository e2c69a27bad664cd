//! Pure reshapes: ONNX `Reshape`, `Flatten`, `Squeeze` and `Unsqueeze` all lower to this op,
//! with the target resolved at import (`0` and `-1` entries, axes attributes or inputs).
//! https://onnx.ai/onnx/operators/onnx__Reshape.html

use super::Operator;
use super::RelaxInput;
use crate::bounds::affine::{AffineMap, Relaxation, Sparse};
use crate::error::{Error, Result};
use crate::ir::tensor::checked_numel;
use crate::ir::{Scalar, Tensor};

/// Reinterprets the data under `shape`. When `keep_batch`, axis 0 of the output follows axis 0
/// of the input (the importer sets it when both are the batch axis), so the op works for any
/// batch size.
#[derive(Clone, Debug)]
pub struct Reshape {
    pub shape: Vec<usize>,
    pub keep_batch: bool,
}

impl Operator for Reshape {
    fn name(&self) -> &'static str {
        "Reshape"
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        super::arity("Reshape", inputs.len(), 1)?;
        let x = inputs[0];
        let mut out = self.shape.clone();
        if self.keep_batch {
            match (x.first(), out.first_mut()) {
                (Some(&b), Some(o)) => *o = b,
                _ => return Err(Error::Shape("batch-preserving reshape of a rank-0 tensor".into())),
            }
        }
        if checked_numel(x)? != checked_numel(&out)? {
            return Err(Error::Shape(format!("cannot reshape {x:?} into {out:?}")));
        }
        Ok(out)
    }
    fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let shape = self.output_shape(&[inputs[0].shape()])?;
        inputs[0].clone().reshape(shape)
    }
    fn relaxation(&self, r: &RelaxInput<'_>) -> Result<Relaxation> {
        let n = r.lo[0].len();
        Ok(Relaxation::Affine(AffineMap::exact(vec![Sparse::diagonal(&vec![1.0; n])], vec![0.0; n])))
    }
}
