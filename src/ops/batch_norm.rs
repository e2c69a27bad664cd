//! ONNX `BatchNormalization` in inference mode (opsets 7-15): per channel (axis 1),
//! y = (x - mean) / sqrt(var + epsilon) * scale + bias.
//! https://onnx.ai/onnx/operators/onnx__BatchNormalization.html

use super::{Operator, RelaxInput};
use crate::bounds::affine::{AffineMap, Relaxation, Sparse};
use crate::error::{Error, Result};
use crate::ir::{Param, Scalar, Tensor};

/// Inference-mode batch normalisation with its running statistics.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    pub scale: Param,
    pub bias: Param,
    pub mean: Param,
    pub var: Param,
    pub epsilon: f64,
}

impl BatchNorm {
    fn channels(&self) -> usize {
        self.scale.len()
    }
    /// Per-channel (multiplier, offset) so that y = x * a + b, computed in `T` as onnxruntime
    /// does.
    pub fn affine<T: Scalar>(&self) -> (Vec<T>, Vec<T>) {
        let (s, b, m, v) = (T::param(&self.scale), T::param(&self.bias), T::param(&self.mean), T::param(&self.var));
        let eps = T::from_f64(self.epsilon);
        let a: Vec<T> = (0..self.channels()).map(|c| s.data()[c] / (v.data()[c] + eps).sqrt()).collect();
        let off = (0..self.channels()).map(|c| b.data()[c] - m.data()[c] * a[c]).collect();
        (a, off)
    }
}

impl Operator for BatchNorm {
    fn name(&self) -> &'static str {
        "BatchNormalization"
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        super::arity("BatchNormalization", inputs.len(), 1)?;
        let x = inputs[0];
        if x.len() < 2 || x[1] != self.channels() {
            return Err(Error::Shape(format!("BatchNormalization with {} channels applied to {x:?}", self.channels())));
        }
        Ok(x.to_vec())
    }
    fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let shape = self.output_shape(&[inputs[0].shape()])?;
        let (a, b) = self.affine::<T>();
        let plane: usize = shape[2..].iter().product();
        let mut out = inputs[0].clone();
        for (i, chunk) in out.data_mut().chunks_mut(plane.max(1)).enumerate() {
            let c = i % self.channels();
            let (ac, bc) = (a[c], b[c]);
            for v in chunk {
                *v = *v * ac + bc;
            }
        }
        Ok(out)
    }
    fn parameter_count(&self) -> usize {
        4 * self.channels()
    }
    fn relaxation(&self, r: &RelaxInput<'_>) -> Result<Relaxation> {
        let x = r.in_shapes[0];
        let (a, b) = self.affine::<f64>();
        let plane: usize = x[2..].iter().product();
        let n: usize = x.iter().product();
        let c = self.channels();
        let ch = |i: usize| (i / plane.max(1)) % c;
        let diag: Vec<f64> = (0..n).map(|i| a[ch(i)]).collect();
        let offset: Vec<f64> = (0..n).map(|i| b[ch(i)]).collect();
        // a = scale / sqrt(var + eps) carries at most 3 roundings (relative 4u); the offset
        // bias - mean * a then errs by at most 6u (|bias| + |mean a|).
        let u = crate::num::UNIT_ROUNDOFF;
        let (mean, bias) = (self.mean.f64.data(), self.bias.f64.data());
        let err_abs: Vec<f64> =
            (0..n).map(|i| crate::num::up(6.0 * u * (bias[ch(i)].abs() + (mean[ch(i)] * a[ch(i)]).abs()))).collect();
        Ok(Relaxation::Affine(AffineMap { parts: vec![Sparse::diagonal(&diag)], offset, err_rel: 4.0 * u, err_abs }))
    }
}
