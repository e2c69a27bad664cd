//! Tightening intermediate bounds by branch and bound before the main search: the role MIP
//! plays in alpha-beta-CROWN's `bab-refine` mode (Wang et al. 2021, following Tjeng et al.
//! 2019's bound tightening), done here with beta-CROWN branch and bound so that every bound
//! is sound in floating point. For each unstable neuron of a pre-activation layer, a small
//! ReLU-splitting branch and bound over the earlier layers bounds the neuron's lower bound
//! (and, separately, its upper bound); the minimum over its leaves is a sound bound on the
//! whole region. Neurons it proves stable make every later relaxation exact there.

use super::CaseRows;
use crate::bounds::{crown_with_splits, AffineCache, Interval, NeuronSplit, Prior, RowWarm};
use crate::error::Result;
use crate::ir::{Graph, NodeId};
use crate::ops::Op;
use crate::spec::Region;
use rayon::prelude::*;
use std::collections::BinaryHeap;
use std::time::Instant;

/// beta-CROWN steps per subdomain of a neuron's branch and bound.
const ITERATIONS: usize = 20;

/// Subdomains per neuron bound in the first round (tripled in each next one): enough to settle
/// the neurons near 0 (measured on mnist_fc 256x4 prop_11_0.05: 30 make 21 of the second
/// layer's 70 unstable neurons stable, in a second).
const FIRST_BUDGET: usize = 30;

/// Refinement stops once a layer of the first round, or a whole later round, lifts the worst
/// open margin by less than this fraction of it.
const MIN_GAIN: f64 = 0.05;

/// Counters of one refinement.
#[derive(Clone, Debug, Default)]
pub struct RefineStats {
    /// Neuron bounds (lower or upper) searched.
    pub searched: usize,
    /// Of those, how many ended on the safe side of 0 (the neuron became stable).
    pub stabilised: usize,
    /// Subdomains bounded.
    pub subdomains: usize,
    /// Layers refined.
    pub layers: usize,
}

/// A subdomain of one neuron bound's search; `score` is its lower bound.
struct Leaf {
    score: f64,
    splits: Vec<NeuronSplit>,
    warm: Option<RowWarm>,
    next: Option<(NodeId, usize)>,
}

worst_first!(Leaf);

/// The pre-activation nodes feeding ReLUs, in graph order.
pub fn relu_inputs(graph: &Graph) -> Vec<NodeId> {
    graph.nodes.iter().filter(|n| matches!(n.op, Op::Relu(_))).map(|n| n.inputs[0]).collect()
}

/// Bounds one subdomain of neuron `spec` (a unit row, signed, over `node`): beta-CROWN's lower
/// bound with the neuron to split next; `None` when the splits leave nothing.
#[allow(clippy::too_many_arguments)]
fn bound_leaf(
    graph: &Graph,
    region: &Region,
    bounds: &[Option<Interval>],
    node: NodeId,
    spec: &[f64],
    splits: Vec<NeuronSplit>,
    warm: Option<&RowWarm>,
    cache: &AffineCache,
) -> Result<Option<Leaf>> {
    let Some((b, mut table)) =
        crown_with_splits(graph, region, node, spec, 1, &splits, Prior::Parent(bounds), Some(cache))?
    else {
        return Ok(None);
    };
    let start = [b.lower[0]];
    let mut beta = table.beta_lower(node, spec, 1, &splits, ITERATIONS, &start, Some(&[0.0]), &[warm])?;
    let bound = beta.lower[0].max(b.lower[0]);
    let next = table.babsr_candidates(&beta.lower_matrices, 1, &splits, 1).first().copied();
    let warm = beta.warm.pop();
    Ok(Some(Leaf { score: bound, splits, warm, next }))
}

/// A sound lower bound of `sign * x_index` of `node` on the region, by branch and bound with at
/// most `budget` subdomains; stops early once every leaf is above 0.
#[allow(clippy::too_many_arguments)]
fn search(
    graph: &Graph,
    region: &Region,
    bounds: &[Option<Interval>],
    node: NodeId,
    index: usize,
    sign: f64,
    budget: usize,
    deadline: Instant,
    cache: &AffineCache,
) -> Result<(f64, usize)> {
    let width = bounds[node.0].as_ref().map_or(0, |b| b.lo.len());
    let mut spec = vec![0.0; width];
    spec[index] = sign;
    let mut used = 1;
    let Some(root) = bound_leaf(graph, region, bounds, node, &spec, Vec::new(), None, cache)? else {
        return Ok((f64::INFINITY, used));
    };
    let mut closed = f64::INFINITY;
    let mut heap = BinaryHeap::new();
    heap.push(root);
    while let Some(worst) = heap.pop() {
        if worst.score > 0.0 || used + 2 > budget || Instant::now() >= deadline {
            heap.push(worst);
            break;
        }
        let Some((n, i)) = worst.next else {
            heap.push(worst);
            break;
        };
        for active in [true, false] {
            let mut s = worst.splits.clone();
            s.push(NeuronSplit { node: n, index: i, active });
            used += 1;
            if let Some(child) = bound_leaf(graph, region, bounds, node, &spec, s, worst.warm.as_ref(), cache)? {
                // A child can only be tighter than its parent.
                let child = Leaf { score: child.score.max(worst.score), ..child };
                if child.score > 0.0 {
                    closed = closed.min(child.score);
                } else {
                    heap.push(child);
                }
            }
        }
    }
    let open = heap.iter().map(|l| l.score).fold(f64::INFINITY, f64::min);
    Ok((open.min(closed), used))
}

/// Tightens the bounds of `node`'s unstable neurons in `bounds` (bounds on the whole region
/// of every node up to it), each bound by at most `budget` subdomains, until `deadline`.
pub fn refine_node(
    graph: &Graph,
    region: &Region,
    bounds: &mut [Option<Interval>],
    node: NodeId,
    budget: usize,
    deadline: Instant,
    cache: &AffineCache,
) -> Result<RefineStats> {
    let Some(iv) = bounds[node.0].clone() else { return Ok(RefineStats::default()) };
    let mut unstable: Vec<usize> = (0..iv.lo.len()).filter(|&i| iv.lo[i] < 0.0 && iv.hi[i] > 0.0).collect();
    // Nearest to stable first (the deadline may cut the layer short): the smaller side of 0
    // as a fraction of the width.
    let nearness = |i: usize| (-iv.lo[i]).min(iv.hi[i]) / (iv.hi[i] - iv.lo[i]);
    unstable.sort_by(|&a, &b| nearness(a).total_cmp(&nearness(b)));
    let jobs: Vec<(usize, f64)> = unstable.iter().flat_map(|&i| [(i, 1.0), (i, -1.0)]).collect();
    let snapshot: Vec<Option<Interval>> = bounds.to_vec();
    let found: Vec<Result<(f64, usize)>> = jobs
        .par_iter()
        .map(|&(i, sign)| {
            if Instant::now() >= deadline {
                return Ok((f64::NEG_INFINITY, 0));
            }
            search(graph, region, &snapshot, node, i, sign, budget, deadline, cache)
        })
        .collect();
    let mut stats = RefineStats::default();
    let b = bounds[node.0].as_mut().expect("present");
    for (&(i, sign), r) in jobs.iter().zip(found) {
        let (v, used) = r?;
        if used == 0 {
            continue;
        }
        stats.searched += 1;
        stats.subdomains += used;
        if !v.is_finite() {
            continue;
        }
        if v > 0.0 {
            stats.stabilised += 1;
        }
        if sign > 0.0 {
            b.lo[i] = b.lo[i].max(v);
        } else {
            b.hi[i] = b.hi[i].min(-v);
        }
    }
    Ok(stats)
}

/// What refinement leaves for the branch and bound.
pub(crate) struct Refined {
    /// The groups alpha-CROWN still leaves open on the refined bounds.
    pub still: Vec<usize>,
    /// Every node's bounds on the region.
    pub bounds: Vec<Option<Interval>>,
    pub stats: RefineStats,
}

/// Refines the intermediate bounds `root` (alpha-CROWN's on `region`, which leaves the groups
/// `open` open with worst margin `score`) layer by layer until `deadline`, re-running
/// alpha-CROWN on the later layers and the rows after each; stops when the rows close, when a
/// layer gains too little, or when the time is up. Models with nonlinear operators other than
/// ReLU are left as they are.
pub(crate) fn refine_case(
    graph: &Graph,
    rows: &CaseRows,
    region: &Region,
    open: Vec<usize>,
    score: f64,
    root: Vec<Option<Interval>>,
    deadline: Instant,
) -> Result<Refined> {
    let mut done = Refined { still: open, bounds: root, stats: RefineStats::default() };
    let only_relu = graph
        .nodes
        .iter()
        .all(|n| matches!(n.op, Op::Relu(_) | Op::Input(_)) || crate::bounds::propagate::is_bound_free_affine(&n.op));
    let first_relu = graph.nodes.iter().position(|n| matches!(n.op, Op::Relu(_)));
    let (true, Some(first_relu)) = (only_relu, first_relu) else { return Ok(done) };
    // The first ReLU layer's inputs depend on no ReLU: nothing to split for them.
    let layers: Vec<NodeId> = relu_inputs(graph).into_iter().filter(|n| n.0 > first_relu).collect();
    let cache = AffineCache::new(graph);
    let mut last = score;
    // Rounds over the layers with a growing budget per neuron bound, each starting from the
    // bounds of the last, while the rows stay open and the time lasts.
    let mut budget = FIRST_BUDGET;
    'rounds: loop {
        let round_start = last;
        let first = budget == FIRST_BUDGET;
        for (k, &node) in layers.iter().enumerate() {
            let now = Instant::now();
            if now >= deadline || done.bounds.get(node.0).is_none_or(|b| b.is_none()) {
                break 'rounds;
            }
            // An equal share of the time left for each layer left in the round.
            let share = deadline.saturating_duration_since(now) / (layers.len() - k) as u32;
            let st = refine_node(graph, region, &mut done.bounds, node, budget, now + share, &cache)?;
            done.stats.searched += st.searched;
            done.stats.stabilised += st.stabilised;
            done.stats.subdomains += st.subdomains;
            done.stats.layers += 1;
            // The later layers and the rows again, on the refined bounds (the later layers' bounds
            // of earlier rounds still hold: the new ones are intersected with them).
            let (still, now_score, bounds) =
                rows.bound_alpha(graph, region, &done.still, Some((&done.bounds, node)))?;
            done.still = still;
            if bounds.len() == done.bounds.len() {
                done.bounds = bounds;
            }
            if done.still.is_empty() {
                break 'rounds;
            }
            // In the first round, a layer that gains too little ends the refinement.
            if first && gain(last, now_score) < MIN_GAIN {
                break 'rounds;
            }
            last = now_score;
        }
        if gain(round_start, last) < MIN_GAIN {
            break;
        }
        budget *= 3;
    }
    Ok(done)
}

/// How much a margin rose from `before` to `after`, as a fraction of `before`'s size (0 when
/// either is not finite: nothing to measure).
fn gain(before: f64, after: f64) -> f64 {
    let g = (after - before) / before.abs().max(f64::MIN_POSITIVE);
    if g.is_finite() {
        g
    } else {
        0.0
    }
}
