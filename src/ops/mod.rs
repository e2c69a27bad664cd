//! Core operators. Each file holds one operator and everything robustcert knows about it:
//! shape inference and the forward pass now, interval (IBP) and backward linear relaxation
//! (CROWN) beside them, in the manner of auto_LiRPA's per-operator `interval_propagate` /
//! `bound_backward`. The [`Op`] enum dispatches statically, so engines loop over the graph
//! without trait objects.
//!
//! Adding an operator: a file here implementing [`Operator`] (or [`Elementwise`] for a
//! pointwise activation), a variant in [`Op`], and its lowering in `onnx/lower.rs`.

use crate::bounds::affine::{AffineMap, Relaxation, Sparse};
use crate::error::{Error, Result};
use crate::ir::{Scalar, Tensor};

pub mod broadcast;

mod add;
mod average_pool;
mod batch_norm;
mod clip;
mod concat;
mod constant;
mod conv;
mod div;
mod gemm;
mod global_average_pool;
mod input;
mod leaky_relu;
mod matmul;
mod max_pool;
mod mul;
mod pad;
mod reduce_mean;
mod relu;
mod reshape;
mod sigmoid;
mod softmax;
mod sub;
mod tanh;
mod transpose;

pub use add::Add;
pub use average_pool::AveragePool;
pub use batch_norm::BatchNorm;
pub use clip::Clip;
pub use concat::Concat;
pub use constant::Constant;
pub use conv::Conv;
pub use div::Div;
pub use gemm::Gemm;
pub use global_average_pool::GlobalAveragePool;
pub use input::Input;
pub use leaky_relu::LeakyRelu;
pub use matmul::MatMul;
pub use max_pool::{MaxPool, PoolWindows};
pub use mul::Mul;
pub use pad::Pad;
pub use reduce_mean::ReduceMean;
pub use relu::Relu;
pub use reshape::Reshape;
pub use sigmoid::Sigmoid;
pub use softmax::Softmax;
pub use sub::Sub;
pub use tanh::Tanh;
pub use transpose::Transpose;

/// What every operator provides. Shapes are full shapes, axis 0 the batch.
pub trait Operator {
    /// The operator's name as users know it (the ONNX op type it implements).
    fn name(&self) -> &'static str;
    /// The output shape for the given variable-input shapes, or why they do not fit.
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>>;
    /// Evaluates the operator on concrete inputs.
    fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>>;
    /// Number of constant parameter values the operator holds.
    fn parameter_count(&self) -> usize {
        0
    }
    /// Overwrites a single input with the output, when the operator can (pointwise ones);
    /// `None` when it cannot. Lets the executor skip an allocation and a pass over memory.
    fn forward_in_place<T: Scalar>(&self, _x: &mut Tensor<T>) -> Option<Result<()>> {
        None
    }
    /// The operator's linear relaxation on the input boxes (CROWN's `bound_backward`): lower
    /// and upper affine maps that enclose it for every input in the boxes, valid in real
    /// arithmetic. Affine operators return themselves.
    fn relaxation(&self, r: &RelaxInput<'_>) -> Result<Relaxation> {
        Err(no_relaxation(self.name(), r))
    }
    /// Interval bounds of the output over the input boxes (IBP's `interval_propagate`),
    /// rounded outward. Defaults to the image of the relaxation for affine operators.
    fn interval(&self, r: &RelaxInput<'_>) -> Result<(Vec<f64>, Vec<f64>)> {
        match self.relaxation(r)? {
            Relaxation::Affine(m) => Ok(m.interval(&r.lo, &r.hi)),
            Relaxation::Bounds { .. } => Err(no_relaxation(self.name(), r)),
        }
    }
}

/// What an operator's relaxation sees: shapes and bounds of its inputs (one sample, flattened).
pub struct RelaxInput<'a> {
    pub in_shapes: Vec<&'a [usize]>,
    pub out_shape: &'a [usize],
    pub lo: Vec<&'a [f64]>,
    pub hi: Vec<&'a [f64]>,
}

fn no_relaxation(op: &str, _r: &RelaxInput<'_>) -> Error {
    Error::InvalidModel(format!("operator {op} has no linear relaxation: bound propagation cannot pass it"))
}

/// A pair of lines a_l x + b_l <= f(x) <= a_u x + b_u valid on an input interval.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Lines {
    pub a_lo: f64,
    pub b_lo: f64,
    pub a_hi: f64,
    pub b_hi: f64,
}

/// A pointwise activation: `forward` and shapes come from [`eval`](Elementwise::eval), the
/// relaxations from [`lines`](Elementwise::lines) and [`range`](Elementwise::range).
pub trait Elementwise {
    const NAME: &'static str;
    fn eval<T: Scalar>(&self, x: T) -> T;
    /// Lines enclosing the function on [l, u] (l <= u), sound in real arithmetic.
    fn lines(&self, l: f64, u: f64) -> Lines;
    /// An interval containing f([l, u]), rounded outward.
    fn range(&self, l: f64, u: f64) -> (f64, f64);
    /// For alpha-CROWN: the range of slopes worth trying for both lines, and for a slope `a`
    /// the offset of a valid lower (or upper) line on [l, u] with the point where it touches
    /// (see [`s_shaped_offset`]). `None`: this function's lines are not optimised.
    fn line_offset(&self, _l: f64, _u: f64, _a: f64, _upper: bool) -> Option<(f64, f64)> {
        None
    }
    /// The smallest and largest derivative on [l, u] (the slopes alpha-CROWN searches: a best
    /// line touches the function, so its slope is a derivative there or a chord's).
    fn derivative_range(&self, _l: f64, _u: f64) -> Option<(f64, f64)> {
        None
    }
}

impl<E: Elementwise> Operator for E {
    fn name(&self) -> &'static str {
        E::NAME
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        arity(E::NAME, inputs.len(), 1)?;
        Ok(inputs[0].to_vec())
    }
    fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        arity(E::NAME, inputs.len(), 1)?;
        let x = inputs[0];
        Tensor::new(x.shape().to_vec(), x.data().iter().map(|&v| self.eval(v)).collect())
    }
    fn forward_in_place<T: Scalar>(&self, x: &mut Tensor<T>) -> Option<Result<()>> {
        x.data_mut().iter_mut().for_each(|v| *v = self.eval(*v));
        Some(Ok(()))
    }
    fn relaxation(&self, r: &RelaxInput<'_>) -> Result<Relaxation> {
        let (lo, hi) = (r.lo[0], r.hi[0]);
        let n = lo.len();
        let (mut al, mut bl, mut au, mut bu) = (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        for i in 0..n {
            let ln = self.lines(lo[i], hi[i]);
            (al[i], bl[i], au[i], bu[i]) = (ln.a_lo, ln.b_lo, ln.a_hi, ln.b_hi);
        }
        Ok(Relaxation::Bounds {
            lower: AffineMap::exact(vec![Sparse::diagonal(&al)], bl),
            upper: AffineMap::exact(vec![Sparse::diagonal(&au)], bu),
        })
    }
    fn interval(&self, r: &RelaxInput<'_>) -> Result<(Vec<f64>, Vec<f64>)> {
        Ok(r.lo[0].iter().zip(r.hi[0]).map(|(&l, &u)| self.range(l, u)).unzip())
    }
}

/// Checks the number of variable inputs.
pub(crate) fn arity(op: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(crate::error::Error::InvalidModel(format!("{op} takes {want} variable input(s), got {got}")));
    }
    Ok(())
}

macro_rules! ops {
    ($($variant:ident),* $(,)?) => {
        /// A core operator with its constant parameters.
        #[derive(Clone, Debug)]
        pub enum Op { $($variant($variant)),* }

        impl Operator for Op {
            fn name(&self) -> &'static str {
                match self { $(Op::$variant(o) => o.name()),* }
            }
            fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
                match self { $(Op::$variant(o) => o.output_shape(inputs)),* }
            }
            fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
                match self { $(Op::$variant(o) => o.forward(inputs)),* }
            }
            fn parameter_count(&self) -> usize {
                match self { $(Op::$variant(o) => o.parameter_count()),* }
            }
            fn forward_in_place<T: Scalar>(&self, x: &mut Tensor<T>) -> Option<Result<()>> {
                match self { $(Op::$variant(o) => o.forward_in_place(x)),* }
            }
            fn relaxation(&self, r: &RelaxInput<'_>) -> Result<Relaxation> {
                match self { $(Op::$variant(o) => o.relaxation(r)),* }
            }
            fn interval(&self, r: &RelaxInput<'_>) -> Result<(Vec<f64>, Vec<f64>)> {
                match self { $(Op::$variant(o) => o.interval(r)),* }
            }
        }
        $(impl From<$variant> for Op { fn from(o: $variant) -> Op { Op::$variant(o) } })*
    };
}

ops!(
    Input,
    Constant,
    Gemm,
    MatMul,
    Add,
    Sub,
    Mul,
    Div,
    Relu,
    LeakyRelu,
    Sigmoid,
    Tanh,
    Clip,
    Conv,
    BatchNorm,
    Reshape,
    Transpose,
    Concat,
    Pad,
    MaxPool,
    AveragePool,
    GlobalAveragePool,
    ReduceMean,
    Softmax,
);

/// Lines enclosing a piecewise-linear function on [l, u]: the slopes are chosen by the caller
/// (any slope is sound), the offsets are the extreme values of f(p) - a p over the breakpoints
/// `pts` of f inside [l, u] and the ends, computed with directed rounding. `f_lo`/`f_hi` give
/// lower/upper bounds of the exact f at a point.
pub(crate) fn piecewise_lines(
    l: f64,
    u: f64,
    kinks: &[f64],
    a_lo: f64,
    a_hi: f64,
    f_lo: impl Fn(f64) -> f64,
    f_hi: impl Fn(f64) -> f64,
) -> Lines {
    use crate::num::{mul_down, mul_up, sub_down, sub_up};
    let pts = std::iter::once(l).chain(std::iter::once(u)).chain(kinks.iter().copied().filter(|&k| k > l && k < u));
    let (mut b_lo, mut b_hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in pts {
        b_lo = b_lo.min(sub_down(f_lo(p), mul_up(a_lo, p)));
        b_hi = b_hi.max(sub_up(f_hi(p), mul_down(a_hi, p)));
    }
    Lines { a_lo, b_lo, a_hi, b_hi }
}

/// The slope of the chord of f over [l, u] (0 for a point interval).
pub(crate) fn chord(l: f64, u: f64, fl: f64, fu: f64) -> f64 {
    if u > l {
        (fu - fl) / (u - l)
    } else {
        0.0
    }
}

/// Absolute error allowed for a libm evaluation of sigmoid or tanh (values within [-1, 1]):
/// a few ulps of 1, generously.
pub(crate) const SMOOTH_MARGIN: f64 = 1e-14;

/// Lines enclosing a smooth S-shaped function (convex left of 0, concave right of it, with a
/// derivative that is unimodal with its peak at 0), as sigmoid and tanh are. Slopes: tangents
/// at the midpoint on convex or concave intervals, chords otherwise; offsets from the extreme
/// values of f(x) - a x, found at the ends or at the critical point where f'(x) = a
/// (`crit(a)` returns the non-negative one, `-crit(a)` is the other).
pub(crate) fn s_shaped_lines(
    l: f64,
    u: f64,
    f: impl Fn(f64) -> f64,
    df: impl Fn(f64) -> f64,
    crit: impl Fn(f64) -> Option<f64>,
) -> Lines {
    let (fl, fu) = (f(l), f(u));
    let c = chord(l, u, fl, fu);
    let m = l / 2.0 + u / 2.0;
    // Across the inflection point: the chord for both lines (measured tighter on the ERAN
    // sigmoid nets than tangents through the far ends).
    let (a_lo, a_hi) = if u <= 0.0 {
        (df(m), c)
    } else if l >= 0.0 {
        (c, df(m))
    } else {
        (c, c)
    };
    let extreme = |a: f64, upper: bool| s_shaped_offset(l, u, &f, &crit, a, upper).0;
    Lines { a_lo, b_lo: extreme(a_lo, false), a_hi, b_hi: extreme(a_hi, true) }
}

/// The offset b of a valid line a x + b below (`upper` false) or above an S-shaped f on
/// [l, u], for any slope a: the extreme value of f(x) - a x, at an end or at the critical
/// point, rounded outward and widened by the evaluation margin; with the point where it is
/// attained (the offset's derivative in a is minus that point, used by alpha-CROWN).
pub(crate) fn s_shaped_offset(
    l: f64,
    u: f64,
    f: &impl Fn(f64) -> f64,
    crit: &impl Fn(f64) -> Option<f64>,
    a: f64,
    upper: bool,
) -> (f64, f64) {
    use crate::num::{mul_down, mul_up, sub_down, sub_up};
    let mut pts = [l, u, f64::NAN];
    if let Some(x) = crit(a) {
        let x = if upper { x } else { -x };
        if x > l && x < u {
            pts[2] = x;
        }
    }
    let mut best = if upper { f64::NEG_INFINITY } else { f64::INFINITY };
    let mut at = l;
    for p in pts.into_iter().filter(|p| !p.is_nan()) {
        let v = if upper {
            sub_up(f(p) + SMOOTH_MARGIN, mul_down(a, p))
        } else {
            sub_down(f(p) - SMOOTH_MARGIN, mul_up(a, p))
        };
        if (upper && v > best) || (!upper && v < best) {
            best = v;
            at = p;
        }
    }
    (best, at)
}

/// For a pure data-movement operator (transpose, concat, pad, broadcast...): which input
/// element, if any, each output element copies. Found by running the operator on tensors
/// holding their own element indices (exact in f64), with `marker` (-1) where no input lands.
pub(crate) fn gather_map(
    in_shapes: &[&[usize]],
    run: impl Fn(&[&Tensor<f64>]) -> Result<Tensor<f64>>,
) -> Result<Vec<Option<(usize, usize)>>> {
    let mut offsets = Vec::with_capacity(in_shapes.len());
    let mut tensors = Vec::with_capacity(in_shapes.len());
    let mut base = 0usize;
    for s in in_shapes {
        let n: usize = s.iter().product();
        offsets.push(base);
        tensors.push(Tensor::new(s.to_vec(), (base..base + n).map(|v| v as f64).collect())?);
        base += n;
    }
    let refs: Vec<&Tensor<f64>> = tensors.iter().collect();
    let out = run(&refs)?;
    Ok(out
        .data()
        .iter()
        .map(|&v| {
            if v < 0.0 {
                return None;
            }
            let g = v as usize;
            let k = offsets.partition_point(|&o| o <= g) - 1;
            Some((k, g - offsets[k]))
        })
        .collect())
}

/// The affine map of a data-movement operator from its gather map; `fill` is the value of
/// outputs no input reaches (a pad value).
pub(crate) fn gather_affine(in_shapes: &[&[usize]], map: &[Option<(usize, usize)>], fill: f64) -> AffineMap {
    let mut rows: Vec<Vec<Vec<(usize, f64)>>> = vec![Vec::with_capacity(map.len()); in_shapes.len()];
    let mut offset = vec![0.0; map.len()];
    for (j, m) in map.iter().enumerate() {
        for (k, r) in rows.iter_mut().enumerate() {
            r.push(match m {
                Some((kk, i)) if *kk == k => vec![(*i, 1.0)],
                _ => vec![],
            });
        }
        if m.is_none() {
            offset[j] = fill;
        }
    }
    let parts = rows.into_iter().zip(in_shapes).map(|(r, s)| Sparse::from_rows(s.iter().product(), r)).collect();
    AffineMap::exact(parts, offset)
}

#[cfg(test)]
mod relaxation_tests {
    use super::*;
    use proptest::prelude::*;

    /// The lines and the range enclose f on [l, u]: checked at the ends, the kinks, and many
    /// points in between.
    fn encloses<E: Elementwise>(op: &E, l: f64, u: f64) -> std::result::Result<(), String> {
        let ln = op.lines(l, u);
        let (rlo, rhi) = op.range(l, u);
        let mut pts: Vec<f64> = (0..=400).map(|i| (l + (u - l) * i as f64 / 400.0).clamp(l, u)).collect();
        pts.extend([l, u, 0.0, -0.3, 0.2, 6.0, -1.0, 1.0].iter().copied().filter(|&p| p >= l && p <= u));
        for x in pts {
            let y = op.eval(x);
            let (lo, hi) = (ln.a_lo * x + ln.b_lo, ln.a_hi * x + ln.b_hi);
            // The line values themselves are evaluated in floating point here: allow their
            // rounding, which is far below the margins the relaxations keep.
            let tol = 1e-15 * (1.0 + x.abs() * ln.a_lo.abs().max(ln.a_hi.abs()) + ln.b_lo.abs().max(ln.b_hi.abs()));
            if lo > y + tol || hi < y - tol {
                return Err(format!(
                    "{}: at x = {x} on [{l}, {u}]: f = {y}, lines give [{lo}, {hi}] ({ln:?})",
                    E::NAME
                ));
            }
            if y < rlo || y > rhi {
                return Err(format!("{}: f({x}) = {y} outside the range [{rlo}, {rhi}]", E::NAME));
            }
        }
        Ok(())
    }

    fn interval() -> impl Strategy<Value = (f64, f64)> {
        prop_oneof![
            (-10.0f64..10.0, 0.0f64..10.0).prop_map(|(l, w)| (l, l + w)),
            (-1.0f64..1.0, 0.0f64..1e-6).prop_map(|(l, w)| (l, l + w)),
            (-50.0f64..50.0, 0.0f64..100.0).prop_map(|(l, w)| (l, l + w)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
        #[test]
        fn activation_relaxations_enclose((l, u) in interval(), alpha in 0.0f64..3.0, lo in -3.0f64..0.5, w in 0.0f64..4.0) {
            prop_assert_eq!(encloses(&Relu, l, u), Ok(()));
            prop_assert_eq!(encloses(&LeakyRelu { alpha }, l, u), Ok(()));
            prop_assert_eq!(encloses(&Clip { min: Some(lo), max: Some(lo + w) }, l, u), Ok(()));
            prop_assert_eq!(encloses(&Clip { min: None, max: Some(lo + w) }, l, u), Ok(()));
            prop_assert_eq!(encloses(&Clip { min: Some(lo), max: None }, l, u), Ok(()));
            prop_assert_eq!(encloses(&Sigmoid, l, u), Ok(()));
            prop_assert_eq!(encloses(&Tanh, l, u), Ok(()));
        }
    }

    #[test]
    fn relu_lines_are_crowns() {
        let ln = Relu.lines(-1.0, 3.0);
        assert_eq!(ln.a_lo, 1.0);
        assert!((ln.a_hi - 0.75).abs() < 1e-15 && (ln.b_hi - 0.75).abs() < 1e-15);
        // Stable: the identity or zero, exactly.
        let ln = Relu.lines(1.0, 2.0);
        assert_eq!((ln.a_lo, ln.b_lo, ln.a_hi, ln.b_hi), (1.0, 0.0, 1.0, 0.0));
        let ln = Relu.lines(-2.0, -0.0);
        assert_eq!((ln.a_lo, ln.b_lo, ln.a_hi, ln.b_hi), (0.0, 0.0, 0.0, 0.0));
    }
}
