//! ONNX `MatMul` (numpy matmul semantics) of a variable tensor and a constant 1-D or 2-D matrix,
//! on either side.
//! https://onnx.ai/onnx/operators/onnx__MatMul.html

use super::{Operator, RelaxInput};
use crate::bounds::affine::{AffineMap, Relaxation, Sparse};
use crate::error::{Error, Result};
use crate::ir::tensor::gemm;
use crate::ir::{Param, Scalar, Tensor};

/// `x @ b` with constant `b` of shape `[K, N]` (or `[K]`, giving one column that is dropped);
/// when `constant_first`, `b @ x` with `b` of shape `[M, K]` and `x` of shape `[..., K, N]`
/// or `[K]`.
#[derive(Clone, Debug)]
pub struct MatMul {
    pub b: Param,
    pub constant_first: bool,
}

impl MatMul {
    fn kn(&self) -> (usize, usize) {
        let s = self.b.shape();
        if s.len() == 1 {
            (s[0], 1)
        } else {
            (s[0], s[1])
        }
    }
}

impl Operator for MatMul {
    fn name(&self) -> &'static str {
        "MatMul"
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        super::arity("MatMul", inputs.len(), 1)?;
        let x = inputs[0];
        let bs = self.b.shape();
        if self.constant_first {
            let ok = bs.len() == 2 && !x.is_empty() && x[x.len().saturating_sub(2)] == bs[1];
            if !ok {
                return Err(Error::Shape(format!("MatMul of a constant {bs:?} by {x:?}: shapes disagree")));
            }
            let mut out = x.to_vec();
            let r = out.len();
            out[r.saturating_sub(2)] = bs[0];
            return Ok(out);
        }
        if x.is_empty() || bs.is_empty() || bs.len() > 2 {
            return Err(Error::Shape(format!("MatMul of {x:?} by a constant {bs:?}: need ranks >= 1 and B rank <= 2")));
        }
        let (k, n) = self.kn();
        if x[x.len() - 1] != k {
            return Err(Error::Shape(format!("MatMul: {x:?} @ {bs:?} disagree on K")));
        }
        let mut out = x[..x.len() - 1].to_vec();
        if bs.len() == 2 {
            out.push(n);
        }
        Ok(out)
    }
    fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let shape = self.output_shape(&[inputs[0].shape()])?;
        let x = inputs[0];
        if self.constant_first {
            return left_constant(T::param(&self.b), x, shape);
        }
        let (k, n) = self.kn();
        let m = x.len() / k.max(1);
        let mut out = Tensor::zeros(shape)?;
        let b = T::param(&self.b);
        gemm(m, k, n, T::ONE, x.data(), (k, 1), b.data(), (n, 1), T::ZERO, out.data_mut());
        Ok(out)
    }
    fn parameter_count(&self) -> usize {
        self.b.len()
    }
    fn relaxation(&self, r: &RelaxInput<'_>) -> Result<Relaxation> {
        let x = r.in_shapes[0];
        let out = self.output_shape(&[x])?;
        let n_in: usize = x.iter().product();
        let b = self.b.f64.data();
        let mut rows = Vec::with_capacity(out.iter().product());
        if self.constant_first {
            // out[.., i, j] = sum_k B[i, k] x[.., k, j]
            let (mm, k) = (self.b.shape()[0], self.b.shape()[1]);
            let nn = if x.len() == 1 { 1 } else { x[x.len() - 1] };
            let lead = n_in / (k * nn);
            for l in 0..lead {
                for i in 0..mm {
                    for j in 0..nn {
                        rows.push((0..k).map(|kk| (l * k * nn + kk * nn + j, b[i * k + kk])).collect());
                    }
                }
            }
        } else {
            let (k, nn) = self.kn();
            let lead = n_in / k;
            if lead == 1 {
                // One row vector times B: dense, multiplied with GEMM.
                let mut w = vec![0.0; nn * k];
                for j in 0..nn {
                    for kk in 0..k {
                        w[j * k + kk] = b[kk * nn + j];
                    }
                }
                let s = Sparse::dense(nn, k, w);
                return Ok(Relaxation::Affine(AffineMap::exact(vec![s], vec![0.0; nn])));
            }
            for l in 0..lead {
                for j in 0..nn {
                    rows.push((0..k).map(|kk| (l * k + kk, b[kk * nn + j])).collect());
                }
            }
        }
        let n_out = rows.len();
        Ok(Relaxation::Affine(AffineMap::exact(vec![Sparse::from_rows(n_in, rows)], vec![0.0; n_out])))
    }
}

/// `b @ x` for each trailing `[K, N]` matrix of `x` (or the vector `x` of length K).
fn left_constant<T: Scalar>(b: &Tensor<T>, x: &Tensor<T>, shape: Vec<usize>) -> Result<Tensor<T>> {
    let (m, k) = (b.shape()[0], b.shape()[1]);
    let n = if x.rank() == 1 { 1 } else { x.shape()[x.rank() - 1] };
    let mut out = Tensor::zeros(shape)?;
    let step_in = k * n;
    let step_out = m * n;
    let count = x.len() / step_in.max(1);
    for i in 0..count {
        let xs = &x.data()[i * step_in..(i + 1) * step_in];
        let ys = &mut out.data_mut()[i * step_out..(i + 1) * step_out];
        gemm(m, k, n, T::ONE, b.data(), (k, 1), xs, (n, 1), T::ZERO, ys);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_rank3_by_matrix() {
        let b = Param::new(Tensor::new(vec![2, 1], vec![1.0, -1.0]).unwrap(), "b").unwrap();
        let mm = MatMul { b, constant_first: false };
        let x = Tensor::new(vec![2, 2, 2], vec![1.0f32, 2., 3., 5., 8., 13., 0., 1.]).unwrap();
        let y = mm.forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[2, 2, 1]);
        assert_eq!(y.data(), &[-1.0, -2.0, -5.0, -1.0]);
    }

    #[test]
    fn constant_on_the_left() {
        let b = Param::new(Tensor::new(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap(), "b").unwrap();
        let mm = MatMul { b, constant_first: true };
        let v = Tensor::new(vec![2], vec![1.0f64, -1.0]).unwrap();
        assert_eq!(mm.forward(&[&v]).unwrap().data(), &[-1.0, -1.0]);
        let x = Tensor::new(vec![2, 1], vec![1.0f64, -1.0]).unwrap();
        let y = mm.forward(&[&x]).unwrap();
        assert_eq!((y.shape(), y.data()), (&[2usize, 1][..], &[-1.0, -1.0][..]));
    }
}
