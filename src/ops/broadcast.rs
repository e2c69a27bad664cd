//! Multidirectional (numpy-style) broadcasting, as ONNX defines it for Add, Sub, Mul, Div.

use crate::error::{Error, Result};
use crate::ir::tensor::{checked_numel, strides};
use crate::ir::Tensor;

/// The broadcast of two shapes, or an error naming both.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r { a[i + a.len() - r] } else { 1 };
        let db = if i + b.len() >= r { b[i + b.len() - r] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(Error::Shape(format!("shapes {a:?} and {b:?} do not broadcast"))),
        };
    }
    checked_numel(&out)?;
    Ok(out)
}

/// Strides of `shape` seen from the broadcast `out` shape: 0 along broadcast axes.
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let s = strides(shape);
    let off = out.len() - shape.len();
    (0..out.len()).map(|i| if i < off || shape[i - off] == 1 { 0 } else { s[i - off] }).collect()
}

/// Applies `f` element-wise over the broadcast of `a` and `b`.
pub fn binary<T: Copy + Default>(a: &Tensor<T>, b: &Tensor<T>, f: impl Fn(T, T) -> T) -> Result<Tensor<T>> {
    let out_shape = broadcast_shape(a.shape(), b.shape())?;
    let (ad, bd) = (a.data(), b.data());
    if a.shape() == b.shape() {
        return Tensor::new(out_shape, ad.iter().zip(bd).map(|(&x, &y)| f(x, y)).collect());
    }
    let n = checked_numel(&out_shape)?;
    let mut out = Vec::with_capacity(n);
    if out_shape.is_empty() {
        out.push(f(ad[0], bd[0]));
        return Tensor::new(out_shape, out);
    }
    let sa = broadcast_strides(a.shape(), &out_shape);
    let sb = broadcast_strides(b.shape(), &out_shape);
    let r = out_shape.len();
    let inner = out_shape[r - 1];
    let (ia, ib) = (sa[r - 1], sb[r - 1]);
    let mut idx = vec![0usize; r - 1];
    let outer = n / inner.max(1);
    for _ in 0..outer {
        let mut oa = 0;
        let mut ob = 0;
        for k in 0..r - 1 {
            oa += idx[k] * sa[k];
            ob += idx[k] * sb[k];
        }
        for j in 0..inner {
            out.push(f(ad[oa + j * ia], bd[ob + j * ib]));
        }
        for k in (0..r - 1).rev() {
            idx[k] += 1;
            if idx[k] < out_shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    Tensor::new(out_shape, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(broadcast_shape(&[2, 3, 4], &[4]).unwrap(), vec![2, 3, 4]);
        assert_eq!(broadcast_shape(&[2, 1, 4], &[3, 1]).unwrap(), vec![2, 3, 4]);
        assert!(broadcast_shape(&[2, 3], &[4]).is_err());
    }

    #[test]
    fn values() {
        let a = Tensor::new(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let col = Tensor::new(vec![2, 1], vec![10.0, 20.0]).unwrap();
        let row = Tensor::new(vec![3], vec![100.0, 200.0, 300.0]).unwrap();
        assert_eq!(binary(&a, &col, |x, y| x + y).unwrap().data(), &[11.0, 12.0, 13.0, 24.0, 25.0, 26.0]);
        assert_eq!(binary(&row, &a, |x, y| x - y).unwrap().data(), &[99.0, 198.0, 297.0, 96.0, 195.0, 294.0]);
        let s = Tensor::scalar(2.0);
        assert_eq!(binary(&a, &s, |x, y| x * y).unwrap().data(), &[2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
    }
}

/// Output shape of a binary ONNX op holding an optional constant operand.
pub(crate) fn binary_op_shape(
    op: &str,
    constant: Option<&crate::ir::Param>,
    inputs: &[&[usize]],
) -> Result<Vec<usize>> {
    match (constant, inputs) {
        (Some(c), [x]) => broadcast_shape(x, c.shape()),
        (None, [a, b]) => broadcast_shape(a, b),
        _ => Err(Error::InvalidModel(format!("{op} with {} variable input(s)", inputs.len()))),
    }
}

/// Forward pass of a binary ONNX op holding an optional constant operand (first operand when
/// `constant_first`).
pub(crate) fn binary_op_forward<T: crate::ir::Scalar>(
    op: &str,
    constant: Option<&crate::ir::Param>,
    constant_first: bool,
    inputs: &[&Tensor<T>],
    f: impl Fn(T, T) -> T,
) -> Result<Tensor<T>> {
    match (constant, inputs) {
        (Some(c), [x]) if constant_first => binary(T::param(c), x, f),
        (Some(c), [x]) => binary(x, T::param(c), f),
        (None, [a, b]) => binary(a, b, f),
        _ => Err(Error::InvalidModel(format!("{op} with {} variable input(s)", inputs.len()))),
    }
}

/// Which element of an operand of shape `from` each element of the broadcast shape `to` reads.
pub(crate) fn broadcast_index(from: &[usize], to: &[usize]) -> Result<Vec<usize>> {
    let idx = Tensor::new(from.to_vec(), (0..from.iter().product::<usize>()).map(|v| v as f64).collect())?;
    let zeros = Tensor::zeros(to.to_vec())?;
    Ok(binary(&idx, &zeros, |a, _| a)?.data().iter().map(|&v| v as usize).collect())
}

/// The relaxation of Add/Sub/Mul/Div when it is affine: a constant operand, or Add/Sub of two
/// variables. `kind` is the ONNX op name. None when the op is not affine (Mul or Div of two
/// variables, a constant divided by a variable).
pub(crate) fn binary_affine(
    kind: &str,
    constant: Option<&crate::ir::Param>,
    constant_first: bool,
    in_shapes: &[&[usize]],
    out_shape: &[usize],
) -> Result<Option<crate::bounds::affine::AffineMap>> {
    use crate::bounds::affine::{AffineMap, Sparse};
    let n_out: usize = out_shape.iter().product();
    let ident = |from: &[usize], w: &dyn Fn(usize) -> f64| -> Result<Sparse> {
        let idx = broadcast_index(from, out_shape)?;
        Ok(Sparse::from_rows(from.iter().product(), idx.iter().enumerate().map(|(j, &i)| vec![(i, w(j))])))
    };
    match constant {
        None => {
            let sign = match kind {
                "Add" => 1.0,
                "Sub" => -1.0,
                _ => return Ok(None),
            };
            let a = ident(in_shapes[0], &|_| 1.0)?;
            let b = ident(in_shapes[1], &|_| sign)?;
            Ok(Some(AffineMap::exact(vec![a, b], vec![0.0; n_out])))
        }
        Some(c) => {
            let cv: Vec<f64> = {
                let idx = broadcast_index(c.shape(), out_shape)?;
                idx.iter().map(|&i| c.f64.data()[i]).collect()
            };
            let x = in_shapes[0];
            let (w, offset, err): (Box<dyn Fn(usize) -> f64>, Vec<f64>, f64) = match (kind, constant_first) {
                ("Add", _) => (Box::new(|_| 1.0), cv.clone(), 0.0),
                ("Sub", false) => (Box::new(|_| 1.0), cv.iter().map(|v| -v).collect(), 0.0),
                ("Sub", true) => (Box::new(|_| -1.0), cv.clone(), 0.0),
                ("Mul", _) => (Box::new(|j| cv[j]), vec![0.0; n_out], 0.0),
                // x / c as x * (1/c): the reciprocal carries one rounding.
                ("Div", false) => (Box::new(|j| 1.0 / cv[j]), vec![0.0; n_out], crate::num::UNIT_ROUNDOFF),
                _ => return Ok(None),
            };
            let s = ident(x, &*w)?;
            Ok(Some(AffineMap::approximate(vec![s], offset, err)))
        }
    }
}
