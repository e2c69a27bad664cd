//! The engines: IBP (one forward loop over the nodes) and CROWN (backward linear bound
//! propagation from a target node to the input, Zhang et al. 2018), with the rounding of every
//! step bounded (Higham's gamma_n on each sum of products) and charged to the bias, so the
//! reported bounds hold for the real-valued network.

use super::affine::{AffineMap, Relaxation};
use super::pool_lines::PoolLines;
use crate::error::{Error, Result};
use crate::ir::{Graph, NodeId};
use crate::num::{add_down, add_up, gamma, mul_up, up, UNIT_ROUNDOFF};
use crate::ops::{Op, Operator, RelaxInput};
use crate::spec::Region;
use rayon::prelude::*;
use std::sync::{Arc, OnceLock};

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

/// Bounds of every node computed before a table is built (indexed by node), which hold on
/// the part of the region the table bounds.
#[derive(Clone, Copy)]
pub enum Prior<'a> {
    /// Nothing known.
    None,
    /// Bounds on the whole region, e.g. by alpha-CROWN at the root of a branch and bound:
    /// nodes up to the first split node take them as they are (nothing before a split depends
    /// on it), later nodes are intersected with them.
    Region(&'a [Option<Interval>]),
    /// A parent subdomain's bounds, which hold on its children: every node takes them as they
    /// are, clamped by the splits.
    Parent(&'a [Option<Interval>]),
    /// Bounds on the whole region of which only those up to the node are final (e.g. refined
    /// ones, before the later layers are recomputed on them): those nodes take them as they
    /// are (and up to the first split node at most), later nodes are intersected with them.
    FinalUpto(&'a [Option<Interval>], NodeId),
}

/// Per-node bounds and relaxations of one graph on one input region.
pub struct BoundTable<'g> {
    graph: &'g Graph,
    region: &'g Region,
    pub bounds: Vec<Option<Interval>>,
    relax: Vec<Option<Arc<Relaxation>>>,
    /// Affine relaxations shared with other tables of the same graph.
    cache: Option<&'g AffineCache>,
    /// Per node, the rounding charge t_j of its backward step (see `backward_rows`).
    charge: Vec<Option<Vec<f64>>>,
    /// The region's bounding box, for concretisation.
    input_box: (Vec<f64>, Vec<f64>),
}

/// A branch-and-bound split of one neuron feeding a ReLU: `node` is the pre-activation node,
/// `index` the neuron; `active` restricts the domain to where it is >= 0, otherwise <= 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeuronSplit {
    pub node: NodeId,
    pub index: usize,
    pub active: bool,
}

/// Bounds on the rows of C y for a target node y.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecBounds {
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
}

/// The relaxations of a graph's affine nodes (a convolution's sparse matrix, a layer's
/// weights), which do not depend on any bounds: built once and shared by the bound tables of
/// every subdomain of a branch and bound, which would otherwise rebuild them each time.
pub struct AffineCache {
    maps: Vec<OnceLock<Option<Arc<Relaxation>>>>,
}

impl AffineCache {
    pub fn new(graph: &Graph) -> AffineCache {
        AffineCache { maps: (0..graph.nodes.len()).map(|_| OnceLock::new()).collect() }
    }

    /// The relaxation of node `id` (op `op`): the shared one when the op is an affine map that
    /// ignores bounds, else `compute`'s.
    pub fn relaxation(&self, op: &Op, id: NodeId, compute: &dyn Fn() -> Result<Relaxation>) -> Result<Arc<Relaxation>> {
        let shared = match self.maps.get(id.0) {
            Some(slot) if is_bound_free_affine(op) => {
                slot.get_or_init(|| compute().ok().filter(|r| matches!(r, Relaxation::Affine(_))).map(Arc::new)).clone()
            }
            _ => None,
        };
        match shared {
            Some(r) => Ok(r),
            None => Ok(Arc::new(compute()?)),
        }
    }
}

/// Ops whose relaxation is an exact affine map that ignores the input bounds.
pub(crate) fn is_bound_free_affine(op: &Op) -> bool {
    matches!(
        op,
        Op::Constant(_)
            | Op::Gemm(_)
            | Op::MatMul(_)
            | Op::Add(_)
            | Op::Sub(_)
            | Op::Mul(_)
            | Op::Div(_)
            | Op::Conv(_)
            | Op::BatchNorm(_)
            | Op::Reshape(_)
            | Op::Transpose(_)
            | Op::Concat(_)
            | Op::Pad(_)
            | Op::AveragePool(_)
            | Op::GlobalAveragePool(_)
            | Op::ReduceMean(_)
    )
}

fn is_piecewise_or_smooth(op: &Op) -> bool {
    matches!(op, Op::Relu(_) | Op::LeakyRelu(_) | Op::Clip(_) | Op::Sigmoid(_) | Op::Tanh(_) | Op::MaxPool(_))
}

/// Element-wise ops whose interval is their exact range on the input's bounds.
fn is_elementwise(op: &Op) -> bool {
    matches!(op, Op::Relu(_) | Op::LeakyRelu(_) | Op::Clip(_) | Op::Sigmoid(_) | Op::Tanh(_))
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
        Self::with_alpha(graph, region, method, upto, Some(AlphaOptions::default()))
    }

    /// As [`BoundTable::new`]; with `Method::AlphaCrown` and `alpha` set (and its `intermediate`
    /// flag), the bounds of the unstable inputs of ReLU-like nodes are optimised by alpha-CROWN
    /// too, layer by layer.
    pub fn with_alpha(
        graph: &'g Graph,
        region: &'g Region,
        method: Method,
        upto: NodeId,
        alpha: Option<AlphaOptions>,
    ) -> Result<Self> {
        Self::with_splits(graph, region, method, upto, alpha, &[], Prior::None, None)?.ok_or_else(|| {
            Error::InvalidArgument("bounds contradict each other on the whole region (a bound is unsound)".into())
        })
    }

    /// As [`BoundTable::with_alpha`] on the part of the region where every split holds (each
    /// split neuron's bounds clamped at 0 once computed, so everything after it is relaxed on
    /// that part only); `None` when the splits contradict the bounds (that part is empty).
    /// `prior`: bounds computed earlier (see [`Prior`]). `cache`: affine relaxations to share.
    #[allow(clippy::too_many_arguments)]
    pub fn with_splits(
        graph: &'g Graph,
        region: &'g Region,
        method: Method,
        upto: NodeId,
        alpha: Option<AlphaOptions>,
        splits: &[NeuronSplit],
        prior: Prior<'_>,
        cache: Option<&'g AffineCache>,
    ) -> Result<Option<Self>> {
        let first_split = splits.iter().map(|s| s.node.0).min().unwrap_or(usize::MAX);
        // Nodes up to `keep` take the prior as it is; `reuse`: every node does.
        let (prior, reuse, keep) = match prior {
            Prior::None => (None, false, first_split),
            Prior::Region(p) => (Some(p), false, first_split),
            Prior::Parent(p) => (Some(p), true, first_split),
            Prior::FinalUpto(p, last) => (Some(p), false, first_split.min(last.0)),
        };
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
            cache: cache.filter(|c| c.maps.len() == graph.nodes.len()),
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
        // Nodes whose possible values, as far as later IBP steps are concerned, form exactly
        // their box: the input under L-inf (a box), and one-to-one affine maps of such a node.
        let mut box_exact = vec![false; graph.nodes.len()];
        // Per node, the neurons whose bounds are already as tight as a backward pass from them
        // would make them (refined by one, or exact), so an element-wise op's range over them
        // cannot be beaten by a backward pass from the op's output.
        let mut tight: Vec<Vec<bool>> = vec![Vec::new(); graph.nodes.len()];
        let prior_of = |id: usize| prior.and_then(|p| p.get(id)).and_then(|b| b.as_ref());
        for id in 0..=upto.0 {
            let node = &graph.nodes[id];
            if let Some(b) = prior_of(id).filter(|_| reuse || id <= keep) {
                if b.lo.len() != node.shape.iter().product::<usize>() {
                    return Err(Error::Shape(format!("prior bounds of node {id} have the wrong width")));
                }
                t.bounds[id] = Some(b.clone());
                if !t.apply_splits(id, splits)? {
                    return Ok(None);
                }
                continue;
            }
            let mut iv = match &node.op {
                Op::Input(_) => {
                    box_exact[id] = region.norm == crate::spec::Norm::Inf;
                    let (lo, hi) = region.bounding_box();
                    tight[id] = vec![true; lo.len()];
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
            if let Some(b) = prior_of(id).filter(|b| b.lo.len() == iv.lo.len()) {
                for i in 0..iv.lo.len() {
                    iv.lo[i] = iv.lo[i].max(b.lo[i]);
                    iv.hi[i] = iv.hi[i].min(b.hi[i]);
                }
            }
            // An affine map of one box-exact node: IBP is exact (up to its outward rounding).
            let on_box = node.inputs.len() == 1 && box_exact[node.inputs[0].0];
            if on_box && method != Method::Ibp && !matches!(node.op, Op::Input(_)) {
                t.ensure_relaxation(NodeId(id))?;
                if let Some(Relaxation::Affine(m)) = t.relax[id].as_deref() {
                    tight[id] = vec![true; iv.lo.len()];
                    box_exact[id] = m.parts[0].max_row_len() <= 1 && m.parts[0].max_col_len() <= 1;
                }
            }
            let feeds_nonlinear_op = |n: usize| users[n].iter().any(|u| is_piecewise_or_smooth(&graph.nodes[u.0].op));
            let feeds_nonlinear = feeds_nonlinear_op(id);
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
                // An element-wise op's interval is its exact range on its input's bounds: where
                // those are tight, a backward pass from its output gives nothing better.
                let input_tight =
                    |i: usize| is_elementwise(&node.op) && tight[node.inputs[0].0].get(i).copied().unwrap_or(false);
                let rows: Vec<usize> = (0..iv.lo.len())
                    .filter(|&i| !tight[id].get(i).copied().unwrap_or(false) && !input_tight(i))
                    .filter(|&i| {
                        users[id].iter().any(|u| match &graph.nodes[u.0].op {
                            Op::MaxPool(_) => pool_relevant.as_ref().is_some_and(|r| r[i] && iv.lo[i] < iv.hi[i]),
                            // An element-wise op whose output feeds another nonlinear op (ReLU
                            // into MaxPool) needs its input tight on every neuron, so that its
                            // own output needs no backward passes.
                            op if is_elementwise(op) && feeds_nonlinear_op(u.0) => iv.lo[i] < iv.hi[i],
                            op => worth_refining(op, iv.lo[i], iv.hi[i]),
                        })
                    })
                    .collect();
                if !rows.is_empty() {
                    // Provisional bounds let the backward pass start at this node.
                    t.bounds[id] = Some(iv.clone());
                    let sb = t.backward_neurons(NodeId(id), &rows)?;
                    tight[id].resize(iv.lo.len(), false);
                    for (r, &i) in rows.iter().enumerate() {
                        iv.lo[i] = iv.lo[i].max(sb.lower[r]);
                        iv.hi[i] = iv.hi[i].min(sb.upper[r]);
                        tight[id][i] = method != Method::Ibp;
                    }
                    if let (Method::AlphaCrown, Some(opts)) = (method, alpha.filter(|o| o.intermediate)) {
                        t.alpha_refine(NodeId(id), &mut iv, &users[id], opts)?;
                    }
                }
            }
            if iv.lo.iter().zip(&iv.hi).any(|(l, h)| l > h) {
                // Bounds valid on the region that contradict each other: the part is empty.
                return Ok(None);
            }
            t.bounds[id] = Some(iv);
            if !t.apply_splits(id, splits)? {
                return Ok(None);
            }
        }
        Ok(Some(t))
    }

    /// Clamps node `id`'s bounds by the splits on it; false when they become empty.
    fn apply_splits(&mut self, id: usize, splits: &[NeuronSplit]) -> Result<bool> {
        let Some(iv) = self.bounds[id].as_mut() else { return Ok(true) };
        for sp in splits.iter().filter(|sp| sp.node.0 == id) {
            let i = sp.index;
            if i >= iv.lo.len() {
                return Err(Error::InvalidArgument(format!("split of neuron {i} of a {}-wide node", iv.lo.len())));
            }
            if sp.active {
                iv.lo[i] = iv.lo[i].max(0.0);
            } else {
                iv.hi[i] = iv.hi[i].min(0.0);
            }
            if iv.lo[i] > iv.hi[i] {
                return Ok(false);
            }
        }
        Ok(true)
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
        let compute = || -> Result<Relaxation> {
            let r = self.relax_input(id)?;
            node.op.relaxation(&r).map_err(|e| Error::node(&node.name, node.op.name(), e.to_string()))
        };
        let rel = match self.cache {
            Some(c) => c.relaxation(&node.op, id, &compute)?,
            None => Arc::new(compute()?),
        };
        // Rounding charge per output element j of this node:
        // t_j = gamma * (|L| m + |U| m)_j + err_rel * ((|S| m)_j + |c_j|) + err_abs_j,
        // with m the inputs' magnitudes. A row's backward step costs at most |A_row| . t.
        let (lmap, umap) = (rel.lower(), rel.upper());
        let affine = matches!(*rel, Relaxation::Affine(_));
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
        if let Some(rg) = Self::alpha_range(&node.op) {
            // alpha-CROWN may swap in any slope of the op's range for each optimised line:
            // charge for the largest.
            let m = self.magnitude(node.inputs[0]);
            let lines = if rg.hi.is_some() { 2.0 } else { 1.0 };
            let s = lines * rg.lo.0.abs().max(rg.lo.1.abs()).max(rg.hi.map_or(0.0, |h| h.0.abs().max(h.1.abs())));
            for (a, mj) in abs_sm.iter_mut().zip(&m) {
                *a = add_up(*a, mul_up(s, *mj));
            }
        }
        if let Op::MaxPool(mp) = &node.op {
            // alpha-CROWN may put any convex combination of a window in the lower line: at
            // most the window's largest magnitude, each cell summed over every window it is in.
            let ws = mp.windows(&self.graph.nodes[node.inputs[0].0].shape)?;
            let m = self.magnitude(node.inputs[0]);
            let mut per_cell = vec![0usize; m.len()];
            for (o, a) in abs_sm.iter_mut().enumerate() {
                let mx = ws.window(o).iter().map(|&c| m[c]).fold(0.0, f64::max);
                *a = add_up(*a, mul_up(1.0 + 1e-9, mx));
            }
            ws.cells.iter().for_each(|&c| per_cell[c] += 1);
            max_col = max_col.max(per_cell.into_iter().max().unwrap_or(0) + umap.parts[0].max_col_len());
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

    /// Relaxations of every node `target` depends on (read-only afterwards).
    fn ensure_relaxations_upto(&mut self, target: NodeId) -> Result<Vec<bool>> {
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
        Ok(needed)
    }

    /// The width of the widest node among `needed` (at least 1).
    fn widest(&self, needed: &[bool]) -> usize {
        let width = |id: usize| self.graph.nodes[id].shape.iter().product::<usize>();
        (0..needed.len()).filter(|&id| needed[id]).map(width).max().unwrap_or(1).max(1)
    }

    /// Rows per parallel chunk for a pass over `rows` specification rows, bounded by memory
    /// (each chunk holds a rows x width matrix per node on the way).
    fn chunk_rows(&self, needed: &[bool], rows: usize, per_node_copies: usize) -> usize {
        let widest = self.widest(needed);
        let threads = rayon::current_num_threads().max(1);
        let by_memory = ((1usize << 23) / (widest.max(1) * per_node_copies.max(1))).max(8);
        rows.div_ceil(threads).clamp(8, by_memory.max(8))
    }

    /// Bounds on `spec` (rows x numel(target), row-major) times the target's output, over the
    /// region: rows are processed in parallel, each independently (so results do not depend on
    /// the number of threads).
    pub fn backward(&mut self, target: NodeId, spec: &[f64], rows: usize) -> Result<SpecBounds> {
        let width = self.graph.nodes[target.0].shape.iter().product::<usize>();
        if spec.len() != rows * width {
            return Err(Error::Shape(format!("specification of {} values for {rows} rows of {width}", spec.len())));
        }
        self.backward_chunked(target, rows, |s, e| std::borrow::Cow::Borrowed(&spec[s * width..e * width]))
    }

    /// Bounds on the neurons `idx` of `target` (one row each), the rows made chunk by chunk
    /// (a whole rows x width specification can run to gigabytes on image models).
    fn backward_neurons(&mut self, target: NodeId, idx: &[usize]) -> Result<SpecBounds> {
        self.ensure_relaxations_upto(target)?;
        let node = &self.graph.nodes[target.0];
        if let (Some(Relaxation::Affine(m)), [p]) = (self.relax[target.0].as_deref(), node.inputs.as_slice()) {
            // An affine node of one input: the first backward step of the one-hot row of
            // neuron i is row i of the map, with offset b_i charged as the general pass
            // charges it (one term: gamma_2). Starting at the input with these rows skips the
            // rows x width one-hot matrix (a convolution's output is far wider than its input).
            let (s, t) = (&m.parts[0], self.charge[target.0].as_ref().expect("computed with the relaxation"));
            let n_p = s.cols;
            let g = gamma(2);
            let inflate = 1.0 + 2.0 * g;
            let first: Vec<(f64, f64)> = idx
                .iter()
                .map(|&i| {
                    let b = m.offset[i];
                    let slack = add_up(mul_up(g, up(b.abs() * inflate)), up(t[i] * inflate));
                    (crate::num::sub_down(b, slack), add_up(b, slack))
                })
                .collect();
            let (p, map) = (*p, s.clone());
            if map.dense.is_none() && matches!(self.graph.nodes[p.0].op, Op::Input(_)) {
                // On the input itself, each sparse row is concretised as it stands (what the
                // general pass does at the input, without widening it to the input's width).
                let (blo, bhi) = (&self.input_box.0, &self.input_box.1);
                let region = self.region;
                let bounds: Vec<(f64, f64)> = idx
                    .par_iter()
                    .zip(&first)
                    .map(|(&i, f)| {
                        let (c, v) = map.row(i);
                        let neg: Vec<f64> = v.iter().map(|x| -x).collect();
                        let lo = region.min_linear_sparse(c, v, blo, bhi);
                        let hi = -region.min_linear_sparse(c, &neg, blo, bhi);
                        (add_down(lo, f.0), add_up(hi, f.1))
                    })
                    .collect();
                let (lower, upper) = bounds.into_iter().unzip();
                return Ok(SpecBounds { lower, upper });
            }
            let sb = self.backward_chunked(p, idx.len(), |st, e| {
                let mut rows = vec![0.0; (e - st) * n_p];
                for (r, &i) in idx[st..e].iter().enumerate() {
                    let out = &mut rows[r * n_p..(r + 1) * n_p];
                    match &map.dense {
                        Some(w) => out.copy_from_slice(&w[i * n_p..(i + 1) * n_p]),
                        None => {
                            let (c, v) = map.row(i);
                            for (&ci, &vi) in c.iter().zip(v) {
                                out[ci] += vi;
                            }
                        }
                    }
                }
                std::borrow::Cow::Owned(rows)
            })?;
            return Ok(SpecBounds {
                lower: sb.lower.iter().zip(&first).map(|(l, f)| add_down(*l, f.0)).collect(),
                upper: sb.upper.iter().zip(&first).map(|(u, f)| add_up(*u, f.1)).collect(),
            });
        }
        let width = self.graph.nodes[target.0].shape.iter().product::<usize>();
        self.backward_chunked(target, idx.len(), |s, e| {
            let mut spec = vec![0.0; (e - s) * width];
            for (r, &i) in idx[s..e].iter().enumerate() {
                spec[r * width + i] = 1.0;
            }
            std::borrow::Cow::Owned(spec)
        })
    }

    /// The backward pass over `rows` rows, `spec(start, end)` giving rows start..end.
    fn backward_chunked<'s>(
        &mut self,
        target: NodeId,
        rows: usize,
        spec: impl Fn(usize, usize) -> std::borrow::Cow<'s, [f64]> + Sync,
    ) -> Result<SpecBounds> {
        let needed = self.ensure_relaxations_upto(target)?;
        // Chunks of rows: one per thread when memory allows (weights are packed once per
        // chunk and node), parallel across chunks.
        let chunk = self.chunk_rows(&needed, rows, 1);
        let this = &*self;
        let parts: Result<Vec<SpecBounds>> = (0..rows)
            .step_by(chunk)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|start| {
                let end = (start + chunk).min(rows);
                this.backward_general(target, &spec(start, end), end - start, None, &[], None)
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

    /// The backward pass. With `alpha` (per node, rows x width slopes, NaN where the line is
    /// fixed), the lower lines of the unstable neurons of ReLU / LeakyReLU nodes use the given
    /// slopes, one set per row (alpha-CROWN); only lower bounds are computed then (upper ones
    /// are +inf). With `record`, the lower matrix reaching every node and the input point
    /// minimising each row's lower bound are kept (for the gradient). With `beta` (only with
    /// `alpha`), each split's Lagrangian term is added where the pass reaches its neuron.
    fn backward_general(
        &self,
        target: NodeId,
        spec: &[f64],
        rows: usize,
        alpha: Option<&[Option<NodeAlpha>]>,
        beta: &[BetaVar],
        mut record: Option<&mut Recording>,
    ) -> Result<SpecBounds> {
        let g = self.graph;
        let lower_only = alpha.is_some();
        let mut state: Vec<Option<(Vec<f64>, Vec<f64>)>> = vec![None; target.0 + 1];
        // Lower bounds only: no upper matrices at all (empty, never read).
        let ua0 = if lower_only { Vec::new() } else { spec.to_vec() };
        state[target.0] = Some((spec.to_vec(), ua0));
        let mut lbias = vec![0.0f64; rows];
        let mut ubias = vec![0.0f64; rows];
        let mut result: Option<SpecBounds> = None;
        for id in (0..=target.0).rev() {
            let Some((mut la, ua)) = state[id].take() else { continue };
            if let Some(slot) = record.as_deref_mut().and_then(|rec| rec.bias.get_mut(id)) {
                *slot = Some(lbias.clone());
            }
            let node = &g.nodes[id];
            let width = la.len() / rows.max(1);
            // beta-CROWN: on the subdomain s z_i >= 0, so for beta >= 0 the objective minus
            // beta s z_i is a lower bound of it; z_i's coefficient takes -beta s.
            for bv in beta.iter().filter(|b| b.node == id && b.index < width) {
                for r in 0..rows {
                    la[r * width + bv.index] -= bv.value[r] * bv.sign;
                }
            }
            if let Op::Input(_) = node.op {
                let mut lower = Vec::with_capacity(rows);
                let mut upper = Vec::with_capacity(rows);
                let (blo, bhi) = (&self.input_box.0, &self.input_box.1);
                for r in 0..rows {
                    let lr = &la[r * width..(r + 1) * width];
                    lower.push(add_down(lbias[r], self.region.min_linear_in(lr, blo, bhi)));
                    if lower_only {
                        upper.push(f64::INFINITY);
                    } else {
                        let neg: Vec<f64> = ua[r * width..(r + 1) * width].iter().map(|v| -v).collect();
                        upper.push(add_up(ubias[r], -self.region.min_linear_in(&neg, blo, bhi)));
                    }
                    if let Some(rec) = record.as_deref_mut() {
                        rec.x_star.extend(self.region.minimizer(lr, blo, bhi));
                        rec.input_la.extend_from_slice(lr);
                    }
                }
                result = Some(SpecBounds { lower, upper });
                continue;
            }
            let rel = self.relax[id].as_deref().expect("relaxations are computed before the pass");
            let t = self.charge[id].as_ref().expect("charges are computed with the relaxations");
            let (lmap, umap) = (rel.lower(), rel.upper());
            let affine = matches!(rel, Relaxation::Affine(_));
            // alpha x <= f(x) for alpha in the op's range (set up by the caller), offset 0.
            let slopes = alpha.and_then(|a| a.get(id)).and_then(|s| s.as_ref());
            // Where a row's lower entry is >= 0 the lower map's offset applies, elsewhere the
            // upper map's (or the optimised lines' offsets, per row); the other way round for
            // the upper entries.
            let (mut lpos, mut lneg) = (Vec::new(), Vec::new());
            // No offsets and nothing to charge (a reshape, an exact linear map without bias):
            // every row's sums are zero.
            let trivial = slopes.is_none() && lmap.offset.iter().chain(&umap.offset).chain(t.iter()).all(|&v| v == 0.0);
            for r in (0..rows).filter(|_| !trivial) {
                let lr = &la[r * width..(r + 1) * width];
                let ur = if lower_only { &[][..] } else { &ua[r * width..(r + 1) * width] };
                let base = r * width;
                let (lp, ln): (&[f64], &[f64]) = match slopes {
                    Some(NodeAlpha::Pool(pl)) => (&pl.off[r * width..(r + 1) * width], &umap.offset),
                    Some(NodeAlpha::Lines(v)) => {
                        // Slices and selects, no pushes: the loops vectorise.
                        let row = base..base + width;
                        lpos.resize(width, 0.0);
                        lneg.resize(width, 0.0);
                        pick_unless_nan(&mut lpos, &v.lo[row.clone()], &v.lo_off[row.clone()], &lmap.offset);
                        pick_unless_nan(&mut lneg, &v.hi[row.clone()], &v.hi_off[row], &umap.offset);
                        (&lpos, &lneg)
                    }
                    None => (&lmap.offset, &umap.offset),
                };
                // Offsets: a row's positive entries meet the lower map for its lower bound, the
                // negative ones the upper map; the rounding charge is |row| . t. All sums of
                // products are bounded with gamma_n (Higham) and rounded outward.
                let ([ls, labs, us, uabs, lcharge, ucharge], n) =
                    super::affine::offset_sums(lr, (!lower_only).then_some(ur), lp, ln, &umap.offset, &lmap.offset, t);
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
                let mut ua_k = if lower_only { Vec::new() } else { vec![0.0; rows * n_in] };
                if let Some(NodeAlpha::Pool(pl)) = slopes {
                    // MaxPool: each row's convex combinations where its entry is positive,
                    // CROWN's upper line where it is negative.
                    pl.transpose_add_positive(&la, rows, n_in, &mut la_k);
                    umap.parts[k].transpose_apply_add(&la, rows, &mut la_k, Some(false));
                } else if let Some(NodeAlpha::Lines(v)) = slopes {
                    // Element-wise op with per-row slopes: the lower line where the entry is
                    // >= 0, the upper line elsewhere (optimised slopes where set).
                    let ld: Vec<f64> = (0..width).map(|j| lmap.parts[0].diag(j)).collect();
                    let ud: Vec<f64> = (0..width).map(|j| umap.parts[0].diag(j)).collect();
                    // Row by row (no index division per entry), selects only: vectorises.
                    let lines = la_k.chunks_exact_mut(width).zip(la.chunks_exact(width));
                    let slopes = v.lo.chunks_exact(width).zip(v.hi.chunks_exact(width));
                    for ((out, a), (lo, hi)) in lines.zip(slopes) {
                        for j in 0..width {
                            let down = if lo[j].is_nan() { ld[j] } else { lo[j] };
                            let over = if hi[j].is_nan() { ud[j] } else { hi[j] };
                            out[j] = a[j] * if a[j] >= 0.0 { down } else { over };
                        }
                    }
                } else if affine {
                    lmap.parts[k].transpose_apply_add(&la, rows, &mut la_k, None);
                    if !lower_only {
                        lmap.parts[k].transpose_apply_add(&ua, rows, &mut ua_k, None);
                    }
                } else if let (Some(ld), Some(ud)) =
                    (lmap.parts[k].diagonal_entries(), umap.parts[k].diagonal_entries())
                {
                    // An element-wise op: one product per entry, the lower line where the
                    // entry is positive and the upper one where it is negative (for the upper
                    // matrix the other way round), as the sign-selected products would give.
                    let pick = |a: f64, pos: f64, neg: f64| a * if a >= 0.0 { pos } else { neg };
                    for (lr, or) in la.chunks_exact(width).zip(la_k.chunks_exact_mut(width)) {
                        for j in 0..width {
                            or[j] = pick(lr[j], ld[j], ud[j]);
                        }
                    }
                    if !lower_only {
                        for (ur, or) in ua.chunks_exact(width).zip(ua_k.chunks_exact_mut(width)) {
                            for j in 0..width {
                                or[j] = pick(ur[j], ud[j], ld[j]);
                            }
                        }
                    }
                } else {
                    lmap.parts[k].transpose_apply_add(&la, rows, &mut la_k, Some(true));
                    umap.parts[k].transpose_apply_add(&la, rows, &mut la_k, Some(false));
                    if !lower_only {
                        umap.parts[k].transpose_apply_add(&ua, rows, &mut ua_k, Some(true));
                        lmap.parts[k].transpose_apply_add(&ua, rows, &mut ua_k, Some(false));
                    }
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
                            let ur = if lower_only { &[][..] } else { &ua0[r * n_in..(r + 1) * n_in] };
                            let ld: f64 = lr.iter().zip(&m).map(|(a, b)| a.abs() * b).sum();
                            let ud: f64 = ur.iter().zip(&m).map(|(a, b)| a.abs() * b).sum();
                            lbias[r] = crate::num::sub_down(lbias[r], mul_up(c, up(ld * inflate)));
                            ubias[r] = add_up(ubias[r], mul_up(c, up(ud * inflate)));
                        }
                        state[p.0] = Some((la0, ua0));
                    }
                }
            }
            // A recording without slots for the matrices keeps only the minimisers. The matrix
            // is moved, not copied: the pass is done with it.
            if let Some(slot) = record.as_deref_mut().and_then(|rec| rec.la.get_mut(id)) {
                *slot = Some(la);
            }
        }
        Ok(result.unwrap_or_else(|| {
            // The target does not depend on the input: its bounds are the biases.
            if lower_only {
                ubias.iter_mut().for_each(|u| *u = f64::INFINITY);
            }
            SpecBounds { lower: lbias, upper: ubias }
        }))
    }
}

/// out[j] = fallback[j] where `slope[j]` is NaN (the relaxation's own line), else `chosen[j]`.
fn pick_unless_nan(out: &mut [f64], slope: &[f64], chosen: &[f64], fallback: &[f64]) {
    for (((o, &s), &c), &f) in out.iter_mut().zip(slope).zip(chosen).zip(fallback) {
        *o = if s.is_nan() { f } else { c };
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
        Method::Crown => crown_within_ibp(&mut t, output, spec, rows),
        Method::Ibp => Ok(ibp_of_spec(t.bounds[output.0].as_ref().expect("computed"), spec, rows)),
        Method::AlphaCrown => alpha_crown_within_ibp(&mut t, output, spec, rows),
    }
}

/// alpha-CROWN bounds on `spec` rows (intermediate bounds optimised too), with the table,
/// whose bounds can seed a branch and bound on the same region (`BoundTable::with_splits`).
pub fn alpha_crown_with_table<'g>(
    graph: &'g Graph,
    region: &'g Region,
    output: NodeId,
    spec: &[f64],
    rows: usize,
) -> Result<(SpecBounds, BoundTable<'g>)> {
    let mut t = BoundTable::new(graph, region, Method::AlphaCrown, output)?;
    let b = alpha_crown_within_ibp(&mut t, output, spec, rows)?;
    Ok((b, t))
}

/// As [`alpha_crown_with_table`], with `prior` bounds on the whole region (e.g. refined ones,
/// so they must hold on the whole region): nodes up to `last_final` with a prior take it as it
/// is, later ones are computed on top of the earlier ones and intersected with their prior.
pub fn alpha_crown_with_prior<'g>(
    graph: &'g Graph,
    region: &'g Region,
    output: NodeId,
    spec: &[f64],
    rows: usize,
    prior: &[Option<Interval>],
    last_final: NodeId,
) -> Result<(SpecBounds, BoundTable<'g>)> {
    let mut t = BoundTable::with_splits(
        graph,
        region,
        Method::AlphaCrown,
        output,
        Some(AlphaOptions::default()),
        &[],
        Prior::FinalUpto(prior, last_final),
        None,
    )?
    .ok_or_else(|| Error::InvalidArgument("refined bounds contradict each other (a bound is unsound)".into()))?;
    let b = alpha_crown_within_ibp(&mut t, output, spec, rows)?;
    Ok((b, t))
}

/// alpha-CROWN lower bounds on `spec` rows over the region with the given settings (a cheaper
/// run than the default's, for many small subdomains), intersected with IBP's.
pub fn alpha_crown_lower(
    graph: &Graph,
    region: &Region,
    output: NodeId,
    spec: &[f64],
    rows: usize,
    opts: AlphaOptions,
) -> Result<Vec<f64>> {
    let mut t = BoundTable::with_alpha(graph, region, Method::AlphaCrown, output, Some(opts))?;
    let ibp = ibp_of_spec(t.bounds[output.0].as_ref().expect("computed"), spec, rows);
    let crown = t.backward(output, spec, rows)?;
    let start: Vec<f64> = crown.lower.iter().zip(&ibp.lower).map(|(a, b)| a.max(*b)).collect();
    let best = t.alpha_rows(output, spec, rows, opts.final_iterations, opts, &start)?;
    Ok(best.iter().zip(&start).map(|(a, b)| a.max(*b)).collect())
}

/// Lower bounds of spec and of -spec in one batch, warm-started from CROWN, intersected with
/// IBP's.
fn alpha_crown_within_ibp(t: &mut BoundTable<'_>, output: NodeId, spec: &[f64], rows: usize) -> Result<SpecBounds> {
    let ibp = ibp_of_spec(t.bounds[output.0].as_ref().expect("computed"), spec, rows);
    let opts = AlphaOptions::default();
    let crown = t.backward(output, spec, rows)?;
    let mut both = spec.to_vec();
    both.extend(spec.iter().map(|v| -v));
    let mut start = crown.lower.clone();
    start.extend(crown.upper.iter().map(|u| -u));
    let best = t.alpha_rows(output, &both, 2 * rows, opts.final_iterations, opts, &start)?;
    let (lower, upper): (Vec<f64>, Vec<f64>) = (best[..rows].to_vec(), best[rows..].iter().map(|v| -v).collect());
    Ok(SpecBounds {
        lower: lower.iter().zip(&ibp.lower).map(|(a, b)| a.max(*b)).collect(),
        upper: upper.iter().zip(&ibp.upper).map(|(a, b)| a.min(*b)).collect(),
    })
}

/// CROWN bounds on `spec` rows over the part of the region where the splits hold, with the
/// table (for choosing the next split); `None` when that part is empty. `prior`: bounds
/// computed on the whole region; `cache`: affine maps shared across calls (see
/// [`BoundTable::with_splits`]).
#[allow(clippy::too_many_arguments)]
pub fn crown_with_splits<'g>(
    graph: &'g Graph,
    region: &'g Region,
    output: NodeId,
    spec: &[f64],
    rows: usize,
    splits: &[NeuronSplit],
    prior: Prior<'_>,
    cache: Option<&'g AffineCache>,
) -> Result<Option<(SpecBounds, BoundTable<'g>)>> {
    let Some(mut t) = BoundTable::with_splits(graph, region, Method::Crown, output, None, splits, prior, cache)? else {
        return Ok(None);
    };
    let b = crown_within_ibp(&mut t, output, spec, rows)?;
    Ok(Some((b, t)))
}

/// CROWN lower bounds on the rows of a specification, with what the linear bounds say about
/// the input.
pub struct LinearLower {
    /// Per row, the lower bound (CROWN intersected with IBP).
    pub lower: Vec<f64>,
    /// Per row, the input point where the row's linear lower bound is smallest (rows x input
    /// width): a candidate counterexample.
    pub x_star: Vec<f64>,
    /// Per row, the linear lower bound's coefficients on the input (rows x input width): how
    /// much each input's width costs the bound.
    pub input_coef: Vec<f64>,
}

/// CROWN lower bounds on `spec` rows over the region, with their minimisers and input
/// coefficients (see [`LinearLower`]).
pub fn crown_lower_with_minimizers(
    graph: &Graph,
    region: &Region,
    output: NodeId,
    spec: &[f64],
    rows: usize,
) -> Result<LinearLower> {
    let mut t = BoundTable::new(graph, region, Method::Crown, output)?;
    t.ensure_relaxations_upto(output)?;
    let width = graph.nodes[output.0].shape.iter().product::<usize>();
    if spec.len() != rows * width {
        return Err(Error::Shape(format!("specification of {} values for {rows} rows of {width}", spec.len())));
    }
    let mut rec = Recording::default();
    let crown = t.backward_general(output, spec, rows, None, &[], Some(&mut rec))?;
    let ibp = ibp_of_spec(t.bounds[output.0].as_ref().expect("computed"), spec, rows);
    let lower = crown.lower.iter().zip(&ibp.lower).map(|(a, b)| a.max(*b)).collect();
    Ok(LinearLower { lower, x_star: rec.x_star, input_coef: rec.input_la })
}

/// CROWN bounds on `spec` intersected with IBP's (IBP can still win for some rows; both are
/// sound).
fn crown_within_ibp(t: &mut BoundTable<'_>, output: NodeId, spec: &[f64], rows: usize) -> Result<SpecBounds> {
    let crown = t.backward(output, spec, rows)?;
    let ibp = ibp_of_spec(t.bounds[output.0].as_ref().expect("computed"), spec, rows);
    Ok(SpecBounds {
        lower: crown.lower.iter().zip(&ibp.lower).map(|(a, b)| a.max(*b)).collect(),
        upper: crown.upper.iter().zip(&ibp.upper).map(|(a, b)| a.min(*b)).collect(),
    })
}

impl BoundTable<'_> {
    /// The unstable neuron feeding a ReLU with the widest triangle relaxation (largest
    /// u (-l) / (u - l)), skipping `taken`: the next neuron to split.
    pub fn widest_unstable_relu_input(&self, taken: &[NeuronSplit]) -> Option<(NodeId, usize)> {
        let g = self.graph;
        let mut best: Option<(f64, NodeId, usize)> = None;
        for node in &g.nodes {
            if !matches!(node.op, Op::Relu(_)) {
                continue;
            }
            let p = node.inputs[0];
            let Some(b) = self.bounds[p.0].as_ref() else { continue };
            for i in 0..b.lo.len() {
                let (l, u) = (b.lo[i], b.hi[i]);
                if !(l < 0.0 && u > 0.0) || taken.iter().any(|s| s.node == p && s.index == i) {
                    continue;
                }
                let score = u * (-l) / (u - l);
                if best.is_none_or(|(s, _, _)| score > s) {
                    best = Some((score, p, i));
                }
            }
        }
        best.map(|(_, p, i)| (p, i))
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

/// What [`BoundTable::beta_lower`] found.
pub struct BetaBounds {
    /// Per row, the best lower bound.
    pub lower: Vec<f64>,
    /// The final pass's lower matrix reaching each node (rows x width; None where it did not
    /// pass), for choosing the next split.
    pub lower_matrices: Vec<Option<Vec<f64>>>,
    /// The final pass's lower-bound constants gathered above each node (rows; as
    /// `lower_matrices`): with them a pass can resume at a node.
    bias_above: Vec<Option<Vec<f64>>>,
    /// Per row, the input point (inside the region's box) where the final pass's linear lower
    /// bound is smallest (rows x input width; empty if the pass did not reach the input): a
    /// candidate counterexample.
    pub x_star: Vec<f64>,
    /// Per row, the slopes and multipliers of its best bound, to warm-start the subdomain's
    /// children.
    pub warm: Vec<RowWarm>,
    /// The final pass's slopes and multipliers (for estimating the children of a split).
    state: Option<(Vec<Option<NodeAlpha>>, Vec<BetaVar>)>,
}

/// One row's optimised state in beta-CROWN, handed down to the children of a subdomain, as
/// alpha-beta-CROWN does (Wang et al. 2021): they start where the parent's optimisation
/// stopped instead of from CROWN's lines. Any slope in an op's range and any multiplier >= 0
/// gives a sound bound, so a stale or rounded state only costs tightness.
#[derive(Clone, Debug, Default)]
pub struct RowWarm {
    /// Per node with optimised element-wise lines: its id, the lower slopes (width, NaN where
    /// the line is fixed) and the upper ones (empty when none is optimised); f32 to halve the
    /// memory of open subdomains.
    lines: Vec<(usize, Vec<f32>, Vec<f32>)>,
    /// Each split's multiplier (pre-activation node, neuron, active side).
    betas: Vec<(usize, usize, bool, f64)>,
}

impl RowWarm {
    /// The heap memory it holds, in bytes (to budget the open subdomains that keep one).
    pub fn bytes(&self) -> usize {
        let lines: usize = self.lines.iter().map(|(_, lo, up)| 4 * (lo.len() + up.len()) + 56).sum();
        lines + self.betas.len() * std::mem::size_of::<(usize, usize, bool, f64)>()
    }
}

/// One split's multiplier in beta-CROWN, per row: the term -beta s z_i (s = +1 for an active
/// split, -1 for an inactive one) is added to the objective on the subdomain.
#[derive(Clone)]
struct BetaVar {
    node: usize,
    index: usize,
    sign: f64,
    value: Vec<f64>,
}

/// What one recorded backward pass kept: the lower matrix reaching every node (rows x width)
/// and, per row, the input point attaining the lower bound and the lower bound's coefficients
/// on the input (each rows x input width).
#[derive(Default)]
struct Recording {
    la: Vec<Option<Vec<f64>>>,
    /// Per node (where slots are given), each row's lower-bound constant gathered from the
    /// nodes after it, as the pass reached the node.
    bias: Vec<Option<Vec<f64>>>,
    x_star: Vec<f64>,
    input_la: Vec<f64>,
    /// Per row, the state of its best bound (filled by `alpha_chunk` when it records).
    warm: Vec<RowWarm>,
    /// The slopes and multipliers of the final pass (filled by `alpha_chunk` when it records).
    state: Option<(Vec<Option<NodeAlpha>>, Vec<BetaVar>)>,
}

/// beta-CROWN in branch and bound stops when no open row has closed in the last this many
/// steps at a pace (doubled) that would close it in the steps left: the children start from
/// its state anyway. Measured on oval21 cifar_base img876: unsat in 42 s (was a timeout at
/// 60 s), img6767 22.6 -> 14.7 s; mnist 256x6 prop_7_0.03: 87 subdomains, 1.5 s (was 20,467,
/// 89 s, from a different split order).
const STALL_WINDOW: usize = 3;

/// Slope learning rate of beta-CROWN started from a parent's state (against 0.5 from CROWN's).
const WARM_LEARNING_RATE: f64 = 0.1;

/// Optimisation settings of alpha-CROWN (Xu et al. 2021): projected Adam on the lower slopes
/// of unstable ReLU / LeakyReLU neurons, one set of slopes per bounded quantity (every output
/// row, and every unstable intermediate neuron's lower and upper bound), intermediate bounds
/// tightened layer by layer before the layers after them are relaxed.
#[derive(Copy, Clone, Debug)]
pub struct AlphaOptions {
    /// Steps for each intermediate neuron's bounds.
    pub iterations: usize,
    /// Steps for the rows asked for (few, so they get more).
    pub final_iterations: usize,
    pub learning_rate: f64,
    /// Multiplied into the learning rate after every step.
    pub lr_decay: f64,
    /// Optimise the intermediate (pre-activation) bounds too, not only the final rows.
    pub intermediate: bool,
    /// Adam step for the split multipliers of beta-CROWN (in their own units).
    pub beta_learning_rate: f64,
}

impl Default for AlphaOptions {
    fn default() -> Self {
        AlphaOptions {
            iterations: 20,
            final_iterations: 80,
            learning_rate: 0.5,
            lr_decay: 0.98,
            intermediate: true,
            beta_learning_rate: 0.05,
        }
    }
}

/// The slopes alpha-CROWN may choose for an op's lines: `lo` for the lower line, `hi` for
/// the upper one when that is optimised too (S-shaped functions).
#[derive(Copy, Clone, Debug)]
struct AlphaRange {
    lo: (f64, f64),
    hi: Option<(f64, f64)>,
}

/// The optimised lines of one node for a batch of rows (each rows x width; a NaN slope keeps
/// the relaxation's own line), with each line's sound offset and the point where the offset
/// is attained (its derivative in the slope is minus that point).
#[derive(Clone)]
struct AlphaVars {
    lo: Vec<f64>,
    lo_off: Vec<f64>,
    lo_pt: Vec<f64>,
    hi: Vec<f64>,
    hi_off: Vec<f64>,
    hi_pt: Vec<f64>,
    /// Per neuron (width), the slopes searched.
    lim: Vec<(f64, f64)>,
}

/// What alpha-CROWN optimises at one node: the lines of an element-wise op, or MaxPool's
/// convex combinations.
#[derive(Clone)]
enum NodeAlpha {
    Lines(AlphaVars),
    Pool(PoolLines),
}

impl BoundTable<'_> {
    /// The slopes alpha-CROWN optimises for `op`, if any.
    fn alpha_range(op: &Op) -> Option<AlphaRange> {
        match op {
            Op::Relu(_) => Some(AlphaRange { lo: (0.0, 1.0), hi: None }),
            Op::LeakyRelu(l) => Some(AlphaRange { lo: (l.alpha.min(1.0), l.alpha.max(1.0)), hi: None }),
            // Any slope gives a valid line (its offset is computed for it); beyond the largest
            // derivative nothing is gained.
            Op::Sigmoid(_) => Some(AlphaRange { lo: (0.0, 0.25), hi: Some((0.0, 0.25)) }),
            Op::Tanh(_) => Some(AlphaRange { lo: (0.0, 1.0), hi: Some((0.0, 1.0)) }),
            _ => None,
        }
    }

    /// Whether a neuron with input bounds [l, u] of `op` has lines worth optimising.
    fn alpha_neuron(op: &Op, l: f64, u: f64) -> bool {
        match op {
            Op::Relu(_) | Op::LeakyRelu(_) => l < 0.0 && u > 0.0,
            _ => l < u,
        }
    }

    /// The offset of the line of slope `a` (lower or upper) of neuron input [l, u], and where it
    /// is attained. ReLU-like lower lines through the origin: offset 0.
    fn line_offset(op: &Op, l: f64, u: f64, a: f64, upper: bool) -> (f64, f64) {
        use crate::ops::Elementwise;
        let r = match op {
            Op::Sigmoid(f) => f.line_offset(l, u, a, upper),
            Op::Tanh(f) => f.line_offset(l, u, a, upper),
            _ => None,
        };
        r.unwrap_or((0.0, 0.0))
    }

    /// The slopes searched for a neuron with input bounds [l, u]: the op's range, narrowed to
    /// the derivatives on [l, u] for smooth functions.
    fn slope_limits(op: &Op, rg: (f64, f64), l: f64, u: f64) -> (f64, f64) {
        use crate::ops::Elementwise;
        let d = match op {
            Op::Sigmoid(f) => f.derivative_range(l, u),
            Op::Tanh(f) => f.derivative_range(l, u),
            _ => None,
        };
        match d {
            Some((a, b)) if a.is_finite() && b.is_finite() && a <= b => (a.max(rg.0), b.min(rg.1)),
            _ => rg,
        }
    }

    /// Recomputes the offsets of every optimised line of node `id` after a slope update.
    fn alpha_offsets(&self, id: usize, v: &mut AlphaVars) {
        let node = &self.graph.nodes[id];
        let b = self.bounds[node.inputs[0].0].as_ref().expect("computed");
        let w = b.lo.len();
        for i in 0..v.lo.len() {
            let j = i % w;
            if !v.lo[i].is_nan() {
                (v.lo_off[i], v.lo_pt[i]) = Self::line_offset(&node.op, b.lo[j], b.hi[j], v.lo[i], false);
            }
            if !v.hi[i].is_nan() {
                (v.hi_off[i], v.hi_pt[i]) = Self::line_offset(&node.op, b.lo[j], b.hi[j], v.hi[i], true);
            }
        }
    }

    /// Tightens the entries of `iv` (the bounds of `id`, which feeds optimisable `users`)
    /// that the users' relaxations depend on, by alpha-CROWN: one lower and one upper row per
    /// neuron, each optimised on its own.
    fn alpha_refine(&mut self, id: NodeId, iv: &mut Interval, users: &[NodeId], opts: AlphaOptions) -> Result<()> {
        let g = self.graph;
        if !users.iter().all(|u| Self::alpha_range(&g.nodes[u.0].op).is_some()) {
            return Ok(());
        }
        let open: Vec<usize> = (0..iv.lo.len())
            .filter(|&i| users.iter().any(|u| Self::alpha_neuron(&g.nodes[u.0].op, iv.lo[i], iv.hi[i])))
            .collect();
        self.bounds[id.0] = Some(iv.clone());
        if open.is_empty() || !self.has_alpha(id) {
            return Ok(());
        }
        let n = iv.lo.len();
        let rows = 2 * open.len();
        let mut spec = vec![0.0; rows * n];
        let mut start = Vec::with_capacity(rows);
        for (r, &i) in open.iter().enumerate() {
            spec[2 * r * n + i] = 1.0;
            spec[(2 * r + 1) * n + i] = -1.0;
            start.push(iv.lo[i]);
            start.push(-iv.hi[i]);
        }
        let best = self.alpha_rows(id, &spec, rows, opts.iterations, opts, &start)?;
        for (r, &i) in open.iter().enumerate() {
            iv.lo[i] = iv.lo[i].max(best[2 * r]);
            iv.hi[i] = iv.hi[i].min(-best[2 * r + 1]);
        }
        Ok(())
    }

    /// beta-CROWN (Wang et al. 2021) lower bounds of `spec` rows on the part of the region
    /// where `splits` hold (the table must have been built with them): the slopes and one
    /// multiplier per split and row optimised together for `iterations` steps, keeping per
    /// row the best of `start` and every bound seen; with what the final pass recorded. With
    /// `stop_above`, stops early once every row's bound exceeds its entry.
    #[allow(clippy::too_many_arguments)]
    pub fn beta_lower(
        &mut self,
        target: NodeId,
        spec: &[f64],
        rows: usize,
        splits: &[NeuronSplit],
        iterations: usize,
        start: &[f64],
        stop_above: Option<&[f64]>,
        warm: &[Option<&RowWarm>],
    ) -> Result<BetaBounds> {
        self.ensure_relaxations_upto(target)?;
        let width = self.graph.nodes[target.0].shape.iter().product::<usize>();
        if spec.len() != rows * width || start.len() != rows {
            return Err(Error::Shape(format!("specification of {} values for {rows} rows of {width}", spec.len())));
        }
        let mut last = Recording::default();
        let mut opts = AlphaOptions::default();
        if warm.iter().any(|w| w.is_some()) {
            // Started near the parent's optimum: smaller steps (alpha-beta-CROWN likewise
            // lowers its slope learning rate in branch and bound).
            opts.learning_rate = WARM_LEARNING_RATE;
        }
        let lower =
            self.alpha_chunk(target, spec, rows, iterations, opts, start, splits, Some(&mut last), stop_above, warm)?;
        Ok(BetaBounds {
            lower,
            lower_matrices: last.la,
            bias_above: last.bias,
            x_star: last.x_star,
            warm: last.warm,
            state: last.state,
        })
    }

    /// The unstable neuron feeding a ReLU whose triangle relaxation costs the bound the most
    /// (BaBSR, Bunel et al. 2020): the upper line's intercept -u l / (u - l) times how much of
    /// it the rows' lower matrices `la` (from [`BoundTable::beta_lower`]) take, summed over
    /// rows; ties and an all-zero score fall back to the widest triangle. Skips `taken`.
    pub fn babsr_relu_input(
        &self,
        la: &[Option<Vec<f64>>],
        rows: usize,
        taken: &[NeuronSplit],
    ) -> Option<(NodeId, usize)> {
        self.babsr_candidates(la, rows, taken, 1).first().copied()
    }

    /// The `k` best neurons by BaBSR's score (see [`BoundTable::babsr_relu_input`]), best first.
    pub fn babsr_candidates(
        &self,
        la: &[Option<Vec<f64>>],
        rows: usize,
        taken: &[NeuronSplit],
        k: usize,
    ) -> Vec<(NodeId, usize)> {
        let g = self.graph;
        let mut scored: Vec<((f64, f64), NodeId, usize)> = Vec::new();
        for (id, node) in g.nodes.iter().enumerate() {
            if !matches!(node.op, Op::Relu(_)) {
                continue;
            }
            let p = node.inputs[0];
            let Some(b) = self.bounds[p.0].as_ref() else { continue };
            let coef = la.get(id).and_then(|m| m.as_ref());
            let w = b.lo.len();
            for i in 0..w {
                let (l, u) = (b.lo[i], b.hi[i]);
                if !(l < 0.0 && u > 0.0) || taken.iter().any(|s| s.node == p && s.index == i) {
                    continue;
                }
                let intercept = u * (-l) / (u - l);
                let take: f64 = coef.map_or(0.0, |m| (0..rows).map(|r| (-m[r * w + i]).max(0.0)).sum());
                scored.push(((take * intercept, intercept), p, i));
            }
        }
        // Best first; among equal scores the earliest neuron.
        let better = |a: &(f64, f64), b: &(f64, f64)| b.0.total_cmp(&a.0).then(b.1.total_cmp(&a.1));
        let k = k.min(scored.len());
        if k == 0 {
            return Vec::new();
        }
        if k < scored.len() {
            scored.select_nth_unstable_by(k - 1, |a, b| better(&a.0, &b.0));
            scored.truncate(k);
        }
        scored.sort_by(|a, b| better(&a.0, &b.0));
        scored.into_iter().map(|(_, p, i)| (p, i)).collect()
    }

    /// Filtered smart branching's estimate (De Palma et al. 2021, as in alpha-beta-CROWN's
    /// FSB): for each candidate neuron, the lower bounds of the `spec` rows on its active and
    /// its inactive child, from one backward pass with the parent's final slopes and
    /// multipliers (`beta`, from [`BoundTable::beta_lower`] on this table) and the neuron's
    /// relaxation replaced by the identity or zero. Intermediate bounds are not recomputed: a
    /// heuristic for choosing the split, never a bound. `None` when the parent's state does not
    /// allow it (no recorded state, or MaxPool lines).
    pub fn split_estimates(
        &self,
        target: NodeId,
        spec: &[f64],
        rows: usize,
        beta: &BetaBounds,
        candidates: &[(NodeId, usize)],
    ) -> Result<Option<Vec<[Vec<f64>; 2]>>> {
        let g = self.graph;
        let Some((alpha, betas)) = beta.state.as_ref() else { return Ok(None) };
        if rows == 0 || candidates.is_empty() || alpha.iter().any(|a| matches!(a, Some(NodeAlpha::Pool(_)))) {
            return Ok(None);
        }
        // Each candidate's ReLU.
        let mut relus = Vec::with_capacity(candidates.len());
        for &(p, _) in candidates {
            let Some(relu) = g.nodes.iter().position(|n| matches!(n.op, Op::Relu(_)) && n.inputs.first() == Some(&p))
            else {
                return Ok(None);
            };
            // A candidate is unstable, so its ReLU has optimised lines whenever the parent had
            // any state at all.
            if !matches!(alpha.get(relu), Some(Some(NodeAlpha::Lines(_)))) {
                return Ok(None);
            }
            relus.push(relu);
        }
        let mut out: Vec<[Vec<f64>; 2]> = vec![Default::default(); candidates.len()];
        let mut layers = relus.clone();
        layers.sort_unstable();
        layers.dedup();
        for k in layers {
            let group: Vec<usize> = (0..candidates.len()).filter(|&c| relus[c] == k).collect();
            let neurons: Vec<usize> = group.iter().map(|&c| candidates[c].1).collect();
            // The children differ from the parent only at this ReLU: where every path from the
            // target down passes through it, the pass resumes there from the parent's final
            // matrix and constants instead of redoing the nodes above once per child.
            let resume = match (beta.lower_matrices.get(k), beta.bias_above.get(k)) {
                (Some(Some(m)), Some(Some(b))) if self.only_through(NodeId(k), target) => Some((m, b)),
                _ => None,
            };
            let (start, start_spec) = match resume {
                Some((m, _)) => (NodeId(k), &m[..]),
                None => (target, spec),
            };
            let lower = self.children_lower(start, start_spec, rows, alpha, betas, resume.is_some(), k, &neurons)?;
            for (n, &c) in group.iter().enumerate() {
                out[c] = [0, 1].map(|side| {
                    let at = (2 * n + side) * rows;
                    (0..rows)
                        .map(|r| match resume {
                            Some((_, above)) => add_down(above[r], lower[at + r]),
                            None => lower[at + r],
                        })
                        .collect()
                });
            }
        }
        Ok(Some(out))
    }

    /// Whether every node after `k` up to `target` reads only nodes from `k` on, so that a
    /// backward pass from `target` reaches the nodes before `k` only through `k`.
    fn only_through(&self, k: NodeId, target: NodeId) -> bool {
        self.graph.nodes[k.0 + 1..=target.0].iter().all(|n| n.inputs.iter().all(|p| p.0 >= k.0))
    }

    /// One batched backward pass from `start` (spec rows x its width, `rows` per copy) for the
    /// two children of each of the `neurons` of ReLU node `relu` (which has optimised lines):
    /// copy 2n + side has neuron n's line replaced by the identity (side 0) or zero.
    /// `resumed`: the pass starts below the target, whose part above already holds the split
    /// multipliers of the nodes from `start` on.
    #[allow(clippy::too_many_arguments)]
    fn children_lower(
        &self,
        start: NodeId,
        spec: &[f64],
        rows: usize,
        alpha: &[Option<NodeAlpha>],
        betas: &[BetaVar],
        resumed: bool,
        relu: usize,
        neurons: &[usize],
    ) -> Result<Vec<f64>> {
        let copies = 2 * neurons.len();
        let all = copies * rows;
        // Row q of the batch is candidate q / (2 rows), side (q / rows) % 2, parent row q % rows.
        let mut big_alpha: Vec<Option<NodeAlpha>> = alpha[..=start.0]
            .iter()
            .map(|a| match a {
                Some(NodeAlpha::Lines(v)) => Some(NodeAlpha::Lines(AlphaVars {
                    lo: v.lo.repeat(copies),
                    lo_off: v.lo_off.repeat(copies),
                    lo_pt: Vec::new(),
                    hi: v.hi.repeat(copies),
                    hi_off: v.hi_off.repeat(copies),
                    hi_pt: Vec::new(),
                    lim: v.lim.clone(),
                })),
                _ => None,
            })
            .collect();
        let w = self.graph.nodes[relu].shape.iter().product::<usize>();
        let Some(Some(NodeAlpha::Lines(v))) = big_alpha.get_mut(relu) else {
            return Err(Error::Shape(format!("node {relu} has no optimised ReLU lines")));
        };
        for (n, &i) in neurons.iter().enumerate() {
            for side in 0..2 {
                let slope = if side == 0 { 1.0 } else { 0.0 };
                for r in 0..rows {
                    let k = ((2 * n + side) * rows + r) * w + i;
                    (v.lo[k], v.hi[k], v.lo_off[k], v.hi_off[k]) = (slope, slope, 0.0, 0.0);
                }
            }
        }
        // Resumed: the recorded matrix at `start` holds the multipliers of the nodes from it on.
        let big_betas: Vec<BetaVar> = betas
            .iter()
            .filter(|b| !resumed || b.node < start.0)
            .map(|b| BetaVar { value: b.value.repeat(copies), ..b.clone() })
            .collect();
        let big_spec = spec.repeat(copies);
        debug_assert_eq!(big_spec.len(), all * (spec.len() / rows));
        Ok(self.backward_general(start, &big_spec, all, Some(&big_alpha), &big_betas, None)?.lower)
    }

    /// alpha-CROWN lower bounds of `spec` rows: each row optimised on its own, starting from
    /// CROWN's slopes and keeping the best sound bound seen (so never looser than CROWN).
    pub fn alpha_lower(&mut self, target: NodeId, spec: &[f64], rows: usize, opts: AlphaOptions) -> Result<Vec<f64>> {
        let crown = self.backward(target, spec, rows)?;
        self.alpha_rows(target, spec, rows, opts.final_iterations, opts, &crown.lower)
    }

    /// Optimises the slopes of every row (warm-started from CROWN's), keeping per row the best
    /// of `start` and every bound seen. Rows are independent and processed in parallel chunks,
    /// so the result does not depend on the number of threads.
    fn alpha_rows(
        &mut self,
        target: NodeId,
        spec: &[f64],
        rows: usize,
        iterations: usize,
        opts: AlphaOptions,
        start: &[f64],
    ) -> Result<Vec<f64>> {
        let needed = self.ensure_relaxations_upto(target)?;
        if rows == 0 || !self.has_alpha(target) {
            return Ok(start.to_vec());
        }
        let width = spec.len() / rows;
        // The pass records a matrix per node and the forward values (four copies); MaxPool's
        // optimised lines hold weights and two Adam moments per window cell on top.
        let widest = self.widest(&needed);
        let pool_cells: usize = (0..needed.len())
            .filter(|&id| needed[id])
            .filter_map(|id| match &self.graph.nodes[id].op {
                Op::MaxPool(mp) => mp.windows(&self.graph.nodes[self.graph.nodes[id].inputs[0].0].shape).ok(),
                _ => None,
            })
            .map(|w| w.cells.len())
            .sum();
        let chunk = self.chunk_rows(&needed, rows, 4 + (3 * pool_cells).div_ceil(widest));
        let this = &*self;
        let parts: Result<Vec<Vec<f64>>> = (0..rows)
            .step_by(chunk)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|s| {
                let e = (s + chunk).min(rows);
                this.alpha_chunk(
                    target,
                    &spec[s * width..e * width],
                    e - s,
                    iterations,
                    opts,
                    &start[s..e],
                    &[],
                    None,
                    None,
                    &[],
                )
            })
            .collect();
        Ok(parts?.concat())
    }

    /// Whether some node before `target` has lines to optimise.
    fn has_alpha(&self, target: NodeId) -> bool {
        (0..=target.0).any(|id| {
            let node = &self.graph.nodes[id];
            if self.relax[id].is_none() {
                return false;
            }
            if let Op::MaxPool(_) = node.op {
                return self.pool_lines(id, 1).is_some();
            }
            Self::alpha_range(&node.op).is_some()
                && self.bounds[node.inputs[0].0]
                    .as_ref()
                    .is_some_and(|b| b.lo.iter().zip(&b.hi).any(|(l, h)| Self::alpha_neuron(&node.op, *l, *h)))
        })
    }

    /// CROWN's MaxPool lower lines at node `id` for `rows` rows, ready to optimise; `None` when
    /// `id` is no MaxPool or no window of it is worth optimising.
    fn pool_lines(&self, id: usize, rows: usize) -> Option<PoolLines> {
        let node = &self.graph.nodes[id];
        let Op::MaxPool(mp) = &node.op else { return None };
        let b = self.bounds[node.inputs[0].0].as_ref()?;
        let windows = mp.windows(&self.graph.nodes[node.inputs[0].0].shape).ok()?;
        let best = crate::ops::MaxPool::best_cells(&windows, &b.lo, &b.hi).ok()?;
        PoolLines::new(windows, &best, &b.lo, &b.hi, rows)
    }

    /// alpha-CROWN (and beta-CROWN with `splits`: one multiplier per split and row, from 0)
    /// on one chunk of rows; with `last`, the lower matrices of the final pass are kept.
    #[allow(clippy::too_many_arguments)]
    fn alpha_chunk(
        &self,
        target: NodeId,
        spec: &[f64],
        rows: usize,
        iterations: usize,
        opts: AlphaOptions,
        start: &[f64],
        splits: &[NeuronSplit],
        last: Option<&mut Recording>,
        stop_above: Option<&[f64]>,
        warm: &[Option<&RowWarm>],
    ) -> Result<Vec<f64>> {
        let g = self.graph;
        let n_nodes = target.0 + 1;
        let mut betas: Vec<BetaVar> = splits
            .iter()
            .filter(|sp| sp.node.0 < n_nodes)
            .map(|sp| BetaVar {
                node: sp.node.0,
                index: sp.index,
                sign: if sp.active { 1.0 } else { -1.0 },
                value: vec![0.0; rows],
            })
            .collect();
        let warm_of = |r: usize| warm.get(r).copied().flatten();
        for bv in &mut betas {
            for (r, v) in bv.value.iter_mut().enumerate() {
                let inherited = warm_of(r).and_then(|w| {
                    w.betas.iter().find(|b| (b.0, b.1, b.2) == (bv.node, bv.index, bv.sign > 0.0)).map(|b| b.3)
                });
                *v = inherited.filter(|b| b.is_finite()).unwrap_or(0.0).max(0.0);
            }
        }
        // Initial slopes: CROWN's lines; NaN marks lines that stay fixed.
        let mut alpha: Vec<Option<NodeAlpha>> = vec![None; n_nodes];
        let mut range: Vec<Option<AlphaRange>> = vec![None; n_nodes];
        for id in 0..n_nodes {
            let node = &g.nodes[id];
            if self.relax[id].is_some() {
                if let Some(pl) = self.pool_lines(id, rows) {
                    alpha[id] = Some(NodeAlpha::Pool(pl));
                    continue;
                }
            }
            let (Some(rg), Some(rel)) = (Self::alpha_range(&node.op), self.relax[id].as_deref()) else { continue };
            let b = self.bounds[node.inputs[0].0].as_ref().expect("computed");
            let (lmap, umap) = (rel.lower(), rel.upper());
            let open: Vec<bool> = (0..b.lo.len()).map(|j| Self::alpha_neuron(&node.op, b.lo[j], b.hi[j])).collect();
            if !open.iter().any(|&o| o) {
                continue;
            }
            let lo: Vec<f64> = (0..b.lo.len())
                .map(|j| if open[j] { lmap.parts[0].diag(j).clamp(rg.lo.0, rg.lo.1) } else { f64::NAN })
                .collect();
            let hi: Vec<f64> = (0..b.lo.len())
                .map(|j| match rg.hi {
                    Some(h) if open[j] => umap.parts[0].diag(j).clamp(h.0, h.1),
                    _ => f64::NAN,
                })
                .collect();
            let n = lo.len() * rows;
            let lim: Vec<(f64, f64)> =
                (0..b.lo.len()).map(|j| Self::slope_limits(&node.op, rg.lo, b.lo[j], b.hi[j])).collect();
            let lo: Vec<f64> =
                lo.iter().zip(&lim).map(|(a, l)| if a.is_nan() { *a } else { a.clamp(l.0, l.1) }).collect();
            let hi: Vec<f64> =
                hi.iter().zip(&lim).map(|(a, l)| if a.is_nan() { *a } else { a.clamp(l.0, l.1) }).collect();
            let mut v = AlphaVars {
                lo: lo.repeat(rows),
                lo_off: vec![0.0; n],
                lo_pt: vec![0.0; n],
                hi: hi.repeat(rows),
                hi_off: vec![0.0; n],
                hi_pt: vec![0.0; n],
                lim,
            };
            // A parent's slopes where both it and this subdomain optimise the line.
            let w = v.lim.len();
            for r in 0..rows {
                let Some((_, wlo, whi)) = warm_of(r).and_then(|wr| wr.lines.iter().find(|l| l.0 == id)) else {
                    continue;
                };
                for (j, &(smin, smax)) in v.lim.iter().enumerate() {
                    let k = r * w + j;
                    if let Some(&a) = wlo.get(j).filter(|a| !a.is_nan() && !v.lo[k].is_nan()) {
                        v.lo[k] = f64::from(a).clamp(smin, smax);
                    }
                    if let Some(&a) = whi.get(j).filter(|a| !a.is_nan() && !v.hi[k].is_nan()) {
                        v.hi[k] = f64::from(a).clamp(smin, smax);
                    }
                }
            }
            self.alpha_offsets(id, &mut v);
            alpha[id] = Some(NodeAlpha::Lines(v));
            range[id] = Some(rg);
        }
        let mut best = start.to_vec();
        if alpha.iter().all(|a| a.is_none()) && betas.is_empty() {
            return Ok(best);
        }
        let (mut bm1, mut bm2) = (vec![0.0; betas.len() * rows], vec![0.0; betas.len() * rows]);
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        // Adam moments per slope: lower lines, then upper lines.
        let zeros = |a: &Option<NodeAlpha>| {
            a.as_ref().map(|v| match v {
                NodeAlpha::Lines(v) => vec![0.0; 2 * v.lo.len()],
                NodeAlpha::Pool(p) => vec![0.0; p.w.len()],
            })
        };
        let mut m1: Vec<Option<Vec<f64>>> = alpha.iter().map(zeros).collect();
        let mut m2 = m1.clone();
        let mut lr = opts.learning_rate;
        // Per row, the state of its best bound so far (only when the caller records).
        let keep = last.is_some();
        let mut snap: Vec<Option<RowWarm>> = vec![None; if keep { rows } else { 0 }];
        let mut history: Vec<Vec<f64>> = Vec::with_capacity(iterations);
        for it in 0..iterations {
            let mut rec = Recording { la: vec![None; n_nodes], ..Recording::default() };
            let b = self.backward_general(target, spec, rows, Some(&alpha), &betas, Some(&mut rec))?;
            for (r, (bst, v)) in best.iter_mut().zip(&b.lower).enumerate() {
                if keep && *v > *bst {
                    snap[r] = Some(Self::row_state(&alpha, &betas, r));
                }
                *bst = bst.max(*v);
            }
            if rec.x_star.is_empty() || stop_above.is_some_and(|t| best.iter().zip(t).all(|(b, t)| b > t)) {
                break;
            }
            // No open row can close in the steps left at its recent pace (doubled): stop; the
            // children start from this state anyway.
            history.push(best.clone());
            if let (Some(t), true) = (stop_above, it >= STALL_WINDOW + 2) {
                let before = &history[it - STALL_WINDOW];
                let left = (iterations - 1 - it) as f64;
                let hopeless = best
                    .iter()
                    .zip(before)
                    .zip(t)
                    .all(|((b, b0), t)| *b > *t || 2.0 * (b - b0) / STALL_WINDOW as f64 * left < t - b);
                if hopeless {
                    break;
                }
            }
            // A row's bound is the relaxed network's value at its x*: its derivative in a slope
            // is the matrix entry reaching the neuron times (input value - touching point).
            let values = self.relaxed_forward(target, &rec, &alpha, rows);
            let (c1, c2) = (1.0 - b1.powi(it as i32 + 1), 1.0 - b2.powi(it as i32 + 1));
            for id in 0..n_nodes {
                let (Some(ma), Some(va)) = (m1[id].as_mut(), m2[id].as_mut()) else { continue };
                let (Some(la), Some(x)) = (rec.la[id].as_ref(), values[g.nodes[id].inputs[0].0].as_ref()) else {
                    continue;
                };
                let v = match alpha[id].as_mut() {
                    Some(NodeAlpha::Pool(pl)) => {
                        let n_in = x.len() / rows.max(1);
                        pl.adam_step(la, x, rows, n_in, lr, (ma, va), (c1, c2));
                        continue;
                    }
                    Some(NodeAlpha::Lines(v)) => v,
                    None => continue,
                };
                let Some(rg) = range[id] else { continue };
                // Smooth functions: the bound moves fast with the slope (every line is tight
                // somewhere), so smaller steps (measured on the ERAN sigmoid nets).
                let step_scale = if rg.hi.is_some() { 0.05 } else { 1.0 };
                let n = v.lo.len();
                let w = v.lim.len();
                // Row by row: the neuron's index without a division per entry.
                for (i, &(smin, smax)) in (0..n / w.max(1)).flat_map(|_| v.lim.iter()).enumerate() {
                    let (slope, pt, k) = if la[i] > 0.0 {
                        (&mut v.lo[i], v.lo_pt[i], i)
                    } else if la[i] < 0.0 && rg.hi.is_some() {
                        (&mut v.hi[i], v.hi_pt[i], n + i)
                    } else {
                        continue;
                    };
                    if slope.is_nan() {
                        continue;
                    }
                    let grad = la[i] * (x[i] - pt);
                    ma[k] = b1 * ma[k] + (1.0 - b1) * grad;
                    va[k] = b2 * va[k] + (1.0 - b2) * grad * grad;
                    let (mh, vh) = (ma[k] / c1, va[k] / c2);
                    // Steps in proportion to the slope range (ReLU's is [0, 1]).
                    *slope = (*slope + lr * (smax - smin) * step_scale * mh / (vh.sqrt() + eps)).clamp(smin, smax);
                }
                if rg.hi.is_some() {
                    self.alpha_offsets(id, v);
                }
            }
            // The bound's derivative in a split's multiplier is -s z_i at x* (the relaxed
            // network's value there); ascent, projected onto beta >= 0.
            let beta_lr = lr / opts.learning_rate * opts.beta_learning_rate;
            for (k, bv) in betas.iter_mut().enumerate() {
                let Some(z) = values[bv.node].as_ref() else { continue };
                let w = z.len() / rows.max(1);
                for r in 0..rows {
                    let grad = -bv.sign * z[r * w + bv.index];
                    let q = k * rows + r;
                    bm1[q] = b1 * bm1[q] + (1.0 - b1) * grad;
                    bm2[q] = b2 * bm2[q] + (1.0 - b2) * grad * grad;
                    let (mh, vh) = (bm1[q] / c1, bm2[q] / c2);
                    bv.value[r] = (bv.value[r] + beta_lr * mh / (vh.sqrt() + eps)).max(0.0);
                }
            }
            lr *= opts.lr_decay;
        }
        let mut rec = Recording { la: vec![None; n_nodes], bias: vec![None; n_nodes], ..Recording::default() };
        let b = self.backward_general(target, spec, rows, Some(&alpha), &betas, last.is_some().then_some(&mut rec))?;
        for (r, (bst, v)) in best.iter_mut().zip(&b.lower).enumerate() {
            if keep && (*v > *bst || snap[r].is_none()) {
                snap[r] = Some(Self::row_state(&alpha, &betas, r));
            }
            *bst = bst.max(*v);
        }
        if let Some(out) = last {
            rec.warm = snap.into_iter().map(Option::unwrap_or_default).collect();
            rec.state = Some((alpha, betas));
            *out = rec;
        }
        Ok(best)
    }

    /// Row `r`'s optimised slopes and multipliers (see [`RowWarm`]).
    fn row_state(alpha: &[Option<NodeAlpha>], betas: &[BetaVar], r: usize) -> RowWarm {
        let lines = alpha
            .iter()
            .enumerate()
            .filter_map(|(id, a)| match a {
                Some(NodeAlpha::Lines(v)) => {
                    let w = v.lim.len();
                    let lo: Vec<f32> = v.lo[r * w..(r + 1) * w].iter().map(|&a| a as f32).collect();
                    let hi = &v.hi[r * w..(r + 1) * w];
                    let hi: Vec<f32> =
                        if hi.iter().all(|a| a.is_nan()) { Vec::new() } else { hi.iter().map(|&a| a as f32).collect() };
                    Some((id, lo, hi))
                }
                _ => None,
            })
            .collect();
        let betas = betas.iter().map(|b| (b.node, b.index, b.sign > 0.0, b.value[r])).collect();
        RowWarm { lines, betas }
    }

    /// Every node's value (rows x width) at each row's recorded x* through the lines that
    /// row's lower pass chose (lower lines where its matrix entry is >= 0, upper ones elsewhere).
    fn relaxed_forward(
        &self,
        target: NodeId,
        rec: &Recording,
        alpha: &[Option<NodeAlpha>],
        rows: usize,
    ) -> Vec<Option<Vec<f64>>> {
        let g = self.graph;
        let mut vals: Vec<Option<Vec<f64>>> = vec![None; target.0 + 1];
        for id in 0..=target.0 {
            let node = &g.nodes[id];
            if let Op::Input(_) = node.op {
                vals[id] = Some(rec.x_star.clone());
                continue;
            }
            let Some(rel) = self.relax[id].as_deref() else { continue };
            if node.inputs.iter().any(|p| vals[p.0].is_none()) {
                continue;
            }
            let eval = |m: &AffineMap| {
                let mut y = m.offset.repeat(rows);
                for (k, p) in node.inputs.iter().enumerate() {
                    m.parts[k].apply_rows_add_skipping_zeros(vals[p.0].as_ref().unwrap(), rows, &mut y);
                }
                y
            };
            let v = match rel {
                Relaxation::Affine(m) => eval(m),
                Relaxation::Bounds { lower, upper } => {
                    let (mut lo, mut up) = (eval(lower), eval(upper));
                    let x = vals[node.inputs[0].0].as_ref().unwrap();
                    if let Some(NodeAlpha::Pool(pl)) = alpha[id].as_ref() {
                        lo = pl.eval(x, rows, x.len() / rows.max(1));
                    }
                    if let Some(NodeAlpha::Lines(a)) = alpha[id].as_ref() {
                        for i in 0..lo.len() {
                            if !a.lo[i].is_nan() {
                                lo[i] = a.lo[i] * x[i] + a.lo_off[i];
                            }
                            if !a.hi[i].is_nan() {
                                up[i] = a.hi[i] * x[i] + a.hi_off[i];
                            }
                        }
                    }
                    match rec.la[id].as_ref() {
                        Some(la) => (0..lo.len()).map(|i| if la[i] >= 0.0 { lo[i] } else { up[i] }).collect(),
                        None => lo,
                    }
                }
            };
            vals[id] = Some(v);
        }
        vals
    }
}
