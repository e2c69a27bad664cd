//! ONNX `Transpose` (opsets 1-21, unchanged semantics): output axis `i` is input axis
//! `perm[i]`. The importer fills in the default `perm` (the axes reversed).
//! https://onnx.ai/onnx/operators/onnx__Transpose.html

use super::Operator;
use super::RelaxInput;
use crate::bounds::affine::Relaxation;
use crate::error::{Error, Result};
use crate::ir::tensor::{checked_numel, strides};
use crate::ir::{Scalar, Tensor};

/// `Transpose` by a permutation of the input's axes.
#[derive(Clone, Debug)]
pub struct Transpose {
    pub perm: Vec<usize>,
}

impl Operator for Transpose {
    fn name(&self) -> &'static str {
        "Transpose"
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        super::arity("Transpose", inputs.len(), 1)?;
        let x = inputs[0];
        let mut seen = vec![false; x.len()];
        let is_perm = self.perm.len() == x.len()
            && self.perm.iter().all(|&p| p < x.len() && !std::mem::replace(&mut seen[p], true));
        if !is_perm {
            return Err(Error::Shape(format!(
                "Transpose perm {:?} is not a permutation of the axes of {x:?}",
                self.perm
            )));
        }
        checked_numel(x)?;
        Ok(self.perm.iter().map(|&p| x[p]).collect())
    }
    fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        super::arity("Transpose", inputs.len(), 1)?;
        let x = inputs[0];
        let shape = self.output_shape(&[x.shape()])?;
        let xd = x.data();
        if xd.is_empty() {
            return Tensor::new(shape, Vec::new());
        }
        // Output axes with their input strides, dropping size-1 axes and merging neighbours
        // that are also neighbours, in order, in the input: NCHW -> NHWC becomes a 3-D
        // [N, HW, C] walk, and the identity a plain copy.
        let in_strides = strides(x.shape());
        let mut dims: Vec<usize> = Vec::new();
        let mut st: Vec<usize> = Vec::new();
        for (&d, &p) in shape.iter().zip(&self.perm) {
            if d == 1 {
                continue;
            }
            let s = in_strides[p];
            match (dims.last_mut(), st.last_mut()) {
                (Some(ld), Some(ls)) if *ls == s * d => {
                    *ld *= d;
                    *ls = s;
                }
                _ => {
                    dims.push(d);
                    st.push(s);
                }
            }
        }
        let k = dims.len();
        if k == 0 || (k == 1 && st[0] == 1) {
            return Tensor::new(shape, xd.to_vec());
        }
        let (inner, is) = (dims[k - 1], st[k - 1]);
        let mut out = Vec::with_capacity(xd.len());
        let mut idx = vec![0usize; k - 1];
        let mut off = 0;
        loop {
            if is == 1 {
                out.extend_from_slice(&xd[off..off + inner]);
            } else {
                out.extend(xd[off..off + (inner - 1) * is + 1].iter().step_by(is));
            }
            // Odometer over the outer axes, moving the input offset along.
            let mut a = k - 1;
            loop {
                if a == 0 {
                    return Tensor::new(shape, out);
                }
                a -= 1;
                idx[a] += 1;
                off += st[a];
                if idx[a] < dims[a] {
                    break;
                }
                off -= st[a] * dims[a];
                idx[a] = 0;
            }
        }
    }
    fn relaxation(&self, r: &RelaxInput<'_>) -> Result<Relaxation> {
        let map = super::gather_map(&r.in_shapes, |xs| self.forward(xs))?;
        Ok(Relaxation::Affine(super::gather_affine(&r.in_shapes, &map, 0.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct definition: out[i0..] = x[j] with j[perm[a]] = i[a].
    fn naive(x: &Tensor<f64>, perm: &[usize]) -> Vec<f64> {
        let s = x.shape();
        let out_shape: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
        let (is, n) = (strides(s), x.len());
        let os = strides(&out_shape);
        (0..n)
            .map(|o| {
                let j: usize = (0..perm.len()).map(|a| (o / os[a] % out_shape[a]) * is[perm[a]]).sum();
                x.data()[j]
            })
            .collect()
    }

    fn iota(shape: &[usize]) -> Tensor<f64> {
        let n = shape.iter().product();
        Tensor::new(shape.to_vec(), (0..n).map(|v| v as f64 - 5.0).collect()).unwrap()
    }

    #[test]
    fn matrix() {
        let x = Tensor::new(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let y = Transpose { perm: vec![1, 0] }.forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[3, 2]);
        assert_eq!(y.data(), &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }

    #[test]
    fn nchw_nhwc_and_back() {
        let x = iota(&[2, 3, 2, 2]);
        let to = Transpose { perm: vec![0, 2, 3, 1] };
        let y = to.forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[2, 2, 2, 3]);
        assert_eq!(y.data(), &naive(&x, &to.perm)[..]);
        // Sample 0, pixel (0, 0): channels 0, 1, 2 are x cells 0, 4, 8.
        assert_eq!(&y.data()[..3], &[-5.0, -1.0, 3.0]);
        let back = Transpose { perm: vec![0, 3, 1, 2] }.forward(&[&y]).unwrap();
        assert_eq!(back, x);
    }

    #[test]
    fn all_permutations_of_rank_four() {
        let x = iota(&[2, 1, 3, 4]);
        let mut perms = Vec::new();
        for a in 0..4 {
            for b in 0..4 {
                for c in 0..4 {
                    for d in 0..4 {
                        let p = vec![a, b, c, d];
                        let mut q = p.clone();
                        q.sort();
                        if q == [0, 1, 2, 3] {
                            perms.push(p);
                        }
                    }
                }
            }
        }
        assert_eq!(perms.len(), 24);
        for p in perms {
            let op = Transpose { perm: p.clone() };
            let y = op.forward(&[&x]).unwrap();
            assert_eq!(y.shape(), &op.output_shape(&[x.shape()]).unwrap()[..]);
            assert_eq!(y.data(), &naive(&x, &p)[..], "perm {p:?}");
            let y32 = op.forward(&[&x.map(|v| v as f32)]).unwrap();
            assert_eq!(y32.data(), &naive(&x, &p).iter().map(|&v| v as f32).collect::<Vec<_>>()[..]);
        }
    }

    #[test]
    fn trivial_cases() {
        let x = iota(&[2, 3]);
        assert_eq!(Transpose { perm: vec![0, 1] }.forward(&[&x]).unwrap(), x);
        let s = Tensor::scalar(3.0);
        assert_eq!(Transpose { perm: vec![] }.forward(&[&s]).unwrap(), s);
        let e = Tensor::<f64>::new(vec![2, 0, 3], vec![]).unwrap();
        assert_eq!(Transpose { perm: vec![2, 0, 1] }.forward(&[&e]).unwrap().shape(), &[3, 2, 0]);
        // Only size-1 axes move: a copy.
        let x = iota(&[1, 5, 1]);
        let y = Transpose { perm: vec![2, 1, 0] }.forward(&[&x]).unwrap();
        assert_eq!(y.data(), x.data());
    }

    #[test]
    fn invalid() {
        assert!(Transpose { perm: vec![0, 0] }.output_shape(&[&[2, 3]]).is_err());
        assert!(Transpose { perm: vec![0, 2] }.output_shape(&[&[2, 3]]).is_err());
        assert!(Transpose { perm: vec![0] }.output_shape(&[&[2, 3]]).is_err());
        assert!(Transpose { perm: vec![1, 0] }.output_shape(&[]).is_err());
        let x = iota(&[2, 3]);
        assert!(Transpose { perm: vec![1, 0, 2] }.forward(&[&x]).is_err());
        assert!(Transpose { perm: vec![1, 0] }.forward(&[&x, &x]).is_err());
    }
}
