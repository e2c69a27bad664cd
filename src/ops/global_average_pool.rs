//! ONNX `GlobalAveragePool` (opsets 1-22, unchanged): the mean of each channel over all spatial
//! axes, [N, C, d1, ..., dk] -> [N, C, 1, ..., 1], for any k >= 1.
//! https://onnx.ai/onnx/operators/onnx__GlobalAveragePool.html

use super::Operator;
use super::RelaxInput;
use crate::bounds::affine::{AffineMap, Relaxation, Sparse};
use crate::error::{Error, Result};
use crate::ir::tensor::checked_numel;
use crate::ir::{Scalar, Tensor};

/// `GlobalAveragePool`.
#[derive(Clone, Debug, Default)]
pub struct GlobalAveragePool;

/// Sum with eight independent accumulators: vectorisable, and more accurate than one running
/// sum over a long plane.
#[inline]
pub(super) fn lane_sum<T: Scalar>(v: &[T]) -> T {
    let mut acc = [T::ZERO; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for &x in rest {
        s += x;
    }
    s
}

impl Operator for GlobalAveragePool {
    fn name(&self) -> &'static str {
        "GlobalAveragePool"
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        super::arity("GlobalAveragePool", inputs.len(), 1)?;
        let x = inputs[0];
        if x.len() < 3 {
            return Err(Error::Shape(format!("GlobalAveragePool needs [N, C, spatial...], got {x:?}")));
        }
        checked_numel(x)?;
        // The mean over no cells is undefined.
        if x[2..].contains(&0) {
            return Err(Error::Shape(format!("GlobalAveragePool over an empty spatial extent {x:?}")));
        }
        let mut out = vec![1; x.len()];
        out[..2].copy_from_slice(&x[..2]);
        Ok(out)
    }
    fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        super::arity("GlobalAveragePool", inputs.len(), 1)?;
        let x = inputs[0];
        let shape = self.output_shape(&[x.shape()])?;
        let plane: usize = x.shape()[2..].iter().product();
        let n = T::from_f64(plane as f64);
        let data = x.data().chunks_exact(plane).map(|p| lane_sum(p) / n).collect();
        Tensor::new(shape, data)
    }
    fn relaxation(&self, r: &RelaxInput<'_>) -> Result<Relaxation> {
        let x = r.in_shapes[0];
        let planes: usize = x[..2].iter().product();
        let size: usize = x[2..].iter().product();
        let w = 1.0 / size as f64;
        let rows = (0..planes).map(|p| (p * size..(p + 1) * size).map(|i| (i, w)).collect());
        let s = Sparse::from_rows(planes * size, rows);
        // 1/size is rounded: relative error u.
        Ok(Relaxation::Affine(AffineMap::approximate(vec![s], vec![0.0; planes], crate::num::UNIT_ROUNDOFF)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_d_batch_two() {
        let x = Tensor::new(vec![2, 2, 2, 2], (0..16).map(|v| v as f64 - 8.0).collect()).unwrap();
        let y = GlobalAveragePool.forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[2, 2, 1, 1]);
        assert_eq!(y.data(), &[-6.5, -2.5, 1.5, 5.5]);
    }

    #[test]
    fn one_d_and_long_planes() {
        let x = Tensor::new(vec![1, 2, 3], vec![1.0, 2.0, 6.0, -1.0, -2.0, -6.0]).unwrap();
        let y = GlobalAveragePool.forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[1, 2, 1]);
        assert_eq!(y.data(), &[3.0, -3.0]);
        // 19 cells: eight lanes plus a remainder of three.
        let x = Tensor::new(vec![1, 1, 19], (1..=19).map(|v| v as f32).collect()).unwrap();
        assert_eq!(GlobalAveragePool.forward(&[&x]).unwrap().data(), &[10.0f32]);
        // 3-D spatial.
        let x = Tensor::new(vec![1, 1, 2, 2, 2], (0..8).map(|v| v as f64).collect()).unwrap();
        let y = GlobalAveragePool.forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[1, 1, 1, 1, 1]);
        assert_eq!(y.data(), &[3.5]);
    }

    #[test]
    fn invalid() {
        assert!(GlobalAveragePool.output_shape(&[&[2, 3]]).is_err());
        assert!(GlobalAveragePool.output_shape(&[&[2, 3, 0, 4]]).is_err());
        assert!(GlobalAveragePool.output_shape(&[]).is_err());
        assert!(GlobalAveragePool.output_shape(&[&[1, 1, 2], &[1, 1, 2]]).is_err());
        let x = Tensor::new(vec![2, 2], vec![0.0; 4]).unwrap();
        assert!(GlobalAveragePool.forward(&[&x]).is_err());
        // An empty batch is fine.
        let x = Tensor::<f64>::new(vec![0, 3, 2, 2], vec![]).unwrap();
        assert_eq!(GlobalAveragePool.forward(&[&x]).unwrap().shape(), &[0, 3, 1, 1]);
    }
}
