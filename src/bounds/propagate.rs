//! The engines: IBP (one forward loop over the nodes) and CROWN (backward linear bound
//! propagation from a target node to the input, Zhang et al. 2018), with the rounding of every
//! step bounded (Higham's gamma_n on each sum of products) and charged to the bias, so the
//! reported bounds hold for the real-valued network.

use super::affine::{AffineMap, Relaxation, Sparse};
use crate::error::{Error, Result};
use crate::ir::{Graph, NodeId};
use crate::num::{add_down, add_up, gamma, mul_up, up, UNIT_ROUNDOFF};
use crate::ops::{Op, Operator, RelaxInput};
use crate::spec::Region;
use rayon::prelude::*;

/// Which bound engine computes the bounds of the pre-activation (intermediate) nodes and the
/// outputs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Ibp,
    Crown,
    /// CROWN with optimised lower slopes (Xu et al. 2021), default options.
    AlphaCrown,
}

/// Element-wise bounds of one node's output (one sample, flattened).
#[derive(Clone, Debug, PartialEq)]
pub struct Interval {
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
}

/// Per-node bounds and relaxations of one graph on one input region.
pub struct BoundTable<'g> {
    graph: &'g Graph,
    region: &'g Region,
    pub bounds: Vec<Option<Interval>>,
    relax: Vec<Option<Relaxation>>,
    /// Per node, the rounding charge t_j of its backward step (see `backward_rows`).
    charge: Vec<Option<Vec<f64>>>,
    /// The region's bounding box, for concretisation.
    input_box: (Vec<f64>, Vec<f64>),
}

/// Bounds on the rows of C y for a target node y.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecBounds {
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
}

fn is_piecewise_or_smooth(op: &Op) -> bool {
    matches!(op, Op::Relu(_) | Op::LeakyRelu(_) | Op::Clip(_) | Op::Sigmoid(_) | Op::Tanh(_) | Op::MaxPool(_))
}

/// Whether neuron bounds [l, u] feeding `user` would gain from tightening (the relaxation of a
/// piecewise-linear op is exact unless the interval straddles a kink).
fn worth_refining(user: &Op, l: f64, u: f64) -> bool {
    match user {
        Op::Relu(_) | Op::LeakyRelu(_) => l < 0.0 && u > 0.0,
        Op::Clip(c) => {
            let straddles = |k: Option<f64>| k.is_some_and(|k| l < k && u > k);
            straddles(c.min) || straddles(c.max)
        }
        _ => true,
    }
}

impl<'g> BoundTable<'g> {
    /// Computes bounds of every node up to and including `upto`, by `method` for the inputs of
    /// nonlinear operators (and IBP everywhere as a floor).
    pub fn new(graph: &'g Graph, region: &'g Region, method: Method, upto: NodeId) -> Result<Self> {
        if graph.inputs.len() != 1 {
            return Err(Error::InvalidArgument("bound propagation needs a single-input model".into()));
        }
        let n_in: usize = graph.input_info[0].shape.iter().product();
        if region.len() != n_in {
            return Err(Error::Shape(format!(
                "the input region has {} elements, the model input {:?} has {n_in}",
                region.len(),
                graph.input_info[0].shape
            )));
        }
        let mut t = BoundTable {
            graph,
            region,
            bounds: vec![None; graph.nodes.len()],
            relax: vec![None; graph.nodes.len()],
            charge: vec![None; graph.nodes.len()],
            input_box: region.bounding_box(),
        };
        let users = graph.users();
        // Nodes that are an affine function of the input (no nonlinearity in between): their
        // bounds by a backward pass are exact, so even IBP uses it for them (under an L2 or L1
        // ball the box hull of the ball would lose much).
        let mut affine_of_input = vec![false; graph.nodes.len()];
        for id in 0..=upto.0 {
            let node = &graph.nodes[id];
            affine_of_input[id] = match node.op {
                Op::Input(_) => true,
                ref op => !is_piecewise_or_smooth(op) && node.inputs.iter().all(|p| affine_of_input[p.0]),
            };
        }
        for id in 0..=upto.0 {
            let node = &graph.nodes[id];
            let mut iv = match &node.op {
                Op::Input(_) => {
                    let (lo, hi) = region.bounding_box();
                    Interval { lo, hi }
                }
                op => {
                    let (lo, hi) = {
                        let r = t.relax_input(NodeId(id))?;
                        op.interval(&r).map_err(|e| Error::node(&node.name, op.name(), e.to_string()))?
                    };
                    Interval { lo, hi }
                }
            };
            let feeds_nonlinear = users[id].iter().any(|u| is_piecewise_or_smooth(&graph.nodes[u.0].op));
            let refine = match method {
                Method::Crown | Method::AlphaCrown => true,
                Method::Ibp => affine_of_input[id] && region.norm != crate::spec::Norm::Inf,
            };
            if refine && feeds_nonlinear && !matches!(node.op, Op::Input(_)) {
                // Inputs of a MaxPool matter only where they can be a window's maximum.
                let mut pool_relevant: Option<Vec<bool>> = None;
                for u in &users[id] {
                    if let Op::MaxPool(mp) = &graph.nodes[u.0].op {
                        let rel = mp.can_be_max(&node.shape, &iv.lo, &iv.hi)?;
                        pool_relevant = Some(match pool_relevant {
                            None => rel,
                            Some(prev) => prev.iter().zip(&rel).map(|(a, b)| *a || *b).collect(),
                        });
                    }
                }
                let rows: Vec<usize> = (0..iv.lo.len())
                    .filter(|&i| {
                        users[id].iter().any(|u| match &graph.nodes[u.0].op {
                            Op::MaxPool(_) => pool_relevant.as_ref().is_some_and(|r| r[i] && iv.lo[i] < iv.hi[i]),
                            op => worth_refining(op, iv.lo[i], iv.hi[i]),
                        })
                    })
                    .collect();
                if !rows.is_empty() {
                    // Provisional bounds let the backward pass start at this node.
                    t.bounds[id] = Some(iv.clone());
                    let n = iv.lo.len();
                    let mut spec = vec![0.0; rows.len() * n];
                    for (r, &i) in rows.iter().enumerate() {
                        spec[r * n + i] = 1.0;
                    }
                    let sb = t.backward(NodeId(id), &spec, rows.len())?;
                    for (r, &i) in rows.iter().enumerate() {
                        iv.lo[i] = iv.lo[i].max(sb.lower[r]);
                        iv.hi[i] = iv.hi[i].min(sb.upper[r]);
                    }
                }
            }
            t.bounds[id] = Some(iv);
        }
        Ok(t)
    }

    fn relax_input(&self, id: NodeId) -> Result<RelaxInput<'_>> {
        let node = &self.graph.nodes[id.0];
        let mut lo = Vec::new();
        let mut hi = Vec::new();
        let mut in_shapes = Vec::new();
        for p in &node.inputs {
            let b = self.bounds[p.0].as_ref().ok_or_else(|| Error::InvalidArgument("bounds out of order".into()))?;
            lo.push(b.lo.as_slice());
            hi.push(b.hi.as_slice());
            in_shapes.push(self.graph.nodes[p.0].shape.as_slice());
        }
        Ok(RelaxInput { in_shapes, out_shape: &node.shape, lo, hi })
    }

    /// The relaxation of a node and its rounding charge (computed once; its inputs' bounds are
    /// final by then).
    fn ensure_relaxation(&mut self, id: NodeId) -> Result<()> {
        if self.relax[id.0].is_some() {
            return Ok(());
        }
        let node = &self.graph.nodes[id.0];
        let rel = {
            let r = self.relax_input(id)?;
            node.op.relaxation(&r).map_err(|e| Error::node(&node.name, node.op.name(), e.to_string()))?
        };
        // Rounding charge per output element j of this node:
        // t_j = gamma * (|L| m + |U| m)_j + err_rel * ((|S| m)_j + |c_j|) + err_abs_j,
        // with m the inputs' magnitudes. A row's backward step costs at most |A_row| . t.
        let (lmap, umap) = (rel.lower(), rel.upper());
        let affine = matches!(rel, Relaxation::Affine(_));
        let n_out = lmap.out_len();
        let mut abs_sm = vec![0.0; n_out];
        let mut max_col = 0;
        for (k, p) in node.inputs.iter().enumerate() {
            let m = self.magnitude(*p);
            lmap.parts[k].abs_apply_add_up(&m, &mut abs_sm);
            if !affine {
                umap.parts[k].abs_apply_add_up(&m, &mut abs_sm);
            }
            max_col = max_col.max(lmap.parts[k].max_col_len() + umap.parts[k].max_col_len());
        }
        if let Some((lo, hi)) = Self::alpha_range(&node.op) {
            // alpha-CROWN may swap in any lower slope of the op's range: charge for the largest.
            let m = self.magnitude(node.inputs[0]);
            let s = lo.abs().max(hi.abs());
            for (a, mj) in abs_sm.iter_mut().zip(&m) {
                *a = add_up(*a, mul_up(s, *mj));
            }
        }
        let gm = gamma(max_col + 2);
        let err_rel = lmap.err_rel.max(umap.err_rel);
        let t: Vec<f64> = (0..n_out)
            .map(|j| {
                let off = lmap.offset[j].abs().max(umap.offset[j].abs());
                let ea = lmap.err_abs.get(j).copied().unwrap_or(0.0).max(umap.err_abs.get(j).copied().unwrap_or(0.0));
                add_up(add_up(mul_up(gm, abs_sm[j]), mul_up(err_rel, add_up(abs_sm[j], off))), ea)
            })
            .collect();
        self.relax[id.0] = Some(rel);
        self.charge[id.0] = Some(t);
        Ok(())
    }

    /// Bounds on `spec` (rows x numel(target), row-major) times the target's output, over the
    /// region: rows are processed in parallel, each independently (so results do not depend on
    /// the number of threads).
    pub fn backward(&mut self, target: NodeId, spec: &[f64], rows: usize) -> Result<SpecBounds> {
        // Every node the target depends on gets its relaxation first (read-only afterwards).
        let mut needed = vec![false; target.0 + 1];
        needed[target.0] = true;
        for id in (0..=target.0).rev() {
            if needed[id] {
                for p in &self.graph.nodes[id].inputs {
                    needed[p.0] = true;
                }
            }
        }
        for (id, &n) in needed.iter().enumerate() {
            if n && !matches!(self.graph.nodes[id].op, Op::Input(_)) {
                self.ensure_relaxation(NodeId(id))?;
            }
        }
        let width = self.graph.nodes[target.0].shape.iter().product::<usize>();
        if spec.len() != rows * width {
            return Err(Error::Shape(format!("specification of {} values for {rows} rows of {width}", spec.len())));
        }
        // Chunks of rows: one per thread when memory allows (weights are packed once per
        // chunk and node), parallel across chunks.
        let widest = needed
            .iter()
            .enumerate()
            .filter(|(_, &n)| n)
            .map(|(id, _)| self.graph.nodes[id].shape.iter().product::<usize>())
            .max()
            .unwrap_or(1);
        let threads = rayon::current_num_threads().max(1);
        let by_memory = ((1usize << 23) / widest.max(1)).max(8);
        let chunk = rows.div_ceil(threads).clamp(8, by_memory.max(8));
        let this = &*self;
        let parts: Result<Vec<SpecBounds>> = (0..rows)
            .step_by(chunk)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|start| {
                let end = (start + chunk).min(rows);
                this.backward_rows(target, &spec[start * width..end * width], end - start)
            })
            .collect();
        let mut out = SpecBounds { lower: Vec::with_capacity(rows), upper: Vec::with_capacity(rows) };
        for p in parts? {
            out.lower.extend(p.lower);
            out.upper.extend(p.upper);
        }
        Ok(out)
    }

    fn magnitude(&self, id: NodeId) -> Vec<f64> {
        let b = self.bounds[id.0].as_ref().expect("bounds of inputs are computed first");
        b.lo.iter().zip(&b.hi).map(|(l, h)| l.abs().max(h.abs())).collect()
    }

    fn backward_rows(&self, target: NodeId, spec: &[f64], rows: usize) -> Result<SpecBounds> {
        self.backward_general(target, spec, rows, None, None)
    }

    /// The backward pass. With `alpha` (one row only), the lower lines of the unstable neurons
    /// of ReLU / LeakyReLU nodes use the given slopes (alpha-CROWN); with `record`, the lower
    /// matrix reaching every node and the input point minimising the lower bound are kept (for
    /// the gradient).
    fn backward_general(
        &self,
        target: NodeId,
        spec: &[f64],
        rows: usize,
        alpha: Option<&[Option<Vec<f64>>]>,
        mut record: Option<&mut Recording>,
    ) -> Result<SpecBounds> {
        let g = self.graph;
        let mut state: Vec<Option<(Vec<f64>, Vec<f64>)>> = vec![None; target.0 + 1];
        state[target.0] = Some((spec.to_vec(), spec.to_vec()));
        let mut lbias = vec![0.0f64; rows];
        let mut ubias = vec![0.0f64; rows];
        let mut result: Option<SpecBounds> = None;
        for id in (0..=target.0).rev() {
            let Some((la, ua)) = state[id].take() else { continue };
            let node = &g.nodes[id];
            let width = la.len() / rows.max(1);
            if let Op::Input(_) = node.op {
                let mut lower = Vec::with_capacity(rows);
                let mut upper = Vec::with_capacity(rows);
                for r in 0..rows {
                    let lr = &la[r * width..(r + 1) * width];
                    let neg: Vec<f64> = ua[r * width..(r + 1) * width].iter().map(|v| -v).collect();
                    let (blo, bhi) = (&self.input_box.0, &self.input_box.1);
                    lower.push(add_down(lbias[r], self.region.min_linear_in(lr, blo, bhi)));
                    upper.push(add_up(ubias[r], -self.region.min_linear_in(&neg, blo, bhi)));
                    if let Some(rec) = record.as_deref_mut() {
                        rec.x_star = self.region.minimizer(lr, blo, bhi);
                    }
                }
                result = Some(SpecBounds { lower, upper });
                continue;
            }
            let rel = self.relax[id].as_ref().expect("relaxations are computed before the pass");
            let t = self.charge[id].as_ref().expect("charges are computed with the relaxations");
            let (mut lmap, umap) = (rel.lower(), rel.upper());
            let affine = matches!(rel, Relaxation::Affine(_));
            let alpha_map;
            if let Some(slopes) = alpha.and_then(|a| a[id].as_ref()) {
                // alpha x <= f(x) for alpha in the op's range (checked by the caller), offset 0.
                let (d, off): (Vec<f64>, Vec<f64>) = (0..slopes.len())
                    .map(
                        |j| if slopes[j].is_nan() { (lmap.parts[0].diag(j), lmap.offset[j]) } else { (slopes[j], 0.0) },
                    )
                    .unzip();
                alpha_map = AffineMap::exact(vec![Sparse::diagonal(&d)], off);
                lmap = &alpha_map;
            }
            if let Some(rec) = record.as_deref_mut() {
                rec.la[id] = Some(la.clone());
            }
            for r in 0..rows {
                let lr = &la[r * width..(r + 1) * width];
                let ur = &ua[r * width..(r + 1) * width];
                // Offsets: a row's positive entries meet the lower map for its lower bound, the
                // negative ones the upper map; the rounding charge is |row| . t. All sums of
                // products are bounded with gamma_n (Higham) and rounded outward.
                let (mut ls, mut labs, mut lcharge) = (0.0f64, 0.0f64, 0.0f64);
                let (mut us, mut uabs, mut ucharge) = (0.0f64, 0.0f64, 0.0f64);
                let mut n = 0usize;
                for j in 0..width {
                    let (a, b) = (lr[j], ur[j]);
                    if a == 0.0 && b == 0.0 {
                        continue;
                    }
                    n += 1;
                    let lo_off = if a >= 0.0 { lmap.offset[j] } else { umap.offset[j] };
                    let up_off = if b >= 0.0 { umap.offset[j] } else { lmap.offset[j] };
                    let (p, q) = (a * lo_off, b * up_off);
                    ls += p;
                    labs += p.abs();
                    us += q;
                    uabs += q.abs();
                    lcharge += a.abs() * t[j];
                    ucharge += b.abs() * t[j];
                }
                let g = gamma(n + 1);
                let inflate = 1.0 + 2.0 * g;
                let lslack = add_up(mul_up(g, up(labs * inflate)), up(lcharge * inflate));
                let uslack = add_up(mul_up(g, up(uabs * inflate)), up(ucharge * inflate));
                lbias[r] = add_down(lbias[r], crate::num::sub_down(ls, lslack));
                ubias[r] = add_up(ubias[r], add_up(us, uslack));
            }
            for (k, p) in node.inputs.iter().enumerate() {
                let n_in = lmap.parts[k].cols;
                let mut la_k = vec![0.0; rows * n_in];
                let mut ua_k = vec![0.0; rows * n_in];
                if affine {
                    lmap.parts[k].transpose_apply_add(&la, rows, &mut la_k, None);
                    lmap.parts[k].transpose_apply_add(&ua, rows, &mut ua_k, None);
                } else {
                    lmap.parts[k].transpose_apply_add(&la, rows, &mut la_k, Some(true));
                    umap.parts[k].transpose_apply_add(&la, rows, &mut la_k, Some(false));
                    umap.parts[k].transpose_apply_add(&ua, rows, &mut ua_k, Some(true));
                    lmap.parts[k].transpose_apply_add(&ua, rows, &mut ua_k, Some(false));
                }
                match state[p.0].take() {
                    None => state[p.0] = Some((la_k, ua_k)),
                    Some((mut la0, mut ua0)) => {
                        // A node used twice (a residual branch): the sums round once more.
                        for (a, b) in la0.iter_mut().zip(&la_k) {
                            *a += b;
                        }
                        for (a, b) in ua0.iter_mut().zip(&ua_k) {
                            *a += b;
                        }
                        let m = self.magnitude(*p);
                        let c = up(2.0 * UNIT_ROUNDOFF);
                        let inflate = 1.0 + 2.0 * gamma(n_in + 1);
                        for r in 0..rows {
                            let lr = &la0[r * n_in..(r + 1) * n_in];
                            let ur = &ua0[r * n_in..(r + 1) * n_in];
                            let ld: f64 = lr.iter().zip(&m).map(|(a, b)| a.abs() * b).sum();
                            let ud: f64 = ur.iter().zip(&m).map(|(a, b)| a.abs() * b).sum();
                            lbias[r] = crate::num::sub_down(lbias[r], mul_up(c, up(ld * inflate)));
                            ubias[r] = add_up(ubias[r], mul_up(c, up(ud * inflate)));
                        }
                        state[p.0] = Some((la0, ua0));
                    }
                }
            }
        }
        Ok(result.unwrap_or_else(|| {
            // The target does not depend on the input: its bounds are the biases.
            SpecBounds { lower: lbias, upper: ubias }
        }))
    }
}

/// IBP or CROWN bounds on `spec` x (output `output` of the graph) over the region.
pub fn bound_spec(
    graph: &Graph,
    region: &Region,
    method: Method,
    output: NodeId,
    spec: &[f64],
    rows: usize,
) -> Result<SpecBounds> {
    let mut t = BoundTable::new(graph, region, method, output)?;
    match method {
        Method::Crown => {
            // IBP on the final bounds can still win for some rows; both are sound.
            let crown = t.backward(output, spec, rows)?;
            let ibp = ibp_of_spec(t.bounds[output.0].as_ref().expect("computed"), spec, rows);
            Ok(SpecBounds {
                lower: crown.lower.iter().zip(&ibp.lower).map(|(a, b)| a.max(*b)).collect(),
                upper: crown.upper.iter().zip(&ibp.upper).map(|(a, b)| a.min(*b)).collect(),
            })
        }
        Method::Ibp => Ok(ibp_of_spec(t.bounds[output.0].as_ref().expect("computed"), spec, rows)),
        Method::AlphaCrown => {
            let ibp = ibp_of_spec(t.bounds[output.0].as_ref().expect("computed"), spec, rows);
            let opts = AlphaOptions::default();
            let lower = t.alpha_lower(output, spec, rows, opts)?;
            let neg: Vec<f64> = spec.iter().map(|v| -v).collect();
            let upper: Vec<f64> = t.alpha_lower(output, &neg, rows, opts)?.iter().map(|v| -v).collect();
            Ok(SpecBounds {
                lower: lower.iter().zip(&ibp.lower).map(|(a, b)| a.max(*b)).collect(),
                upper: upper.iter().zip(&ibp.upper).map(|(a, b)| a.min(*b)).collect(),
            })
        }
    }
}

/// C y over the box of y, rounded outward.
fn ibp_of_spec(b: &Interval, spec: &[f64], rows: usize) -> SpecBounds {
    {
        {
            let width = b.lo.len();
            let mut lower = Vec::with_capacity(rows);
            let mut upper = Vec::with_capacity(rows);
            for r in 0..rows {
                let c = &spec[r * width..(r + 1) * width];
                let (mut lo, mut hi) = (0.0f64, 0.0f64);
                for j in 0..width {
                    if c[j] == 0.0 {
                        continue;
                    }
                    let (a, bb) = (crate::num::mul_down(c[j], b.lo[j]), crate::num::mul_down(c[j], b.hi[j]));
                    lo = add_down(lo, a.min(bb));
                    let (a, bb) = (crate::num::mul_up(c[j], b.lo[j]), crate::num::mul_up(c[j], b.hi[j]));
                    hi = add_up(hi, a.max(bb));
                }
                lower.push(lo);
                upper.push(hi);
            }
            SpecBounds { lower, upper }
        }
    }
}

/// What one recorded backward pass kept: the lower matrix reaching every node (one row) and
/// the input point attaining the lower bound.
#[derive(Default)]
struct Recording {
    la: Vec<Option<Vec<f64>>>,
    x_star: Vec<f64>,
}

/// Optimisation settings of alpha-CROWN (Xu et al. 2021): projected Adam on the lower slopes
/// of unstable ReLU / LeakyReLU neurons, per specification row, intermediate bounds fixed.
#[derive(Copy, Clone, Debug)]
pub struct AlphaOptions {
    pub iterations: usize,
    pub learning_rate: f64,
}

impl Default for AlphaOptions {
    fn default() -> Self {
        AlphaOptions { iterations: 20, learning_rate: 0.5 }
    }
}

impl BoundTable<'_> {
    /// The range of valid lower slopes of an unstable neuron of `op`, when it is a ReLU-like op.
    fn alpha_range(op: &Op) -> Option<(f64, f64)> {
        match op {
            Op::Relu(_) => Some((0.0, 1.0)),
            Op::LeakyRelu(l) => Some((l.alpha.min(1.0), l.alpha.max(1.0))),
            _ => None,
        }
    }

    /// alpha-CROWN lower bounds of `spec` rows: each row optimised on its own, starting from
    /// CROWN's slopes and keeping the best sound bound seen (so never looser than CROWN).
    pub fn alpha_lower(&mut self, target: NodeId, spec: &[f64], rows: usize, opts: AlphaOptions) -> Result<Vec<f64>> {
        // Relaxations first (shared, read-only afterwards).
        let crown = self.backward(target, spec, rows)?;
        let width = spec.len() / rows.max(1);
        let this = &*self;
        (0..rows)
            .into_par_iter()
            .map(|r| this.alpha_row(target, &spec[r * width..(r + 1) * width], opts, crown.lower[r]))
            .collect()
    }

    fn alpha_row(&self, target: NodeId, row: &[f64], opts: AlphaOptions, crown: f64) -> Result<f64> {
        let g = self.graph;
        let n_nodes = target.0 + 1;
        // Initial slopes: CROWN's lower lines; NaN marks neurons whose line is fixed.
        let mut alpha: Vec<Option<Vec<f64>>> = vec![None; n_nodes];
        let mut range: Vec<(f64, f64)> = vec![(0.0, 0.0); n_nodes];
        for id in 0..n_nodes {
            let node = &g.nodes[id];
            let (Some(rg), Some(rel)) = (Self::alpha_range(&node.op), self.relax[id].as_ref()) else { continue };
            let b = self.bounds[node.inputs[0].0].as_ref().expect("computed");
            let lmap = rel.lower();
            let a: Vec<f64> = (0..b.lo.len())
                .map(
                    |j| if b.lo[j] < 0.0 && b.hi[j] > 0.0 { lmap.parts[0].diag(j).clamp(rg.0, rg.1) } else { f64::NAN },
                )
                .collect();
            if a.iter().any(|v| !v.is_nan()) {
                alpha[id] = Some(a);
                range[id] = rg;
            }
        }
        let mut best = crown;
        if alpha.iter().all(|a| a.is_none()) {
            return Ok(best);
        }
        let (b1, b2, eps) = (0.9, 0.999, 1e-8);
        let mut m1: Vec<Option<Vec<f64>>> = alpha.iter().map(|a| a.as_ref().map(|v| vec![0.0; v.len()])).collect();
        let mut m2 = m1.clone();
        let mut lr = opts.learning_rate;
        for it in 0..opts.iterations {
            let mut rec = Recording { la: vec![None; n_nodes], x_star: vec![] };
            let b = self.backward_general(target, row, 1, Some(&alpha), Some(&mut rec))?;
            best = best.max(b.lower[0]);
            if rec.x_star.is_empty() {
                break;
            }
            // The bound is the relaxed network's value at x*: its derivative in a slope is the
            // matrix entry reaching the neuron times the neuron's input value there.
            let values = self.relaxed_forward(target, &rec, &alpha);
            for id in 0..n_nodes {
                let Some(a) = alpha[id].as_mut() else { continue };
                let (Some(la), Some(x)) = (rec.la[id].as_ref(), values[g.nodes[id].inputs[0].0].as_ref()) else {
                    continue;
                };
                let (ma, va) = (m1[id].as_mut().unwrap(), m2[id].as_mut().unwrap());
                for j in 0..a.len() {
                    if a[j].is_nan() || la[j] <= 0.0 {
                        continue;
                    }
                    let grad = la[j] * x[j];
                    ma[j] = b1 * ma[j] + (1.0 - b1) * grad;
                    va[j] = b2 * va[j] + (1.0 - b2) * grad * grad;
                    let mh = ma[j] / (1.0 - b1.powi(it as i32 + 1));
                    let vh = va[j] / (1.0 - b2.powi(it as i32 + 1));
                    a[j] = (a[j] + lr * mh / (vh.sqrt() + eps)).clamp(range[id].0, range[id].1);
                }
            }
            lr *= 0.98;
        }
        let b = self.backward_general(target, row, 1, Some(&alpha), None)?;
        Ok(best.max(b.lower[0]))
    }

    /// Every node's value at the recorded x* through the lines the recorded lower pass chose
    /// (lower lines where the matrix entry is >= 0, upper ones elsewhere).
    fn relaxed_forward(&self, target: NodeId, rec: &Recording, alpha: &[Option<Vec<f64>>]) -> Vec<Option<Vec<f64>>> {
        let g = self.graph;
        let mut vals: Vec<Option<Vec<f64>>> = vec![None; target.0 + 1];
        for id in 0..=target.0 {
            let node = &g.nodes[id];
            if let Op::Input(_) = node.op {
                vals[id] = Some(rec.x_star.clone());
                continue;
            }
            let Some(rel) = self.relax[id].as_ref() else { continue };
            if node.inputs.iter().any(|p| vals[p.0].is_none()) {
                continue;
            }
            let eval = |m: &AffineMap| {
                let mut y = m.offset.clone();
                for (k, p) in node.inputs.iter().enumerate() {
                    m.parts[k].apply_add(vals[p.0].as_ref().unwrap(), &mut y);
                }
                y
            };
            let v = match rel {
                Relaxation::Affine(m) => eval(m),
                Relaxation::Bounds { lower, upper } => {
                    let (mut lo, up) = (eval(lower), eval(upper));
                    if let Some(a) = alpha[id].as_ref() {
                        let x = vals[node.inputs[0].0].as_ref().unwrap();
                        for j in 0..lo.len() {
                            if !a[j].is_nan() {
                                lo[j] = a[j] * x[j];
                            }
                        }
                    }
                    match rec.la[id].as_ref() {
                        Some(la) => (0..lo.len()).map(|j| if la[j] >= 0.0 { lo[j] } else { up[j] }).collect(),
                        None => lo,
                    }
                }
            };
            vals[id] = Some(v);
        }
        vals
    }
}
