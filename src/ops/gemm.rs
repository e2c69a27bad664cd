//! ONNX `Gemm` (opsets 7-13): Y = alpha * A' * B' + beta * C, with A the variable input and
//! B, C constants. https://onnx.ai/onnx/operators/onnx__Gemm.html

use super::broadcast::broadcast_shape;
use super::{Operator, RelaxInput};
use crate::bounds::affine::{AffineMap, Relaxation, Sparse};
use crate::error::{Error, Result};
use crate::ir::tensor::gemm;
use crate::ir::{Param, Scalar, Tensor};

/// `Gemm` with constant `b` (`[K, N]`, or `[N, K]` when `trans_b`) and optional constant `c`
/// (unidirectionally broadcast to `[M, N]`).
#[derive(Clone, Debug)]
pub struct Gemm {
    pub b: Param,
    pub c: Option<Param>,
    pub alpha: f64,
    pub beta: f64,
    pub trans_a: bool,
    pub trans_b: bool,
}

impl Gemm {
    /// (K, N) of the weight.
    fn kn(&self) -> (usize, usize) {
        let s = self.b.shape();
        if self.trans_b {
            (s[1], s[0])
        } else {
            (s[0], s[1])
        }
    }
}

impl Operator for Gemm {
    fn name(&self) -> &'static str {
        "Gemm"
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        super::arity("Gemm", inputs.len(), 1)?;
        let a = inputs[0];
        if a.len() != 2 || self.b.shape().len() != 2 {
            return Err(Error::Shape(format!("Gemm needs 2-D A and B, got {a:?} and {:?}", self.b.shape())));
        }
        let (m, ka) = if self.trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
        let (k, n) = self.kn();
        if ka != k {
            return Err(Error::Shape(format!("Gemm: A {a:?} and B {:?} disagree on K", self.b.shape())));
        }
        if let Some(c) = &self.c {
            if broadcast_shape(c.shape(), &[m, n])? != [m, n] {
                return Err(Error::Shape(format!("Gemm: C {:?} does not broadcast to [{m}, {n}]", c.shape())));
            }
        }
        Ok(vec![m, n])
    }
    fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let shape = self.output_shape(&[inputs[0].shape()])?;
        let (m, n) = (shape[0], shape[1]);
        let (k, _) = self.kn();
        let a = inputs[0];
        let mut out = match &self.c {
            Some(c) => super::broadcast::binary(&Tensor::zeros(shape.clone())?, T::param(c), |_, c| c)?,
            None => Tensor::zeros(shape)?,
        };
        let beta = if self.c.is_some() { T::from_f64(self.beta) } else { T::ZERO };
        let (rsa, csa) = if self.trans_a { (1, m) } else { (k, 1) };
        let (rsb, csb) = if self.trans_b { (1, k) } else { (n, 1) };
        let b = T::param(&self.b);
        gemm(m, k, n, T::from_f64(self.alpha), a.data(), (rsa, csa), b.data(), (rsb, csb), beta, out.data_mut());
        Ok(out)
    }
    fn parameter_count(&self) -> usize {
        self.b.len() + self.c.as_ref().map_or(0, |c| c.len())
    }
    fn relaxation(&self, r: &RelaxInput<'_>) -> Result<Relaxation> {
        let out = self.output_shape(&[r.in_shapes[0]])?;
        let (m, n) = (out[0], out[1]);
        let (k, _) = self.kn();
        let b = self.b.f64.data();
        let bw = |kk: usize, j: usize| if self.trans_b { b[j * k + kk] } else { b[kk * n + j] };
        let a_idx = |i: usize, kk: usize| if self.trans_a { kk * m + i } else { i * k + kk };
        let alpha = self.alpha;
        // Dense (m*n) x (m*k): block-diagonal over the m rows of A (m is 1 for one sample).
        let (rows_out, cols_in) = (m * n, m * k);
        let mut w = vec![0.0; rows_out * cols_in];
        for i in 0..m {
            for j in 0..n {
                for kk in 0..k {
                    w[(i * n + j) * cols_in + a_idx(i, kk)] = alpha * bw(kk, j);
                }
            }
        }
        let offset = match &self.c {
            Some(c) => {
                let cb = super::broadcast::binary(&Tensor::zeros(vec![m, n])?, &c.f64, |_, c| c)?;
                cb.data().iter().map(|v| self.beta * v).collect()
            }
            None => vec![0.0; m * n],
        };
        // alpha * B and beta * C are rounded products unless the factors are 1.
        let err = if self.alpha == 1.0 && self.beta == 1.0 { 0.0 } else { crate::num::UNIT_ROUNDOFF };
        Ok(Relaxation::Affine(AffineMap::approximate(vec![Sparse::dense(rows_out, cols_in, w)], offset, err)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(shape: Vec<usize>, v: Vec<f64>) -> Param {
        Param::new(Tensor::new(shape, v).unwrap(), "t").unwrap()
    }

    #[test]
    fn gemm_with_transposes_alpha_beta() {
        // A = [[1,2],[3,4]], B^T given as [[1,0],[1,1],[0,2]] (N=3, K=2), C = [1,2,3].
        let g = Gemm {
            b: p(vec![3, 2], vec![1., 0., 1., 1., 0., 2.]),
            c: Some(p(vec![3], vec![1., 2., 3.])),
            alpha: 2.0,
            beta: 0.5,
            trans_a: false,
            trans_b: true,
        };
        let a = Tensor::new(vec![2, 2], vec![1.0f64, 2., 3., 4.]).unwrap();
        let y = g.forward(&[&a]).unwrap();
        // A B = [[1,3,4],[3,7,8]]
        assert_eq!(y.data(), &[2.5, 7.0, 9.5, 6.5, 15.0, 17.5]);
        let ta = Gemm { trans_a: true, ..g };
        let at = Tensor::new(vec![2, 2], vec![1.0f64, 3., 2., 4.]).unwrap();
        assert_eq!(ta.forward(&[&at]).unwrap().data(), y.data());
    }
}
