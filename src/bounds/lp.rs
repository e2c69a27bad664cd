//! LP and MILP encodings of piecewise-linear networks over an input box, solved with microlp
//! (pure Rust, through good_lp).
//!
//! - The LP relaxes each unstable ReLU by its triangle (Ehlers 2017, "Formal verification of
//!   piece-wise linear feed-forward neural networks"); the MILP encodes it exactly with one
//!   binary and big-M constraints (Tjeng, Xiao & Tedrake 2019, "Evaluating robustness of neural
//!   networks with mixed integer programming"). Both take the pre-activation bounds from our
//!   bound engine ([`BoundTable`]): they fix stable ReLUs and are the big-M constants.
//! - Affine operators are encoded from their exact coefficients, [`Operator::relaxation`]'s
//!   [`Relaxation::Affine`] maps (Gemm, MatMul, Conv, BatchNorm, Add/Sub/Mul/Div by constants,
//!   Reshape/Flatten, Transpose, Concat, Pad, average pools...); Relu is the only nonlinearity
//!   accepted. Anything else is refused, naming the node and the op.
//!
//! ## What is a proof here and what is not
//! microlp computes in floating point with tolerances, so its optimum is not a proof.
//! - [`LpOutcome::proven_lower_bound`] IS one: the rigorous post-hoc bound of Neumaier &
//!   Shcherbina (2004, "Safe bounds in linear and mixed-integer linear programming"). For ANY
//!   multipliers y (>= 0 on inequality rows) and every real point v of the LP, c.v = y.(Av) +
//!   r.v with r = c - A^T y, so c.v >= (y.b, rounded down) + (min of r.v over the variables'
//!   box, rounded down), with r enclosed by outward-rounded interval arithmetic (src/num).
//!   Every row and box of the LP holds for the real-valued network on the region (bounds from
//!   [`BoundTable`], the triangle's slope rounded up, affine operators with rounded weights
//!   carry their stated error in the row's right-hand side), so the bound holds for the
//!   real-valued network whatever the solver's numerical errors: bad multipliers only make it
//!   looser; with y = 0 it is the interval bound of the objective, so it always exists.
//!   microlp gives no dual values, so the multipliers come from (1) a backward pass over the
//!   LP's rows guided by the LP's primal point (milliseconds; CROWN-like, usually a little
//!   below the LP value), and (2) when that is not within 1e-7 of the LP value and time
//!   remains, the dual LP solved explicitly (exact up to microlp's tolerances; its multipliers
//!   are boxed by 1e6 so it stays bounded when the primal is infeasible). Measured: ACAS Xu
//!   (5 inputs, 300 ReLUs) dual 0.5-1.3 s; MNIST 256x2 (784 inputs) dual 16-45 s against a
//!   0.3 s primal, where (1) alone gave 0.443 for an LP value of 0.452.
//! - [`LpOutcome::unsound_value`] (the solver's objective) and [`LpOutcome::point`] are NOT
//!   proofs. For the MILP the point is a candidate counterexample: re-check it with the real
//!   forward pass (see [`objective_at`]) before saying sat; the MILP value may only be used as
//!   a hint (no branch-and-bound certificate is produced for integer programs).
//!
//! The solver cannot hang the caller: every solve runs under microlp's deadline
//! ([`LpOptions::time_limit`], shared by all solves of a call), and problems above
//! [`LpOptions::max_binaries`] binaries or [`LpOptions::max_variables`] variables are refused
//! before any solving (measured here: 40 binaries 3.4 s, 80 binaries did not finish in 300 s).

use std::time::{Duration, Instant};

use good_lp::{variable, Expression, ProblemVariables, ResolutionError, Solution, SolutionStatus, SolverModel};
use good_lp::{Variable, WithTimeLimit};

use crate::bounds::affine::{Relaxation, Sparse};
use crate::bounds::propagate::BoundTable;
use crate::error::{Error, Result};
use crate::ir::{Graph, NodeId, Tensor};
use crate::num::{add_down, add_up, div_up, mul_down, mul_up, sub_down, sub_up};
use crate::ops::{Op, Operator, RelaxInput};
use crate::spec::{Norm, Region};

/// Magnitude cap on the dual multipliers of the dual LP. Any multipliers give a valid bound;
/// the cap keeps the dual bounded (an infeasible primal then yields a large, still valid,
/// bound) at the price of a looser bound if the optimal multipliers were larger.
const DUAL_CAP: f64 = 1e6;

/// A ReLU split of a branch-and-bound subdomain: element `index` of the input of the Relu node
/// `relu` is >= 0 (`active`) or <= 0.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ReluSplit {
    pub relu: NodeId,
    pub index: usize,
    pub active: bool,
}

/// Limits and subdomain of a solve.
#[derive(Clone, Debug)]
pub struct LpOptions {
    /// Wall-clock budget for all solves of one call (microlp stops at this deadline).
    pub time_limit: Duration,
    /// Refuse MILPs with more binaries (unstable ReLUs) than this.
    pub max_binaries: usize,
    /// Refuse encodings with more variables than this.
    pub max_variables: usize,
    /// Split constraints restricting the problem to a subdomain: every result (the proven
    /// bound included) then speaks about the subdomain only.
    pub splits: Vec<ReluSplit>,
}

impl Default for LpOptions {
    fn default() -> Self {
        LpOptions { time_limit: Duration::from_secs(10), max_binaries: 40, max_variables: 20_000, splits: vec![] }
    }
}

/// How a solve ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LpStatus {
    /// The solver reports an optimum (within its floating-point tolerances).
    Optimal,
    /// The time ran out; `unsound_value` and `point` are the best feasible point found.
    TimeLimit,
    /// The time ran out before any feasible point was found.
    NoSolution,
    /// The problem is infeasible: by the bounds and splits (then `proven_lower_bound` is
    /// +infinity), or as the solver reports it (not a proof; `proven_lower_bound` still is).
    Infeasible,
}

/// The result of [`lp_min`] or [`milp_min`]: minimising c.y over the outputs y.
#[derive(Clone, Debug, PartialEq)]
pub struct LpOutcome {
    pub status: LpStatus,
    /// A lower bound of c.y over the region for the real-valued network, rigorous
    /// (Neumaier-Shcherbina over the LP relaxation, outward rounded): usable as a proof.
    pub proven_lower_bound: f64,
    /// The solver's objective value (floating point with tolerances): NOT a proof. For the MILP
    /// it estimates the exact minimum, for the LP the relaxation's minimum.
    pub unsound_value: Option<f64>,
    /// The input part of the solver's minimiser, clamped into the region's box: a candidate to
    /// re-check with the forward pass, never a counterexample by itself.
    pub point: Option<Vec<f64>>,
    /// True when the solver claims the exact network minimum: a MILP solved to optimality over
    /// a box region (an L-inf ball or a box; other norms are encoded by their bounding box).
    pub exact: bool,
    /// Size of the encoding solved (the MILP's for `milp_min`).
    pub variables: usize,
    pub constraints: usize,
    pub binaries: usize,
}

/// Minimises c.y over the region with the LP (triangle) relaxation: a rigorous lower bound and
/// the relaxation's minimiser.
pub fn lp_min(
    graph: &Graph,
    region: &Region,
    bounds: &BoundTable<'_>,
    c: &[f64],
    opts: &LpOptions,
) -> Result<LpOutcome> {
    lp_min_max(graph, region, bounds, &[(c.to_vec(), 0.0)], opts)
}

/// Minimises c.y over the region exactly (big-M MILP): the solver's minimum and minimiser (a
/// candidate counterexample), with the LP's rigorous lower bound. Refuses problems with more
/// than `opts.max_binaries` unstable ReLUs.
pub fn milp_min(
    graph: &Graph,
    region: &Region,
    bounds: &BoundTable<'_>,
    c: &[f64],
    opts: &LpOptions,
) -> Result<LpOutcome> {
    milp_min_max(graph, region, bounds, &[(c.to_vec(), 0.0)], opts)
}

/// [`lp_min`] of max_k (c_k.y - b_k) for rows (c_k, b_k): a conjunction of output constraints
/// c_k.y <= b_k (a VNN-LIB disjunct) can hold somewhere in the region only if this minimum is
/// <= 0, so `proven_lower_bound > 0` proves the conjunction unreachable.
pub fn lp_min_max(
    graph: &Graph,
    region: &Region,
    bounds: &BoundTable<'_>,
    rows: &[(Vec<f64>, f64)],
    opts: &LpOptions,
) -> Result<LpOutcome> {
    let deadline = Instant::now() + opts.time_limit;
    let enc = match encode(graph, region, bounds, rows, false, opts)? {
        Some(e) => e,
        None => return Ok(empty_subdomain()),
    };
    let primal = solve_primal(&enc, deadline)?;
    let proven = proven_bound(&enc, &primal, deadline);
    Ok(outcome(&enc, region, proven, primal, false))
}

/// [`milp_min`] of max_k (c_k.y - b_k) (see [`lp_min_max`]): a point with value <= 0 is a
/// candidate input satisfying every c_k.y <= b_k (re-check it with [`max_objective_at`]).
pub fn milp_min_max(
    graph: &Graph,
    region: &Region,
    bounds: &BoundTable<'_>,
    rows: &[(Vec<f64>, f64)],
    opts: &LpOptions,
) -> Result<LpOutcome> {
    let deadline = Instant::now() + opts.time_limit;
    let milp = match encode(graph, region, bounds, rows, true, opts)? {
        Some(e) => e,
        None => return Ok(empty_subdomain()),
    };
    let lp = encode(graph, region, bounds, rows, false, opts)?
        .ok_or_else(|| Error::InvalidArgument("internal: the LP and MILP encodings disagree on feasibility".into()))?;
    // The LP and its bound come first (fast next to the MILP), so a rigorous bound exists
    // even when the MILP runs out of time; the dual LP, if the bound needs it, comes last.
    let lp_primal = solve_primal(&lp, deadline)?;
    let quick = quick_bound(&lp, &lp_primal);
    let primal = solve_primal(&milp, deadline)?;
    let proven = quick.max(proven_bound(&lp, &lp_primal, deadline));
    Ok(outcome(&milp, region, proven, primal, true))
}

/// max_k (c_k.y - b_k) at input x by the f64 forward pass: re-checks a [`milp_min_max`] point.
pub fn max_objective_at(graph: &Graph, x: &[f64], rows: &[(Vec<f64>, f64)]) -> Result<f64> {
    let mut best = f64::NEG_INFINITY;
    for (c, b) in rows {
        best = best.max(objective_at(graph, x, c)? - b);
    }
    Ok(best)
}

/// c.y at input x by the f64 forward pass (x flattened, one sample): how a caller re-checks a
/// candidate point. (The verify pipeline re-checks counterexamples in f32 as well.)
pub fn objective_at(graph: &Graph, x: &[f64], c: &[f64]) -> Result<f64> {
    if graph.inputs.len() != 1 || graph.outputs.len() != 1 {
        return Err(Error::InvalidArgument("objective_at needs a single-input, single-output model".into()));
    }
    let t = Tensor::new(graph.input_info[0].shape.clone(), x.to_vec())?;
    let out = graph.forward(&[&t])?;
    let y = out[0].data();
    if y.len() != c.len() {
        return Err(Error::Shape(format!("objective of {} coefficients for {} outputs", c.len(), y.len())));
    }
    Ok(y.iter().zip(c).map(|(a, b)| a * b).sum())
}

fn empty_subdomain() -> LpOutcome {
    LpOutcome {
        status: LpStatus::Infeasible,
        proven_lower_bound: f64::INFINITY,
        unsound_value: None,
        point: None,
        exact: false,
        variables: 0,
        constraints: 0,
        binaries: 0,
    }
}

fn outcome(enc: &Encoding, region: &Region, proven: f64, primal: Primal, milp: bool) -> LpOutcome {
    let point = primal.values.as_ref().map(|v| {
        enc.input_vars.iter().enumerate().map(|(k, &i)| v[i].clamp(enc.input_box.0[k], enc.input_box.1[k])).collect()
    });
    LpOutcome {
        status: primal.status,
        proven_lower_bound: proven,
        unsound_value: primal.value,
        point,
        exact: milp && primal.status == LpStatus::Optimal && region.norm == Norm::Inf,
        variables: enc.lo.len(),
        constraints: enc.rows.len(),
        binaries: enc.binaries,
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum RowKind {
    /// terms . v lies in [rhs_lo, rhs_hi] (the interval holds the operator's rounding error).
    Eq,
    /// terms . v >= rhs_lo.
    Ge,
}

/// One constraint; `rhs` is what the solver sees, [rhs_lo, rhs_hi] what is proven to hold.
#[derive(Clone, Debug)]
struct Row {
    terms: Vec<(usize, f64)>,
    kind: RowKind,
    rhs: f64,
    rhs_lo: f64,
    rhs_hi: f64,
}

/// Variables with their boxes, rows, and the objective, all valid for the real-valued network
/// on the region (the MILP's binary rows excepted: they are exact only for d in {0, 1}).
struct Encoding {
    lo: Vec<f64>,
    hi: Vec<f64>,
    integer: Vec<bool>,
    rows: Vec<Row>,
    /// (variable, coefficient) pairs of c.y; a variable may repeat.
    objective: Vec<(usize, f64)>,
    /// A constant added to the objective (exact).
    objective_offset: f64,
    input_vars: Vec<usize>,
    input_box: (Vec<f64>, Vec<f64>),
    binaries: usize,
    /// Per variable, how it is defined (for the backward pass that guesses multipliers).
    def: Vec<Def>,
    /// The rows t >= c_k.y - b_k of a min-of-max objective (empty otherwise).
    max_rows: Vec<usize>,
}

/// How a variable is tied to earlier ones.
#[derive(Copy, Clone, Debug, PartialEq)]
enum Def {
    /// An input, a fixed value, a binary, or the min-of-max variable t.
    Free,
    /// The output of an affine row (coefficient 1 in that row, the row's first term).
    Affine(usize),
    /// An unstable ReLU output z of input x, with rows z - x >= 0 and s x - z >= s l.
    Relu { x: usize, lower: usize, upper: usize },
}

impl Encoding {
    fn new_var(&mut self, lo: f64, hi: f64, max: usize) -> Result<usize> {
        if self.lo.len() >= max {
            return Err(Error::TooLarge(format!(
                "the LP/MILP encoding needs more than {max} variables (LpOptions::max_variables)"
            )));
        }
        self.lo.push(lo);
        self.hi.push(hi);
        self.integer.push(false);
        self.def.push(Def::Free);
        Ok(self.lo.len() - 1)
    }
}

/// Entries of row j of a sparse or dense matrix.
fn row_entries(s: &Sparse, j: usize) -> Vec<(usize, f64)> {
    if let Some(w) = &s.dense {
        return w[j * s.cols..(j + 1) * s.cols].iter().copied().enumerate().filter(|(_, v)| *v != 0.0).collect();
    }
    let (c, v) = s.row(j);
    c.iter().copied().zip(v.iter().copied()).collect()
}

/// Whether the map is y = x (a reshape): its output can reuse the input's variables.
fn is_identity(parts: &[Sparse], offset: &[f64], exact: bool) -> bool {
    if parts.len() != 1 || !exact || offset.iter().any(|&c| c != 0.0) {
        return false;
    }
    let s = &parts[0];
    if s.dense.is_some() || s.rows != s.cols || s.rows != offset.len() {
        return false;
    }
    (0..s.rows).all(|j| {
        let (c, v) = s.row(j);
        c == [j] && v == [1.0]
    })
}

/// Ops that are not piecewise linear, or not encoded (yet): refused by name before any work.
fn refused(op: &Op) -> bool {
    matches!(op, Op::LeakyRelu(_) | Op::Sigmoid(_) | Op::Tanh(_) | Op::Clip(_) | Op::MaxPool(_) | Op::Softmax(_))
}

/// Builds the LP (`milp` false) or MILP encoding of min c.y over the region's box. `None` when
/// the bounds and splits leave the subdomain empty.
fn encode(
    graph: &Graph,
    region: &Region,
    table: &BoundTable<'_>,
    objective: &[(Vec<f64>, f64)],
    milp: bool,
    opts: &LpOptions,
) -> Result<Option<Encoding>> {
    if graph.inputs.len() != 1 || graph.outputs.len() != 1 {
        return Err(Error::InvalidArgument("the LP/MILP encoding needs a single-input, single-output model".into()));
    }
    let input = graph.inputs[0];
    let output = graph.outputs[0];
    let n_in: usize = graph.nodes[input.0].shape.iter().product();
    if region.len() != n_in {
        return Err(Error::Shape(format!("the region has {} elements, the model input {n_in}", region.len())));
    }
    let n_out: usize = graph.nodes[output.0].shape.iter().product();
    if objective.is_empty() {
        return Err(Error::InvalidArgument("an objective needs at least one row".into()));
    }
    for (c, b) in objective {
        if c.len() != n_out {
            return Err(Error::Shape(format!("objective of {} coefficients for {n_out} outputs", c.len())));
        }
        if let Some(i) = c.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!("objective coefficient {i} is {}", c[i])));
        }
        if !b.is_finite() {
            return Err(Error::NonFinite(format!("objective offset {b}")));
        }
    }
    // Only the output's ancestors are encoded.
    let mut needed = vec![false; graph.nodes.len()];
    needed[output.0] = true;
    for id in (0..=output.0).rev() {
        if needed[id] {
            for p in &graph.nodes[id].inputs {
                needed[p.0] = true;
            }
        }
    }
    for (id, node) in graph.nodes.iter().enumerate() {
        if needed[id] && refused(&node.op) {
            return Err(unsupported(&node.name, node.op.name(), "it is not encoded (only affine operators and Relu)"));
        }
    }
    let interval = |id: usize| -> Result<(&[f64], &[f64])> {
        let iv = table.bounds.get(id).and_then(|b| b.as_ref()).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "the bound table has no bounds for node '{}': compute it up to the output",
                graph.nodes[id].name
            ))
        })?;
        Ok((iv.lo.as_slice(), iv.hi.as_slice()))
    };
    // The table must have been computed on a region containing ours, else its bounds are not
    // valid here.
    let (blo, bhi) = region.bounding_box();
    {
        let (tlo, thi) = interval(input.0)?;
        if tlo.len() != n_in || (0..n_in).any(|i| !(tlo[i] <= blo[i] && bhi[i] <= thi[i])) {
            return Err(Error::InvalidArgument(
                "the bound table was computed on a region that does not contain this one".into(),
            ));
        }
    }
    // Split constraints, per Relu node: tightened bounds of its input.
    let mut split_of: Vec<Vec<(usize, bool)>> = vec![vec![]; graph.nodes.len()];
    for s in &opts.splits {
        let node = graph.nodes.get(s.relu.0).ok_or_else(|| {
            Error::InvalidArgument(format!("split names node {} of a {}-node graph", s.relu.0, graph.nodes.len()))
        })?;
        if !matches!(node.op, Op::Relu(_)) {
            return Err(Error::InvalidArgument(format!(
                "split names node '{}', a {}, not a Relu",
                node.name,
                node.op.name()
            )));
        }
        let n: usize = node.shape.iter().product();
        if s.index >= n {
            return Err(Error::InvalidArgument(format!(
                "split index {} of Relu '{}' with {n} elements",
                s.index, node.name
            )));
        }
        split_of[s.relu.0].push((s.index, s.active));
    }

    let mut enc = Encoding {
        lo: vec![],
        hi: vec![],
        integer: vec![],
        rows: vec![],
        objective: vec![],
        objective_offset: 0.0,
        input_vars: vec![],
        input_box: (blo.clone(), bhi.clone()),
        binaries: 0,
        def: vec![],
        max_rows: vec![],
    };
    let max_vars = opts.max_variables;
    let mut vars: Vec<Vec<usize>> = vec![vec![]; graph.nodes.len()];
    for id in 0..=output.0 {
        if !needed[id] {
            continue;
        }
        let node = &graph.nodes[id];
        let err = |m: String| Error::node(&node.name, node.op.name(), m);
        match &node.op {
            Op::Input(_) => {
                if NodeId(id) != input {
                    return Err(err("a second model input".into()));
                }
                for i in 0..n_in {
                    let v = enc.new_var(blo[i], bhi[i], max_vars)?;
                    vars[id].push(v);
                }
                enc.input_vars = vars[id].clone();
            }
            Op::Relu(_) => {
                let p = node.inputs[0].0;
                let (plo, phi) = interval(p)?;
                let (olo, ohi) = interval(id)?;
                let (mut l, mut u) = (plo.to_vec(), phi.to_vec());
                for &(i, active) in &split_of[id] {
                    if active {
                        l[i] = l[i].max(0.0);
                    } else {
                        u[i] = u[i].min(0.0);
                    }
                }
                let mut out = Vec::with_capacity(l.len());
                for i in 0..l.len() {
                    let x = vars[p][i];
                    // The input variable's box may be tightened by a split (or an earlier one).
                    enc.lo[x] = enc.lo[x].max(l[i]);
                    enc.hi[x] = enc.hi[x].min(u[i]);
                    let (li, ui) = (enc.lo[x], enc.hi[x]);
                    if li > ui {
                        return Ok(None);
                    }
                    if li >= 0.0 {
                        out.push(x); // z = x
                    } else if ui <= 0.0 {
                        out.push(enc.new_var(0.0, 0.0, max_vars)?); // z = 0
                    } else {
                        let z = enc.new_var(olo[i].max(0.0), ohi[i].min(ui), max_vars)?;
                        let lower = enc.rows.len();
                        enc.def[z] = Def::Relu { x, lower, upper: lower + 1 };
                        // z >= x.
                        enc.rows.push(Row {
                            terms: vec![(z, 1.0), (x, -1.0)],
                            kind: RowKind::Ge,
                            rhs: 0.0,
                            rhs_lo: 0.0,
                            rhs_hi: 0.0,
                        });
                        // Triangle: z <= s (x - l) with s = u / (u - l) rounded up (valid as
                        // x - l >= 0): s x - z >= s l.
                        let s = div_up(ui, sub_down(ui, li));
                        let sl = s * li;
                        enc.rows.push(Row {
                            terms: vec![(x, s), (z, -1.0)],
                            kind: RowKind::Ge,
                            rhs: sl,
                            rhs_lo: mul_down(s, li),
                            rhs_hi: mul_up(s, li),
                        });
                        if milp {
                            if enc.binaries >= opts.max_binaries {
                                return Err(Error::TooLarge(format!(
                                    "the MILP needs more than {} binaries (unstable ReLUs; LpOptions::max_binaries): \
                                     microlp's branch and bound does not finish on such problems",
                                    opts.max_binaries
                                )));
                            }
                            let d = enc.new_var(0.0, 1.0, max_vars)?;
                            enc.integer[d] = true;
                            enc.binaries += 1;
                            // z <= x - l (1 - d): x - z + l d >= l.
                            enc.rows.push(Row {
                                terms: vec![(x, 1.0), (z, -1.0), (d, li)],
                                kind: RowKind::Ge,
                                rhs: li,
                                rhs_lo: li,
                                rhs_hi: li,
                            });
                            // z <= u d: u d - z >= 0.
                            enc.rows.push(Row {
                                terms: vec![(d, ui), (z, -1.0)],
                                kind: RowKind::Ge,
                                rhs: 0.0,
                                rhs_lo: 0.0,
                                rhs_hi: 0.0,
                            });
                        }
                        out.push(z);
                    }
                }
                vars[id] = out;
            }
            op => {
                let mut lo = Vec::new();
                let mut hi = Vec::new();
                let mut in_shapes = Vec::new();
                for p in &node.inputs {
                    let (a, b) = interval(p.0)?;
                    lo.push(a);
                    hi.push(b);
                    in_shapes.push(graph.nodes[p.0].shape.as_slice());
                }
                let r = RelaxInput { in_shapes, out_shape: &node.shape, lo, hi };
                let map = match op.relaxation(&r).map_err(|e| err(e.to_string()))? {
                    Relaxation::Affine(m) => m,
                    Relaxation::Bounds { .. } => {
                        return Err(unsupported(
                            &node.name,
                            op.name(),
                            "it is not affine here (e.g. a product of two variables)",
                        ))
                    }
                };
                let exact = map.err_rel == 0.0 && map.err_abs.iter().all(|&e| e == 0.0);
                if is_identity(&map.parts, &map.offset, exact) {
                    vars[id] = vars[node.inputs[0].0].clone();
                    continue;
                }
                // The operator's real output differs from the map by at most
                // err_rel (|S| m + |c|) + err_abs, with m the inputs' magnitudes.
                let n = map.out_len();
                let mut slack = vec![0.0; n];
                if !exact {
                    let mut abs_sm: Vec<f64> = map.offset.iter().map(|c| c.abs()).collect();
                    for (k, part) in map.parts.iter().enumerate() {
                        let m: Vec<f64> = r.lo[k].iter().zip(r.hi[k]).map(|(a, b)| a.abs().max(b.abs())).collect();
                        part.abs_apply_add_up(&m, &mut abs_sm);
                    }
                    for j in 0..n {
                        slack[j] = mul_up(map.err_rel, abs_sm[j]);
                        if let Some(&e) = map.err_abs.get(j) {
                            slack[j] = add_up(slack[j], e);
                        }
                    }
                }
                let (olo, ohi) = interval(id)?;
                let mut out = Vec::with_capacity(n);
                for j in 0..n {
                    let y = enc.new_var(olo[j], ohi[j], max_vars)?;
                    enc.def[y] = Def::Affine(enc.rows.len());
                    // y - sum_k S_k x_k = c (+- slack).
                    let mut terms = vec![(y, 1.0)];
                    for (k, part) in map.parts.iter().enumerate() {
                        let xs = &vars[node.inputs[k].0];
                        terms.extend(row_entries(part, j).into_iter().map(|(i, a)| (xs[i], -a)));
                    }
                    let c = map.offset[j];
                    enc.rows.push(Row {
                        terms,
                        kind: RowKind::Eq,
                        rhs: c,
                        rhs_lo: sub_down(c, slack[j]),
                        rhs_hi: add_up(c, slack[j]),
                    });
                    out.push(y);
                }
                vars[id] = out;
            }
        }
    }
    if let Some(i) = (0..enc.lo.len()).find(|&i| !(enc.lo[i].is_finite() && enc.hi[i].is_finite())) {
        return Err(Error::NonFinite(format!("LP variable {i} has bounds [{}, {}]", enc.lo[i], enc.hi[i])));
    }
    if enc.lo.iter().zip(&enc.hi).any(|(l, h)| l > h) {
        return Ok(None);
    }
    let terms = |c: &[f64]| -> Vec<(usize, f64)> {
        vars[output.0].iter().zip(c).filter(|(_, &a)| a != 0.0).map(|(&v, &a)| (v, a)).collect()
    };
    if let [(c, b)] = objective {
        enc.objective = terms(c);
        enc.objective_offset = -b;
    } else {
        // min t s.t. t >= c_k.y - b_k for every k; t's box [max_k lower_k, max_k upper_k]
        // holds max_k (c_k.y - b_k) at every real point (lower_k, upper_k: interval bounds of
        // c_k.y - b_k from the output bounds, rounded outward).
        let (olo, ohi) = interval(output.0)?;
        let (mut t_lo, mut t_hi) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
        for (c, b) in objective {
            let (mut lo, mut hi) = (-*b, -*b);
            for (j, &a) in c.iter().enumerate() {
                if a != 0.0 {
                    lo = add_down(lo, mul_down(a, if a > 0.0 { olo[j] } else { ohi[j] }));
                    hi = add_up(hi, mul_up(a, if a > 0.0 { ohi[j] } else { olo[j] }));
                }
            }
            t_lo = t_lo.max(lo);
            t_hi = t_hi.max(hi);
        }
        if !(t_lo.is_finite() && t_hi.is_finite()) {
            return Err(Error::NonFinite(format!("the objective's range [{t_lo}, {t_hi}] is not finite")));
        }
        let t = enc.new_var(t_lo, t_hi, max_vars)?;
        for (c, b) in objective {
            // t - c.y >= -b.
            let mut row: Vec<(usize, f64)> = vec![(t, 1.0)];
            row.extend(terms(c).into_iter().map(|(v, a)| (v, -a)));
            enc.max_rows.push(enc.rows.len());
            enc.rows.push(Row { terms: row, kind: RowKind::Ge, rhs: -b, rhs_lo: -b, rhs_hi: -b });
        }
        enc.objective = vec![(t, 1.0)];
    }
    Ok(Some(enc))
}

fn unsupported(node: &str, op: &str, why: &str) -> Error {
    Error::InvalidModel(format!(
        "the LP/MILP encoding cannot handle node '{node}' ({op}): {why}; supported: Gemm, MatMul, Conv, \
         BatchNormalization, Add/Sub/Mul/Div by constants, Flatten/Reshape/Identity, Transpose, Concat, Pad, \
         AveragePool, Relu"
    ))
}

struct Primal {
    status: LpStatus,
    value: Option<f64>,
    values: Option<Vec<f64>>,
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Runs a good_lp solve, turning a panic inside the solver into an error.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|_| Error::InvalidArgument("the LP solver (microlp) failed internally".into()))
}

/// Solves the encoding itself (with integer variables when it has them).
fn solve_primal(enc: &Encoding, deadline: Instant) -> Result<Primal> {
    let none = |status| Primal { status, value: None, values: None };
    let left = remaining(deadline);
    if left.is_zero() {
        return Ok(none(LpStatus::NoSolution));
    }
    let mut pv = ProblemVariables::new();
    let v: Vec<Variable> = (0..enc.lo.len())
        .map(|i| {
            let d = variable().min(enc.lo[i]).max(enc.hi[i]);
            pv.add(if enc.integer[i] { d.integer() } else { d })
        })
        .collect();
    let mut obj = Expression::with_capacity(enc.objective.len());
    for &(i, a) in &enc.objective {
        obj.add_mul(a, v[i]);
    }
    let mut model = pv.minimise(obj.clone()).using(good_lp::microlp).with_time_limit(left.as_secs_f64());
    for row in &enc.rows {
        let mut e = Expression::with_capacity(row.terms.len());
        for &(i, a) in &row.terms {
            e.add_mul(a, v[i]);
        }
        model.add_constraint(match row.kind {
            RowKind::Eq => e.eq(row.rhs),
            RowKind::Ge => e.geq(row.rhs),
        });
    }
    match guarded(|| model.solve())? {
        Ok(sol) => {
            let status = match sol.status() {
                SolutionStatus::Optimal => LpStatus::Optimal,
                SolutionStatus::TimeLimit | SolutionStatus::GapLimit => LpStatus::TimeLimit,
            };
            let values: Vec<f64> = v.iter().map(|&x| sol.value(x)).collect();
            let value = enc.objective.iter().map(|&(i, a)| a * values[i]).sum::<f64>() + enc.objective_offset;
            Ok(Primal { status, value: Some(value), values: Some(values) })
        }
        Err(ResolutionError::Infeasible) => Ok(none(LpStatus::Infeasible)),
        Err(ResolutionError::Other(_)) if remaining(deadline).is_zero() => Ok(none(LpStatus::NoSolution)),
        Err(e) => Err(Error::InvalidArgument(format!("the LP solver (microlp) failed: {e}"))),
    }
}

/// A rigorous lower bound of the LP encoding (Neumaier-Shcherbina) from the best multipliers
/// at hand: first those of a backward pass guided by the LP's primal solution (milliseconds),
/// then, when that bound is not already within 1e-7 of the LP value and time remains, those
/// of the dual LP (exact, but measured slow in microlp on wide inputs: 45 s on a 784-input
/// MNIST network whose primal takes 0.3 s). Never fails: any multipliers give a valid bound.
fn proven_bound(enc: &Encoding, primal: &Primal, deadline: Instant) -> f64 {
    debug_assert!(enc.integer.iter().all(|&b| !b));
    let mut best = quick_bound(enc, primal);
    let close_enough = primal.value.is_some_and(|v| best >= v - 1e-7 * (1.0 + v.abs()));
    if !close_enough {
        if let Some(y) = dual_multipliers(enc, deadline) {
            best = best.max(neumaier_shcherbina(enc, &y));
        }
    }
    best
}

/// The better of the two backward-pass guesses' rigorous bounds.
fn quick_bound(enc: &Encoding, primal: &Primal) -> f64 {
    let point = primal.values.as_deref();
    let plain = neumaier_shcherbina(enc, &backward_multipliers(enc, point, false));
    if point.is_none() {
        return plain;
    }
    plain.max(neumaier_shcherbina(enc, &backward_multipliers(enc, point, true)))
}

/// Multipliers from a backward pass over the encoding (CROWN's backward substitution on the
/// LP's own rows, Zhang et al. 2018), with each unstable ReLU's lower line (z >= x or z >= 0)
/// chosen by the LP's primal point where it is decisive (x > 0 or x < 0: complementary
/// slackness), else CROWN's choice; a min-of-max objective's weight goes to the rows at the
/// maximum there (equally). Only a guess: the bound computed from it is rigorous whatever it is.
///
/// With `stop_at_active_boxes`, a variable whose primal value sits at the bound its
/// coefficient's sign asks for keeps that coefficient on its box instead of passing it back
/// (the LP's box constraints on intermediate nodes are then used, as the LP itself does).
fn backward_multipliers(enc: &Encoding, point: Option<&[f64]>, stop_at_active_boxes: bool) -> Vec<f64> {
    let n = enc.lo.len();
    let mut r = vec![0.0f64; n];
    for &(i, a) in &enc.objective {
        r[i] += a;
    }
    let mut y = vec![0.0f64; enc.rows.len()];
    let apply = |r: &mut [f64], y: &mut [f64], row: usize, m: f64| {
        y[row] += m;
        for &(i, a) in &enc.rows[row].terms {
            r[i] -= m * a;
        }
    };
    if !enc.max_rows.is_empty() {
        // Rows t - c_k.y >= -b_k: c_k.y - b_k at the point is minus (the terms without t) - rhs.
        let value = |row: usize| -> f64 {
            let p = match point {
                Some(p) => p,
                None => return 0.0,
            };
            let rw = &enc.rows[row];
            -rw.terms.iter().skip(1).map(|&(i, a)| a * p[i]).sum::<f64>() - rw.rhs
        };
        let vals: Vec<f64> = enc.max_rows.iter().map(|&k| value(k)).collect();
        let top = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let active: Vec<usize> = enc
            .max_rows
            .iter()
            .zip(&vals)
            .filter(|(_, &v)| v >= top - 1e-7 * (1.0 + top.abs()))
            .map(|(&k, _)| k)
            .collect();
        let w = 1.0 / active.len() as f64;
        for k in active {
            apply(&mut r, &mut y, k, w);
        }
    }
    for v in (0..n).rev() {
        if r[v] == 0.0 {
            continue;
        }
        if let (true, Some(p)) = (stop_at_active_boxes, point) {
            let tol = 1e-9 * (1.0 + enc.lo[v].abs().max(enc.hi[v].abs()));
            if (r[v] > 0.0 && p[v] <= enc.lo[v] + tol) || (r[v] < 0.0 && p[v] >= enc.hi[v] - tol) {
                continue;
            }
        }
        match enc.def[v] {
            Def::Free => {}
            Def::Affine(row) => {
                let m = r[v];
                apply(&mut r, &mut y, row, m)
            }
            Def::Relu { x, lower, upper } => {
                if r[v] > 0.0 {
                    let (l, u) = (enc.lo[x], enc.hi[x]);
                    let alpha = match point.map(|p| p[x]) {
                        Some(px) if px > 1e-9 * (1.0 + u) => 1.0,
                        Some(px) if px < -1e-9 * (1.0 - l) => 0.0,
                        _ => {
                            if u > -l {
                                1.0
                            } else {
                                0.0
                            }
                        }
                    };
                    // alpha r_z on z >= x; the rest stays on z, bounded by its box (z >= 0).
                    if alpha > 0.0 {
                        let m = alpha * r[v];
                        apply(&mut r, &mut y, lower, m);
                    }
                } else {
                    let m = -r[v];
                    apply(&mut r, &mut y, upper, m);
                }
            }
        }
    }
    y
}

/// The dual LP of min c.v s.t. A_eq v = b_eq, A_ge v >= b_ge, lo <= v <= hi:
/// max b.y + lo.p - hi.q s.t. A^T y + p - q = c, y_ge >= 0, p, q >= 0 (|y| <= DUAL_CAP).
fn dual_multipliers(enc: &Encoding, deadline: Instant) -> Option<Vec<f64>> {
    let left = remaining(deadline);
    if left.is_zero() {
        return None;
    }
    let n = enc.lo.len();
    let mut pv = ProblemVariables::new();
    let y: Vec<Variable> = enc
        .rows
        .iter()
        .map(|r| {
            pv.add(match r.kind {
                RowKind::Eq => variable().min(-DUAL_CAP).max(DUAL_CAP),
                RowKind::Ge => variable().min(0.0).max(DUAL_CAP),
            })
        })
        .collect();
    // A fixed variable (lo = hi) has r v = r lo whatever the sign of r: p is free and q is 0
    // there, as the pair p, q >= 0 would have a cost-free ray (p = q growing together) that
    // microlp was measured to report as unbounded, or to follow to 1e9 with large residuals.
    let fixed = |i: usize| enc.lo[i] == enc.hi[i];
    let p: Vec<Variable> = (0..n).map(|i| pv.add(if fixed(i) { variable() } else { variable().min(0.0) })).collect();
    let q: Vec<Variable> =
        (0..n).map(|i| pv.add(if fixed(i) { variable().min(0.0).max(0.0) } else { variable().min(0.0) })).collect();
    let mut obj = Expression::with_capacity(enc.rows.len() + 2 * n);
    for (r, &yr) in enc.rows.iter().zip(&y) {
        obj.add_mul(r.rhs, yr);
    }
    for i in 0..n {
        obj.add_mul(enc.lo[i], p[i]);
        obj.add_mul(-enc.hi[i], q[i]);
    }
    // Columns of A: for each primal variable, the rows it appears in.
    let mut cols: Vec<Vec<(usize, f64)>> = vec![vec![]; n];
    for (ri, r) in enc.rows.iter().enumerate() {
        for &(i, a) in &r.terms {
            cols[i].push((ri, a));
        }
    }
    let mut cvec = vec![0.0; n];
    for &(i, a) in &enc.objective {
        cvec[i] += a;
    }
    let mut model = pv.maximise(obj).using(good_lp::microlp).with_time_limit(left.as_secs_f64());
    for i in 0..n {
        let mut e = Expression::with_capacity(cols[i].len() + 2);
        for &(ri, a) in &cols[i] {
            e.add_mul(a, y[ri]);
        }
        e.add_mul(1.0, p[i]);
        e.add_mul(-1.0, q[i]);
        model.add_constraint(e.eq(cvec[i]));
    }
    let sol = guarded(|| model.solve()).ok()?.ok()?;
    Some(
        enc.rows
            .iter()
            .zip(&y)
            .map(|(r, &v)| {
                let v = sol.value(v);
                match (v.is_finite(), r.kind) {
                    (false, _) => 0.0,
                    (true, RowKind::Ge) => v.max(0.0),
                    (true, RowKind::Eq) => v,
                }
            })
            .collect(),
    )
}

/// The Neumaier-Shcherbina bound for multipliers y (y_ge >= 0): for every v satisfying the
/// rows and boxes, c.v >= sum_r lower(y_r b_r) + sum_i min over [lo_i, hi_i] of r_i v_i, with
/// r = c - A^T y enclosed in intervals, all rounded outward.
fn neumaier_shcherbina(enc: &Encoding, y: &[f64]) -> f64 {
    let n = enc.lo.len();
    let (mut r_lo, mut r_hi) = (vec![0.0f64; n], vec![0.0f64; n]);
    for &(i, a) in &enc.objective {
        r_lo[i] = add_down(r_lo[i], a);
        r_hi[i] = add_up(r_hi[i], a);
    }
    let mut total = 0.0f64;
    for (row, &yr) in enc.rows.iter().zip(y) {
        if yr == 0.0 {
            continue;
        }
        for &(i, a) in &row.terms {
            let (t_lo, t_hi) = (mul_down(a, yr), mul_up(a, yr));
            r_lo[i] = sub_down(r_lo[i], t_hi);
            r_hi[i] = sub_up(r_hi[i], t_lo);
        }
        // y_r (a . v) >= lower(y_r b): for Ge rows a . v >= rhs_lo and y_r >= 0; for Eq rows
        // a . v lies in [rhs_lo, rhs_hi].
        let b = if yr > 0.0 { row.rhs_lo } else { row.rhs_hi };
        total = add_down(total, mul_down(yr, b));
    }
    for i in 0..n {
        if r_lo[i] == 0.0 && r_hi[i] == 0.0 {
            continue;
        }
        let m = [
            mul_down(r_lo[i], enc.lo[i]),
            mul_down(r_lo[i], enc.hi[i]),
            mul_down(r_hi[i], enc.lo[i]),
            mul_down(r_hi[i], enc.hi[i]),
        ]
        .into_iter()
        .fold(f64::INFINITY, f64::min);
        total = add_down(total, m);
    }
    let total = add_down(total, enc.objective_offset);
    if total.is_nan() {
        f64::NEG_INFINITY
    } else {
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Neumaier-Shcherbina bound of a hand-made LP: min x + y s.t. x + y >= 1 on [0, 2]^2
    /// is 1; the right multiplier gives it, any other a lower value, never a higher one.
    #[test]
    fn neumaier_shcherbina_bounds_a_small_lp() {
        let enc = Encoding {
            lo: vec![0.0, 0.0],
            hi: vec![2.0, 2.0],
            integer: vec![false, false],
            rows: vec![Row { terms: vec![(0, 1.0), (1, 1.0)], kind: RowKind::Ge, rhs: 1.0, rhs_lo: 1.0, rhs_hi: 1.0 }],
            objective: vec![(0, 1.0), (1, 1.0)],
            objective_offset: 0.0,
            input_vars: vec![0, 1],
            input_box: (vec![0.0, 0.0], vec![2.0, 2.0]),
            binaries: 0,
            def: vec![Def::Free, Def::Free],
            max_rows: vec![],
        };
        assert_eq!(neumaier_shcherbina(&enc, &[1.0]), 1.0);
        assert_eq!(neumaier_shcherbina(&enc, &[0.0]), 0.0);
        for y in [0.3, 0.9, 1.1, 2.0, 7.0] {
            assert!(neumaier_shcherbina(&enc, &[y]) <= 1.0, "y = {y}");
        }
        let far = Instant::now() + Duration::from_secs(5);
        let y = dual_multipliers(&enc, far).expect("the dual solves");
        assert!((neumaier_shcherbina(&enc, &y) - 1.0).abs() < 1e-9, "{y:?}");
    }
}
