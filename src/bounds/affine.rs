//! Sparse affine maps y = sum_i S_i x_i + c, the common form in which every operator hands its
//! linear part, or the two lines of its linear relaxation, to the bound engines.

use crate::num::{add_up, gamma, mul_up, up};
use std::sync::OnceLock;

/// A matrix, usually sparse in compressed rows (row j, an output element, holds (column,
/// weight) pairs); fully connected layers are held dense and multiplied with GEMM.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sparse {
    pub rows: usize,
    pub cols: usize,
    pub row_ptr: Vec<usize>,
    pub col: Vec<usize>,
    pub val: Vec<f64>,
    /// When set, the whole matrix, row-major (rows x cols); the compressed fields are empty.
    pub dense: Option<Vec<f64>>,
    /// The dense matrix transposed (cols x rows) in single precision, made on first use by the
    /// products for gradients (see [`Sparse::apply_rows_add_skipping_zeros`]).
    dense_t: OnceLock<Vec<f32>>,
}

/// Up to this many rows, products with a dense matrix are plain loops (a GEMM would spend as
/// long packing the matrix as multiplying).
const FEW_ROWS: usize = 24;

/// a · b with eight partial sums (vectorises; any order is within the same gamma_n bound).
#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = acc.iter().sum::<f64>();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Whether a nonzero entry `aj` of a transposed product takes part, given the sign selection
/// (see [`Sparse::transpose_apply_add`]); zeros (inactive neurons) never do.
#[inline(always)]
fn selected(aj: f64, sign: Option<bool>) -> bool {
    aj != 0.0 && sign.is_none_or(|pos| (aj > 0.0) == pos)
}

/// y[r, :] += W x[r, :] for `rows` rows (W row-major, n_out x n_in). W's rows are the outer
/// loop, so W streams through the cache once, not once per row. Compiled for the widest
/// vector unit the machine has (the sums are the same in any of them: no fused multiply-add).
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2", "aarch64+neon"))]
fn dense_rows_add(w: &[f64], n_in: usize, x: &[f64], rows: usize, y: &mut [f64]) {
    let n_out = w.len() / n_in.max(1);
    for (j, wj) in w.chunks_exact(n_in).enumerate() {
        for r in 0..rows {
            y[r * n_out + j] += dot(wj, &x[r * n_in..(r + 1) * n_in]);
        }
    }
}

/// s[j] = |W_j| . x (W row-major, rows of length n_in), round to nearest in any order.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2", "aarch64+neon"))]
fn dense_abs_rows(w: &[f64], n_in: usize, x: &[f64], s: &mut [f64]) {
    let mut absw = vec![0.0; n_in];
    for (wj, sj) in w.chunks_exact(n_in).zip(s.iter_mut()) {
        for (a, v) in absw.iter_mut().zip(wj) {
            *a = v.abs();
        }
        *sj = dot(&absw, x);
    }
}

/// out[r, :] += a[r, :] W over the entries of `a` selected by `sign` (see
/// [`Sparse::transpose_apply_add`]); zero entries (inactive neurons) are skipped.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2", "aarch64+neon"))]
fn dense_transpose_rows_add(w: &[f64], n_in: usize, a: &[f64], rows: usize, out: &mut [f64], sign: Option<bool>) {
    let n_out = w.len() / n_in.max(1);
    for (j, wj) in w.chunks_exact(n_in).enumerate() {
        for r in 0..rows {
            let aj = a[r * n_out + j];
            if !selected(aj, sign) {
                continue;
            }
            for (o, &wv) in out[r * n_in..(r + 1) * n_in].iter_mut().zip(wj) {
                *o += aj * wv;
            }
        }
    }
}

/// Inputs below this magnitude keep single-precision products far from overflow (weights of
/// trained networks are small).
const SINGLE_SAFE: f64 = 1e15;

/// out[r, :] += a[r, :] W in single precision (W row-major, n_in wide), skipping zero entries
/// of a: [`dense_transpose_rows_add`] for gradients.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2", "aarch64+neon"))]
fn dense_transpose_rows_add_single(w: &[f32], n_in: usize, a: &[f64], rows: usize, out: &mut [f32]) {
    let n_out = w.len() / n_in.max(1);
    for (j, wj) in w.chunks_exact(n_in).enumerate() {
        for r in 0..rows {
            let aj = a[r * n_out + j];
            if aj == 0.0 {
                continue;
            }
            let aj = aj as f32;
            for (o, &wv) in out[r * n_in..(r + 1) * n_in].iter_mut().zip(wj) {
                *o += aj * wv;
            }
        }
    }
}

/// The sums of one row of a backward step over an op's offsets (see the backward pass in
/// `propagate.rs`): with `a` the row's lower-bound entries and `b` its upper-bound entries
/// (`None`: all zero, as in a pass for lower bounds only, which then skips them),
/// `[sum p, sum |p|, sum q, sum |q|, sum |a| t, sum |b| t]` where p = a * (`lpos` where
/// a >= 0, else `lneg`) and q = b * (`upos` where b >= 0, else `uneg`), and how many
/// columns have a or b nonzero. Eight partial sums per quantity (zero entries add exactly,
/// so the gamma_n bound over the nonzero count holds for this order too).
#[allow(clippy::too_many_arguments)]
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2", "aarch64+neon"))]
pub(crate) fn offset_sums(
    a: &[f64],
    b: Option<&[f64]>,
    lpos: &[f64],
    lneg: &[f64],
    upos: &[f64],
    uneg: &[f64],
    t: &[f64],
) -> ([f64; 6], usize) {
    let sums = match b {
        Some(b) => offset_sums_in::<true>(a, b, lpos, lneg, upos, uneg, t),
        None => offset_sums_in::<false>(a, a, lpos, lneg, upos, uneg, t),
    };
    if sums.0.iter().any(|v| v.is_nan()) {
        // An infinite offset met a zero entry (0 * inf): such columns take no part.
        let zeros;
        let b = match b {
            Some(b) => b,
            None => {
                zeros = vec![0.0; a.len()];
                &zeros
            }
        };
        return offset_sums_skipping_zeros(a, b, lpos, lneg, upos, uneg, t);
    }
    sums
}

/// [`offset_sums`]' loop; without `UPPER`, `b` is taken as zero and not read.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn offset_sums_in<const UPPER: bool>(
    a: &[f64],
    b: &[f64],
    lpos: &[f64],
    lneg: &[f64],
    upos: &[f64],
    uneg: &[f64],
    t: &[f64],
) -> ([f64; 6], usize) {
    let w = a.len();
    let (lpos, lneg, t) = (&lpos[..w], &lneg[..w], &t[..w]);
    let (b, upos, uneg) = if UPPER { (&b[..w], &upos[..w], &uneg[..w]) } else { (a, a, a) };
    const L: usize = 8;
    let (mut sp, mut sap, mut sq, mut saq, mut sta, mut stb) =
        ([0.0f64; L], [0.0; L], [0.0; L], [0.0; L], [0.0; L], [0.0; L]);
    let mut cnt = [0u64; L];
    let full = w / L * L;
    let mut j0 = 0;
    // Small fixed-size steps, each simple enough for the vectoriser.
    while j0 < full {
        let arr = |v: &[f64]| -> [f64; L] { v[j0..j0 + L].try_into().expect("a whole chunk") };
        let (a8, t8) = (arr(a), arr(t));
        lane_sums(side_products(a8, arr(lpos), arr(lneg)), a8, t8, [&mut sp, &mut sap, &mut sta]);
        if UPPER {
            let b8 = arr(b);
            lane_sums(side_products(b8, arr(upos), arr(uneg)), b8, t8, [&mut sq, &mut saq, &mut stb]);
            for k in 0..L {
                cnt[k] += ((a8[k] != 0.0) | (b8[k] != 0.0)) as u64;
            }
        } else {
            for k in 0..L {
                cnt[k] += (a8[k] != 0.0) as u64;
            }
        }
        j0 += L;
    }
    for j in full..w {
        let aj = a[j];
        let bj = if UPPER { b[j] } else { 0.0 };
        cnt[0] += (aj != 0.0 || bj != 0.0) as u64;
        let p = aj * if aj >= 0.0 { lpos[j] } else { lneg[j] };
        sp[0] += p;
        sap[0] += p.abs();
        sta[0] += aj.abs() * t[j];
        if UPPER {
            let q = bj * if bj >= 0.0 { upos[j] } else { uneg[j] };
            sq[0] += q;
            saq[0] += q.abs();
            stb[0] += bj.abs() * t[j];
        }
    }
    let sum = |v: [f64; L]| v.iter().sum::<f64>();
    ([sum(sp), sum(sap), sum(sq), sum(saq), sum(sta), sum(stb)], cnt.iter().sum::<u64>() as usize)
}

/// Per lane, x * pos where x >= 0 and x * neg elsewhere: exactly one of the two products,
/// the other is a signed zero.
#[inline(always)]
fn side_products<const L: usize>(x: [f64; L], pos: [f64; L], neg: [f64; L]) -> [f64; L] {
    std::array::from_fn(|k| x[k].max(0.0) * pos[k] + x[k].min(0.0) * neg[k])
}

/// Per lane: s += p, |p| into the second sum, |x| t into the third.
#[inline(always)]
fn lane_sums<const L: usize>(p: [f64; L], x: [f64; L], t: [f64; L], [s, sa, st]: [&mut [f64; L]; 3]) {
    for k in 0..L {
        s[k] += p[k];
        sa[k] += p[k].abs();
        st[k] += x[k].abs() * t[k];
    }
}

/// As [`offset_sums`], one column at a time, skipping the columns where a and b are zero.
#[allow(clippy::too_many_arguments)]
fn offset_sums_skipping_zeros(
    a: &[f64],
    b: &[f64],
    lpos: &[f64],
    lneg: &[f64],
    upos: &[f64],
    uneg: &[f64],
    t: &[f64],
) -> ([f64; 6], usize) {
    let mut s = [0.0f64; 6];
    let mut n = 0;
    for j in 0..a.len() {
        let (aj, bj) = (a[j], b[j]);
        if aj == 0.0 && bj == 0.0 {
            continue;
        }
        n += 1;
        let p = if aj == 0.0 { 0.0 } else { aj * if aj > 0.0 { lpos[j] } else { lneg[j] } };
        let q = if bj == 0.0 { 0.0 } else { bj * if bj > 0.0 { upos[j] } else { uneg[j] } };
        let terms = [p, p.abs(), q, q.abs(), aj.abs() * t[j], bj.abs() * t[j]];
        for (sk, v) in s.iter_mut().zip(terms) {
            *sk += v;
        }
    }
    (s, n)
}

impl Sparse {
    /// A dense matrix (rows x cols, row-major).
    pub fn dense(rows: usize, cols: usize, w: Vec<f64>) -> Sparse {
        assert_eq!(w.len(), rows * cols, "dense matrix size");
        Sparse { rows, cols, row_ptr: vec![], col: vec![], val: vec![], dense: Some(w), dense_t: OnceLock::new() }
    }

    /// An empty matrix (all zeros).
    pub fn zeros(rows: usize, cols: usize) -> Sparse {
        Sparse {
            rows,
            cols,
            row_ptr: vec![0; rows + 1],
            col: vec![],
            val: vec![],
            dense: None,
            dense_t: OnceLock::new(),
        }
    }

    /// Builds from per-row entry lists.
    pub fn from_rows(cols: usize, rows: impl IntoIterator<Item = Vec<(usize, f64)>>) -> Sparse {
        let mut s =
            Sparse { rows: 0, cols, row_ptr: vec![0], col: vec![], val: vec![], dense: None, dense_t: OnceLock::new() };
        for r in rows {
            for (c, v) in r {
                debug_assert!(c < cols);
                if v != 0.0 {
                    s.col.push(c);
                    s.val.push(v);
                }
            }
            s.row_ptr.push(s.col.len());
            s.rows += 1;
        }
        s
    }

    /// A diagonal matrix (zero entries are not stored, as in [`Sparse::from_rows`]). Built
    /// directly: element-wise ops make one per node and subdomain, so no vector per row.
    pub fn diagonal(d: &[f64]) -> Sparse {
        let n_nonzero = d.iter().filter(|&&v| v != 0.0).count();
        let mut s = Sparse {
            rows: d.len(),
            cols: d.len(),
            row_ptr: Vec::with_capacity(d.len() + 1),
            col: Vec::with_capacity(n_nonzero),
            val: Vec::with_capacity(n_nonzero),
            dense: None,
            dense_t: OnceLock::new(),
        };
        s.row_ptr.push(0);
        for (i, &v) in d.iter().enumerate() {
            if v != 0.0 {
                s.col.push(i);
                s.val.push(v);
            }
            s.row_ptr.push(s.col.len());
        }
        s
    }

    /// Entry (j, j) of a square matrix.
    pub fn diag(&self, j: usize) -> f64 {
        if let Some(w) = &self.dense {
            return w[j * self.cols + j];
        }
        let (c, v) = self.row(j);
        c.iter().zip(v).find(|(&ci, _)| ci == j).map_or(0.0, |(_, &vi)| vi)
    }

    /// The diagonal of a square matrix whose entries all lie on it (the lines of an
    /// element-wise op), or None.
    pub fn diagonal_entries(&self) -> Option<Vec<f64>> {
        if self.dense.is_some() || self.rows != self.cols {
            return None;
        }
        let mut d = vec![0.0; self.rows];
        for (j, dj) in d.iter_mut().enumerate() {
            match self.row(j) {
                ([], _) => {}
                ([c], [v]) if *c == j => *dj = *v,
                _ => return None,
            }
        }
        Some(d)
    }

    pub fn row(&self, j: usize) -> (&[usize], &[f64]) {
        let (a, b) = (self.row_ptr[j], self.row_ptr[j + 1]);
        (&self.col[a..b], &self.val[a..b])
    }

    /// Largest number of entries in a row (terms summed per output in `apply`).
    pub fn max_row_len(&self) -> usize {
        if self.dense.is_some() {
            return self.cols;
        }
        self.row_ptr.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
    }

    /// Largest number of entries in a column (terms summed per input in `transpose_apply`).
    pub fn max_col_len(&self) -> usize {
        if self.dense.is_some() {
            return self.rows;
        }
        let mut count = vec![0usize; self.cols];
        for &c in &self.col {
            count[c] += 1;
        }
        count.into_iter().max().unwrap_or(0)
    }

    /// y += S x, round to nearest.
    pub fn apply_add(&self, x: &[f64], y: &mut [f64]) {
        if let Some(w) = &self.dense {
            dense_rows_add(w, self.cols, x, 1, y);
            return;
        }
        for (j, yj) in y.iter_mut().enumerate().take(self.rows) {
            let (c, v) = self.row(j);
            let mut s = 0.0;
            for (&ci, &vi) in c.iter().zip(v) {
                s += vi * x[ci];
            }
            *yj += s;
        }
    }

    /// y[r, :] += S x[r, :] for each of `rows` row vectors x (row-major, `self.cols` wide),
    /// round to nearest (dense maps: one GEMM).
    pub fn apply_rows_add(&self, x: &[f64], rows: usize, y: &mut [f64]) {
        let (n_out, n_in) = (self.rows, self.cols);
        if let Some(w) = &self.dense {
            if rows <= FEW_ROWS {
                // Few rows: packing W for a GEMM would cost as much as the product.
                dense_rows_add(w, n_in, x, rows, y);
                return;
            }
            // Y += X W^T: W^T read through strides.
            crate::ir::tensor::gemm(rows, n_in, n_out, 1.0, x, (n_in, 1), w, (1, n_in), 1.0, y);
            return;
        }
        // The matrix's rows outermost: it streams through the cache once, not once per row of
        // x (a convolution's matrix outgrows the cache; x's rows fit). Each sum runs in the
        // same order as `apply_add`'s, so the results are the same.
        for j in 0..n_out {
            let (c, v) = self.row(j);
            for r in 0..rows {
                let xr = &x[r * n_in..(r + 1) * n_in];
                let mut s = 0.0;
                for (&ci, &vi) in c.iter().zip(v) {
                    s += vi * xr[ci];
                }
                y[r * n_out + j] += s;
            }
        }
    }

    /// As [`Sparse::apply_rows_add`], approximately, for evaluations that need no error bound
    /// (the gradients of alpha/beta-CROWN): few rows times a dense matrix run in single
    /// precision over the matrix's columns (a transposed copy, made once), skipping the zero
    /// entries of x (inactive neurons, pixels at a box's zero corner). Half the memory traffic
    /// of double precision, twice the lanes; values beyond single precision's range take the
    /// exact path.
    pub fn apply_rows_add_skipping_zeros(&self, x: &[f64], rows: usize, y: &mut [f64]) {
        match &self.dense {
            Some(w) if rows <= FEW_ROWS && x.iter().all(|v| v.abs() <= SINGLE_SAFE) => {
                let (n_out, n_in) = (self.rows, self.cols);
                let wt = self.dense_t.get_or_init(|| {
                    let mut t = vec![0.0f32; w.len()];
                    for (j, wj) in w.chunks_exact(n_in).enumerate() {
                        for (i, &v) in wj.iter().enumerate() {
                            t[i * n_out + j] = v as f32;
                        }
                    }
                    t
                });
                // Rows of the transposed matrix are W's columns: y[r, :] += x[r, i] W[:, i].
                let mut acc = vec![0.0f32; rows * n_out];
                dense_transpose_rows_add_single(wt, n_out, x, rows, &mut acc);
                for (yv, &a) in y.iter_mut().zip(&acc) {
                    *yv += f64::from(a);
                }
            }
            _ => self.apply_rows_add(x, rows, y),
        }
    }

    /// y += |S| x for x >= 0, rounded up (an upper bound of the exact product).
    pub fn abs_apply_add_up(&self, x: &[f64], y: &mut [f64]) {
        let g = 1.0 + 2.0 * gamma(self.max_row_len() + 1);
        if let Some(w) = &self.dense {
            let mut s = vec![0.0; self.rows];
            dense_abs_rows(w, self.cols, x, &mut s);
            for (yj, sj) in y.iter_mut().zip(s) {
                *yj = add_up(*yj, up(sj * g));
            }
            return;
        }
        for (j, yj) in y.iter_mut().enumerate().take(self.rows) {
            let (c, v) = self.row(j);
            let mut s = 0.0;
            for (&ci, &vi) in c.iter().zip(v) {
                s += vi.abs() * x[ci];
            }
            *yj = add_up(*yj, up(s * g));
        }
    }

    /// out[r, :] += a[r, :] S for each of `rows` row vectors a (row-major, `self.rows` wide),
    /// over the entries of a selected by `sign`: Some(true) only positive ones, Some(false)
    /// only negative ones, None all.
    pub fn transpose_apply_add(&self, a: &[f64], rows: usize, out: &mut [f64], sign: Option<bool>) {
        let (n_out, n_in) = (self.rows, self.cols);
        if let Some(w) = &self.dense {
            if rows <= FEW_ROWS {
                // Few rows (and zeros where neurons are inactive): row combinations of W,
                // without packing W for a GEMM.
                dense_transpose_rows_add(w, n_in, a, rows, out, sign);
                return;
            }
            // out += A_sel W: one GEMM (sign selection, rarely needed for dense maps, first).
            let selected: Vec<f64>;
            let a_used: &[f64] = match sign {
                None => a,
                Some(pos) => {
                    selected = a.iter().map(|&v| if (v > 0.0) == pos { v } else { 0.0 }).collect();
                    &selected
                }
            };
            // Columns of A that are zero in every row (neurons inactive for all of them) take
            // no part: with many of them, multiply only the others (W's rows gathered).
            let mut nonzero = vec![false; n_out];
            for ar in a_used.chunks_exact(n_out) {
                for (z, &v) in nonzero.iter_mut().zip(ar) {
                    *z |= v != 0.0;
                }
            }
            let used: Vec<usize> = (0..n_out).filter(|&j| nonzero[j]).collect();
            if used.is_empty() {
                // Every entry is zero (every neuron inactive): nothing to add.
                return;
            }
            if used.len() * 4 < n_out * 3 {
                let k = used.len();
                let mut a_c = vec![0.0; rows * k];
                for r in 0..rows {
                    for (c, &j) in used.iter().enumerate() {
                        a_c[r * k + c] = a_used[r * n_out + j];
                    }
                }
                let mut w_c = Vec::with_capacity(k * n_in);
                for &j in &used {
                    w_c.extend_from_slice(&w[j * n_in..(j + 1) * n_in]);
                }
                crate::ir::tensor::gemm(rows, k, n_in, 1.0, &a_c, (k, 1), &w_c, (n_in, 1), 1.0, out);
                return;
            }
            crate::ir::tensor::gemm(rows, n_out, n_in, 1.0, a_used, (n_out, 1), w, (n_in, 1), 1.0, out);
            return;
        }
        if let Some(d) = self.diagonal_entries() {
            // An element-wise map (a normalisation, a reshape of the same order): one product
            // per entry.
            for (ar, or) in a.chunks_exact(n_out).zip(out.chunks_exact_mut(n_in)).take(rows) {
                for j in 0..n_out {
                    if selected(ar[j], sign) {
                        or[j] += ar[j] * d[j];
                    }
                }
            }
            return;
        }
        self.combine_rows(a, rows, out, sign, |j, aj, or| {
            let (c, v) = self.row(j);
            for (&ci, &vi) in c.iter().zip(v) {
                or[ci] += aj * vi;
            }
        });
    }

    /// For each row r and each selected nonzero a[r, j], `add(j, a[r, j], out[r, :])`.
    fn combine_rows(
        &self,
        a: &[f64],
        rows: usize,
        out: &mut [f64],
        sign: Option<bool>,
        mut add: impl FnMut(usize, f64, &mut [f64]),
    ) {
        let (n_out, n_in) = (self.rows, self.cols);
        // Rows of `a` outer: one output row stays in cache while S streams (with many rows,
        // as for intermediate bounds, the other order would sweep all of `out` per row of S).
        for r in 0..rows {
            let ar = &a[r * n_out..(r + 1) * n_out];
            let or = &mut out[r * n_in..(r + 1) * n_in];
            for (j, &aj) in ar.iter().enumerate() {
                if !selected(aj, sign) {
                    continue;
                }
                add(j, aj, or);
            }
        }
    }
}

/// y = sum_i S_i x_i + offset, one sparse part per operator input, up to a stated error:
/// the operator's exact real output differs from the map by at most
/// `err_rel * (sum_i |S_i| |x_i| + |offset|) + err_abs` (element-wise), which covers weights
/// that are themselves rounded (1/c, alpha * B, batch-norm folding).
#[derive(Clone, Debug, PartialEq)]
pub struct AffineMap {
    pub parts: Vec<Sparse>,
    pub offset: Vec<f64>,
    pub err_rel: f64,
    /// Empty when zero.
    pub err_abs: Vec<f64>,
}

/// How an operator relates its output to its inputs on given input boxes.
#[derive(Clone, Debug, PartialEq)]
pub enum Relaxation {
    /// The operator is this affine map.
    Affine(AffineMap),
    /// lower(x) <= op(x) <= upper(x) on the boxes.
    Bounds { lower: AffineMap, upper: AffineMap },
}

impl Relaxation {
    pub fn lower(&self) -> &AffineMap {
        match self {
            Relaxation::Affine(m) => m,
            Relaxation::Bounds { lower, .. } => lower,
        }
    }
    pub fn upper(&self) -> &AffineMap {
        match self {
            Relaxation::Affine(m) => m,
            Relaxation::Bounds { upper, .. } => upper,
        }
    }
}

impl AffineMap {
    /// An exact map (no rounded weights).
    pub fn exact(parts: Vec<Sparse>, offset: Vec<f64>) -> AffineMap {
        AffineMap { parts, offset, err_rel: 0.0, err_abs: vec![] }
    }

    /// A map whose weights carry a relative rounding error of at most `err_rel`.
    pub fn approximate(parts: Vec<Sparse>, offset: Vec<f64>, err_rel: f64) -> AffineMap {
        AffineMap { parts, offset, err_rel, err_abs: vec![] }
    }

    pub fn out_len(&self) -> usize {
        self.offset.len()
    }

    /// Terms summed into one output (for the rounding error of forward evaluation).
    pub fn max_fan_in(&self) -> usize {
        self.parts.iter().map(|p| p.max_row_len()).sum::<usize>() + 1
    }

    /// Interval image of boxes [lo_i, hi_i], rounded outward.
    pub fn interval(&self, lo: &[&[f64]], hi: &[&[f64]]) -> (Vec<f64>, Vec<f64>) {
        let n = self.out_len();
        let mut center = self.offset.clone();
        let mut radius = vec![0.0; n];
        let mut magnitude: Vec<f64> = self.offset.iter().map(|c| c.abs()).collect();
        for (i, s) in self.parts.iter().enumerate() {
            let xc: Vec<f64> = lo[i].iter().zip(hi[i]).map(|(&l, &h)| l / 2.0 + h / 2.0).collect();
            let xr: Vec<f64> = lo[i].iter().zip(hi[i]).zip(&xc).map(|((&l, &h), &c)| up((c - l).max(h - c))).collect();
            let xa: Vec<f64> = xc.iter().map(|c| c.abs()).collect();
            s.apply_add(&xc, &mut center);
            s.abs_apply_add_up(&xr, &mut radius);
            s.abs_apply_add_up(&xa, &mut magnitude);
        }
        // |fl(center) - center| <= gamma * (|S||xc| + |c|); the map's own error adds
        // err_rel * (|S||x| + |c|) <= err_rel * (magnitude + radius), and err_abs.
        let g = add_up(gamma(self.max_fan_in()), self.err_rel);
        for j in 0..n {
            magnitude[j] = add_up(magnitude[j], radius[j]);
            if let Some(&e) = self.err_abs.get(j) {
                radius[j] = add_up(radius[j], e);
            }
        }
        let mut lo_out = Vec::with_capacity(n);
        let mut hi_out = Vec::with_capacity(n);
        for j in 0..n {
            let slack = add_up(radius[j], mul_up(g, magnitude[j]));
            lo_out.push(crate::num::sub_down(center[j], slack));
            hi_out.push(add_up(center[j], slack));
        }
        (lo_out, hi_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_skipping_zeros_match_the_plain_ones() {
        // A 3 x 4 dense matrix times two rows with zeros in them.
        let w: Vec<f64> = (0..12).map(|k| (k as f64 - 5.5) * 0.25).collect();
        let s = Sparse::dense(3, 4, w);
        let x = [1.0, 0.0, -2.0, 0.0, 0.0, 3.0, 0.5, 0.0];
        let (mut y1, mut y2) = (vec![0.5; 6], vec![0.5; 6]);
        s.apply_rows_add(&x, 2, &mut y1);
        s.apply_rows_add_skipping_zeros(&x, 2, &mut y2);
        for (a, b) in y1.iter().zip(&y2) {
            // Single precision: agreement to its rounding.
            assert!((a - b).abs() <= 1e-6 * (1.0 + a.abs()), "{y1:?} vs {y2:?}");
        }
        assert!(y1.iter().any(|v| *v != 0.5));
        // Beyond single precision's comfort: the exact path, bit for bit.
        let big = [1e20, 0.0, -2.0, 0.0, 0.0, 3.0, 0.5, 0.0];
        let (mut y1, mut y2) = (vec![0.5; 6], vec![0.5; 6]);
        s.apply_rows_add(&big, 2, &mut y1);
        s.apply_rows_add_skipping_zeros(&big, 2, &mut y2);
        assert_eq!(y1, y2);
    }

    #[test]
    fn diagonal_matrices_store_what_rows_would() {
        let d = [0.5, 0.0, -2.0, 0.0, 1.0];
        let direct = Sparse::diagonal(&d);
        let by_rows = Sparse::from_rows(d.len(), d.iter().enumerate().map(|(i, &v)| vec![(i, v)]));
        assert_eq!(
            (direct.rows, direct.cols, &direct.row_ptr, &direct.col, &direct.val),
            (by_rows.rows, by_rows.cols, &by_rows.row_ptr, &by_rows.col, &by_rows.val)
        );
        assert_eq!(direct.val, vec![0.5, -2.0, 1.0]);
        assert_eq!(direct.diagonal_entries(), Some(d.to_vec()));
    }

    #[test]
    fn sparse_products() {
        // S = [[1, 2, 0], [0, -1, 3]]
        let s = Sparse::from_rows(3, vec![vec![(0, 1.0), (1, 2.0)], vec![(1, -1.0), (2, 3.0)]]);
        let mut y = vec![0.0; 2];
        s.apply_add(&[1.0, 1.0, 1.0], &mut y);
        assert_eq!(y, vec![3.0, 2.0]);
        let mut out = vec![0.0; 3];
        s.transpose_apply_add(&[1.0, -1.0], 1, &mut out, None);
        assert_eq!(out, vec![1.0, 3.0, -3.0]);
        let mut pos = vec![0.0; 3];
        s.transpose_apply_add(&[1.0, -1.0], 1, &mut pos, Some(true));
        assert_eq!(pos, vec![1.0, 2.0, 0.0]);
        // Several rows at once: each row exactly as one product on its own.
        let x = [1.0, 1.0, 1.0, 0.5, -2.0, 0.25];
        let mut many = vec![1.0; 4];
        s.apply_rows_add(&x, 2, &mut many);
        let (mut one, mut two) = (vec![1.0; 2], vec![1.0; 2]);
        s.apply_add(&x[..3], &mut one);
        s.apply_add(&x[3..], &mut two);
        assert_eq!(many, [one, two].concat());
        assert_eq!(many, vec![4.0, 3.0, -2.5, 3.75]);
        assert_eq!(s.max_col_len(), 2);
        let m = AffineMap::exact(vec![s], vec![0.5, -0.5]);
        let (lo, hi) = m.interval(&[&[0.0, -1.0, 0.0]], &[&[1.0, 1.0, 0.0]]);
        // y0 = x0 + 2 x1 + .5 in [-1.5, 3.5]; y1 = -x1 + 3 x2 - .5 in [-1.5, 0.5]
        assert!(lo[0] <= -1.5 && lo[0] > -1.5 - 1e-12 && hi[0] >= 3.5 && hi[0] < 3.5 + 1e-12);
        assert!(lo[1] <= -1.5 && hi[1] >= 0.5);
    }

    #[test]
    fn diagonal_entries_only_for_diagonal_matrices() {
        assert_eq!(Sparse::diagonal(&[2.0, 0.0, -1.0]).diagonal_entries(), Some(vec![2.0, 0.0, -1.0]));
        let off = Sparse::from_rows(2, vec![vec![(1, 1.0)], vec![]]);
        assert_eq!(off.diagonal_entries(), None);
        assert_eq!(Sparse::dense(2, 2, vec![1.0, 0.0, 0.0, 1.0]).diagonal_entries(), None);
    }

    #[test]
    fn offset_sums_match_the_plain_loop() {
        // 19 columns: two whole chunks of eight and a remainder; zeros, both signs.
        let w = 19;
        let f = |k: usize, s: f64| ((k as f64 * s).sin() * 3.0 * ((k % 4) as f64)).round() / 4.0;
        let (a, b): (Vec<f64>, Vec<f64>) = (0..w).map(|k| (f(k, 1.3), f(k, 0.7))).unzip();
        let (lp, ln, up, un, t): (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) = (
            (0..w).map(|k| f(k, 2.1)).collect(),
            (0..w).map(|k| f(k, 0.3) + 1.0).collect(),
            (0..w).map(|k| f(k, 1.9) - 0.5).collect(),
            (0..w).map(|k| f(k, 0.9)).collect(),
            (0..w).map(|k| f(k, 1.1).abs() * 1e-3).collect(),
        );
        let (got, n) = offset_sums(&a, Some(&b), &lp, &ln, &up, &un, &t);
        let mut want = [0.0f64; 6];
        let mut m = 0;
        for j in 0..w {
            if a[j] != 0.0 || b[j] != 0.0 {
                m += 1;
            }
            let p = a[j] * if a[j] >= 0.0 { lp[j] } else { ln[j] };
            let q = b[j] * if b[j] >= 0.0 { up[j] } else { un[j] };
            for (k, v) in [p, p.abs(), q, q.abs(), a[j].abs() * t[j], b[j].abs() * t[j]].into_iter().enumerate() {
                want[k] += v;
            }
        }
        assert_eq!(n, m);
        assert!(m > 0 && m < w, "the data has zero and nonzero columns");
        // Quarters times quarters: every sum is exact in any order.
        assert_eq!(&got[..4], &want[..4]);
        // Lower bounds only: as if the upper entries were zero.
        let zeros = vec![0.0; w];
        let (with_zeros, n0) = offset_sums(&a, Some(&zeros), &lp, &ln, &up, &un, &t);
        let (lower_only, n1) = offset_sums(&a, None, &lp, &ln, &up, &un, &t);
        assert_eq!((lower_only, n1), (with_zeros, n0));
        assert_eq!(lower_only[..2], got[..2]);
        assert!(n1 < n && n1 > 0, "a has zeros where b has not");
        for k in 4..6 {
            assert!((got[k] - want[k]).abs() <= 1e-15 * want[k].abs().max(1.0));
        }
        // An infinite offset where the entry is zero takes no part; where it is not, the sum
        // is infinite (never NaN).
        let mut lp_inf = lp.clone();
        let zero = (0..w).find(|&j| a[j] == 0.0).expect("a zero entry");
        lp_inf[zero] = f64::INFINITY;
        let (got, _) = offset_sums(&a, Some(&b), &lp_inf, &ln, &up, &un, &t);
        assert_eq!(got[0], want[0]);
        let pos = (0..w).find(|&j| a[j] > 0.0).expect("a positive entry");
        lp_inf[pos] = f64::INFINITY;
        let (got, _) = offset_sums(&a, Some(&b), &lp_inf, &ln, &up, &un, &t);
        assert_eq!(got[0], f64::INFINITY);
    }
}
