//! ONNX `MaxPool` (opsets 1-22, with the opset-10+ `dilations` and `ceil_mode`) over 1-D and
//! 2-D images, NCHW, producing the `Y` output only (no `Indices`). auto_pad is resolved into
//! explicit pads at import. Padded cells never win (they count as -infinity); a NaN in a window
//! makes that output NaN, as in PyTorch.
//! https://onnx.ai/onnx/operators/onnx__MaxPool.html
//!
//! Also holds the pooling geometry that [`AveragePool`](super::AveragePool) shares.

use super::Operator;
use super::RelaxInput;
use crate::bounds::affine::{AffineMap, Relaxation, Sparse};
use crate::error::{Error, Result};
use crate::ir::tensor::checked_numel;
use crate::ir::{Scalar, Tensor};

/// `MaxPool`. `kernel`, `strides`, `dilations` have one entry per spatial axis; `pads` is
/// `[begins..., ends...]`.
#[derive(Clone, Debug)]
pub struct MaxPool {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub pads: Vec<usize>,
    pub dilations: Vec<usize>,
    pub ceil_mode: bool,
}

/// One spatial axis of a pool: its parameters and output length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PoolAxis {
    pub input: usize,
    pub k: usize,
    pub s: usize,
    pub d: usize,
    pub pb: usize,
    pub pe: usize,
    pub out: usize,
}

/// The cells of one window along one axis: `count` taps inside the input from `first` on
/// (every `d`), and `padded`, the window's length clipped to the end padding (the
/// count_include_pad divisor, computed as onnxruntime does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Window {
    pub first: usize,
    pub count: usize,
    pub padded: usize,
}

impl PoolAxis {
    #[allow(clippy::too_many_arguments)]
    fn new(op: &str, input: usize, k: usize, s: usize, d: usize, pb: usize, pe: usize, ceil: bool) -> Result<Self> {
        if k == 0 || s == 0 || d == 0 {
            return Err(Error::InvalidModel(format!("{op} kernel, strides and dilations must be positive")));
        }
        // onnxruntime refuses these too; they would allow windows lying wholly in the padding.
        if pb >= k || pe >= k {
            return Err(Error::InvalidModel(format!("{op} pads ({pb}, {pe}) must be smaller than the kernel {k}")));
        }
        if input == 0 {
            return Err(Error::Shape(format!("{op} over an empty spatial axis")));
        }
        let too_large = || Error::TooLarge(format!("{op} kernel {k} with dilation {d} and pads ({pb}, {pe})"));
        let span = (k - 1).checked_mul(d).and_then(|v| v.checked_add(1)).ok_or_else(too_large)?;
        let padded = input.checked_add(pb).and_then(|v| v.checked_add(pe)).ok_or_else(too_large)?;
        // Keeps the signed window arithmetic below free of overflow.
        if padded > isize::MAX as usize / 2 {
            return Err(too_large());
        }
        if padded < span {
            return Err(Error::Shape(format!(
                "{op} window of {span} cells does not fit an axis of {input} padded by ({pb}, {pe})"
            )));
        }
        let num = padded - span;
        let mut out = if ceil { num.div_ceil(s) + 1 } else { num / s + 1 };
        // With ceil_mode the last window must start inside the input or the begin padding
        // (PyTorch, onnxruntime).
        if ceil && (out - 1).checked_mul(s).is_none_or(|st| st >= input + pb) {
            out -= 1;
        }
        Ok(PoolAxis { input, k, s, d, pb, pe, out })
    }

    /// The window of each output position.
    pub fn windows(&self) -> Vec<Window> {
        let (input, k, d) = (self.input as isize, self.k as isize, self.d as isize);
        let span = (k - 1) * d + 1;
        let end = input + self.pe as isize;
        (0..self.out)
            .map(|o| {
                let start = (o * self.s) as isize - self.pb as isize;
                // Taps i in [lo, hi) satisfy 0 <= start + i*d < input.
                let lo = if start < 0 { (-start + d - 1) / d } else { 0 };
                let hi = if start >= input { 0 } else { ((input - start + d - 1) / d).min(k) };
                let count = (hi - lo).max(0) as usize;
                let first = if count > 0 { (start + lo * d) as usize } else { 0 };
                let padded = ((start + span).min(end) - start) as usize;
                Window { first, count, padded }
            })
            .collect()
    }
}

/// A pool's geometry in 2-D: 1-D pools use a height axis of length 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PoolGeometry {
    /// N * C: the number of independent planes.
    pub planes: usize,
    pub h: PoolAxis,
    pub w: PoolAxis,
}

impl PoolGeometry {
    /// Checks a pool's attributes against input `x` ([N, C, L] or [N, C, H, W]); `dilations`
    /// is `None` for pools without dilation.
    pub fn new(
        op: &str,
        x: &[usize],
        kernel: &[usize],
        strides: &[usize],
        pads: &[usize],
        dilations: Option<&[usize]>,
        ceil_mode: bool,
    ) -> Result<Self> {
        let sp = kernel.len();
        if !(sp == 1 || sp == 2) || x.len() != sp + 2 {
            return Err(Error::Shape(format!(
                "{op} with a {sp}-D kernel applied to {x:?}: only 1-D ([N, C, L]) and 2-D ([N, C, H, W]) pools"
            )));
        }
        if strides.len() != sp || pads.len() != 2 * sp || dilations.is_some_and(|d| d.len() != sp) {
            return Err(Error::InvalidModel(format!("{op} strides/pads/dilations do not match the kernel rank {sp}")));
        }
        checked_numel(x)?;
        let dil = |i: usize| dilations.map_or(1, |d| d[i]);
        let axis =
            |i: usize| PoolAxis::new(op, x[2 + i], kernel[i], strides[i], dil(i), pads[i], pads[sp + i], ceil_mode);
        let (h, w) = if sp == 2 {
            (axis(0)?, axis(1)?)
        } else {
            (PoolAxis { input: 1, k: 1, s: 1, d: 1, pb: 0, pe: 0, out: 1 }, axis(0)?)
        };
        let g = PoolGeometry { planes: x[0] * x[1], h, w };
        checked_numel(&g.output_shape(x))?;
        Ok(g)
    }

    /// The output shape for input shape `x` (of the rank the geometry was made for).
    pub fn output_shape(&self, x: &[usize]) -> Vec<usize> {
        if x.len() == 4 {
            vec![x[0], x[1], self.h.out, self.w.out]
        } else {
            vec![x[0], x[1], self.w.out]
        }
    }
}

impl MaxPool {
    fn geometry(&self, x: &[usize]) -> Result<PoolGeometry> {
        PoolGeometry::new("MaxPool", x, &self.kernel, &self.strides, &self.pads, Some(&self.dilations), self.ceil_mode)
    }
}

/// The larger of `a` and `v`, NaN if either is (as PyTorch); branch-free so row loops vectorise.
#[inline(always)]
fn max_nan<T: Scalar>(a: T, v: T) -> T {
    if v > a || v.partial_cmp(&v).is_none() {
        v
    } else {
        a
    }
}

/// The input cells of every window of a pool, in output order (planes, then rows, then
/// columns), in compressed form: window `o` holds `cells[start[o]..start[o + 1]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolWindows {
    pub start: Vec<usize>,
    pub cells: Vec<usize>,
}

impl PoolWindows {
    /// The cells of window `o`.
    pub fn window(&self, o: usize) -> &[usize] {
        &self.cells[self.start[o]..self.start[o + 1]]
    }
    /// Number of windows (outputs).
    pub fn len(&self) -> usize {
        self.start.len() - 1
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl MaxPool {
    /// The input cells of each output's window for input shape `x` (one sample).
    pub fn windows(&self, x: &[usize]) -> Result<PoolWindows> {
        let g = self.geometry(x)?;
        let (rows_w, cols_w) = (g.h.windows(), g.w.windows());
        let (win, hin) = (g.w.input, g.h.input);
        let mut w = PoolWindows { start: vec![0], cells: Vec::new() };
        for p in 0..g.planes {
            for rw in &rows_w {
                for cw in &cols_w {
                    for i in 0..rw.count {
                        for j in 0..cw.count {
                            w.cells.push(p * hin * win + (rw.first + i * g.h.d) * win + cw.first + j * g.w.d);
                        }
                    }
                    w.start.push(w.cells.len());
                }
            }
        }
        Ok(w)
    }

    /// Which inputs can be a window's maximum somewhere in the boxes [lo, hi]: those whose
    /// upper bound reaches the largest lower bound of some window they are in. The others
    /// never affect the output (nor its relaxation), so their bounds need no refining.
    pub fn can_be_max(&self, x: &[usize], lo: &[f64], hi: &[f64]) -> Result<Vec<bool>> {
        let ws = self.windows(x)?;
        let mut out = vec![false; lo.len()];
        for o in 0..ws.len() {
            let cells = ws.window(o);
            let best_lo = cells.iter().map(|&c| lo[c]).fold(f64::NEG_INFINITY, f64::max);
            for &c in cells {
                if hi[c] >= best_lo {
                    out[c] = true;
                }
            }
        }
        Ok(out)
    }

    /// Per window, the cell with the largest lower bound and whether it dominates the window
    /// (its lower bound reaches every other cell's upper bound, so it is the maximum
    /// everywhere in the boxes). Errors on a window without cells.
    pub fn best_cells(ws: &PoolWindows, lo: &[f64], hi: &[f64]) -> Result<Vec<(usize, bool)>> {
        (0..ws.len())
            .map(|o| {
                let cells = ws.window(o);
                let best = cells
                    .iter()
                    .copied()
                    .max_by(|&a, &b| lo[a].total_cmp(&lo[b]).then(b.cmp(&a)))
                    .ok_or_else(|| crate::error::Error::InvalidModel("MaxPool window with no input cell".into()))?;
                let others_max = cells.iter().filter(|&&c| c != best).map(|&c| hi[c]).fold(f64::NEG_INFINITY, f64::max);
                Ok((best, lo[best] >= others_max))
            })
            .collect()
    }
}

impl Operator for MaxPool {
    fn name(&self) -> &'static str {
        "MaxPool"
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        super::arity("MaxPool", inputs.len(), 1)?;
        Ok(self.geometry(inputs[0])?.output_shape(inputs[0]))
    }
    fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        super::arity("MaxPool", inputs.len(), 1)?;
        let x = inputs[0];
        let g = self.geometry(x.shape())?;
        let mut out = Tensor::zeros(g.output_shape(x.shape()))?;
        let (rows, cols) = (g.h.windows(), g.w.windows());
        let (w, dh, dw) = (g.w.input, g.h.d, g.w.d);
        let (in_plane, out_plane) = (g.h.input * w, g.h.out * g.w.out);
        if out_plane == 0 {
            return Ok(out);
        }
        // Separable: the max over a window's rows, as one whole line, then over its columns.
        let mut acc = vec![T::NEG_INFINITY; w];
        for (xp, yp) in x.data().chunks_exact(in_plane).zip(out.data_mut().chunks_exact_mut(out_plane)) {
            for (yr, rw) in yp.chunks_exact_mut(g.w.out).zip(&rows) {
                let line: &[T] = match rw.count {
                    0 => {
                        acc.fill(T::NEG_INFINITY);
                        &acc
                    }
                    1 => &xp[rw.first * w..][..w],
                    _ => {
                        acc.copy_from_slice(&xp[rw.first * w..][..w]);
                        for i in 1..rw.count {
                            for (a, &v) in acc.iter_mut().zip(&xp[(rw.first + i * dh) * w..][..w]) {
                                *a = max_nan(*a, v);
                            }
                        }
                        &acc
                    }
                };
                for (y, cw) in yr.iter_mut().zip(&cols) {
                    *y = match cw.count {
                        0 => T::NEG_INFINITY,
                        _ if dw == 1 => {
                            line[cw.first..cw.first + cw.count].iter().fold(T::NEG_INFINITY, |m, &v| max_nan(m, v))
                        }
                        _ => line[cw.first..cw.first + (cw.count - 1) * dw + 1]
                            .iter()
                            .step_by(dw)
                            .fold(T::NEG_INFINITY, |m, &v| max_nan(m, v)),
                    };
                }
            }
        }
        Ok(out)
    }
    fn relaxation(&self, r: &RelaxInput<'_>) -> Result<Relaxation> {
        // Lower: the window's element with the largest lower bound (max >= any element;
        // alpha-CROWN replaces it by an optimised convex combination of the window).
        // Upper: that element when it dominates the window, else the largest upper bound.
        let x = r.in_shapes[0];
        let ws = self.windows(x)?;
        let (lo, hi) = (r.lo[0], r.hi[0]);
        let n_in: usize = x.iter().product();
        let (mut low_rows, mut up_rows) = (Vec::new(), Vec::new());
        let mut up_off = Vec::new();
        for (o, (best, dominates)) in Self::best_cells(&ws, lo, hi)?.into_iter().enumerate() {
            low_rows.push(vec![(best, 1.0)]);
            if dominates {
                up_rows.push(vec![(best, 1.0)]);
                up_off.push(0.0);
            } else {
                up_rows.push(vec![]);
                up_off.push(ws.window(o).iter().map(|&c| hi[c]).fold(f64::NEG_INFINITY, f64::max));
            }
        }
        let low_off = vec![0.0; up_off.len()];
        Ok(Relaxation::Bounds {
            lower: AffineMap::exact(vec![Sparse::from_rows(n_in, low_rows)], low_off),
            upper: AffineMap::exact(vec![Sparse::from_rows(n_in, up_rows)], up_off),
        })
    }
    fn interval(&self, r: &RelaxInput<'_>) -> Result<(Vec<f64>, Vec<f64>)> {
        // Max is monotone: pool the lower and upper bounds.
        let x = r.in_shapes[0];
        let lo = self.forward(&[&Tensor::new(x.to_vec(), r.lo[0].to_vec())?])?;
        let hi = self.forward(&[&Tensor::new(x.to_vec(), r.hi[0].to_vec())?])?;
        Ok((lo.into_data(), hi.into_data()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], data: Vec<f64>) -> Tensor<f64> {
        Tensor::new(shape.to_vec(), data).unwrap()
    }

    fn pool2(k: usize, s: usize, p: usize, ceil_mode: bool) -> MaxPool {
        MaxPool { kernel: vec![k, k], strides: vec![s, s], pads: vec![p; 4], dilations: vec![1, 1], ceil_mode }
    }

    #[test]
    fn two_by_two_stride_two_batch_and_channels() {
        // [2, 2, 2, 4]: two samples, two channels, negative values.
        let data: Vec<f64> = (0..32).map(|i| if i % 3 == 0 { -(i as f64) } else { i as f64 }).collect();
        let x = t(&[2, 2, 2, 4], data.clone());
        let y = pool2(2, 2, 0, false).forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[2, 2, 1, 2]);
        let want: Vec<f64> = (0..4)
            .flat_map(|p| {
                let pl = &data[p * 8..p * 8 + 8];
                [pl[0].max(pl[1]).max(pl[4]).max(pl[5]), pl[2].max(pl[3]).max(pl[6]).max(pl[7])]
            })
            .collect();
        assert_eq!(y.data(), &want[..]);
        // Plane 0 is [0,1,2,-3 / 4,5,-6,7] (multiples of 3 negated).
        assert_eq!(&y.data()[..2], &[5.0, 7.0]);
    }

    #[test]
    fn padding_is_minus_infinity() {
        // All values negative: a zero-padded max would wrongly give 0 on the border.
        let x = t(&[1, 1, 3, 3], vec![-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0, -9.0]);
        let y = pool2(3, 1, 1, false).forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[1, 1, 3, 3]);
        assert_eq!(y.data(), &[-1.0, -1.0, -2.0, -1.0, -1.0, -2.0, -4.0, -4.0, -5.0]);
        // f32 too.
        let y32 = pool2(3, 1, 1, false).forward(&[&x.map(|v| v as f32)]).unwrap();
        assert_eq!(y32.data()[8], -5.0f32);
    }

    #[test]
    fn asymmetric_pads() {
        // 1-D, pads (0, 1): the last window covers x[2] and the end padding.
        let op = MaxPool { kernel: vec![2], strides: vec![2], pads: vec![0, 1], dilations: vec![1], ceil_mode: false };
        let x = t(&[1, 1, 3], vec![-1.0, -2.0, -3.0]);
        let y = op.forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[1, 1, 2]);
        assert_eq!(y.data(), &[-1.0, -3.0]);
    }

    #[test]
    fn ceil_mode_adds_a_partial_window() {
        // L = 5, k = 2, s = 2: floor gives 2 outputs, ceil 3 (the last window holds x[4] only).
        let x = t(&[1, 1, 5], vec![1.0, -2.0, 3.0, -4.0, -5.0]);
        let mk =
            |ceil_mode| MaxPool { kernel: vec![2], strides: vec![2], pads: vec![0, 0], dilations: vec![1], ceil_mode };
        assert_eq!(mk(false).forward(&[&x]).unwrap().data(), &[1.0, 3.0]);
        let y = mk(true).forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[1, 1, 3]);
        assert_eq!(y.data(), &[1.0, 3.0, -5.0]);
    }

    #[test]
    fn ceil_mode_drops_a_window_starting_in_the_end_padding() {
        // L = 5, k = 2, s = 2, pads 1: ceil((7-2)/2)+1 = 4, but window 4 would start at padded
        // index 6 (the end padding), so 3 outputs, as PyTorch's MaxPool1d(2, 2, 1, ceil_mode=True).
        let op = MaxPool { kernel: vec![2], strides: vec![2], pads: vec![1, 1], dilations: vec![1], ceil_mode: true };
        assert_eq!(op.output_shape(&[&[1, 1, 5]]).unwrap(), vec![1, 1, 3]);
        let x = t(&[1, 1, 5], vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(op.forward(&[&x]).unwrap().data(), &[1.0, 3.0, 5.0]);
        // 2-D with the same rule on both axes.
        assert_eq!(pool2(2, 2, 1, true).output_shape(&[&[2, 3, 5, 5]]).unwrap(), vec![2, 3, 3, 3]);
        assert_eq!(pool2(3, 2, 0, true).output_shape(&[&[1, 1, 6, 6]]).unwrap(), vec![1, 1, 3, 3]);
        assert_eq!(pool2(3, 2, 0, false).output_shape(&[&[1, 1, 6, 6]]).unwrap(), vec![1, 1, 2, 2]);
    }

    #[test]
    fn dilation() {
        // k = 2, d = 2: out[i] = max(x[i], x[i+2]).
        let op = MaxPool { kernel: vec![2], strides: vec![1], pads: vec![0, 0], dilations: vec![2], ceil_mode: false };
        let x = t(&[1, 1, 6], vec![3.0, -1.0, 2.0, 5.0, -4.0, 0.0]);
        let y = op.forward(&[&x]).unwrap();
        assert_eq!(y.data(), &[3.0, 5.0, 2.0, 5.0]);
        // 2-D, dilation 2 with padding 1: the window at (0, 0) taps (-1|1) x (-1|1) -> only x[1][1].
        let op = MaxPool {
            kernel: vec![2, 2],
            strides: vec![1, 1],
            pads: vec![1; 4],
            dilations: vec![2, 2],
            ceil_mode: false,
        };
        let x = t(&[1, 1, 3, 3], (1..=9).map(|v| -(v as f64)).collect());
        let y = op.forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[1, 1, 3, 3]);
        assert_eq!(y.data(), &[-5.0, -4.0, -5.0, -2.0, -1.0, -2.0, -5.0, -4.0, -5.0]);
    }

    #[test]
    fn nan_propagates() {
        let x = t(&[1, 1, 4], vec![1.0, f64::NAN, 2.0, 3.0]);
        let op = MaxPool { kernel: vec![2], strides: vec![1], pads: vec![0, 0], dilations: vec![1], ceil_mode: false };
        let y = op.forward(&[&x]).unwrap();
        assert!(y.data()[0].is_nan() && y.data()[1].is_nan());
        assert_eq!(y.data()[2], 3.0);
    }

    #[test]
    fn invalid() {
        let op = pool2(2, 2, 0, false);
        assert!(op.output_shape(&[]).is_err());
        assert!(op.output_shape(&[&[1, 1, 4, 4], &[1, 1, 4, 4]]).is_err());
        assert!(op.output_shape(&[&[1, 4, 4]]).is_err());
        assert!(op.output_shape(&[&[1, 1, 1, 4]]).is_err()); // kernel taller than the input
        assert!(op.output_shape(&[&[1, 1, 0, 4]]).is_err());
        assert!(pool2(2, 2, 2, false).output_shape(&[&[1, 1, 4, 4]]).is_err()); // pad >= kernel
        assert!(pool2(2, 0, 0, false).output_shape(&[&[1, 1, 4, 4]]).is_err());
        assert!(pool2(0, 1, 0, false).output_shape(&[&[1, 1, 4, 4]]).is_err());
        let bad =
            MaxPool { kernel: vec![2, 2], strides: vec![1], pads: vec![0; 4], dilations: vec![1, 1], ceil_mode: false };
        assert!(bad.output_shape(&[&[1, 1, 4, 4]]).is_err());
        let huge = MaxPool {
            kernel: vec![2],
            strides: vec![1],
            pads: vec![0, 0],
            dilations: vec![usize::MAX],
            ceil_mode: false,
        };
        assert!(huge.output_shape(&[&[1, 1, 4]]).is_err());
        let x = t(&[1, 4, 4], vec![0.0; 16]);
        assert!(op.forward(&[&x]).is_err());
        assert!(op.forward::<f64>(&[]).is_err());
    }

    #[test]
    fn empty_batch() {
        let x = t(&[0, 3, 4, 4], vec![]);
        let y = pool2(2, 2, 0, false).forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[0, 3, 2, 2]);
    }
}
