//! alpha-CROWN's optimised lower lines of MaxPool (Xu et al. 2021, as auto_LiRPA optimises
//! them): the maximum of a window is at least any convex combination of its cells, so each
//! bounded row may take its own weights on the window's simplex instead of CROWN's choice (the
//! cell with the largest lower bound). The upper line stays CROWN's.
//!
//! Soundness in floating point: the weights are non-negative but their computed sum s may
//! differ from 1 by rounding. With y the window's maximum, y = s y + (1 - s) y is at least
//! sum_k w_k x_k + (1 - s) y, so each line carries the offset min((1 - s) y) over s in its
//! outward-rounded interval and y in [max lower, max upper], rounded down.

use crate::num::{add_down, add_up, mul_down, sub_down, sub_up};
use crate::ops::PoolWindows;

/// The optimised lower lines of one MaxPool node for a batch of rows: row r's line of window
/// o is y_o >= sum_k w[r, k] x[cells[k]] + off[r, o] over the window's cells.
#[derive(Clone, Debug)]
pub(crate) struct PoolLines {
    pub windows: PoolWindows,
    /// Per window: optimised (more than one cell and no cell dominating the others).
    pub open: Vec<bool>,
    /// Per window, the bounds of its maximum: the largest lower and upper bound of its cells.
    pub max_lo: Vec<f64>,
    pub max_hi: Vec<f64>,
    /// rows x cells: the weights.
    pub w: Vec<f64>,
    /// rows x windows: the offsets.
    pub off: Vec<f64>,
}

impl PoolLines {
    /// CROWN's lines (all weight on the cell with the largest lower bound) for `rows` rows;
    /// `None` when no window is worth optimising. `lo`/`hi`: the bounds of the pool's input.
    pub fn new(windows: PoolWindows, best: &[(usize, bool)], lo: &[f64], hi: &[f64], rows: usize) -> Option<Self> {
        let n_win = windows.len();
        let open: Vec<bool> = (0..n_win).map(|o| !best[o].1 && windows.window(o).len() > 1).collect();
        if !open.iter().any(|&o| o) {
            return None;
        }
        // CROWN's line puts all weight on the cell with the largest lower bound; where several
        // cells share it (ReLU outputs at 0), optimisation starts from their average, which
        // ended nearer to the optimum on the verivital nets than any single one of them.
        let mut w1 = vec![0.0; windows.cells.len()];
        for (o, &(b, _)) in best.iter().enumerate() {
            let cells = windows.window(o);
            let tied: Vec<usize> = (0..cells.len()).filter(|&j| open[o] && lo[cells[j]] == lo[b]).collect();
            if tied.len() > 1 {
                tied.iter().for_each(|&j| w1[windows.start[o] + j] = 1.0 / tied.len() as f64);
            } else {
                let k = cells.iter().position(|&c| c == b).expect("the best cell is in its window");
                w1[windows.start[o] + k] = 1.0;
            }
        }
        let fold = |f: fn(f64, f64) -> f64, v: &[f64], o: usize| {
            windows.window(o).iter().map(|&c| v[c]).fold(f64::NEG_INFINITY, f)
        };
        let max_lo = (0..n_win).map(|o| fold(f64::max, lo, o)).collect();
        let max_hi = (0..n_win).map(|o| fold(f64::max, hi, o)).collect();
        let mut lines = PoolLines { windows, open, max_lo, max_hi, w: w1.repeat(rows), off: vec![0.0; n_win * rows] };
        for r in 0..rows {
            for o in 0..n_win {
                lines.update_offset(r, o);
            }
        }
        Some(lines)
    }

    /// Number of windows (the pool's output width).
    pub fn width(&self) -> usize {
        self.windows.len()
    }

    /// Recomputes the offset of row r's line of window o from its weights.
    fn update_offset(&mut self, r: usize, o: usize) {
        let nc = self.windows.cells.len();
        let ws = &self.w[r * nc + self.windows.start[o]..r * nc + self.windows.start[o + 1]];
        let (s_lo, s_hi) = ws.iter().fold((0.0, 0.0), |(a, b), &v| (add_down(a, v), add_up(b, v)));
        // 1 - s lies in [d_lo, d_hi]; the maximum y in [max_lo, max_hi].
        let (d_lo, d_hi) = (sub_down(1.0, s_hi), sub_up(1.0, s_lo));
        let prod = |d: f64, y: f64| if d == 0.0 { 0.0 } else { mul_down(d, y) };
        let (ylo, yhi) = (self.max_lo[o], self.max_hi[o]);
        let off = prod(d_lo, ylo).min(prod(d_lo, yhi)).min(prod(d_hi, ylo)).min(prod(d_hi, yhi));
        // An unbounded maximum with weights off the simplex: no finite offset is valid.
        let width = self.width();
        self.off[r * width + o] = if off.is_nan() { f64::NEG_INFINITY } else { off };
    }

    /// out[r, :] += a[r, :] (lower lines) over the entries of `a` (rows x windows) that are
    /// positive.
    pub fn transpose_add_positive(&self, a: &[f64], rows: usize, n_in: usize, out: &mut [f64]) {
        let (width, nc) = (self.width(), self.windows.cells.len());
        for r in 0..rows {
            let wr = &self.w[r * nc..(r + 1) * nc];
            let or = &mut out[r * n_in..(r + 1) * n_in];
            for (o, &ao) in a[r * width..(r + 1) * width].iter().enumerate() {
                if ao > 0.0 {
                    for k in self.windows.start[o]..self.windows.start[o + 1] {
                        or[self.windows.cells[k]] += ao * wr[k];
                    }
                }
            }
        }
    }

    /// The lower lines' values (rows x windows) at the pool inputs `x` (rows x n_in).
    pub fn eval(&self, x: &[f64], rows: usize, n_in: usize) -> Vec<f64> {
        let (width, nc) = (self.width(), self.windows.cells.len());
        let mut y = vec![0.0; rows * width];
        for r in 0..rows {
            let (wr, xr) = (&self.w[r * nc..(r + 1) * nc], &x[r * n_in..(r + 1) * n_in]);
            for o in 0..width {
                let k = self.windows.start[o]..self.windows.start[o + 1];
                let s: f64 = self.windows.cells[k.clone()].iter().zip(&wr[k]).map(|(&c, &wk)| wk * xr[c]).sum();
                y[r * width + o] = s + self.off[r * width + o];
            }
        }
        y
    }

    /// One projected Adam ascent step: `la` (rows x windows) is the lower matrix reaching the
    /// pool and `x` (rows x n_in) the pool's input at each row's minimiser, so the row's bound
    /// moves by la[r, o] x[c] per unit of weight on cell c. `m1`/`m2` are the moments (one per
    /// weight), `c1`/`c2` their bias corrections.
    #[allow(clippy::too_many_arguments)]
    pub fn adam_step(
        &mut self,
        la: &[f64],
        x: &[f64],
        rows: usize,
        n_in: usize,
        lr: f64,
        (m1, m2): (&mut [f64], &mut [f64]),
        (c1, c2): (f64, f64),
    ) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let (width, nc) = (self.width(), self.windows.cells.len());
        for r in 0..rows {
            for o in 0..width {
                let a = la[r * width + o];
                if a.is_nan() || a <= 0.0 || !self.open[o] {
                    continue;
                }
                let (s, e) = (r * nc + self.windows.start[o], r * nc + self.windows.start[o + 1]);
                for k in s..e {
                    let grad = a * x[r * n_in + self.windows.cells[k - r * nc]];
                    m1[k] = b1 * m1[k] + (1.0 - b1) * grad;
                    m2[k] = b2 * m2[k] + (1.0 - b2) * grad * grad;
                    self.w[k] += lr * (m1[k] / c1) / ((m2[k] / c2).sqrt() + eps);
                }
                project_simplex(&mut self.w[s..e]);
                self.update_offset(r, o);
            }
        }
    }
}

/// Euclidean projection onto the probability simplex {w >= 0, sum w = 1} (Duchi et al. 2008):
/// w_k - theta clipped at 0, theta chosen so that the sum is 1.
pub(crate) fn project_simplex(w: &mut [f64]) {
    if w.iter().any(|v| !v.is_finite()) {
        // A broken step: back to uniform weights, still a valid line.
        let u = 1.0 / w.len() as f64;
        w.iter_mut().for_each(|v| *v = u);
        return;
    }
    let mut sorted = w.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let (mut cum, mut theta) = (0.0, 0.0);
    for (j, &v) in sorted.iter().enumerate() {
        cum += v;
        let t = (cum - 1.0) / (j + 1) as f64;
        if v - t > 0.0 {
            theta = t;
        }
    }
    w.iter_mut().for_each(|v| *v = (*v - theta).max(0.0));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn projection_lands_on_the_simplex(v in proptest::collection::vec(-3.0f64..3.0, 1..12)) {
            let mut w = v.clone();
            project_simplex(&mut w);
            prop_assert!(w.iter().all(|&x| x >= 0.0));
            prop_assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            // Idempotent, and no simplex point is nearer to v (checked against the vertices
            // and the centre).
            let mut again = w.clone();
            project_simplex(&mut again);
            for (a, b) in again.iter().zip(&w) {
                prop_assert!((a - b).abs() < 1e-12);
            }
            let dist = |p: &[f64]| p.iter().zip(&v).map(|(a, b)| (a - b) * (a - b)).sum::<f64>();
            let d = dist(&w);
            for k in 0..v.len() {
                let mut e = vec![0.0; v.len()];
                e[k] = 1.0;
                prop_assert!(d <= dist(&e) + 1e-12);
            }
            prop_assert!(d <= dist(&vec![1.0 / v.len() as f64; v.len()]) + 1e-12);
        }

        /// Each line is below the window's maximum at every point of the input box, whatever
        /// the weights (sums off 1 included).
        #[test]
        fn lines_stay_below_the_maximum(
            cells in proptest::collection::vec((-2.0f64..2.0, 0.0f64..2.0), 2..6),
            raw in proptest::collection::vec(0.0f64..1.0, 6),
            drift in -1e-6f64..1e-6,
            t in proptest::collection::vec(0.0f64..=1.0, 6),
        ) {
            let n = cells.len();
            let lo: Vec<f64> = cells.iter().map(|c| c.0).collect();
            let hi: Vec<f64> = cells.iter().map(|c| c.0 + c.1).collect();
            let windows = PoolWindows { start: vec![0, n], cells: (0..n).collect() };
            let best = (0..n).max_by(|&a, &b| lo[a].total_cmp(&lo[b])).unwrap();
            let Some(mut lines) = PoolLines::new(windows, &[(best, false)], &lo, &hi, 1) else {
                return Ok(());
            };
            let s: f64 = raw[..n].iter().sum::<f64>().max(1e-9);
            for k in 0..n {
                lines.w[k] = raw[k] / s + drift;
            }
            lines.w.iter_mut().for_each(|v| *v = v.max(0.0));
            lines.update_offset(0, 0);
            let x: Vec<f64> = (0..n).map(|k| lo[k] + t[k] * (hi[k] - lo[k])).collect();
            let y = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let line = lines.eval(&x, 1, n)[0];
            prop_assert!(line <= y + 1e-12 * (1.0 + y.abs()), "line {line} above the maximum {y}");
        }
    }
}
