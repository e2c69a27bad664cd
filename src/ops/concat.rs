//! ONNX `Concat` (opsets 4-13 semantics: `axis` required; negative axes, allowed from opset 11,
//! are resolved at import) of one or more variable inputs of equal rank whose dims agree
//! except along `axis`.
//! https://onnx.ai/onnx/operators/onnx__Concat.html

use super::Operator;
use super::RelaxInput;
use crate::bounds::affine::Relaxation;
use crate::error::{Error, Result};
use crate::ir::tensor::checked_numel;
use crate::ir::{Scalar, Tensor};

/// `Concat` along `axis`.
#[derive(Clone, Debug)]
pub struct Concat {
    pub axis: usize,
}

impl Operator for Concat {
    fn name(&self) -> &'static str {
        "Concat"
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        let first = inputs
            .first()
            .ok_or_else(|| Error::InvalidModel("Concat takes at least 1 variable input, got 0".into()))?;
        let a = self.axis;
        if a >= first.len() {
            return Err(Error::Shape(format!("Concat axis {a} out of range for {first:?}")));
        }
        let mut out = first.to_vec();
        out[a] = 0;
        for x in inputs {
            let fits =
                x.len() == first.len() && x.iter().zip(first.iter()).enumerate().all(|(i, (p, q))| i == a || p == q);
            if !fits {
                return Err(Error::Shape(format!("Concat along axis {a} of {first:?} and {x:?}")));
            }
            out[a] = out[a]
                .checked_add(x[a])
                .ok_or_else(|| Error::TooLarge(format!("Concat along axis {a} of {inputs:?}")))?;
        }
        checked_numel(&out)?;
        Ok(out)
    }
    fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|x| x.shape()).collect();
        let shape = self.output_shape(&shapes)?;
        let a = self.axis;
        let outer: usize = shape[..a].iter().product();
        let inner: usize = shape[a + 1..].iter().product();
        // Each input contributes one contiguous run of dims[a] * inner cells per outer index.
        let runs: Vec<usize> = shapes.iter().map(|s| s[a] * inner).collect();
        let mut out = Vec::with_capacity(checked_numel(&shape)?);
        for o in 0..outer {
            for (x, &r) in inputs.iter().zip(&runs) {
                out.extend_from_slice(&x.data()[o * r..(o + 1) * r]);
            }
        }
        Tensor::new(shape, out)
    }
    fn relaxation(&self, r: &RelaxInput<'_>) -> Result<Relaxation> {
        let map = super::gather_map(&r.in_shapes, |xs| self.forward(xs))?;
        Ok(Relaxation::Affine(super::gather_affine(&r.in_shapes, &map, 0.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], data: Vec<f64>) -> Tensor<f64> {
        Tensor::new(shape.to_vec(), data).unwrap()
    }

    #[test]
    fn axis_one_of_matrices() {
        let a = t(&[2, 1], vec![1.0, 2.0]);
        let b = t(&[2, 2], vec![-3.0, -4.0, -5.0, -6.0]);
        let y = Concat { axis: 1 }.forward(&[&a, &b]).unwrap();
        assert_eq!(y.shape(), &[2, 3]);
        assert_eq!(y.data(), &[1.0, -3.0, -4.0, 2.0, -5.0, -6.0]);
    }

    #[test]
    fn axis_zero_and_three_inputs() {
        let a = t(&[1, 2], vec![1.0, 2.0]);
        let b = t(&[2, 2], vec![3.0, 4.0, 5.0, 6.0]);
        let y = Concat { axis: 0 }.forward(&[&a, &b, &a]).unwrap();
        assert_eq!(y.shape(), &[4, 2]);
        assert_eq!(y.data(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 2.0]);
    }

    #[test]
    fn channels_of_nchw_batch_two() {
        // [2, 1, 2, 1] and [2, 2, 2, 1] along channels.
        let a = t(&[2, 1, 2, 1], vec![1.0, 2.0, 3.0, 4.0]);
        let b = t(&[2, 2, 2, 1], (10..18).map(|v| v as f64).collect());
        let y = Concat { axis: 1 }.forward(&[&a, &b]).unwrap();
        assert_eq!(y.shape(), &[2, 3, 2, 1]);
        assert_eq!(y.data(), &[1.0, 2.0, 10.0, 11.0, 12.0, 13.0, 3.0, 4.0, 14.0, 15.0, 16.0, 17.0]);
        // Last axis.
        let y = Concat { axis: 3 }.forward(&[&a, &a]).unwrap();
        assert_eq!(y.shape(), &[2, 1, 2, 2]);
        assert_eq!(y.data(), &[1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0]);
    }

    #[test]
    fn single_and_empty_inputs() {
        let a = t(&[2, 3], (0..6).map(|v| v as f64).collect());
        assert_eq!(Concat { axis: 1 }.forward(&[&a]).unwrap(), a);
        let e = t(&[2, 0], vec![]);
        assert_eq!(Concat { axis: 1 }.forward(&[&e, &a, &e]).unwrap(), a);
        let y = Concat { axis: 0 }.forward(&[&a.map(|v| v as f32), &a.map(|v| v as f32)]).unwrap();
        assert_eq!(y.shape(), &[4, 3]);
    }

    #[test]
    fn invalid() {
        assert!(Concat { axis: 0 }.output_shape(&[]).is_err());
        assert!(Concat { axis: 2 }.output_shape(&[&[2, 3], &[2, 3]]).is_err());
        assert!(Concat { axis: 1 }.output_shape(&[&[2, 3], &[3, 3]]).is_err());
        assert!(Concat { axis: 1 }.output_shape(&[&[2, 3], &[2, 3, 1]]).is_err());
        assert!(Concat { axis: 0 }.output_shape(&[&[]]).is_err());
        assert!(Concat { axis: 0 }.output_shape(&[&[usize::MAX], &[2]]).is_err());
        assert!(Concat { axis: 0 }.forward::<f64>(&[]).is_err());
    }
}
