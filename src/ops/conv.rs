//! ONNX `Conv` (opsets 1-22) over 1-D and 2-D images, NCHW: padding (auto_pad is resolved into
//! explicit pads at import), strides, dilations and groups (depthwise included).
//! General convolutions run as im2col + GEMM; 1x1 convolutions as one GEMM; depthwise ones as
//! a direct loop (im2col would copy k*k times the data for one multiply-add per element).
//! https://onnx.ai/onnx/operators/onnx__Conv.html

use super::{Operator, RelaxInput};
use crate::bounds::affine::{AffineMap, Relaxation, Sparse};
use crate::error::{Error, Result};
use crate::ir::tensor::gemm;
use crate::ir::{Param, Scalar, Tensor};

/// `Conv` with weight `[M, C/group, kH, kW]` (or `[M, C/group, kL]` in 1-D).
/// `strides`, `dilations` have one entry per spatial axis; `pads` is `[begins..., ends...]`.
#[derive(Clone, Debug)]
pub struct Conv {
    pub weight: Param,
    pub bias: Option<Param>,
    pub strides: Vec<usize>,
    pub pads: Vec<usize>,
    pub dilations: Vec<usize>,
    pub group: usize,
}

/// A convolution's geometry, in 2-D (1-D convolutions use height 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub c_in: usize,
    pub c_out: usize,
    pub group: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub pt: usize,
    pub pl: usize,
    pub oh: usize,
    pub ow: usize,
}

fn out_len(input: usize, k: usize, s: usize, d: usize, pb: usize, pe: usize) -> Option<usize> {
    let span = d.checked_mul(k.checked_sub(1)?)?.checked_add(1)?;
    let padded = input.checked_add(pb)?.checked_add(pe)?;
    if s == 0 || padded < span {
        return None;
    }
    Some((padded - span) / s + 1)
}

impl Conv {
    /// The geometry for an input shape, or why it does not fit.
    pub fn geometry(&self, x: &[usize]) -> Result<Geometry> {
        let ws = self.weight.shape();
        let sp = ws.len().saturating_sub(2);
        if !(sp == 1 || sp == 2) || x.len() != sp + 2 {
            return Err(Error::Shape(format!("Conv with weight {ws:?} applied to {x:?}: only 1-D and 2-D")));
        }
        if self.strides.len() != sp || self.dilations.len() != sp || self.pads.len() != 2 * sp {
            return Err(Error::InvalidModel("Conv strides/dilations/pads do not match the kernel rank".into()));
        }
        let g = self.group;
        if g == 0 || x[1] != ws[1] * g || ws[0] % g != 0 {
            return Err(Error::Shape(format!(
                "Conv weight {ws:?} with group {g} does not fit input channels {}",
                x[1]
            )));
        }
        if let Some(b) = &self.bias {
            if b.shape() != [ws[0]] {
                return Err(Error::Shape(format!("Conv bias {:?} for {} output channels", b.shape(), ws[0])));
            }
        }
        let (h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr) = if sp == 2 {
            (
                x[2],
                x[3],
                ws[2],
                ws[3],
                self.strides[0],
                self.strides[1],
                self.dilations[0],
                self.dilations[1],
                self.pads[0],
                self.pads[1],
                self.pads[2],
                self.pads[3],
            )
        } else {
            (1, x[2], 1, ws[2], 1, self.strides[0], 1, self.dilations[0], 0, self.pads[0], 0, self.pads[1])
        };
        let bad = || Error::Shape(format!("Conv kernel {ws:?} does not fit input {x:?} with pads {:?}", self.pads));
        let oh = out_len(h, kh, sh, dh, pt, pb).ok_or_else(bad)?;
        let ow = out_len(w, kw, sw, dw, pl, pr).ok_or_else(bad)?;
        Ok(Geometry { c_in: x[1], c_out: ws[0], group: g, h, w, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow })
    }
}

impl Operator for Conv {
    fn name(&self) -> &'static str {
        "Conv"
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        super::arity("Conv", inputs.len(), 1)?;
        let g = self.geometry(inputs[0])?;
        Ok(if inputs[0].len() == 4 {
            vec![inputs[0][0], g.c_out, g.oh, g.ow]
        } else {
            vec![inputs[0][0], g.c_out, g.ow]
        })
    }
    fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let shape = self.output_shape(&[inputs[0].shape()])?;
        let g = self.geometry(inputs[0].shape())?;
        let mut out = Tensor::zeros(shape)?;
        let w = T::param(&self.weight).data();
        let bias = self.bias.as_ref().map(|b| T::param(b).data());
        conv_batch(&g, w, bias, inputs[0].data(), out.data_mut());
        Ok(out)
    }
    fn parameter_count(&self) -> usize {
        self.weight.len() + self.bias.as_ref().map_or(0, |b| b.len())
    }
    fn relaxation(&self, r: &RelaxInput<'_>) -> Result<Relaxation> {
        let x = r.in_shapes[0];
        let g = self.geometry(x)?;
        let batch = x[0];
        let w = self.weight.f64.data();
        let cg = g.c_in / g.group;
        let mg = g.c_out / g.group;
        let mut rows = Vec::with_capacity(batch * g.c_out * g.oh * g.ow);
        let mut offset = Vec::with_capacity(rows.capacity());
        for b in 0..batch {
            for m in 0..g.c_out {
                let gi = m / mg;
                let bias = self.bias.as_ref().map_or(0.0, |bv| bv.f64.data()[m]);
                for oh in 0..g.oh {
                    for ow in 0..g.ow {
                        let mut e = Vec::new();
                        for c in 0..cg {
                            for i in 0..g.kh {
                                let ih = (oh * g.sh + i * g.dh) as isize - g.pt as isize;
                                if ih < 0 || ih >= g.h as isize {
                                    continue;
                                }
                                for j in 0..g.kw {
                                    let iw = (ow * g.sw + j * g.dw) as isize - g.pl as isize;
                                    if iw < 0 || iw >= g.w as isize {
                                        continue;
                                    }
                                    let xi = ((b * g.c_in + gi * cg + c) * g.h + ih as usize) * g.w + iw as usize;
                                    e.push((xi, w[((m * cg + c) * g.kh + i) * g.kw + j]));
                                }
                            }
                        }
                        rows.push(e);
                        offset.push(bias);
                    }
                }
            }
        }
        let n_in = batch * g.c_in * g.h * g.w;
        Ok(Relaxation::Affine(AffineMap::exact(vec![Sparse::from_rows(n_in, rows)], offset)))
    }
}

/// Largest im2col buffer (elements) built for a block of samples: blocks of samples share one
/// GEMM, so the weights are packed once per block rather than once per sample.
const COL_BUDGET: usize = 1 << 22;

/// A batch: `x` is [N, C, H, W], `y` is [N, M, OH, OW].
fn conv_batch<T: Scalar>(g: &Geometry, w: &[T], bias: Option<&[T]>, x: &[T], y: &mut [T]) {
    let ohw = g.oh * g.ow;
    let in_plane = g.c_in * g.h * g.w;
    let out_plane = g.c_out * ohw;
    let n = x.len() / in_plane.max(1);
    let cg = g.c_in / g.group;
    let mg = g.c_out / g.group;
    let kk = cg * g.kh * g.kw;
    let is_pointwise = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 && ohw == g.h * g.w;
    if g.group == g.c_in && g.group == g.c_out && !is_pointwise {
        if g.sw == 1 && g.ow >= 16 {
            for (xs, ys) in x.chunks_exact(in_plane).zip(y.chunks_exact_mut(out_plane)) {
                depthwise(g, w, xs, ys);
            }
        } else {
            depthwise_channels_last(g, w, x, y);
        }
    } else if is_pointwise && ohw >= 256 {
        // Large images: one GEMM per sample is big enough to run at full speed, and writes
        // straight into the output.
        for (xs, ys) in x.chunks_exact(in_plane).zip(y.chunks_exact_mut(out_plane)) {
            for gi in 0..g.group {
                let wg = &w[gi * mg * kk..(gi + 1) * mg * kk];
                let xg = &xs[gi * cg * ohw..(gi + 1) * cg * ohw];
                let yg = &mut ys[gi * mg * ohw..(gi + 1) * mg * ohw];
                gemm(mg, kk, ohw, T::ONE, wg, (kk, 1), xg, (ohw, 1), T::ZERO, yg);
            }
        }
    } else {
        let block = (COL_BUDGET / (kk * ohw).max(1)).clamp(1, n.max(1));
        let mut col: Vec<T> = Vec::new();
        let mut tmp: Vec<T> = Vec::new();
        for start in (0..n).step_by(block) {
            let b = block.min(n - start);
            for gi in 0..g.group {
                let wg = &w[gi * mg * kk..(gi + 1) * mg * kk];
                let group_in = |s: usize| &x[(start + s) * in_plane + gi * cg * g.h * g.w..][..cg * g.h * g.w];
                if b == 1 {
                    // One sample: write the GEMM result straight into the output.
                    let src: &[T] = if is_pointwise {
                        group_in(0)
                    } else {
                        col.clear();
                        col.resize(kk * ohw, T::ZERO);
                        im2col(g, cg, group_in(0), &mut col, ohw, 0);
                        &col
                    };
                    let yg = &mut y[start * out_plane + gi * mg * ohw..][..mg * ohw];
                    gemm(mg, kk, ohw, T::ONE, wg, (kk, 1), src, (ohw, 1), T::ZERO, yg);
                    continue;
                }
                let ld = b * ohw;
                col.clear();
                col.resize(kk * ld, T::ZERO);
                for s in 0..b {
                    im2col(g, cg, group_in(s), &mut col, ld, s * ohw);
                }
                tmp.clear();
                tmp.resize(mg * ld, T::ZERO);
                gemm(mg, kk, ld, T::ONE, wg, (kk, 1), &col, (ld, 1), T::ZERO, &mut tmp);
                for s in 0..b {
                    let ys = &mut y[(start + s) * out_plane + gi * mg * ohw..][..mg * ohw];
                    for (m, dst) in ys.chunks_exact_mut(ohw).enumerate() {
                        dst.copy_from_slice(&tmp[m * ld + s * ohw..][..ohw]);
                    }
                }
            }
        }
    }
    if let Some(bv) = bias {
        for plane in y.chunks_exact_mut(out_plane) {
            for (m, ch) in plane.chunks_exact_mut(ohw).enumerate() {
                let bm = bv[m];
                for v in ch {
                    *v += bm;
                }
            }
        }
    }
}

/// The output columns `ow` in `[lo, hi)` whose input column `ow*s - p + j*d` lies in `[0, w)`.
#[inline]
fn valid_range(out: usize, input: usize, s: usize, p: usize, off: usize) -> (usize, usize) {
    // ow*s + off >= p  and  ow*s + off < input + p
    let lo = if off >= p { 0 } else { (p - off).div_ceil(s) };
    let hi = if input + p > off { ((input + p - off - 1) / s + 1).min(out) } else { 0 };
    (lo.min(hi), hi)
}

/// Unfolds one group's input [cg, H, W] into columns: row r (of cg*kh*kw) of `col` starts at
/// `r * ld + off` and holds OH*OW values. Padding positions are left as they are (zero).
fn im2col<T: Scalar>(g: &Geometry, cg: usize, x: &[T], col: &mut [T], ld: usize, off: usize) {
    let ohw = g.oh * g.ow;
    let mut row = 0;
    for c in 0..cg {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..g.kh {
            let (oh_lo, oh_hi) = valid_range(g.oh, g.h, g.sh, g.pt, i * g.dh);
            for j in 0..g.kw {
                let (ow_lo, ow_hi) = valid_range(g.ow, g.w, g.sw, g.pl, j * g.dw);
                let dst = &mut col[row * ld + off..row * ld + off + ohw];
                for oh in oh_lo..oh_hi {
                    let ih = oh * g.sh + i * g.dh - g.pt;
                    let src = &plane[ih * g.w..(ih + 1) * g.w];
                    let d = &mut dst[oh * g.ow..(oh + 1) * g.ow];
                    if g.sw == 1 {
                        let iw0 = ow_lo + j * g.dw - g.pl;
                        d[ow_lo..ow_hi].copy_from_slice(&src[iw0..iw0 + (ow_hi - ow_lo)]);
                    } else {
                        for ow in ow_lo..ow_hi {
                            d[ow] = src[ow * g.sw + j * g.dw - g.pl];
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// Depthwise convolution on small or strided images: each sample is turned channels-last
/// (with its padding materialised), so the inner loop runs across channels and vectorises;
/// the result is turned back to channels-first. Per output the taps are summed in the same
/// order as in [`depthwise`].
fn depthwise_channels_last<T: Scalar>(g: &Geometry, w: &[T], x: &[T], y: &mut [T]) {
    let c = g.c_in;
    let kk = g.kh * g.kw;
    let ph = (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1;
    let pw = (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1;
    // Weights as [tap, channel].
    let mut wt = vec![T::ZERO; kk * c];
    for ch in 0..c {
        for t in 0..kk {
            wt[t * c + ch] = w[ch * kk + t];
        }
    }
    let in_plane = c * g.h * g.w;
    let ohw = g.oh * g.ow;
    let mut padded = vec![T::ZERO; ph * pw * c];
    let mut acc = vec![T::ZERO; ohw * c];
    for (xs, ys) in x.chunks_exact(in_plane).zip(y.chunks_exact_mut(c * ohw)) {
        padded.fill(T::ZERO);
        for ch in 0..c {
            for ih in 0..g.h {
                let r = ih + g.pt;
                if r >= ph {
                    break;
                }
                for iw in 0..g.w {
                    let q = iw + g.pl;
                    if q >= pw {
                        break;
                    }
                    padded[(r * pw + q) * c + ch] = xs[(ch * g.h + ih) * g.w + iw];
                }
            }
        }
        acc.fill(T::ZERO);
        for oh in 0..g.oh {
            for ow in 0..g.ow {
                let out = &mut acc[(oh * g.ow + ow) * c..][..c];
                for i in 0..g.kh {
                    for j in 0..g.kw {
                        let q = ((oh * g.sh + i * g.dh) * pw + ow * g.sw + j * g.dw) * c;
                        let src = &padded[q..q + c];
                        let wtap = &wt[(i * g.kw + j) * c..][..c];
                        for ((o, &s), &wv) in out.iter_mut().zip(src).zip(wtap) {
                            *o += wv * s;
                        }
                    }
                }
            }
        }
        for ch in 0..c {
            for p in 0..ohw {
                ys[ch * ohw + p] = acc[p * c + ch];
            }
        }
    }
}

/// Depthwise convolution (one filter per channel), accumulated tap by tap.
fn depthwise<T: Scalar>(g: &Geometry, w: &[T], x: &[T], y: &mut [T]) {
    let ohw = g.oh * g.ow;
    let kk = g.kh * g.kw;
    for c in 0..g.c_in {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        let out = &mut y[c * ohw..(c + 1) * ohw];
        out.fill(T::ZERO);
        let wc = &w[c * kk..(c + 1) * kk];
        for i in 0..g.kh {
            let (oh_lo, oh_hi) = valid_range(g.oh, g.h, g.sh, g.pt, i * g.dh);
            for j in 0..g.kw {
                let wij = wc[i * g.kw + j];
                let (ow_lo, ow_hi) = valid_range(g.ow, g.w, g.sw, g.pl, j * g.dw);
                for oh in oh_lo..oh_hi {
                    let ih = oh * g.sh + i * g.dh - g.pt;
                    let src = &plane[ih * g.w..(ih + 1) * g.w];
                    let d = &mut out[oh * g.ow..(oh + 1) * g.ow];
                    if g.sw == 1 {
                        let iw0 = ow_lo + j * g.dw - g.pl;
                        for (dv, &sv) in d[ow_lo..ow_hi].iter_mut().zip(&src[iw0..]) {
                            *dv += wij * sv;
                        }
                    } else {
                        for ow in ow_lo..ow_hi {
                            d[ow] += wij * src[ow * g.sw + j * g.dw - g.pl];
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct definition of convolution, for comparison.
    fn naive(conv: &Conv, x: &Tensor<f64>) -> Tensor<f64> {
        let g = conv.geometry(x.shape()).unwrap();
        let n = x.shape()[0];
        let w = conv.weight.f64.data();
        let cg = g.c_in / g.group;
        let mg = g.c_out / g.group;
        let mut out = vec![0.0; n * g.c_out * g.oh * g.ow];
        for b in 0..n {
            for m in 0..g.c_out {
                let gi = m / mg;
                for oh in 0..g.oh {
                    for ow in 0..g.ow {
                        let mut s = conv.bias.as_ref().map_or(0.0, |b| b.f64.data()[m]);
                        for c in 0..cg {
                            for i in 0..g.kh {
                                for j in 0..g.kw {
                                    let ih = (oh * g.sh + i * g.dh) as isize - g.pt as isize;
                                    let iw = (ow * g.sw + j * g.dw) as isize - g.pl as isize;
                                    if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize {
                                        continue;
                                    }
                                    let xi = ((b * g.c_in + gi * cg + c) * g.h + ih as usize) * g.w + iw as usize;
                                    s += w[((m * cg + c) * g.kh + i) * g.kw + j] * x.data()[xi];
                                }
                            }
                        }
                        out[((b * g.c_out + m) * g.oh + oh) * g.ow + ow] = s;
                    }
                }
            }
        }
        Tensor::new(vec![n, g.c_out, g.oh, g.ow], out).unwrap()
    }

    fn det(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5
            })
            .collect()
    }

    #[test]
    fn matches_direct_definition() {
        // (c_in, c_out, group, k, stride, dilation, pads [t,l,b,r], h, w)
        let cases = [
            (3, 4, 1, 3, 1, 1, [1, 1, 1, 1], 7, 6),
            (4, 4, 4, 3, 2, 1, [1, 0, 1, 2], 9, 8),
            (4, 6, 2, 3, 1, 2, [2, 2, 0, 1], 8, 9),
            (3, 5, 1, 1, 1, 1, [0, 0, 0, 0], 5, 5),
            (6, 6, 6, 3, 1, 1, [1, 1, 1, 1], 4, 4),
            (2, 3, 1, 1, 2, 1, [0, 0, 0, 0], 5, 6),
            (2, 2, 1, 2, 3, 1, [0, 1, 2, 0], 7, 7),
            // depthwise, channels-first path (stride 1, wide rows)
            (3, 3, 3, 3, 1, 2, [1, 2, 2, 1], 6, 20),
            // pointwise over a large image (one GEMM per sample)
            (4, 8, 1, 1, 1, 1, [0, 0, 0, 0], 16, 17),
            // grouped pointwise over a large image
            (4, 6, 2, 1, 1, 1, [0, 0, 0, 0], 16, 16),
        ];
        for (idx, &(ci, co, grp, k, s, d, p, h, w)) in cases.iter().enumerate() {
            let wshape = vec![co, ci / grp, k, k];
            let wn = co * ci / grp * k * k;
            let conv = Conv {
                weight: Param::new(Tensor::new(wshape, det(wn, idx as u64)).unwrap(), "w").unwrap(),
                bias: Some(Param::new(Tensor::new(vec![co], det(co, 99)).unwrap(), "b").unwrap()),
                strides: vec![s, s],
                pads: p.to_vec(),
                dilations: vec![d, d],
                group: grp,
            };
            let x = Tensor::new(vec![3, ci, h, w], det(3 * ci * h * w, 7 + idx as u64)).unwrap();
            let want = naive(&conv, &x);
            let got = conv.forward(&[&x]).unwrap();
            assert_eq!(got.shape(), want.shape(), "case {idx}");
            for (a, b) in got.data().iter().zip(want.data()) {
                assert!((a - b).abs() < 1e-12, "case {idx}: {a} vs {b}");
            }
        }
    }
}
