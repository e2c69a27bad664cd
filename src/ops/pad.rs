//! ONNX `Pad` in `constant` mode (opsets 2-21: the `pads` and `constant_value` inputs of opset
//! 11+, and opset 18's `axes`, are folded at import into one begin and one end count per axis;
//! negative pads, i.e. cropping, and the edge/reflect/wrap modes are not supported here).
//! https://onnx.ai/onnx/operators/onnx__Pad.html

use super::Operator;
use super::RelaxInput;
use crate::bounds::affine::Relaxation;
use crate::error::{Error, Result};
use crate::ir::tensor::{checked_numel, strides};
use crate::ir::{Scalar, Tensor};

/// Constant padding. `pads` is `[x1_begin, x2_begin, ..., x1_end, x2_end, ...]` (ONNX order),
/// two entries per input axis.
#[derive(Clone, Debug)]
pub struct Pad {
    pub pads: Vec<usize>,
    pub value: f64,
}

impl Operator for Pad {
    fn name(&self) -> &'static str {
        "Pad"
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        super::arity("Pad", inputs.len(), 1)?;
        let x = inputs[0];
        let r = x.len();
        if self.pads.len() != 2 * r {
            return Err(Error::Shape(format!("Pad with {} pads applied to {x:?} (rank {r})", self.pads.len())));
        }
        let out = (0..r)
            .map(|i| x[i].checked_add(self.pads[i]).and_then(|v| v.checked_add(self.pads[r + i])))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| Error::TooLarge(format!("Pad {:?} of {x:?}", self.pads)))?;
        checked_numel(&out)?;
        Ok(out)
    }
    fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        super::arity("Pad", inputs.len(), 1)?;
        let x = inputs[0];
        let shape = self.output_shape(&[x.shape()])?;
        let n = checked_numel(&shape)?;
        let mut out = vec![T::from_f64(self.value); n];
        let xd = x.data();
        let r = x.rank();
        if xd.is_empty() {
            return Tensor::new(shape, out);
        }
        if r == 0 {
            return Tensor::new(shape, xd.to_vec());
        }
        // Fill, then copy each input row (along the last axis) to its place.
        let os = strides(&shape);
        let xs = x.shape();
        let inner = xs[r - 1];
        let mut off: usize = (0..r).map(|i| self.pads[i] * os[i]).sum();
        let mut idx = vec![0usize; r - 1];
        for row in xd.chunks_exact(inner) {
            out[off..off + inner].copy_from_slice(row);
            for a in (0..r - 1).rev() {
                idx[a] += 1;
                off += os[a];
                if idx[a] < xs[a] {
                    break;
                }
                off -= os[a] * xs[a];
                idx[a] = 0;
            }
        }
        Tensor::new(shape, out)
    }
    fn relaxation(&self, r: &RelaxInput<'_>) -> Result<Relaxation> {
        let marker = Pad { pads: self.pads.clone(), value: -1.0 };
        let map = super::gather_map(&r.in_shapes, |xs| marker.forward(xs))?;
        Ok(Relaxation::Affine(super::gather_affine(&r.in_shapes, &map, self.value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], data: Vec<f64>) -> Tensor<f64> {
        Tensor::new(shape.to_vec(), data).unwrap()
    }

    #[test]
    fn matrix_asymmetric() {
        // [2, 2], one row before, two columns after, value 9.
        let x = t(&[2, 2], vec![1.0, -2.0, 3.0, -4.0]);
        let y = Pad { pads: vec![1, 0, 0, 2], value: 9.0 }.forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[3, 4]);
        assert_eq!(y.data(), &[9.0, 9.0, 9.0, 9.0, 1.0, -2.0, 9.0, 9.0, 3.0, -4.0, 9.0, 9.0]);
    }

    #[test]
    fn spatial_pads_of_nchw_batch_two() {
        // [2, 1, 1, 2] padded by 1 on H and W both sides with zeros.
        let x = t(&[2, 1, 1, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let y = Pad { pads: vec![0, 0, 1, 1, 0, 0, 1, 1], value: 0.0 }.forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[2, 1, 3, 4]);
        #[rustfmt::skip]
        let want = [
            0.0, 0.0, 0.0, 0.0,  0.0, 1.0, 2.0, 0.0,  0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0,  0.0, 3.0, 4.0, 0.0,  0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(y.data(), &want);
        // f32, negative value, padding the channel axis.
        let y = Pad { pads: vec![0, 1, 0, 0, 0, 0, 0, 0], value: -1.5 }.forward(&[&x.map(|v| v as f32)]).unwrap();
        assert_eq!(y.shape(), &[2, 2, 1, 2]);
        assert_eq!(y.data(), &[-1.5f32, -1.5, 1.0, 2.0, -1.5, -1.5, 3.0, 4.0]);
    }

    #[test]
    fn trivial_cases() {
        let x = t(&[2, 3], (0..6).map(|v| v as f64).collect());
        assert_eq!(Pad { pads: vec![0; 4], value: 1.0 }.forward(&[&x]).unwrap(), x);
        let e = t(&[0, 2], vec![]);
        let y = Pad { pads: vec![1, 0, 0, 1], value: 5.0 }.forward(&[&e]).unwrap();
        assert_eq!(y.shape(), &[1, 3]);
        assert_eq!(y.data(), &[5.0; 3]);
        let s = Tensor::scalar(2.0);
        assert_eq!(Pad { pads: vec![], value: 0.0 }.forward(&[&s]).unwrap(), s);
        // Rank 1.
        let v = t(&[2], vec![1.0, 2.0]);
        assert_eq!(Pad { pads: vec![2, 1], value: 0.0 }.forward(&[&v]).unwrap().data(), &[0.0, 0.0, 1.0, 2.0, 0.0]);
    }

    #[test]
    fn invalid() {
        let op = Pad { pads: vec![1, 1], value: 0.0 };
        assert!(op.output_shape(&[&[2, 2]]).is_err());
        assert!(op.output_shape(&[]).is_err());
        assert!(op.output_shape(&[&[2], &[2]]).is_err());
        assert!(Pad { pads: vec![usize::MAX, 1], value: 0.0 }.output_shape(&[&[2]]).is_err());
        assert!(Pad { pads: vec![1 << 20, 1 << 20, 0, 0], value: 0.0 }.output_shape(&[&[2, 2]]).is_err());
        assert!(op.forward(&[&t(&[2, 2], vec![0.0; 4])]).is_err());
    }
}
