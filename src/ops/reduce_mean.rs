//! ONNX `ReduceMean` (opsets 1-18): the mean over `axes`, which the importer resolves (negative
//! axes, the opset-18 `axes` input) into sorted, distinct, non-negative values. Empty `axes`
//! reduce every axis; the importer turns opset-18 `noop_with_empty_axes` into no node at all.
//! https://onnx.ai/onnx/operators/onnx__ReduceMean.html

use super::global_average_pool::lane_sum;
use super::Operator;
use super::RelaxInput;
use crate::bounds::affine::{AffineMap, Relaxation, Sparse};
use crate::error::{Error, Result};
use crate::ir::tensor::{checked_numel, strides};
use crate::ir::{Scalar, Tensor};

/// `ReduceMean`: sum over `axes` then divide by the number of cells summed. The reduced axes are
/// dropped from the output, or kept with size 1 when `keepdims`.
#[derive(Clone, Debug)]
pub struct ReduceMean {
    pub axes: Vec<usize>,
    pub keepdims: bool,
}

impl ReduceMean {
    /// Whether each axis of a rank-`r` input is reduced.
    fn reduced(&self, r: usize) -> Result<Vec<bool>> {
        if self.axes.windows(2).any(|w| w[0] >= w[1]) || self.axes.last().is_some_and(|&a| a >= r) {
            return Err(Error::Shape(format!(
                "ReduceMean axes {:?} must be sorted, distinct and below the rank {r}",
                self.axes
            )));
        }
        let mut red = vec![self.axes.is_empty(); r];
        for &a in &self.axes {
            red[a] = true;
        }
        Ok(red)
    }
}

impl Operator for ReduceMean {
    fn name(&self) -> &'static str {
        "ReduceMean"
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        super::arity("ReduceMean", inputs.len(), 1)?;
        let x = inputs[0];
        checked_numel(x)?;
        let red = self.reduced(x.len())?;
        Ok(x.iter()
            .zip(&red)
            .filter_map(|(&d, &r)| match (r, self.keepdims) {
                (false, _) => Some(d),
                (true, true) => Some(1),
                (true, false) => None,
            })
            .collect())
    }
    fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        super::arity("ReduceMean", inputs.len(), 1)?;
        let x = inputs[0];
        let shape = self.output_shape(&[x.shape()])?;
        let red = self.reduced(x.rank())?;
        let count: usize = x.shape().iter().zip(&red).filter(|(_, &r)| r).map(|(&d, _)| d).product();
        let mut out = Tensor::zeros(shape)?;
        let xd = x.data();
        if !xd.is_empty() {
            // Merge runs of adjacent axes that are all reduced or all kept (size-1 axes join
            // either), so the common cases (trailing spatial axes, everything) become one
            // contiguous inner loop.
            let mut groups: Vec<(usize, bool)> = Vec::new();
            for (&d, &r) in x.shape().iter().zip(&red) {
                if d == 1 {
                    continue;
                }
                match groups.last_mut() {
                    Some((gd, gr)) if *gr == r => *gd *= d,
                    _ => groups.push((d, r)),
                }
            }
            let od = out.data_mut();
            match groups.split_last() {
                None => od[0] = xd[0],
                Some((&(inner, inner_reduced), outer)) => {
                    // Output strides of the outer groups: 0 along reduced ones.
                    let kept: Vec<usize> = outer.iter().map(|&(d, r)| if r { 1 } else { d }).collect();
                    let mut ostr = strides(&kept);
                    let step = if inner_reduced { 1 } else { inner };
                    for (s, &(_, r)) in ostr.iter_mut().zip(outer) {
                        *s = if r { 0 } else { *s * step };
                    }
                    let mut idx = vec![0usize; outer.len()];
                    let mut off = 0;
                    for chunk in xd.chunks_exact(inner) {
                        if inner_reduced {
                            od[off] += lane_sum(chunk);
                        } else {
                            for (o, &v) in od[off..off + inner].iter_mut().zip(chunk) {
                                *o += v;
                            }
                        }
                        // Odometer over the outer groups.
                        for a in (0..outer.len()).rev() {
                            idx[a] += 1;
                            off += ostr[a];
                            if idx[a] < outer[a].0 {
                                break;
                            }
                            off -= ostr[a] * outer[a].0;
                            idx[a] = 0;
                        }
                    }
                }
            }
        }
        // An empty reduction gives 0/0 = NaN, as numpy does.
        let n = T::from_f64(count as f64);
        for v in out.data_mut() {
            *v = *v / n;
        }
        Ok(out)
    }
    fn relaxation(&self, r: &RelaxInput<'_>) -> Result<Relaxation> {
        // The output element each input element is averaged into, found by reducing index
        // tensors would mix them; instead walk the input with the output's strides.
        let x = r.in_shapes[0];
        let out_n: usize = r.out_shape.iter().product();
        let reduced: Vec<bool> = (0..x.len()).map(|a| self.axes.is_empty() || self.axes.contains(&a)).collect();
        let count: usize = x.iter().zip(&reduced).filter(|(_, &r)| r).map(|(d, _)| d).product();
        let kept: Vec<usize> = x.iter().zip(&reduced).map(|(&d, &r)| if r { 1 } else { d }).collect();
        let kept_strides = crate::ir::tensor::strides(&kept);
        let n: usize = x.iter().product();
        let mut rows: Vec<Vec<(usize, f64)>> = vec![Vec::new(); out_n];
        let w = 1.0 / count as f64;
        let mut idx = vec![0usize; x.len()];
        for i in 0..n {
            let o: usize = (0..x.len()).filter(|&a| !reduced[a]).map(|a| idx[a] * kept_strides[a]).sum();
            rows[o].push((i, w));
            for a in (0..x.len()).rev() {
                idx[a] += 1;
                if idx[a] < x[a] {
                    break;
                }
                idx[a] = 0;
            }
        }
        let s = Sparse::from_rows(n, rows);
        Ok(Relaxation::Affine(AffineMap::approximate(vec![s], vec![0.0; out_n], crate::num::UNIT_ROUNDOFF)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], data: Vec<f64>) -> Tensor<f64> {
        Tensor::new(shape.to_vec(), data).unwrap()
    }

    fn rm(axes: &[usize], keepdims: bool) -> ReduceMean {
        ReduceMean { axes: axes.to_vec(), keepdims }
    }

    #[test]
    fn two_d() {
        let x = t(&[2, 3], vec![1.0, 2.0, 6.0, -4.0, -5.0, 0.0]);
        let y = rm(&[1], false).forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[2]);
        assert_eq!(y.data(), &[3.0, -3.0]);
        let y = rm(&[1], true).forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[2, 1]);
        assert_eq!(y.data(), &[3.0, -3.0]);
        let y = rm(&[0], true).forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[1, 3]);
        assert_eq!(y.data(), &[-1.5, -1.5, 3.0]);
        let y = rm(&[0, 1], false).forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[] as &[usize]);
        assert_eq!(y.data(), &[0.0]);
    }

    #[test]
    fn empty_axes_reduce_everything() {
        let x = t(&[2, 2], vec![1.0, 2.0, 3.0, 6.0]);
        let y = rm(&[], true).forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[1, 1]);
        assert_eq!(y.data(), &[3.0]);
        assert_eq!(rm(&[], false).forward(&[&x]).unwrap().shape(), &[] as &[usize]);
    }

    #[test]
    fn spatial_axes_of_nchw() {
        // [2, 2, 2, 2] over axes [2, 3]: GlobalAveragePool with keepdims.
        let x = t(&[2, 2, 2, 2], (0..16).map(|v| v as f64 - 8.0).collect());
        let y = rm(&[2, 3], true).forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[2, 2, 1, 1]);
        assert_eq!(y.data(), &[-6.5, -2.5, 1.5, 5.5]);
        let y = rm(&[2, 3], false).forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[2, 2]);
    }

    #[test]
    fn non_adjacent_axes() {
        // [2, 3, 2] over axes [0, 2]: x[i][j][k] = 100 i + 10 j + k; mean over i, k = 50 + 10 j + 0.5.
        let data =
            (0..2).flat_map(|i| (0..3).flat_map(move |j| (0..2).map(move |k| (100 * i + 10 * j + k) as f64))).collect();
        let x = t(&[2, 3, 2], data);
        let y = rm(&[0, 2], false).forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[3]);
        assert_eq!(y.data(), &[50.5, 60.5, 70.5]);
        // Middle axis only: mean over j = 100 i + 10 + k.
        let y = rm(&[1], true).forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[2, 1, 2]);
        assert_eq!(y.data(), &[10.0, 11.0, 110.0, 111.0]);
    }

    #[test]
    fn size_one_axes() {
        let x = t(&[1, 3, 1], vec![1.0, 2.0, 4.5]);
        let y = rm(&[0, 2], false).forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[3]);
        assert_eq!(y.data(), &[1.0, 2.0, 4.5]);
        let y = rm(&[1], false).forward(&[&x.map(|v| v as f32)]).unwrap();
        assert_eq!(y.shape(), &[1, 1]);
        assert_eq!(y.data(), &[2.5f32]);
        let s = Tensor::scalar(7.0);
        assert_eq!(rm(&[], false).forward(&[&s]).unwrap().data(), &[7.0]);
    }

    #[test]
    fn empty_inputs() {
        // Kept axis of size 0: empty output. Reduced axis of size 0: NaN.
        let x = t(&[0, 3], vec![]);
        assert_eq!(rm(&[1], false).forward(&[&x]).unwrap().shape(), &[0]);
        let y = rm(&[0], false).forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[3]);
        assert!(y.data().iter().all(|v| v.is_nan()));
    }

    #[test]
    fn invalid() {
        assert!(rm(&[2], false).output_shape(&[&[2, 3]]).is_err());
        assert!(rm(&[1, 0], false).output_shape(&[&[2, 3]]).is_err());
        assert!(rm(&[1, 1], false).output_shape(&[&[2, 3]]).is_err());
        assert!(rm(&[0], false).output_shape(&[]).is_err());
        assert!(rm(&[0], false).forward(&[&t(&[2], vec![1.0, 2.0]), &t(&[2], vec![1.0, 2.0])]).is_err());
        assert!(rm(&[0], false).output_shape(&[&[]]).is_err());
    }
}
