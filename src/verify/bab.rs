//! Branch and bound by input splitting (as in ReluVal / alpha-beta-CROWN's input split): the
//! open subdomain with the worst bound is split in two along the input dimension with the
//! largest width x |gradient| product at its centre, each half is bounded by CROWN, and halves
//! on which every disjunct is provably unreachable are closed. Rounds of subdomains are bounded
//! in parallel with rayon. Every subdomain's centre, and the point minimising its worst open
//! row's CROWN bound, are also tried as counterexamples. Once the search has run a second,
//! subdomains CROWN leaves open get a few steps of alpha-CROWN (Xu et al. 2021) before they are
//! split (alpha-beta-CROWN's "enhanced bound" on ACAS Xu).
//!
//! For high-dimensional inputs, branch and bound by ReLU splitting (Bunel et al. 2020; bounds
//! by beta-CROWN, Wang et al. 2021): a subdomain is a set of neurons fixed active (>= 0) or
//! inactive (<= 0), enforced through their intermediate bounds and, by Lagrange multipliers,
//! in the final bound; the two children of a split cover the parent. The neuron to split is
//! chosen by filtered smart branching (De Palma et al. 2021): BaBSR's intercept score names a
//! few candidates, and one backward pass with the parent's slopes and multipliers estimates
//! each one's children. Children start their optimisation where the parent's stopped (as
//! alpha-beta-CROWN does). Every subdomain's bound minimiser is a candidate counterexample.

use super::{CaseRows, Inherited, InputBound, Options, SubdomainBound};
use crate::attack::check_point;
use crate::attack::gradient::value_and_grad;
use crate::attack::pgd::{pgd_from, to_f32_in_box};
use crate::attack::PgdOptions;
use crate::bounds::propagate::AlphaOptions;
use crate::bounds::{AffineCache, Interval, NeuronSplit};
use crate::error::Result;
use crate::ir::{Graph, NodeId};
use crate::spec::vnnlib::Case;
use crate::spec::Region;
use rayon::prelude::*;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Counters of a branch-and-bound run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BabStats {
    /// Subdomains bounded (including whole boxes).
    pub domains: usize,
    /// Largest number of open subdomains at once.
    pub max_open: usize,
    /// Subdomains bounded while refining intermediate bounds (see `refine`).
    pub refine_subdomains: usize,
}

/// How one case ended.
#[derive(Clone, Debug, PartialEq)]
pub enum CaseResult {
    Unsat,
    /// A candidate counterexample (checked in f32/f64 against the case's goal).
    Sat(Vec<f32>),
    Timeout,
    Unknown(String),
}

/// The next round of subdomains (worst first), or how the search ends: the deadline passed,
/// or too many subdomains are open.
fn next_round<T: Ord>(
    heap: &mut BinaryHeap<T>,
    opts: &Options,
    deadline: Instant,
) -> std::result::Result<Vec<T>, CaseResult> {
    if Instant::now() >= deadline {
        return Err(CaseResult::Timeout);
    }
    if heap.len() > opts.max_domains {
        return Err(CaseResult::Unknown(format!("more than {} open subdomains", opts.max_domains)));
    }
    let mut batch = Vec::with_capacity(opts.batch);
    while batch.len() < opts.batch.max(1) {
        match heap.pop() {
            Some(d) => batch.push(d),
            None => break,
        }
    }
    Ok(batch)
}

struct Domain {
    lo: Vec<f64>,
    hi: Vec<f64>,
    open: Vec<usize>,
    score: f64,
    split: usize,
    /// The two halves' bounds, when the choice of `split` already computed them.
    halves: Option<Box<[InputBound; 2]>>,
}

worst_first!(Domain);

/// The dimension to split: largest width x (|gradient| + 1e-3 max|gradient|) of the first open
/// group's first row at the centre (falls back to the widest dimension).
fn choose_split(graph: &Graph, rows: &CaseRows, lo: &[f64], hi: &[f64], open: &[usize]) -> usize {
    let widest = || (0..lo.len()).max_by(|&a, &b| (hi[a] - lo[a]).total_cmp(&(hi[b] - lo[b]))).unwrap_or(0);
    let g = &rows.goal;
    let Some(row) = open.iter().flat_map(|&k| g.groups[k].iter().copied()).next() else {
        return widest();
    };
    let center: Vec<f64> = lo.iter().zip(hi).map(|(l, h)| l + (h - l) / 2.0).collect();
    let c = &g.c[row * g.width..(row + 1) * g.width];
    match value_and_grad(graph, &center, super::output_node(graph), c, 1) {
        Ok((_, grad)) => {
            let m = grad.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            if !(m > 0.0 && m.is_finite()) {
                return widest();
            }
            (0..lo.len())
                .max_by(|&a, &b| {
                    let sa = (hi[a] - lo[a]) * (grad[a].abs() + 1e-3 * m);
                    let sb = (hi[b] - lo[b]) * (grad[b].abs() + 1e-3 * m);
                    sa.total_cmp(&sb)
                })
                .unwrap_or(0)
        }
        Err(_) => widest(),
    }
}

/// The lower and upper half of [lo, hi] split at the middle of dimension `i`.
fn halves(lo: &[f64], hi: &[f64], i: usize) -> [(Vec<f64>, Vec<f64>); 2] {
    let mid = lo[i] + (hi[i] - lo[i]) / 2.0;
    let (mut hi1, mut lo2) = (hi.to_vec(), lo.to_vec());
    hi1[i] = mid;
    lo2[i] = mid;
    [(lo.to_vec(), hi1), (lo2, hi.to_vec())]
}

/// Both halves' bounds for a split along dimension `i`, and how near to closing the worse of
/// them is (the smaller score).
fn look_ahead(
    graph: &Graph,
    rows: &CaseRows,
    lo: &[f64],
    hi: &[f64],
    open: &[usize],
    i: usize,
) -> Result<(f64, [InputBound; 2])> {
    let [(l1, h1), (l2, h2)] = halves(lo, hi, i);
    let a = rows.bound_with_candidate(graph, &l1, &h1, open)?;
    let b = rows.bound_with_candidate(graph, &l2, &h2, open)?;
    Ok((a.score.min(b.score), [a, b]))
}

enum Child {
    Closed,
    Open(Domain),
    Witness(Vec<f32>),
    Tiny,
}

/// Bounds one subdomain (or takes `known`, its bounds computed by the look ahead of its
/// parent), then by alpha-CROWN with `alpha` when set, tries its candidate counterexamples and
/// picks its split.
fn process(
    graph: &Graph,
    rows: &CaseRows,
    (lo, hi, open): (Vec<f64>, Vec<f64>, Vec<usize>),
    known: Option<InputBound>,
    alpha: Option<AlphaOptions>,
) -> Result<Child> {
    let out = super::output_node(graph);
    let center: Vec<f64> = lo.iter().zip(&hi).map(|(l, h)| l + (h - l) / 2.0).collect();
    let x = to_f32_in_box(&center, &lo, &hi);
    if check_point(graph, out, &rows.goal, &x)?.is_some() {
        return Ok(Child::Witness(x));
    }
    let InputBound { still, score, candidate, width_cost } = match known {
        Some(b) => b,
        None => rows.bound_with_candidate(graph, &lo, &hi, &open)?,
    };
    if still.is_empty() {
        return Ok(Child::Closed);
    }
    // Past the patience, subdomains CROWN leaves open get a few steps of alpha-CROWN (optimised
    // slopes, intermediate bounds included): several times CROWN's cost, far fewer subdomains.
    let (still, score) = match alpha {
        Some(o) => {
            let (tighter, q) = rows.bound_alpha_lower(graph, &lo, &hi, &still, o)?;
            if tighter.is_empty() {
                return Ok(Child::Closed);
            }
            (tighter, q.max(score))
        }
        None => (still, score),
    };
    if let Some(c) = candidate {
        let x = to_f32_in_box(&c, &lo, &hi);
        if check_point(graph, out, &rows.goal, &x)?.is_some() {
            return Ok(Child::Witness(x));
        }
    }
    if lo.iter().zip(&hi).all(|(l, h)| h - l <= 1e-9 * (1.0 + l.abs().max(h.abs()))) {
        return Ok(Child::Tiny);
    }
    // Two candidate dimensions: the one whose width costs the open groups' bounds most, and the
    // one along which the output moves most (gradient at the centre). When they differ, each
    // is tried and the one whose worse half comes nearer to closing wins.
    let by_cost = width_cost.and_then(|c| {
        let i = (0..c.len()).max_by(|&a, &b| c[a].total_cmp(&c[b]))?;
        (c[i] > 0.0).then_some(i)
    });
    let by_grad = choose_split(graph, rows, &lo, &hi, &still);
    let (split, halves) = match by_cost {
        Some(c) if c != by_grad => {
            let (qc, hc) = look_ahead(graph, rows, &lo, &hi, &still, c)?;
            let (qg, hg) = look_ahead(graph, rows, &lo, &hi, &still, by_grad)?;
            if qc > qg {
                (c, Some(Box::new(hc)))
            } else {
                (by_grad, Some(Box::new(hg)))
            }
        }
        _ => (by_grad, None),
    };
    Ok(Child::Open(Domain { lo, hi, open: still, score, split, halves }))
}

/// How long input splitting runs on CROWN bounds alone: most instances that need it end
/// sooner, and those that do not need tighter bounds more than many subdomains (alpha-beta-
/// CROWN's "enhanced bound patience" on ACAS Xu).
const INPUT_SPLIT_PATIENCE: Duration = Duration::from_secs(1);

/// alpha-CROWN's settings past the patience: 3 steps for each intermediate layer's bounds and
/// for the rows. Measured on ACAS Xu 4_2 prop_2: 3 steps closed it in 19 s (5153 subdomains),
/// 8 steps in 23 s (3491); CROWN alone had 52,000 subdomains open at 60 s.
fn input_split_alpha() -> AlphaOptions {
    AlphaOptions { iterations: 3, final_iterations: 3, ..AlphaOptions::default() }
}

/// Branch and bound over one case's box, starting with the disjuncts `open` that CROWN did not
/// close on the whole box.
pub fn input_split(
    graph: &Graph,
    rows: &CaseRows,
    case: &Case,
    open: Vec<usize>,
    opts: &Options,
    stats: &mut BabStats,
) -> Result<CaseResult> {
    let started = Instant::now();
    let mut heap = BinaryHeap::new();
    let split = choose_split(graph, rows, &case.lo, &case.hi, &open);
    heap.push(Domain { lo: case.lo.clone(), hi: case.hi.clone(), open, score: f64::NEG_INFINITY, split, halves: None });
    let mut tiny = false;
    while !heap.is_empty() {
        let batch = match next_round(&mut heap, opts, opts.deadline) {
            Ok(b) => b,
            Err(end) => return Ok(end),
        };
        let jobs: Vec<((Vec<f64>, Vec<f64>, Vec<usize>), Option<InputBound>)> = batch
            .into_iter()
            .flat_map(|d| {
                let [(l1, h1), (l2, h2)] = halves(&d.lo, &d.hi, d.split);
                let [k1, k2] = match d.halves {
                    Some(b) => {
                        let [a, b] = *b;
                        [Some(a), Some(b)]
                    }
                    None => [None, None],
                };
                [((l1, h1, d.open.clone()), k1), ((l2, h2, d.open), k2)]
            })
            .collect();
        stats.domains += jobs.len();
        let alpha = (started.elapsed() >= INPUT_SPLIT_PATIENCE).then(input_split_alpha);
        let results: Vec<Result<Child>> =
            jobs.into_par_iter().map(|(job, known)| process(graph, rows, job, known, alpha)).collect();
        for r in results {
            match r? {
                Child::Closed => {}
                Child::Open(d) => heap.push(d),
                Child::Witness(x) => return Ok(CaseResult::Sat(x)),
                Child::Tiny => tiny = true,
            }
        }
        stats.max_open = stats.max_open.max(heap.len());
    }
    if tiny {
        return Ok(CaseResult::Unknown("a subdomain shrank to floating-point width without being closed".into()));
    }
    Ok(CaseResult::Unsat)
}

/// beta-CROWN steps per subdomain (slopes and split multipliers from CROWN's and 0).
const BETA_ITERATIONS: usize = 20;

struct SplitDomain {
    /// Its share of the open subdomains' memory (see [`Options::open_memory`]).
    bytes: usize,
    splits: Vec<NeuronSplit>,
    open: Vec<usize>,
    score: f64,
    next: (NodeId, usize),
    /// What its active and its inactive child inherit.
    children: [Inherited; 2],
}

worst_first!(SplitDomain);

/// Branch and bound by ReLU splitting over one case's box until `deadline`, starting with the
/// disjuncts `open` that bound propagation left open. `Unsat` only when every subdomain is
/// closed; a subdomain with no unstable neuron left and still open ends in `Unknown` (the
/// relaxation is then exact up to the input box, but a proof would need more).
#[allow(clippy::too_many_arguments)]
pub fn relu_split(
    graph: &Graph,
    rows: &CaseRows,
    case: &Case,
    open: Vec<usize>,
    root: &[Option<Interval>],
    opts: &Options,
    deadline: Instant,
    stats: &mut BabStats,
) -> Result<CaseResult> {
    let region = Region::from_box(case.lo.clone(), case.hi.clone())?;
    let prior = (!root.is_empty()).then_some(root);
    let cache = AffineCache::new(graph);
    let bound = |open: &[usize], splits: &[NeuronSplit], from: &Inherited| {
        rows.bound_splits(graph, &region, open, splits, prior, BETA_ITERATIONS, from, Some(&cache))
    };
    let out = super::output_node(graph);
    // A candidate from bound propagation that is a real counterexample ends the search.
    let try_point = |x: &[f64]| -> Result<Option<Vec<f32>>> {
        let x32 = to_f32_in_box(x, &case.lo, &case.hi);
        Ok(check_point(graph, out, &rows.goal, &x32)?.map(|_| x32))
    };
    let Some(root_bound) = bound(&open, &[], &Inherited::default())? else {
        return Ok(CaseResult::Unsat);
    };
    stats.domains += 1;
    if let Some(x) = root_bound.candidate.as_deref().map(try_point).transpose()?.flatten() {
        return Ok(CaseResult::Sat(x));
    }
    if root_bound.still.is_empty() {
        return Ok(CaseResult::Unsat);
    }
    let Some(next) = root_bound.next else {
        return Ok(CaseResult::Unknown("no unstable ReLU to split".into()));
    };
    let polish = PgdOptions { steps: 20, restarts: 1, seed: 0, step: 0.1, deadline: Some(deadline) };
    let mut heap = BinaryHeap::new();
    let mut held = 0usize;
    heap.push(SplitDomain {
        bytes: 0,
        splits: Vec::new(),
        open: root_bound.still,
        score: root_bound.score,
        next,
        children: root_bound.children,
    });
    while !heap.is_empty() {
        let batch = match next_round(&mut heap, opts, deadline) {
            Ok(b) => b,
            Err(end) => return Ok(end),
        };
        held -= batch.iter().map(|d| d.bytes).sum::<usize>();
        let jobs: Vec<(Vec<NeuronSplit>, Vec<usize>, Inherited)> = batch
            .into_iter()
            .flat_map(|d| {
                let (node, index) = d.next;
                let SplitDomain { splits, open, children: [on, off], .. } = d;
                [(true, on), (false, off)].map(|(active, from)| {
                    let mut s = splits.clone();
                    s.push(NeuronSplit { node, index, active });
                    (s, open.clone(), from)
                })
            })
            .collect();
        stats.domains += jobs.len();
        // Subdomains not started by the deadline are skipped (a round of beta-CROWN can take
        // seconds on image models), and the search then ends in a timeout.
        let results: Vec<Option<Result<Option<SubdomainBound>>>> = jobs
            .par_iter()
            .map(|(splits, open, from)| (Instant::now() < deadline).then(|| bound(open, splits, from)))
            .collect();
        let mut skipped = false;
        let mut fixed_open = false;
        let mut candidates: Vec<(f64, Vec<f64>)> = Vec::new();
        for ((splits, _, _), r) in jobs.into_iter().zip(results) {
            let Some(r) = r else {
                skipped = true;
                continue;
            };
            let Some(b) = r? else { continue };
            if let Some(c) = b.candidate {
                if let Some(x) = try_point(&c)? {
                    return Ok(CaseResult::Sat(x));
                }
                if !b.still.is_empty() {
                    candidates.push((b.score, c));
                }
            }
            match (b.still.is_empty(), b.next) {
                (true, _) => {}
                (false, None) => fixed_open = true,
                (false, Some(next)) => {
                    let mut children = b.children;
                    if held > opts.open_memory / 2 {
                        children.iter_mut().for_each(|c| c.bounds = None);
                    }
                    let bytes = std::mem::size_of::<NeuronSplit>() * splits.len()
                        + std::mem::size_of::<usize>() * b.still.len()
                        + children[0].bytes(true)
                        + children[1].bytes(false)
                        + std::mem::size_of::<SplitDomain>();
                    held += bytes;
                    if held > opts.open_memory {
                        return Ok(CaseResult::Unknown(format!(
                            "the {} open subdomains need more than {} MiB of memory",
                            heap.len() + 1,
                            opts.open_memory >> 20
                        )));
                    }
                    heap.push(SplitDomain { bytes, splits, open: b.still, score: b.score, next, children })
                }
            }
        }
        if skipped {
            return Ok(CaseResult::Timeout);
        }
        // A short PGD from the candidates of the worst subdomains of this round (where a
        // counterexample is likeliest).
        candidates.sort_by(|a, b| a.0.total_cmp(&b.0));
        candidates.truncate(rayon::current_num_threads().max(1));
        let found: Vec<Result<Option<Vec<f32>>>> = candidates
            .into_par_iter()
            .map(|(_, c)| Ok(pgd_from(graph, &region, out, &rows.goal, c, &polish)?.map(|f| f.x)))
            .collect();
        for f in found {
            if let Some(x) = f? {
                return Ok(CaseResult::Sat(x));
            }
        }
        if fixed_open {
            return Ok(CaseResult::Unknown("a subdomain with every ReLU fixed stays open".into()));
        }
        stats.max_open = stats.max_open.max(heap.len());
    }
    Ok(CaseResult::Unsat)
}
