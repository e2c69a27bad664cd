//! Projected gradient descent (Madry et al. 2018) with random restarts, over any [`Region`]
//! (boxes and Linf balls by signed steps, L2 and L1 balls by normalised steps and projection).
//!
//! The goal is a disjunction of conjunctions of linear constraints on an output node
//! ([`Goal`]); misclassification of a classifier is the special case
//! [`Goal::misclassification`]. Each restart descends the loss of one disjunct
//! (max over its constraints of c·y - d, which is <= 0 exactly when the disjunct holds); every
//! iterate is rounded to f32 inside the region, and a point is reported only when both the f32
//! and the f64 forward passes satisfy the goal ([`check_point`]), so a returned
//! counterexample runs as one on a device.

use super::gradient::{forward_tape, vjp};
use crate::bounds::AffineCache;
use crate::error::{Error, Result};
use crate::ir::{Graph, NodeId};
use crate::spec::vnnlib::OutputSpec;
use crate::spec::{Norm, Region};
use std::time::Instant;

/// What the attack looks for: an output y (of the attacked node) satisfying, for some group,
/// every row r of the group: `c_r · y <= d_r` (`<` when `strict[r]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Goal {
    /// Number of elements of the attacked node.
    pub width: usize,
    /// Coefficient rows, row-major (rows x width).
    pub c: Vec<f64>,
    pub d: Vec<f64>,
    pub strict: Vec<bool>,
    /// Disjuncts: each a list of row indices, all of which must hold.
    pub groups: Vec<Vec<usize>>,
}

impl Goal {
    /// The label is not the strict top-1: some j != label has y_j >= y_label.
    pub fn misclassification(classes: usize, label: usize) -> Goal {
        let mut g = Goal { width: classes, c: vec![], d: vec![], strict: vec![], groups: vec![] };
        for j in (0..classes).filter(|&j| j != label) {
            let mut row = vec![0.0; classes];
            row[label] = 1.0;
            row[j] = -1.0;
            g.groups.push(vec![g.d.len()]);
            g.c.extend(row);
            g.d.push(0.0);
            g.strict.push(false);
        }
        g
    }

    /// The goal of a VNN-LIB output specification over `width` outputs.
    pub fn from_spec(spec: &OutputSpec, width: usize) -> Goal {
        let mut g = Goal { width, c: vec![], d: vec![], strict: vec![], groups: vec![] };
        for conj in &spec.disjuncts {
            let mut group = vec![];
            for k in conj {
                group.push(g.d.len());
                g.c.extend(k.dense(width));
                g.d.push(k.rhs);
                g.strict.push(k.strict);
            }
            g.groups.push(group);
        }
        g
    }

    pub fn rows(&self) -> usize {
        self.d.len()
    }

    /// c_r · y - d_r for every row.
    pub fn slack(&self, y: &[f64]) -> Vec<f64> {
        (0..self.rows())
            .map(|r| {
                self.c[r * self.width..(r + 1) * self.width].iter().zip(y).map(|(a, b)| a * b).sum::<f64>() - self.d[r]
            })
            .collect()
    }

    /// The loss of one group (max of its slacks; -inf for an empty group) and its worst row.
    fn group_loss(&self, slack: &[f64], g: usize) -> (f64, Option<usize>) {
        let mut best = (f64::NEG_INFINITY, None);
        for &r in &self.groups[g] {
            if slack[r] > best.0 || best.1.is_none() {
                best = (slack[r], Some(r));
            }
        }
        best
    }

    /// Whether y satisfies some group.
    pub fn satisfied(&self, y: &[f64]) -> bool {
        if y.len() != self.width || y.iter().any(|v| v.is_nan()) {
            return false;
        }
        let s = self.slack(y);
        self.groups.iter().any(|g| g.iter().all(|&r| if self.strict[r] { s[r] < 0.0 } else { s[r] <= 0.0 }))
    }

    /// min over groups of the group loss (<= 0 when some group holds, up to strictness).
    pub fn loss(&self, y: &[f64]) -> f64 {
        let s = self.slack(y);
        (0..self.groups.len()).map(|g| self.group_loss(&s, g).0).fold(f64::INFINITY, f64::min)
    }
}

/// Attack settings.
#[derive(Clone, Debug)]
pub struct PgdOptions {
    /// Gradient steps per restart.
    pub steps: usize,
    /// Restarts (the first starts at the region's centre, the others at random points).
    pub restarts: usize,
    pub seed: u64,
    /// Initial step as a fraction of the region's extent (box width, or 2 eps for balls),
    /// decayed on a cosine schedule to 1/100 of it.
    pub step: f64,
    /// Stop (returning what was found so far) once this instant passes.
    pub deadline: Option<Instant>,
}

impl Default for PgdOptions {
    fn default() -> Self {
        PgdOptions { steps: 100, restarts: 10, seed: 0, step: 0.25, deadline: None }
    }
}

/// A checked counterexample: the input (as f32, inside the region) and the f32 output of the
/// attacked node there.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    pub x: Vec<f32>,
    pub y: Vec<f32>,
}

/// A small deterministic generator (SplitMix64): attacks need reproducibility, not secrecy.
#[derive(Clone, Debug)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Rounds x to f32 values inside [lo, hi] (moving one f32 step inward when rounding left it).
pub fn to_f32_in_box(x: &[f64], lo: &[f64], hi: &[f64]) -> Vec<f32> {
    x.iter()
        .zip(lo.iter().zip(hi))
        .map(|(&v, (&l, &h))| {
            let mut f = v.clamp(l, h) as f32;
            if (f as f64) < l {
                f = f.next_up();
            }
            if (f as f64) > h {
                f = f.next_down();
            }
            f
        })
        .collect()
}

/// Whether x (f32) makes `output` satisfy the goal in both the f32 and the f64 forward pass;
/// returns the f32 output when it does.
pub fn check_point(graph: &Graph, output: NodeId, goal: &Goal, x: &[f32]) -> Result<Option<Vec<f32>>> {
    let t32 = forward_tape::<f32>(graph, x, output)?;
    let y32 = t32.value(output).to_vec();
    let y32_64: Vec<f64> = y32.iter().map(|&v| v as f64).collect();
    if !goal.satisfied(&y32_64) {
        return Ok(None);
    }
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let t64 = forward_tape::<f64>(graph, &x64, output)?;
    if !goal.satisfied(t64.value(output)) {
        return Ok(None);
    }
    Ok(Some(y32))
}

/// Projection onto the region (exact for boxes and Linf balls; for L2/L1 balls intersected
/// with a box, alternating projections, then a shrink towards the centre until inside).
fn project(region: &Region, blo: &[f64], bhi: &[f64], x: &mut [f64]) {
    let clamp = |x: &mut [f64]| x.iter_mut().zip(blo.iter().zip(bhi)).for_each(|(v, (&l, &h))| *v = v.clamp(l, h));
    clamp(x);
    if region.norm == Norm::Inf {
        return;
    }
    for _ in 0..4 {
        let mut d: Vec<f64> = x.iter().zip(&region.center).map(|(a, c)| a - c).collect();
        match region.norm {
            Norm::L2 => {
                let n = d.iter().map(|v| v * v).sum::<f64>().sqrt();
                if n > region.eps {
                    d.iter_mut().for_each(|v| *v *= region.eps / n);
                }
            }
            Norm::L1 => {
                // Duchi et al. 2008: soft-threshold at the level that meets the L1 radius.
                let n: f64 = d.iter().map(|v| v.abs()).sum();
                if n > region.eps {
                    let mut u: Vec<f64> = d.iter().map(|v| v.abs()).collect();
                    u.sort_by(|a, b| b.total_cmp(a));
                    let (mut cum, mut theta) = (0.0, 0.0);
                    for (k, &uk) in u.iter().enumerate() {
                        cum += uk;
                        let t = (cum - region.eps) / (k + 1) as f64;
                        if uk > t {
                            theta = t;
                        }
                    }
                    d.iter_mut().for_each(|v| *v = v.signum() * (v.abs() - theta).max(0.0));
                }
            }
            Norm::Inf => {}
        }
        for ((xi, c), di) in x.iter_mut().zip(&region.center).zip(&d) {
            *xi = c + di;
        }
        clamp(x);
    }
}

/// Rounds a projected point to f32 inside the region (shrinking towards the centre if the
/// rounding left an Lp ball).
fn round_in_region(region: &Region, blo: &[f64], bhi: &[f64], x: &[f64]) -> Vec<f32> {
    let mut shrink = 1.0;
    for _ in 0..60 {
        let p: Vec<f64> = x.iter().zip(&region.center).map(|(a, c)| c + (a - c) * shrink).collect();
        let r = to_f32_in_box(&p, blo, bhi);
        let r64: Vec<f64> = r.iter().map(|&v| v as f64).collect();
        if region.contains(&r64, 0.0) {
            return r;
        }
        shrink *= 0.999;
    }
    to_f32_in_box(&region.center, blo, bhi)
}

/// The core loop: descends `loss_of(slack) -> (loss, row)` from `x0`; reports every f32
/// iterate to `visit` (which returns true to stop).
#[allow(clippy::too_many_arguments)]
fn descend(
    graph: &Graph,
    region: &Region,
    output: NodeId,
    goal: &Goal,
    group: Option<usize>,
    x0: Vec<f64>,
    opts: &PgdOptions,
    visit: &mut dyn FnMut(&[f32], f64) -> Result<bool>,
) -> Result<()> {
    let (blo, bhi) = region.bounding_box();
    let width: Vec<f64> = blo.iter().zip(&bhi).map(|(l, h)| h - l).collect();
    let cache = AffineCache::new(graph);
    let extent = match region.norm {
        Norm::Inf => 0.0,
        _ => 2.0 * region.eps,
    };
    let mut x = x0;
    project(region, &blo, &bhi, &mut x);
    let steps = opts.steps.max(1);
    for s in 0..=steps {
        if opts.deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(());
        }
        let x32 = round_in_region(region, &blo, &bhi, &x);
        let xr: Vec<f64> = x32.iter().map(|&v| v as f64).collect();
        let tape = forward_tape::<f64>(graph, &xr, output)?;
        let y = tape.value(output);
        if y.len() != goal.width {
            return Err(Error::Shape(format!("goal over {} outputs, node has {}", goal.width, y.len())));
        }
        let slack = goal.slack(y);
        let (loss, row) = match group {
            Some(g) => goal.group_loss(&slack, g),
            None => {
                let mut best = (f64::INFINITY, None);
                for g in 0..goal.groups.len() {
                    let l = goal.group_loss(&slack, g);
                    if l.0 < best.0 {
                        best = l;
                    }
                }
                best
            }
        };
        if visit(&x32, loss)? || s == steps {
            return Ok(());
        }
        let Some(row) = row else { return Ok(()) };
        let c = &goal.c[row * goal.width..(row + 1) * goal.width];
        let g = vjp(graph, &tape, output, c, 1, &cache)?;
        let frac = opts.step * (0.01 + 0.99 * 0.5 * (1.0 + (std::f64::consts::PI * s as f64 / steps as f64).cos()));
        match region.norm {
            Norm::Inf => {
                for i in 0..x.len() {
                    x[i] = xr[i] - frac * width[i] * g[i].signum();
                }
            }
            Norm::L2 | Norm::L1 => {
                let n = if region.norm == Norm::L2 {
                    g.iter().map(|v| v * v).sum::<f64>().sqrt()
                } else {
                    g.iter().fold(0.0f64, |m, v| m.max(v.abs()))
                };
                if n > 0.0 && n.is_finite() {
                    for i in 0..x.len() {
                        x[i] = xr[i] - frac * extent * g[i] / n;
                    }
                }
            }
        }
        project(region, &blo, &bhi, &mut x);
    }
    Ok(())
}

fn start(region: &Region, k: usize, rng: &mut SplitMix) -> Vec<f64> {
    let (blo, bhi) = region.bounding_box();
    if k == 0 {
        return region.center.clone();
    }
    blo.iter().zip(&bhi).map(|(l, h)| l + (h - l) * rng.uniform()).collect()
}

/// PGD with restarts: an input of `region` whose `output` node satisfies `goal`, checked in
/// f32 and f64 ([`check_point`]), or None.
pub fn pgd(graph: &Graph, region: &Region, output: NodeId, goal: &Goal, opts: &PgdOptions) -> Result<Option<Found>> {
    if goal.groups.is_empty() {
        return Ok(None);
    }
    let mut rng = SplitMix::new(opts.seed);
    let mut found: Option<Found> = None;
    for k in 0..opts.restarts.max(1) {
        if opts.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        // Cycles of #groups + 1 restarts: one per disjunct, then one on the minimum over all;
        // the first cycle starts at the centre, later ones at random points.
        let cycle = if goal.groups.len() > 1 { goal.groups.len() + 1 } else { 1 };
        let group = (goal.groups.len() > 1 && k % cycle < goal.groups.len()).then_some(k % cycle);
        let x0 = start(region, k / cycle, &mut rng);
        found = descend_to_witness(graph, region, output, goal, group, x0, opts)?;
        if found.is_some() {
            break;
        }
    }
    Ok(found)
}

/// One descent from `x0` that stops at the first iterate confirmed by [`check_point`].
fn descend_to_witness(
    graph: &Graph,
    region: &Region,
    output: NodeId,
    goal: &Goal,
    group: Option<usize>,
    x0: Vec<f64>,
    opts: &PgdOptions,
) -> Result<Option<Found>> {
    let mut found: Option<Found> = None;
    let mut visit = |x: &[f32], loss: f64| -> Result<bool> {
        if loss <= 0.0 {
            if let Some(y) = check_point(graph, output, goal, x)? {
                found = Some(Found { x: x.to_vec(), y });
                return Ok(true);
            }
        }
        Ok(false)
    };
    descend(graph, region, output, goal, group, x0, opts, &mut visit)?;
    Ok(found)
}

/// One PGD descent from `x0` (towards whichever disjunct is closest at each step): a checked
/// counterexample, or None. Used to polish candidates from bound propagation.
pub fn pgd_from(
    graph: &Graph,
    region: &Region,
    output: NodeId,
    goal: &Goal,
    x0: Vec<f64>,
    opts: &PgdOptions,
) -> Result<Option<Found>> {
    descend_to_witness(graph, region, output, goal, None, x0, opts)
}

/// Minimises c·y (c: one row over the `output` node) over the region by PGD with restarts:
/// the best input found (f32, inside the region) and the f64 value of c·y there.
pub fn minimize(
    graph: &Graph,
    region: &Region,
    output: NodeId,
    c: &[f64],
    opts: &PgdOptions,
) -> Result<(Vec<f32>, f64)> {
    let goal = Goal { width: c.len(), c: c.to_vec(), d: vec![0.0], strict: vec![false], groups: vec![vec![0]] };
    let mut rng = SplitMix::new(opts.seed);
    let mut best: (Vec<f32>, f64) = (vec![], f64::INFINITY);
    for k in 0..opts.restarts.max(1) {
        if opts.deadline.is_some_and(|d| Instant::now() >= d) && !best.0.is_empty() {
            break;
        }
        let x0 = start(region, k, &mut rng);
        let mut visit = |x: &[f32], loss: f64| -> Result<bool> {
            if loss < best.1 || best.0.is_empty() {
                best = (x.to_vec(), loss);
            }
            Ok(false)
        };
        descend(graph, region, output, &goal, Some(0), x0, opts, &mut visit)?;
    }
    Ok(best)
}
