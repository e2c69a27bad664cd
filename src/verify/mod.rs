//! Complete verification of VNN-LIB properties ([`crate::spec::vnnlib`]): falsification by PGD,
//! then CROWN on each whole input box, then branch and bound: by input splitting for
//! low-dimensional inputs such as ACAS Xu's five; otherwise alpha-CROWN on the box and branch
//! and bound by ReLU splitting with beta-CROWN bounds (Wang et al. 2021), restarted on refined
//! intermediate bounds ([`refine`]) when a first short run leaves cases open, then a longer
//! attack, until every subdomain is closed or the time runs out.
//!
//! Answers follow VNN-COMP: `sat` (a counterexample exists: we hold one, checked with our own
//! f32 *and* f64 forward passes, inside the box, satisfying the violation constraint), `unsat`
//! (no counterexample: every disjunct is proved unreachable on every subdomain by sound bounds,
//! computed in f64 with outward rounding, so the guarantee covers the real-valued network),
//! `timeout` (the time ran out first) or `unknown` (we gave up earlier: bounds cannot pass an
//! operator, a subdomain with every ReLU fixed stays open, or a subdomain shrank to
//! floating-point width). Never a guess.

/// Orders a subdomain (of `bab` or `refine`) type by its `score` so that a max-heap pops the lowest (worst) first.
macro_rules! worst_first {
    ($t:ty) => {
        impl PartialEq for $t {
            fn eq(&self, o: &Self) -> bool {
                self.score.total_cmp(&o.score) == std::cmp::Ordering::Equal
            }
        }
        impl Eq for $t {}
        impl PartialOrd for $t {
            fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(o))
            }
        }
        impl Ord for $t {
            fn cmp(&self, o: &Self) -> std::cmp::Ordering {
                o.score.total_cmp(&self.score)
            }
        }
    };
}

mod bab;
pub mod refine;

use crate::attack::{check_point, pgd, Goal, PgdOptions};
use crate::bounds::{
    alpha_crown_with_prior, alpha_crown_with_table, bound_spec, crown_lower_with_minimizers, crown_with_splits,
    AffineCache, Interval, Method, NeuronSplit, Prior, RowWarm, SpecBounds,
};
use crate::error::{Error, Result};
use crate::ir::{Graph, NodeId};
use crate::spec::vnnlib::{Case, Property};
use crate::spec::Region;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use bab::{BabStats, CaseResult};

/// What CROWN says about one input-splitting subdomain.
pub(crate) struct InputBound {
    /// The groups still open.
    pub still: Vec<usize>,
    /// The worst open group's best margin (see [`CaseRows::bound`]); infinite when none is open.
    pub score: f64,
    /// A candidate counterexample: the worst row's minimiser.
    pub candidate: Option<Vec<f64>>,
    /// Per input dimension, what its width costs the open groups' bounds.
    pub width_cost: Option<Vec<f64>>,
}

/// The answer to a VNN-LIB query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A counterexample exists (and is attached).
    Sat,
    /// No counterexample exists (proved).
    Unsat,
    /// The time limit passed before an answer.
    Timeout,
    /// Neither proved nor refuted (see the detail).
    Unknown,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Sat => "sat",
            Verdict::Unsat => "unsat",
            Verdict::Timeout => "timeout",
            Verdict::Unknown => "unknown",
        })
    }
}

/// A checked counterexample: the input and the network's f32 output there.
#[derive(Clone, Debug, PartialEq)]
pub struct Counterexample {
    pub x: Vec<f32>,
    pub y: Vec<f32>,
}

impl Counterexample {
    /// The VNN-COMP witness format `((X_0 v) ... (Y_0 v) ...)`, one pair a line; values are
    /// printed as the shortest decimals that read back as the same f32.
    pub fn to_vnncomp(&self) -> String {
        let mut lines: Vec<String> = Vec::with_capacity(self.x.len() + self.y.len());
        for (i, v) in self.x.iter().enumerate() {
            lines.push(format!("(X_{i} {v:?})"));
        }
        for (j, v) in self.y.iter().enumerate() {
            lines.push(format!("(Y_{j} {v:?})"));
        }
        format!("({})\n", lines.join("\n "))
    }
}

/// The result of [`verify`].
#[derive(Clone, Debug)]
pub struct Outcome {
    pub verdict: Verdict,
    pub counterexample: Option<Counterexample>,
    /// How the answer was reached (one line, for humans).
    pub detail: String,
    pub stats: BabStats,
}

/// Verification settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// When to stop and answer `timeout`.
    pub deadline: Instant,
    pub seed: u64,
    /// Inputs of at most this many elements are split (branch and bound on the input box).
    pub max_split_inputs: usize,
    /// Subdomains bounded per parallel round.
    pub batch: usize,
    /// Most open subdomains kept (memory); beyond it the answer is `unknown`.
    pub max_domains: usize,
    /// Bytes the open subdomains of ReLU-splitting branch and bound may hold (their inherited
    /// bounds and slopes). Past half of it new subdomains stop passing their bounds on (their
    /// children start from the root's: sound, looser); past all of it the case ends `unknown`
    /// rather than the operating system killing the process (verivital Convnet_avgpool
    /// prop_12_0.04 grew to 24 GB in 300 s).
    pub open_memory: usize,
    /// Extra falsification time when nothing can be proved (high-dimensional inputs).
    pub extra_attack: Duration,
}

impl Options {
    /// Defaults with a time limit from now.
    pub fn with_timeout(timeout: Duration) -> Options {
        Options {
            deadline: Instant::now() + timeout,
            seed: 0,
            max_split_inputs: 16,
            batch: 64,
            max_domains: 1_000_000,
            open_memory: 6 << 30,
            extra_attack: Duration::from_secs(20),
        }
    }
}

/// The node VNN-LIB's Y refers to: the model's first output.
pub fn output_node(graph: &Graph) -> NodeId {
    graph.outputs[0]
}

/// Checks that the property's X and Y match the model's input and output sizes.
pub fn check_sizes(graph: &Graph, prop: &Property) -> Result<()> {
    if graph.inputs.len() != 1 {
        return Err(Error::InvalidArgument(format!("the model has {} inputs; VNN-LIB needs one", graph.inputs.len())));
    }
    let n_in: usize = graph.input_info[0].shape.iter().product();
    let n_out: usize = graph.node(output_node(graph)).shape.iter().product();
    if prop.n_inputs != n_in {
        return Err(Error::Shape(format!(
            "the property declares {} inputs (X_0..), the model input {:?} has {n_in}",
            prop.n_inputs, graph.input_info[0].shape
        )));
    }
    if prop.n_outputs != n_out {
        return Err(Error::Shape(format!(
            "the property declares {} outputs (Y_0..), the model has {n_out}",
            prop.n_outputs
        )));
    }
    Ok(())
}

/// The final gate before any `sat`: x (f32) lies in some case's box and the network's output
/// there, computed in f32 and in f64, satisfies that case's output specification. Returns the
/// checked counterexample.
pub fn confirm(graph: &Graph, prop: &Property, x: &[f32]) -> Result<Option<Counterexample>> {
    let out = output_node(graph);
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    for case in &prop.cases {
        if !case.contains(&x64) {
            continue;
        }
        let goal = Goal::from_spec(&case.output, prop.n_outputs);
        if let Some(y) = check_point(graph, out, &goal, x)? {
            let y64: Vec<f64> = y.iter().map(|&v| v as f64).collect();
            if prop.violated_by(&x64, &y64) {
                return Ok(Some(Counterexample { x: x.to_vec(), y }));
            }
        }
    }
    Ok(None)
}

fn attack_case(graph: &Graph, case: &Case, n_out: usize, opts: &PgdOptions) -> Result<Option<Vec<f32>>> {
    let region = Region::from_box(case.lo.clone(), case.hi.clone())?;
    let goal = Goal::from_spec(&case.output, n_out);
    Ok(pgd(graph, &region, output_node(graph), &goal, opts)?.map(|f| f.x))
}

/// Share of the branch and bound's time for its first run, on alpha-CROWN's bounds (most
/// cases that close, close there: oval21's median is under 5 s of 60).
const QUICK_SHARE: f64 = 0.15;

/// The first run's limit: what it does not close in this time, it rarely closes later, and
/// refinement (which does) needs the time (mnist_fc 256x6 prop_8_0.05 at 300 s: 66 s to 39 s).
const QUICK_CAP: Duration = Duration::from_secs(10);

/// Share of the time left after it that refining intermediate bounds may take.
const REFINE_SHARE: f64 = 0.3;

/// Neurons (BaBSR's best) whose children filtered smart branching estimates per subdomain.
const FSB_CANDIDATES: usize = 8;

/// What bounding one ReLU-splitting subdomain found.
pub(crate) struct SubdomainBound {
    /// The groups still open.
    pub still: Vec<usize>,
    /// The worst open group's best margin (see [`CaseRows::bound`]).
    pub score: f64,
    /// The next neuron to split (None when every ReLU is fixed).
    pub next: Option<(NodeId, usize)>,
    /// An input point worth trying as a counterexample.
    pub candidate: Option<Vec<f64>>,
    /// What the children of the split `next` inherit: the active child's, then the inactive's.
    pub children: [Inherited; 2],
}

/// What a subdomain takes from its parent in ReLU-splitting branch and bound.
#[derive(Clone, Default)]
pub(crate) struct Inherited {
    /// Per goal row, the parent's optimised slopes and multipliers (a warm start).
    pub warm: Vec<(usize, Arc<RowWarm>)>,
    /// Per goal row, a sound lower bound on this subdomain: the parent's estimate of this child
    /// (see [`crate::bounds::BoundTable::split_estimates`]).
    pub floor: Vec<(usize, f64)>,
    /// The parent's bounds of every node, which hold on this subdomain too.
    pub bounds: Option<Arc<Vec<Option<Interval>>>>,
}

impl Inherited {
    /// The heap memory it holds, in bytes, counting its bounds (shared by both children of a
    /// split) only when `with_bounds`.
    pub fn bytes(&self, with_bounds: bool) -> usize {
        let warm: usize = self.warm.iter().map(|(_, w)| w.bytes() + 16).sum();
        let bounds = match (&self.bounds, with_bounds) {
            (Some(b), true) => b.iter().flatten().map(|iv| 16 * iv.lo.len() + 48).sum(),
            _ => 0,
        };
        warm + 16 * self.floor.len() + bounds
    }
}

/// Rows of the open disjuncts of a case, and which disjuncts CROWN closes on a box.
pub(crate) struct CaseRows {
    pub goal: Goal,
}

impl CaseRows {
    /// Bounds the rows of the `open` groups over [lo, hi]; returns the groups still open with
    /// the domain's score (the worst open group's best margin: max over its rows of
    /// lower(c·y) - d, negative while open), and whether some group holds on the whole box.
    pub fn bound(&self, graph: &Graph, lo: &[f64], hi: &[f64], open: &[usize]) -> Result<(Vec<usize>, f64, bool)> {
        self.bound_with(graph, lo, hi, open, Method::Crown)
    }

    /// As [`CaseRows::bound`], with the given bound method.
    pub fn bound_with(
        &self,
        graph: &Graph,
        lo: &[f64],
        hi: &[f64],
        open: &[usize],
        method: Method,
    ) -> Result<(Vec<usize>, f64, bool)> {
        let (rows, c) = self.open_rows(open);
        if rows.is_empty() {
            // Only empty (always true) conjunctions remain: nothing to bound.
            return Ok((open.to_vec(), f64::NEG_INFINITY, !open.is_empty()));
        }
        let region = Region::from_box(lo.to_vec(), hi.to_vec())?;
        let b = bound_spec(graph, &region, method, output_node(graph), &c, rows.len())?;
        Ok(self.close(open, &rows, &b))
    }

    /// As [`CaseRows::bound_with`] by alpha-CROWN, with the score and every node's bounds on
    /// the box (to seed ReLU-splitting branch and bound). `prior`: bounds already known on the
    /// region (refined ones), taken as they are up to the node given, intersected after it.
    pub fn bound_alpha(
        &self,
        graph: &Graph,
        region: &Region,
        open: &[usize],
        prior: Option<(&[Option<Interval>], NodeId)>,
    ) -> Result<(Vec<usize>, f64, Vec<Option<Interval>>)> {
        let (rows, c) = self.open_rows(open);
        if rows.is_empty() {
            return Ok((open.to_vec(), f64::NEG_INFINITY, Vec::new()));
        }
        let out = output_node(graph);
        let (b, table) = match prior {
            Some((p, last_final)) => alpha_crown_with_prior(graph, region, out, &c, rows.len(), p, last_final)?,
            None => alpha_crown_with_table(graph, region, out, &c, rows.len())?,
        };
        let (still, score, _) = self.close(open, &rows, &b);
        Ok((still, score, table.bounds))
    }

    /// As [`CaseRows::bound`] (lower bounds only) by alpha-CROWN with the settings `opts`.
    pub fn bound_alpha_lower(
        &self,
        graph: &Graph,
        lo: &[f64],
        hi: &[f64],
        open: &[usize],
        opts: crate::bounds::propagate::AlphaOptions,
    ) -> Result<(Vec<usize>, f64)> {
        let (rows, c) = self.open_rows(open);
        if rows.is_empty() {
            return Ok((open.to_vec(), f64::NEG_INFINITY));
        }
        let region = Region::from_box(lo.to_vec(), hi.to_vec())?;
        let lower =
            crate::bounds::propagate::alpha_crown_lower(graph, &region, output_node(graph), &c, rows.len(), opts)?;
        let b = crate::bounds::SpecBounds { upper: vec![f64::INFINITY; rows.len()], lower };
        let (still, score, _) = self.close(open, &rows, &b);
        Ok((still, score))
    }

    /// As [`CaseRows::bound`] (lower bounds only), with the input point minimising the worst
    /// open row's linear bound as a candidate counterexample, and per input dimension how much
    /// its width costs the bounds of the groups still open (see [`CaseRows::width_costs`]).
    pub fn bound_with_candidate(&self, graph: &Graph, lo: &[f64], hi: &[f64], open: &[usize]) -> Result<InputBound> {
        let (rows, c) = self.open_rows(open);
        if rows.is_empty() {
            let none = InputBound { still: open.to_vec(), score: f64::NEG_INFINITY, candidate: None, width_cost: None };
            return Ok(none);
        }
        let region = Region::from_box(lo.to_vec(), hi.to_vec())?;
        let lin = crown_lower_with_minimizers(graph, &region, output_node(graph), &c, rows.len())?;
        let b = crate::bounds::SpecBounds { lower: lin.lower, upper: vec![f64::INFINITY; rows.len()] };
        let (still, score, _) = self.close(open, &rows, &b);
        if still.is_empty() {
            return Ok(InputBound { still, score, candidate: None, width_cost: None });
        }
        let candidate = self.worst_row_point(&rows, &b.lower, &lin.x_star, lo.len());
        let width_cost = self.width_costs(&rows, &b.lower, &lin.input_coef, &still, lo, hi);
        Ok(InputBound { still, score, candidate, width_cost })
    }

    /// Per input dimension i, sum over the `still` open groups of |a_i| (hi_i - lo_i), with a
    /// the input coefficients of the group's row nearest to closing: what the dimension's width
    /// costs that row's linear bound when it is concretised over the box (so splitting the
    /// dimension with the largest cost helps the most; the "sb" heuristic of input splitting).
    fn width_costs(
        &self,
        rows: &[usize],
        lower: &[f64],
        coef: &[f64],
        still: &[usize],
        lo: &[f64],
        hi: &[f64],
    ) -> Option<Vec<f64>> {
        let n = lo.len();
        if coef.len() != rows.len() * n {
            return None;
        }
        let mut cost = vec![0.0; n];
        for &k in still {
            let best = (0..rows.len())
                .filter(|&q| self.goal.groups[k].contains(&rows[q]))
                .max_by(|&a, &b| (lower[a] - self.goal.d[rows[a]]).total_cmp(&(lower[b] - self.goal.d[rows[b]])))?;
            for (i, c) in cost.iter_mut().enumerate() {
                *c += coef[best * n + i].abs() * (hi[i] - lo[i]);
            }
        }
        cost.iter().all(|c| c.is_finite()).then_some(cost)
    }

    /// The input point (of `x_star`, one per row, `n_in` wide) of the row with the smallest
    /// margin lower - d: where a counterexample is likeliest.
    fn worst_row_point(&self, rows: &[usize], lower: &[f64], x_star: &[f64], n_in: usize) -> Option<Vec<f64>> {
        if x_star.len() != rows.len() * n_in {
            return None;
        }
        let margin = |k: usize| lower[k] - self.goal.d[rows[k]];
        let k = (0..rows.len()).min_by(|&a, &b| margin(a).total_cmp(&margin(b)))?;
        Some(x_star[k * n_in..(k + 1) * n_in].to_vec())
    }

    /// The rows of the `open` groups as one specification matrix.
    fn open_rows(&self, open: &[usize]) -> (Vec<usize>, Vec<f64>) {
        let g = &self.goal;
        let rows: Vec<usize> = open.iter().flat_map(|&k| g.groups[k].iter().copied()).collect();
        let mut c = Vec::with_capacity(rows.len() * g.width);
        for &r in &rows {
            c.extend_from_slice(&g.c[r * g.width..(r + 1) * g.width]);
        }
        (rows, c)
    }

    /// As [`CaseRows::bound`] on the part of `region` where the ReLU splits hold: CROWN (with
    /// `prior`, bounds computed on the whole region, as a floor), then on the groups still open
    /// `beta_iterations` steps of beta-CROWN (started from the parent's state in `from`, whose
    /// floor may close the subdomain at once); with the next neuron to split and what each of
    /// its children inherits. `None` when that part is empty (the subdomain is closed). `cache`:
    /// affine maps shared by the subdomains.
    #[allow(clippy::too_many_arguments)]
    pub fn bound_splits(
        &self,
        graph: &Graph,
        region: &Region,
        open: &[usize],
        splits: &[NeuronSplit],
        prior: Option<&[Option<Interval>]>,
        beta_iterations: usize,
        from: &Inherited,
        cache: Option<&AffineCache>,
    ) -> Result<Option<SubdomainBound>> {
        let (rows, c) = self.open_rows(open);
        if rows.is_empty() {
            return Ok(Some(SubdomainBound {
                still: open.to_vec(),
                score: f64::NEG_INFINITY,
                next: None,
                candidate: None,
                children: Default::default(),
            }));
        }
        // The parent's estimate of this subdomain may close it before any work.
        let floor: Vec<f64> =
            rows.iter().map(|r| from.floor.iter().find(|f| f.0 == *r).map_or(f64::NEG_INFINITY, |f| f.1)).collect();
        let by_floor = SpecBounds { lower: floor.clone(), upper: vec![f64::INFINITY; rows.len()] };
        if self.close(open, &rows, &by_floor).0.is_empty() {
            return Ok(Some(SubdomainBound {
                still: Vec::new(),
                score: f64::INFINITY,
                next: None,
                candidate: None,
                children: Default::default(),
            }));
        }
        let out = output_node(graph);
        // The parent's bounds of every node hold here: recomputing the nodes after the split
        // costs a backward pass per unstable neuron and, measured on oval21, closes no more
        // subdomains (beta-CROWN carries the split into the output's bound instead).
        let prior = match (from.bounds.as_deref(), prior) {
            (Some(parent), _) => Prior::Parent(parent),
            (None, Some(root)) => Prior::Region(root),
            (None, None) => Prior::None,
        };
        let Some((mut b, mut table)) = crown_with_splits(graph, region, out, &c, rows.len(), splits, prior, cache)?
        else {
            return Ok(None);
        };
        for (l, f) in b.lower.iter_mut().zip(&floor) {
            *l = l.max(*f);
        }
        let (mut still, mut score, _) = self.close(open, &rows, &b);
        let mut parent = None;
        let mut candidate = None;
        let mut kept = Vec::new();
        let mut floors: [Vec<(usize, f64)>; 2] = Default::default();
        if !still.is_empty() && beta_iterations > 0 {
            let (rows2, c2) = self.open_rows(&still);
            let at: Vec<usize> = rows2.iter().map(|r| rows.iter().position(|x| x == r).expect("a subset")).collect();
            let start: Vec<f64> = at.iter().map(|&k| b.lower[k]).collect();
            let d: Vec<f64> = rows2.iter().map(|&r| self.goal.d[r]).collect();
            let warm: Vec<Option<&RowWarm>> =
                rows2.iter().map(|r| from.warm.iter().find(|w| w.0 == *r).map(|w| &*w.1)).collect();
            let mut beta = table.beta_lower(out, &c2, rows2.len(), splits, beta_iterations, &start, Some(&d), &warm)?;
            kept = rows2.iter().copied().zip(std::mem::take(&mut beta.warm).into_iter().map(Arc::new)).collect();
            for (&k, v) in at.iter().zip(&beta.lower) {
                b.lower[k] = b.lower[k].max(*v);
            }
            (still, score, _) = self.close(open, &rows, &b);
            // The input minimising the worst row's linear bound: a candidate counterexample.
            candidate = self.worst_row_point(&rows2, &beta.lower, &beta.x_star, region.len());
            parent = Some((beta, rows2, c2));
        }
        let next = match (&parent, still.is_empty()) {
            (_, true) => None,
            (Some((beta, rows2, c2)), false) => {
                let n = rows2.len();
                let candidates = table.babsr_candidates(&beta.lower_matrices, n, splits, FSB_CANDIDATES);
                let estimates = table.split_estimates(out, c2, n, beta, &candidates)?;
                match estimates {
                    // The candidate that leaves its two children the least to close: per
                    // child, the sum over rows of how far each row's bound (at least the
                    // parent's) stays below its threshold. A split that closes most rows of
                    // one child wins over one that nudges every row of both a little.
                    Some(est) => {
                        let d: Vec<f64> = rows2.iter().map(|&r| self.goal.d[r]).collect();
                        let left = |lower: &[f64]| -> f64 {
                            lower.iter().zip(&beta.lower).zip(&d).map(|((e, p), d)| (e.max(*p) - d).min(0.0)).sum()
                        };
                        let mut best: Option<(f64, usize)> = None;
                        for (k, [act, inact]) in est.iter().enumerate() {
                            let q = left(act) + left(inact);
                            if best.is_none_or(|(b, _)| q > b) {
                                best = Some((q, k));
                            }
                        }
                        best.map(|(_, k)| {
                            // The estimates are sound bounds on the children: their floors.
                            floors = est[k].clone().map(|lower| rows2.iter().copied().zip(lower).collect());
                            candidates[k]
                        })
                    }
                    None => candidates.first().copied(),
                }
            }
            (None, false) => table.widest_unstable_relu_input(splits),
        };
        if next.is_none() && !still.is_empty() {
            // Every ReLU is fixed, yet bound propagation ignores the split constraints on the
            // input: the LP takes them as constraints and is exact here; only its rigorous
            // (Neumaier-Shcherbina) bound counts.
            still.retain(|&k| !self.lp_closes(graph, region, &table, k, splits));
        }
        let [active, inactive] = floors;
        let bounds = Some(Arc::new(table.bounds.clone()));
        let children = [
            Inherited { warm: kept.clone(), floor: active, bounds: bounds.clone() },
            Inherited { warm: kept, floor: inactive, bounds },
        ];
        Ok(Some(SubdomainBound { still, score, next, candidate, children }))
    }

    /// Whether the LP relaxation with the splits as constraints proves group `k` unreachable.
    fn lp_closes(
        &self,
        graph: &Graph,
        region: &Region,
        table: &crate::bounds::BoundTable<'_>,
        k: usize,
        splits: &[NeuronSplit],
    ) -> bool {
        use crate::bounds::lp::{lp_min_max, LpOptions, ReluSplit};
        let g = &self.goal;
        let lp_splits: Option<Vec<ReluSplit>> = splits
            .iter()
            .map(|s| {
                let relu = graph
                    .nodes
                    .iter()
                    .position(|n| matches!(n.op, crate::ops::Op::Relu(_)) && n.inputs.first() == Some(&s.node))?;
                Some(ReluSplit { relu: NodeId(relu), index: s.index, active: s.active })
            })
            .collect();
        let Some(lp_splits) = lp_splits else { return false };
        let rows: Vec<(Vec<f64>, f64)> =
            g.groups[k].iter().map(|&r| (g.c[r * g.width..(r + 1) * g.width].to_vec(), g.d[r])).collect();
        let opts = LpOptions { time_limit: Duration::from_secs(2), splits: lp_splits, ..LpOptions::default() };
        matches!(lp_min_max(graph, region, table, &rows, &opts), Ok(o) if o.proven_lower_bound > 0.0)
    }

    /// Which `open` groups the bounds `b` on `rows` leave open (see [`CaseRows::bound`]).
    fn close(&self, open: &[usize], rows: &[usize], b: &crate::bounds::SpecBounds) -> (Vec<usize>, f64, bool) {
        let g = &self.goal;
        let mut lower = vec![f64::NAN; g.rows()];
        let mut upper = vec![f64::NAN; g.rows()];
        for (k, &r) in rows.iter().enumerate() {
            lower[r] = b.lower[k];
            upper[r] = b.upper[k];
        }
        let mut still = Vec::new();
        let mut score = f64::INFINITY;
        let mut whole = false;
        for &k in open {
            let grp = &g.groups[k];
            // Closed when one constraint provably fails everywhere: lower(c·y) > d (>= for <).
            let closed = grp.iter().any(|&r| if g.strict[r] { lower[r] >= g.d[r] } else { lower[r] > g.d[r] });
            if closed {
                continue;
            }
            let margin = grp.iter().map(|&r| lower[r] - g.d[r]).fold(f64::NEG_INFINITY, f64::max);
            score = score.min(margin);
            if grp.iter().all(|&r| if g.strict[r] { upper[r] < g.d[r] } else { upper[r] <= g.d[r] }) {
                whole = true;
            }
            still.push(k);
        }
        (still, score, whole)
    }
}

/// Decides a property on a model within `opts.deadline`.
pub fn verify(graph: &Graph, prop: &Property, opts: &Options) -> Result<Outcome> {
    check_sizes(graph, prop)?;
    let mut stats = BabStats::default();
    let done =
        |verdict, cex, detail: String, stats: BabStats| Ok(Outcome { verdict, counterexample: cex, detail, stats });
    if prop.cases.is_empty() {
        return done(Verdict::Unsat, None, "the input set is empty".into(), stats);
    }
    let start = Instant::now();
    let total = opts.deadline.saturating_duration_since(start);
    // 1. Falsification first: a short PGD on every case (a tenth of the time at most).
    let quick = PgdOptions {
        steps: 50,
        restarts: 12,
        seed: opts.seed,
        step: 0.25,
        deadline: Some(start + (total / 10).min(Duration::from_secs(10))),
    };
    let mut attack_error: Option<String> = None;
    for case in &prop.cases {
        match attack_case(graph, case, prop.n_outputs, &quick) {
            Ok(Some(x)) => {
                if let Some(cex) = confirm(graph, prop, &x)? {
                    return done(Verdict::Sat, Some(cex), "counterexample found by PGD".into(), stats);
                }
            }
            Ok(None) => {}
            Err(e) => attack_error = Some(e.to_string()),
        }
    }
    // 2. CROWN on each whole box; 3. branch and bound on what stays open.
    let n_in = prop.n_inputs;
    let mut open_cases: Vec<(usize, Vec<usize>)> = Vec::new();
    for (i, case) in prop.cases.iter().enumerate() {
        if Instant::now() >= opts.deadline {
            return done(Verdict::Timeout, None, "time ran out during CROWN".into(), stats);
        }
        let rows = CaseRows { goal: Goal::from_spec(&case.output, prop.n_outputs) };
        let all: Vec<usize> = (0..rows.goal.groups.len()).collect();
        match rows.bound(graph, &case.lo, &case.hi, &all) {
            Ok((still, _, _)) => {
                stats.domains += 1;
                if !still.is_empty() {
                    open_cases.push((i, still));
                }
            }
            Err(e) => {
                return done(Verdict::Unknown, None, format!("bound propagation failed: {e}"), stats);
            }
        }
    }
    if open_cases.is_empty() {
        return done(Verdict::Unsat, None, "CROWN proves every case".into(), stats);
    }
    if n_in <= opts.max_split_inputs {
        let mut any_timeout = false;
        let mut unknown: Option<String> = None;
        for (i, open) in open_cases {
            let case = &prop.cases[i];
            let rows = CaseRows { goal: Goal::from_spec(&case.output, prop.n_outputs) };
            match bab::input_split(graph, &rows, case, open, opts, &mut stats)? {
                CaseResult::Unsat => {}
                CaseResult::Sat(x) => {
                    if let Some(cex) = confirm(graph, prop, &x)? {
                        return done(Verdict::Sat, Some(cex), "counterexample found by branch and bound".into(), stats);
                    }
                    unknown = Some("a candidate counterexample failed the final check".into());
                }
                CaseResult::Timeout => {
                    any_timeout = true;
                    break;
                }
                CaseResult::Unknown(why) => unknown = Some(why),
            }
        }
        if any_timeout {
            return done(Verdict::Timeout, None, "time ran out during branch and bound".into(), stats);
        }
        return match unknown {
            Some(why) => done(Verdict::Unknown, None, why, stats),
            None => done(Verdict::Unsat, None, format!("branch and bound closed {} subdomains", stats.domains), stats),
        };
    }
    // High-dimensional input: no splitting. alpha-CROWN (optimised slopes, intermediate bounds
    // included) on each open case's whole box, then a bounded extra effort on falsification.
    let mut still_open = Vec::new();
    for (i, open) in open_cases {
        if Instant::now() >= opts.deadline {
            return done(Verdict::Timeout, None, "time ran out during alpha-CROWN".into(), stats);
        }
        let case = &prop.cases[i];
        let rows = CaseRows { goal: Goal::from_spec(&case.output, prop.n_outputs) };
        let region = Region::from_box(case.lo.clone(), case.hi.clone())?;
        match rows.bound_alpha(graph, &region, &open, None) {
            Ok((still, score, root)) => {
                stats.domains += 1;
                if !still.is_empty() {
                    still_open.push((i, still, score, root));
                }
            }
            Err(e) => return done(Verdict::Unknown, None, format!("bound propagation failed: {e}"), stats),
        }
    }
    if still_open.is_empty() {
        return done(Verdict::Unsat, None, "alpha-CROWN proves every case".into(), stats);
    }
    // ReLU-splitting branch and bound on what stays open, with nine tenths of the time left
    // (at most a quarter of `extra_attack` is kept for the extended attack: the branch and
    // bound tries counterexamples of its own).
    let now = Instant::now();
    let left = opts.deadline.saturating_duration_since(now);
    let bab_deadline = now + left - (left / 10).min(opts.extra_attack / 4);
    let mut open_cases = Vec::new();
    let mut by_refinement = 0;
    let still_cases = still_open.len();
    for (i, open, score, root) in still_open {
        let case = &prop.cases[i];
        let rows = CaseRows { goal: Goal::from_spec(&case.output, prop.n_outputs) };
        // A short branch and bound on alpha-CROWN's bounds first: easy cases end there.
        let now = Instant::now();
        let quick = now + bab_deadline.saturating_duration_since(now).mul_f64(QUICK_SHARE).min(QUICK_CAP);
        match bab::relu_split(graph, &rows, case, open.clone(), &root, opts, quick, &mut stats)? {
            bab::CaseResult::Unsat => continue,
            bab::CaseResult::Sat(x) => {
                if let Some(cex) = confirm(graph, prop, &x)? {
                    return done(Verdict::Sat, Some(cex), "counterexample found by branch and bound".into(), stats);
                }
                open_cases.push((i, open));
                continue;
            }
            _ => {}
        }
        // Then tighter intermediate bounds, with a share of the time left (see `refine`), and
        // a new branch and bound on them.
        let region = Region::from_box(case.lo.clone(), case.hi.clone())?;
        let now = Instant::now();
        let until = now + bab_deadline.saturating_duration_since(now).mul_f64(REFINE_SHARE);
        let refined = match refine::refine_case(graph, &rows, &region, open.clone(), score, root, until) {
            Ok(r) => r,
            Err(e) => {
                return done(Verdict::Unknown, None, format!("bound propagation failed while refining: {e}"), stats)
            }
        };
        stats.refine_subdomains += refined.stats.subdomains;
        if refined.still.is_empty() {
            by_refinement += 1;
            continue;
        }
        match bab::relu_split(graph, &rows, case, refined.still, &refined.bounds, opts, bab_deadline, &mut stats)? {
            bab::CaseResult::Unsat => {}
            bab::CaseResult::Sat(x) => {
                if let Some(cex) = confirm(graph, prop, &x)? {
                    return done(Verdict::Sat, Some(cex), "counterexample found by branch and bound".into(), stats);
                }
                open_cases.push((i, open));
            }
            // Timeout, or a subdomain it cannot close: the attack may still find a witness.
            _ => open_cases.push((i, open)),
        }
    }
    if open_cases.is_empty() {
        let detail = if by_refinement == still_cases {
            "alpha-CROWN proves every case on refined intermediate bounds".to_string()
        } else {
            format!("ReLU-splitting branch and bound closed {} subdomains", stats.domains)
        };
        return done(Verdict::Unsat, None, detail, stats);
    }
    if attack_error.is_none() {
        let until = opts.deadline.min(Instant::now() + opts.extra_attack);
        let mut seed = opts.seed.wrapping_add(1);
        while Instant::now() < until {
            let o = PgdOptions { steps: 100, restarts: 20, seed, step: 0.25, deadline: Some(until) };
            for &(i, _) in &open_cases {
                if let Some(x) = attack_case(graph, &prop.cases[i], prop.n_outputs, &o)? {
                    if let Some(cex) = confirm(graph, prop, &x)? {
                        return done(Verdict::Sat, Some(cex), "counterexample found by PGD (extended)".into(), stats);
                    }
                }
            }
            seed = seed.wrapping_add(1);
        }
    }
    if Instant::now() >= opts.deadline {
        return done(Verdict::Timeout, None, "time ran out (alpha-CROWN does not prove the property)".into(), stats);
    }
    done(
        Verdict::Unknown,
        None,
        format!(
            "alpha-CROWN does not prove the property and {n_in} inputs are too many to split; no counterexample found"
        ),
        stats,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_costs_follow_the_row_nearest_to_closing() {
        // One group of two rows (both must hold for a counterexample); closing it needs either
        // row's bound above its threshold, so the row nearer to that decides.
        let goal =
            Goal { width: 1, c: vec![1.0, 1.0], d: vec![0.0, 0.0], strict: vec![false; 2], groups: vec![vec![0, 1]] };
        let rows = CaseRows { goal };
        let coef = [5.0, 0.0, 0.0, -1.0]; // row 0 depends on x0, row 1 on x1 (2 inputs)
        let (lo, hi) = ([0.0, 0.0], [1.0, 3.0]);
        // Row 1 nearer to closing: x1's width (3) costs |-1| x 3.
        let cost = rows.width_costs(&[0, 1], &[-4.0, -0.5], &coef, &[0], &lo, &hi).unwrap();
        assert_eq!(cost, vec![0.0, 3.0]);
        // Row 0 nearer to closing: x0's width costs 5.
        let cost = rows.width_costs(&[0, 1], &[-0.1, -0.5], &coef, &[0], &lo, &hi).unwrap();
        assert_eq!(cost, vec![5.0, 0.0]);
        // Coefficients of the wrong size: no opinion.
        assert!(rows.width_costs(&[0, 1], &[-0.1, -0.5], &coef[..3], &[0], &lo, &hi).is_none());
    }
}
