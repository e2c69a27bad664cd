//! Dense row-major tensors in f32 (what devices run) and f64 (what the verifier reasons in),
//! and the constant parameters of operators, kept in both precisions.

use crate::error::{Error, Result};
use std::fmt::Debug;

/// Largest number of elements one tensor may have (2^28, 1 GiB of f32): refuses absurd declared sizes
/// before anything is allocated.
pub const MAX_ELEMENTS: usize = 1 << 28;

/// The floating-point types the forward pass runs in.
pub trait Scalar:
    Copy
    + Debug
    + Default
    + PartialOrd
    + Send
    + Sync
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
    + std::iter::Sum
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    const NEG_INFINITY: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn tanh(self) -> Self;
    fn sqrt(self) -> Self;
    fn max(self, o: Self) -> Self;
    fn min(self, o: Self) -> Self;
    /// The copy of a parameter in this precision.
    fn param(p: &Param) -> &Tensor<Self>;
    /// C = alpha * A(m x k) * B(k x n) + beta * C, with row/column strides (matrixmultiply).
    /// # Safety
    /// Pointers and strides must describe valid, non-overlapping (for C) matrices.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

macro_rules! impl_scalar {
    ($t:ty, $field:ident, $gemm:path) => {
        impl Scalar for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn max(self, o: Self) -> Self {
                <$t>::max(self, o)
            }
            #[inline]
            fn min(self, o: Self) -> Self {
                <$t>::min(self, o)
            }
            #[inline]
            fn param(p: &Param) -> &Tensor<Self> {
                &p.$field
            }
            unsafe fn gemm(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: *const Self,
                rsa: isize,
                csa: isize,
                b: *const Self,
                rsb: isize,
                csb: isize,
                beta: Self,
                c: *mut Self,
                rsc: isize,
                csc: isize,
            ) {
                $gemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
            }
        }
    };
}
impl_scalar!(f32, f32, matrixmultiply::sgemm);
impl_scalar!(f64, f64, matrixmultiply::dgemm);

/// A dense row-major tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor<T> {
    shape: Vec<usize>,
    data: Vec<T>,
}

/// Number of elements of a shape, or an error when it overflows or exceeds [`MAX_ELEMENTS`].
pub fn checked_numel(shape: &[usize]) -> Result<usize> {
    let mut n: usize = 1;
    for &d in shape {
        n = n
            .checked_mul(d)
            .filter(|&n| n <= MAX_ELEMENTS)
            .ok_or_else(|| Error::TooLarge(format!("tensor of shape {shape:?} exceeds {MAX_ELEMENTS} elements")))?;
    }
    Ok(n)
}

/// Row-major strides of a shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

impl<T: Copy + Default> Tensor<T> {
    /// A tensor from its shape and data; the lengths must agree.
    pub fn new(shape: Vec<usize>, data: Vec<T>) -> Result<Self> {
        let n = checked_numel(&shape)?;
        if n != data.len() {
            return Err(Error::Shape(format!("shape {shape:?} holds {n} elements but {} were given", data.len())));
        }
        Ok(Tensor { shape, data })
    }
    /// A tensor of zeros (the type's default).
    pub fn zeros(shape: Vec<usize>) -> Result<Self> {
        let n = checked_numel(&shape)?;
        Ok(Tensor { shape, data: vec![T::default(); n] })
    }
    /// A scalar (rank-0) tensor.
    pub fn scalar(v: T) -> Self {
        Tensor { shape: vec![], data: vec![v] }
    }
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn data(&self) -> &[T] {
        &self.data
    }
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }
    pub fn into_data(self) -> Vec<T> {
        self.data
    }
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// The same data under another shape with the same number of elements.
    pub fn reshape(mut self, shape: Vec<usize>) -> Result<Self> {
        if checked_numel(&shape)? != self.data.len() {
            return Err(Error::Shape(format!("cannot reshape {:?} into {:?}", self.shape, shape)));
        }
        self.shape = shape;
        Ok(self)
    }
    /// Element-wise conversion into another element type.
    pub fn map<U: Copy + Default>(&self, f: impl Fn(T) -> U) -> Tensor<U> {
        Tensor { shape: self.shape.clone(), data: self.data.iter().map(|&v| f(v)).collect() }
    }
    /// Rows `[start, end)` along axis 0, copied.
    pub fn slice_batch(&self, start: usize, end: usize) -> Tensor<T> {
        let row: usize = self.shape[1..].iter().product();
        let mut shape = self.shape.clone();
        shape[0] = end - start;
        Tensor { shape, data: self.data[start * row..end * row].to_vec() }
    }
    /// Stacks tensors of equal shape `[b_i, ...]` along axis 0.
    pub fn concat_batch(parts: Vec<Tensor<T>>) -> Result<Tensor<T>> {
        let first = parts.first().ok_or_else(|| Error::InvalidArgument("no tensors to stack".into()))?;
        let tail = first.shape[1..].to_vec();
        let mut rows = 0;
        let mut data = Vec::new();
        for p in parts {
            if p.shape.is_empty() || p.shape[1..] != tail[..] {
                return Err(Error::Shape(format!("cannot stack {:?} with [_, {:?}]", p.shape, tail)));
            }
            rows += p.shape[0];
            data.extend(p.data);
        }
        let mut shape = vec![rows];
        shape.extend(tail);
        Ok(Tensor { shape, data })
    }
}

/// A constant operand of an operator, held in f64 (exact copy of the model's values) and f32
/// (what the device computes with). Weights are checked finite when they are made.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub f64: Tensor<f64>,
    pub f32: Tensor<f32>,
}

impl Param {
    /// A parameter from f64 values; refuses NaN and infinities (`what` names it in the error).
    pub fn new(t: Tensor<f64>, what: &str) -> Result<Self> {
        if let Some(i) = t.data().iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!("{what}: element {i} is {}", t.data()[i])));
        }
        let f32 = t.map(|v| v as f32);
        Ok(Param { f64: t, f32 })
    }
    pub fn shape(&self) -> &[usize] {
        self.f64.shape()
    }
    pub fn len(&self) -> usize {
        self.f64.len()
    }
    pub fn is_empty(&self) -> bool {
        self.f64.is_empty()
    }
}

/// C (m x n, row-major, `ldc` = n) = alpha * A * B + beta * C, with A and B given by row/column
/// strides, through matrixmultiply. Every size goes through the same kernel, whose per-element
/// summation order does not depend on m or n: a sample's result is the same whatever batch it
/// runs in, which replayable smoothing relies on.
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Scalar>(
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: &[T],
    (rsa, csa): (usize, usize),
    b: &[T],
    (rsb, csb): (usize, usize),
    beta: T,
    c: &mut [T],
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        (m - 1) * rsa + k.saturating_sub(1) * csa < a.len().max(1)
            && k.saturating_sub(1) * rsb + (n - 1) * csb < b.len().max(1)
            && m * n <= c.len(),
        "gemm operands too small for their strides"
    );
    // SAFETY: the assertion above bounds every index matrixmultiply touches.
    unsafe {
        T::gemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}
