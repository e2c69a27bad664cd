//! ONNX `Softmax`, both semantics: opsets 1-12 (`coerce_2d`) view the input as the 2-D matrix
//! [prod(dims[..axis]), prod(dims[axis..])] and normalise each row; opset 13+ normalises along
//! the single axis `axis`. Computed stably as exp(x - max) / sum.
//! https://onnx.ai/onnx/operators/onnx__Softmax.html

use super::Operator;
use crate::error::{Error, Result};
use crate::ir::tensor::checked_numel;
use crate::ir::{Scalar, Tensor};

/// `Softmax` over `axis` (resolved non-negative), with the pre-13 flattening when `coerce_2d`.
#[derive(Clone, Debug)]
pub struct Softmax {
    pub axis: usize,
    pub coerce_2d: bool,
}

/// Softmax of one contiguous row, in place.
fn softmax_row<T: Scalar>(row: &mut [T]) {
    let mut m = T::NEG_INFINITY;
    for &v in row.iter() {
        if v > m {
            m = v;
        }
    }
    let mut s = T::ZERO;
    for v in row.iter_mut() {
        *v = (*v - m).exp();
        s += *v;
    }
    for v in row.iter_mut() {
        *v = *v / s;
    }
}

impl Operator for Softmax {
    fn name(&self) -> &'static str {
        "Softmax"
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        super::arity("Softmax", inputs.len(), 1)?;
        let x = inputs[0];
        // onnxruntime also requires axis in [-r, r-1] for the coerced form.
        if self.axis >= x.len() {
            return Err(Error::Shape(format!("Softmax axis {} out of range for {x:?}", self.axis)));
        }
        checked_numel(x)?;
        Ok(x.to_vec())
    }
    fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        super::arity("Softmax", inputs.len(), 1)?;
        let x = inputs[0];
        let shape = self.output_shape(&[x.shape()])?;
        let a = self.axis;
        // Normalised groups: blocks of `len * inner` cells, each holding `inner` interleaved
        // rows of `len` cells `inner` apart.
        let (len, inner) = if self.coerce_2d {
            (shape[a..].iter().product(), 1)
        } else {
            (shape[a], shape[a + 1..].iter().product::<usize>())
        };
        let mut out = x.clone();
        if out.is_empty() {
            return Ok(out);
        }
        let d = out.data_mut();
        if inner == 1 {
            for row in d.chunks_exact_mut(len) {
                softmax_row(row);
            }
            return Ok(out);
        }
        // Strided rows: sweep whole contiguous lines of `inner` cells, with per-column max and sum.
        let mut mx = vec![T::NEG_INFINITY; inner];
        let mut sm = vec![T::ZERO; inner];
        for block in d.chunks_exact_mut(len * inner) {
            mx.fill(T::NEG_INFINITY);
            sm.fill(T::ZERO);
            for line in block.chunks_exact(inner) {
                for (m, &v) in mx.iter_mut().zip(line) {
                    if v > *m {
                        *m = v;
                    }
                }
            }
            for line in block.chunks_exact_mut(inner) {
                for ((v, &m), s) in line.iter_mut().zip(&mx).zip(sm.iter_mut()) {
                    *v = (*v - m).exp();
                    *s += *v;
                }
            }
            for line in block.chunks_exact_mut(inner) {
                for (v, &s) in line.iter_mut().zip(&sm) {
                    *v = *v / s;
                }
            }
        }
        Ok(out)
    }
    fn interval(&self, r: &super::RelaxInput<'_>) -> Result<(Vec<f64>, Vec<f64>)> {
        // p_i = 1 / (1 + sum_{j != i} exp(x_j - x_i)): smallest with x_j at their upper and
        // x_i at its lower bound, largest the other way round; a relative margin covers exp's
        // and the sums' rounding.
        let shape = self.output_shape(&[r.in_shapes[0]])?;
        let a = self.axis;
        let (len, inner) = if self.coerce_2d {
            (shape[a..].iter().product(), 1)
        } else {
            (shape[a], shape[a + 1..].iter().product::<usize>())
        };
        let (lo, hi) = (r.lo[0], r.hi[0]);
        let n = lo.len();
        let (mut out_lo, mut out_hi) = (vec![0.0; n], vec![0.0; n]);
        let block = (len * inner).max(1);
        for base in (0..n).step_by(block) {
            for k in 0..inner {
                let idx = |t: usize| base + t * inner + k;
                for i in 0..len {
                    let (mut s_lo, mut s_hi) = (0.0f64, 0.0f64);
                    for j in (0..len).filter(|&j| j != i) {
                        s_lo += (lo[idx(j)] - hi[idx(i)]).exp();
                        s_hi += (hi[idx(j)] - lo[idx(i)]).exp();
                    }
                    let margin = 1e-13;
                    out_lo[idx(i)] = ((1.0 / (1.0 + s_hi)) * (1.0 - margin)).max(0.0);
                    out_hi[idx(i)] = ((1.0 / (1.0 + s_lo)) * (1.0 + margin)).min(1.0);
                }
            }
        }
        Ok((out_lo, out_hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], data: Vec<f64>) -> Tensor<f64> {
        Tensor::new(shape.to_vec(), data).unwrap()
    }

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-12, "{a:?} vs {b:?}");
        }
    }

    /// Reference softmax of a short list.
    fn sm(v: &[f64]) -> Vec<f64> {
        let s: f64 = v.iter().map(|x| x.exp()).sum();
        v.iter().map(|x| x.exp() / s).collect()
    }

    #[test]
    fn last_axis_batch_two() {
        let x = t(&[2, 3], vec![1.0, 2.0, 3.0, -1.0, 0.0, -1.0]);
        for coerce_2d in [false, true] {
            let y = Softmax { axis: 1, coerce_2d }.forward(&[&x]).unwrap();
            assert_eq!(y.shape(), &[2, 3]);
            let mut want = sm(&[1.0, 2.0, 3.0]);
            want.extend(sm(&[-1.0, 0.0, -1.0]));
            close(y.data(), &want);
        }
        // Equal logits: uniform.
        let y = Softmax { axis: 1, coerce_2d: false }.forward(&[&t(&[1, 4], vec![-7.0; 4])]).unwrap();
        close(y.data(), &[0.25; 4]);
    }

    #[test]
    fn stable_for_large_logits() {
        let x = t(&[1, 2], vec![1000.0, 1001.0]);
        let y = Softmax { axis: 1, coerce_2d: false }.forward(&[&x]).unwrap();
        close(y.data(), &sm(&[0.0, 1.0]));
        let y32 = Softmax { axis: 1, coerce_2d: false }
            .forward(&[&t(&[1, 2], vec![-1000.0, 100.0]).map(|v| v as f32)])
            .unwrap();
        assert_eq!(y32.data(), &[0.0f32, 1.0]);
    }

    #[test]
    fn coerce_2d_flattens_trailing_axes() {
        // [2, 2, 2], axis 1: opset-13 normalises pairs along axis 1; opset < 13 normalises the
        // four trailing cells of each sample together.
        let v = vec![0.0, 1.0, 2.0, 3.0, -1.0, -1.0, 1.0, 1.0];
        let x = t(&[2, 2, 2], v.clone());
        let y = Softmax { axis: 1, coerce_2d: true }.forward(&[&x]).unwrap();
        let mut want = sm(&v[..4]);
        want.extend(sm(&v[4..]));
        close(y.data(), &want);
        let y = Softmax { axis: 1, coerce_2d: false }.forward(&[&x]).unwrap();
        let (a, b, c, d) = (sm(&[0.0, 2.0]), sm(&[1.0, 3.0]), sm(&[-1.0, 1.0]), sm(&[-1.0, 1.0]));
        close(y.data(), &[a[0], b[0], a[1], b[1], c[0], d[0], c[1], d[1]]);
        // Axis 0 with coerce_2d: the whole tensor is one row.
        let y = Softmax { axis: 0, coerce_2d: true }.forward(&[&x]).unwrap();
        close(y.data(), &sm(&v));
    }

    #[test]
    fn axis_zero_and_middle() {
        // [3, 2], axis 0: columns.
        let x = t(&[3, 2], vec![1.0, -1.0, 2.0, -2.0, 3.0, -3.0]);
        let y = Softmax { axis: 0, coerce_2d: false }.forward(&[&x]).unwrap();
        let (a, b) = (sm(&[1.0, 2.0, 3.0]), sm(&[-1.0, -2.0, -3.0]));
        close(y.data(), &[a[0], b[0], a[1], b[1], a[2], b[2]]);
        // f32 agrees.
        let y32 = Softmax { axis: 0, coerce_2d: false }.forward(&[&x.map(|v| v as f32)]).unwrap();
        for (p, q) in y.data().iter().zip(y32.data()) {
            assert!((p - *q as f64).abs() < 1e-6);
        }
    }

    #[test]
    fn empty_and_invalid() {
        let x = t(&[0, 3], vec![]);
        assert_eq!(Softmax { axis: 1, coerce_2d: false }.forward(&[&x]).unwrap().shape(), &[0, 3]);
        let x = t(&[2, 3], vec![0.0; 6]);
        assert!(Softmax { axis: 2, coerce_2d: false }.forward(&[&x]).is_err());
        assert!(Softmax { axis: 2, coerce_2d: true }.output_shape(&[&[2, 3]]).is_err());
        assert!(Softmax { axis: 0, coerce_2d: false }.output_shape(&[&[]]).is_err());
        assert!(Softmax { axis: 0, coerce_2d: false }.output_shape(&[]).is_err());
        assert!(Softmax { axis: 0, coerce_2d: false }.forward(&[&x, &x]).is_err());
    }
}
