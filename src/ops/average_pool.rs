//! ONNX `AveragePool` (opsets 7-18 semantics: `count_include_pad`, and `ceil_mode` from opset
//! 10; the opset-19 `dilations` are not supported, so the importer must refuse dilations != 1)
//! over 1-D and 2-D images, NCHW. auto_pad is resolved into explicit pads at import.
//! https://onnx.ai/onnx/operators/onnx__AveragePool.html
//!
//! The divisor follows onnxruntime: without `count_include_pad`, the window's cells inside the
//! input; with it, also its cells in the explicit padding, but not the cells past the end
//! padding that `ceil_mode` may add.

use super::max_pool::PoolGeometry;
use super::Operator;
use super::RelaxInput;
use crate::bounds::affine::{AffineMap, Relaxation, Sparse};
use crate::error::Result;
use crate::ir::{Scalar, Tensor};

/// `AveragePool`. `kernel`, `strides` have one entry per spatial axis; `pads` is
/// `[begins..., ends...]`.
#[derive(Clone, Debug)]
pub struct AveragePool {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub pads: Vec<usize>,
    pub ceil_mode: bool,
    pub count_include_pad: bool,
}

impl AveragePool {
    fn geometry(&self, x: &[usize]) -> Result<PoolGeometry> {
        PoolGeometry::new("AveragePool", x, &self.kernel, &self.strides, &self.pads, None, self.ceil_mode)
    }
}

impl Operator for AveragePool {
    fn name(&self) -> &'static str {
        "AveragePool"
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        super::arity("AveragePool", inputs.len(), 1)?;
        Ok(self.geometry(inputs[0])?.output_shape(inputs[0]))
    }
    fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        super::arity("AveragePool", inputs.len(), 1)?;
        let x = inputs[0];
        let g = self.geometry(x.shape())?;
        let mut out = Tensor::zeros(g.output_shape(x.shape()))?;
        let (rows, cols) = (g.h.windows(), g.w.windows());
        // Divisor factors per output row and column, converted once.
        let factor = |w: &super::max_pool::Window| {
            if self.count_include_pad {
                w.padded
            } else {
                w.count
            }
        };
        let row_div: Vec<T> = rows.iter().map(|r| T::from_f64(factor(r) as f64)).collect();
        let col_div: Vec<T> = cols.iter().map(|c| T::from_f64(factor(c) as f64)).collect();
        let w = g.w.input;
        let (in_plane, out_plane) = (g.h.input * w, g.h.out * g.w.out);
        if out_plane == 0 {
            return Ok(out);
        }
        // Separable: the sum over a window's rows, as one whole line, then over its columns.
        let mut acc = vec![T::ZERO; w];
        for (xp, yp) in x.data().chunks_exact(in_plane).zip(out.data_mut().chunks_exact_mut(out_plane)) {
            for ((yr, rw), &rd) in yp.chunks_exact_mut(g.w.out).zip(&rows).zip(&row_div) {
                let line: &[T] = match rw.count {
                    0 => {
                        acc.fill(T::ZERO);
                        &acc
                    }
                    1 => &xp[rw.first * w..][..w],
                    _ => {
                        acc.copy_from_slice(&xp[rw.first * w..][..w]);
                        for i in 1..rw.count {
                            for (a, &v) in acc.iter_mut().zip(&xp[(rw.first + i) * w..][..w]) {
                                *a += v;
                            }
                        }
                        &acc
                    }
                };
                for ((y, cw), &cd) in yr.iter_mut().zip(&cols).zip(&col_div) {
                    let s = line[cw.first..cw.first + cw.count].iter().fold(T::ZERO, |s, &v| s + v);
                    // Divisor products are exact integers in f32 for any real kernel.
                    *y = s / (rd * cd);
                }
            }
        }
        Ok(out)
    }
    fn relaxation(&self, r: &RelaxInput<'_>) -> Result<Relaxation> {
        let x = r.in_shapes[0];
        let g = self.geometry(x)?;
        let (rows_w, cols_w) = (g.h.windows(), g.w.windows());
        let (win, hin) = (g.w.input, g.h.input);
        let mut rows = Vec::with_capacity(g.planes * g.h.out * g.w.out);
        for p in 0..g.planes {
            for rw in &rows_w {
                for cw in &cols_w {
                    let div = if self.count_include_pad { rw.padded * cw.padded } else { rw.count * cw.count };
                    let w = 1.0 / div.max(1) as f64;
                    let mut e = Vec::with_capacity(rw.count * cw.count);
                    for i in 0..rw.count {
                        for j in 0..cw.count {
                            e.push((p * hin * win + (rw.first + i) * win + cw.first + j, w));
                        }
                    }
                    rows.push(e);
                }
            }
        }
        let n_out = rows.len();
        let s = Sparse::from_rows(g.planes * hin * win, rows);
        Ok(Relaxation::Affine(AffineMap::approximate(vec![s], vec![0.0; n_out], crate::num::UNIT_ROUNDOFF)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], data: Vec<f64>) -> Tensor<f64> {
        Tensor::new(shape.to_vec(), data).unwrap()
    }

    fn pool2(k: usize, s: usize, p: usize, ceil_mode: bool, count_include_pad: bool) -> AveragePool {
        AveragePool { kernel: vec![k, k], strides: vec![s, s], pads: vec![p; 4], ceil_mode, count_include_pad }
    }

    fn pool1(k: usize, s: usize, pads: [usize; 2], ceil_mode: bool, count_include_pad: bool) -> AveragePool {
        AveragePool { kernel: vec![k], strides: vec![s], pads: pads.to_vec(), ceil_mode, count_include_pad }
    }

    #[test]
    fn two_by_two_stride_two_batch() {
        // Two samples, one channel, 2x4 with negative values.
        let x = t(
            &[2, 1, 2, 4],
            vec![1.0, -2.0, 3.0, 4.0, 5.0, 6.0, -7.0, 8.0, -1.0, -1.0, 0.0, 2.0, -3.0, -3.0, 4.0, 6.0],
        );
        let y = pool2(2, 2, 0, false, false).forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[2, 1, 1, 2]);
        assert_eq!(y.data(), &[2.5, 2.0, -2.0, 3.0]);
    }

    #[test]
    fn padding_with_and_without_count_include_pad() {
        // [[1, 2], [3, 4]], k = 2, s = 1, pads 1: a 3x3 output whose border windows hold padding.
        let x = t(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let inc = pool2(2, 1, 1, false, true).forward(&[&x]).unwrap();
        assert_eq!(inc.shape(), &[1, 1, 3, 3]);
        assert_eq!(inc.data(), &[0.25, 0.75, 0.5, 1.0, 2.5, 1.5, 0.75, 1.75, 1.0]);
        let exc = pool2(2, 1, 1, false, false).forward(&[&x]).unwrap();
        assert_eq!(exc.data(), &[1.0, 1.5, 2.0, 2.0, 2.5, 3.0, 3.0, 3.5, 4.0]);
    }

    #[test]
    fn ceil_mode_divisor_stops_at_the_end_padding() {
        // L = 6, k = 3, s = 2, pads (1, 1), ceil: 4 windows starting at -1, 1, 3, 5. The last
        // covers x[5], the end padding cell 6 and cell 7 past it: divisor 2 with
        // count_include_pad (onnxruntime), 1 without.
        let x = t(&[1, 1, 6], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let inc = pool1(3, 2, [1, 1], true, true).forward(&[&x]).unwrap();
        assert_eq!(inc.shape(), &[1, 1, 4]);
        assert_eq!(inc.data(), &[1.0, 3.0, 5.0, 3.0]);
        let exc = pool1(3, 2, [1, 1], true, false).forward(&[&x]).unwrap();
        assert_eq!(exc.data(), &[1.5, 3.0, 5.0, 6.0]);
        // Without ceil_mode the partial window is not there.
        assert_eq!(pool1(3, 2, [1, 1], false, true).forward(&[&x]).unwrap().data(), &[1.0, 3.0, 5.0]);
    }

    #[test]
    fn ceil_mode_without_padding() {
        // L = 5, k = 2, s = 2, ceil: the last window holds x[4] alone, in both modes.
        let x = t(&[1, 1, 5], vec![1.0, 3.0, -5.0, 7.0, -9.0]);
        for inc in [false, true] {
            let y = pool1(2, 2, [0, 0], true, inc).forward(&[&x]).unwrap();
            assert_eq!(y.data(), &[2.0, 1.0, -9.0]);
        }
        // And a window that would start in the end padding is dropped.
        assert_eq!(pool1(2, 2, [1, 1], true, true).output_shape(&[&[1, 1, 5]]).unwrap(), vec![1, 1, 3]);
    }

    #[test]
    fn ceil_mode_2d_with_count_include_pad() {
        // 3x3, k = 2, s = 2, no pads, ceil: 2x2 output; the bottom-right window holds x[2][2] alone.
        let x = t(&[1, 2, 3, 3], (1..=18).map(|v| v as f64).collect());
        let y = pool2(2, 2, 0, true, true).forward(&[&x]).unwrap();
        assert_eq!(y.shape(), &[1, 2, 2, 2]);
        assert_eq!(y.data(), &[3.0, 4.5, 7.5, 9.0, 12.0, 13.5, 16.5, 18.0]);
    }

    #[test]
    fn f32_matches_f64() {
        let x = t(&[2, 3, 5, 7], (0..210).map(|v| ((v * 37) % 23) as f64 - 11.0).collect());
        let op = pool2(3, 2, 1, true, false);
        let y64 = op.forward(&[&x]).unwrap();
        let y32 = op.forward(&[&x.map(|v| v as f32)]).unwrap();
        assert_eq!(y64.shape(), y32.shape());
        for (a, b) in y64.data().iter().zip(y32.data()) {
            assert!((a - *b as f64).abs() < 1e-5);
        }
    }

    #[test]
    fn invalid() {
        let op = pool2(2, 2, 0, false, false);
        assert!(op.output_shape(&[]).is_err());
        assert!(op.output_shape(&[&[1, 2, 2]]).is_err());
        assert!(op.output_shape(&[&[1, 1, 2, 2, 2]]).is_err());
        assert!(op.output_shape(&[&[1, 1, 1, 1]]).is_err());
        assert!(pool2(2, 1, 2, false, true).output_shape(&[&[1, 1, 4, 4]]).is_err());
        let bad = AveragePool {
            kernel: vec![2, 2],
            strides: vec![1, 1],
            pads: vec![0, 0],
            ceil_mode: false,
            count_include_pad: false,
        };
        assert!(bad.output_shape(&[&[1, 1, 4, 4]]).is_err());
        assert!(op.forward(&[&t(&[4], vec![0.0; 4])]).is_err());
    }
}
