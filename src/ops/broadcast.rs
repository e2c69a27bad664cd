//! Multidirectional (numpy-style) broadcasting, as ONNX defines it for Add, Sub, Mul, Div.

use crate::error::{Error, Result};
use crate::ir::tensor::{checked_numel, strides};
use crate::ir::Tensor;

/// The broadcast of two shapes, or an error naming both.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::Shape(format!(
                    "shapes {a:?} and {b:?} do not broadcast"
                )))
            }
        };
    }
    checked_numel(&out)?;
    Ok(out)
}

/// Strides of `shape` seen from the broadcast `out` shape: 0 along broadcast axes.
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let s = strides(shape);
    let off = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < off || shape[i - off] == 1 {
                0
            } else {
                s[i - off]
            }
        })
        .collect()
}

/// Applies `f` element-wise over the broadcast of `a` and `b`.
pub fn binary<T: Copy + Default>(
    a: &Tensor<T>,
    b: &Tensor<T>,
    f: impl Fn(T, T) -> T,
) -> Result<Tensor<T>> {
    let out_shape = broadcast_shape(a.shape(), b.shape())?;
    let (ad, bd) = (a.data(), b.data());
    if a.shape() == b.shape() {
        return Tensor::new(
            out_shape,
            ad.iter().zip(bd).map(|(&x, &y)| f(x, y)).collect(),
        );
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
        assert_eq!(
            binary(&a, &col, |x, y| x + y).unwrap().data(),
            &[11.0, 12.0, 13.0, 24.0, 25.0, 26.0]
        );
        assert_eq!(
            binary(&row, &a, |x, y| x - y).unwrap().data(),
            &[99.0, 198.0, 297.0, 96.0, 195.0, 294.0]
        );
        let s = Tensor::scalar(2.0);
        assert_eq!(
            binary(&a, &s, |x, y| x * y).unwrap().data(),
            &[2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
        );
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
        _ => Err(Error::InvalidModel(format!(
            "{op} with {} variable input(s)",
            inputs.len()
        ))),
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
        _ => Err(Error::InvalidModel(format!(
            "{op} with {} variable input(s)",
            inputs.len()
        ))),
    }
}
