//! The smallest adversarial radius found per input: an UPPER bound on the true robust radius
//! (a certified radius is a LOWER bound, so certified <= true <= attack radius, and an attack
//! radius below a certified one exposes a soundness bug).
//!
//! The search is PGD (Madry et al. 2018, [`super::pgd`]) at a sequence of radii: geometric
//! bracketing from a start radius (halving while PGD succeeds, doubling while it fails, up to
//! a maximum), then bisection on the radius, as in the binary search of Carlini & Wagner
//! (2017). Every success is shrunk by a line search from the clean input towards the witness
//! (a cheap minimum-norm step in the spirit of DeepFool/FAB: only forward passes), and the
//! radius reported is the norm distance of the best witness, which both the f32 and the f64
//! forward pass misclassify ([`super::check_point`]). The work is bounded (at most
//! `brackets + bisections` PGD runs and `line_search` forward checks per success) and the
//! result depends only on the inputs and the seed (no clock, no thread-dependent state).

use super::pgd::{check_point, pgd, to_f32_in_box, Goal, PgdOptions};
use crate::error::{Error, Result};
use crate::ir::Graph;
use crate::spec::{Norm, Region};

/// The search's parameters (all recorded in a certificate that carries attack radii).
#[derive(Clone, Debug, PartialEq)]
pub struct RadiusSearch {
    pub norm: Norm,
    /// Inputs stay in [lo, hi] element-wise.
    pub clip: Option<(f64, f64)>,
    /// First radius attacked.
    pub start: f64,
    /// Largest radius attacked; no witness up to it means "none found" (the robust radius is
    /// then unknown from above).
    pub max_radius: f64,
    /// At most this many bracketing runs (halvings or doublings).
    pub brackets: usize,
    /// At most this many bisection runs after bracketing.
    pub bisections: usize,
    /// Bisection stops when the bracket is narrower than this fraction of its upper end.
    pub rel_tol: f64,
    /// Forward checks of the line search from the clean input towards each witness.
    pub line_search: usize,
    /// PGD steps and restarts per radius.
    pub steps: usize,
    pub restarts: usize,
    /// PGD seed (the same for every radius of one input; callers key it by input).
    pub seed: u64,
}

impl RadiusSearch {
    /// Defaults sized for small image classifiers: at most 1 + 12 + 6 PGD runs of 15 steps.
    pub fn new(norm: Norm, clip: Option<(f64, f64)>, start: f64, max_radius: f64) -> RadiusSearch {
        RadiusSearch {
            norm,
            clip,
            start,
            max_radius,
            brackets: 12,
            bisections: 6,
            rel_tol: 0.05,
            line_search: 10,
            steps: 15,
            restarts: 1,
            seed: 0,
        }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if !(self.start.is_finite() && self.start > 0.0) {
            return bad(format!("attack-radius start {} must be positive and finite", self.start));
        }
        if !(self.max_radius.is_finite() && self.max_radius >= self.start) {
            return bad(format!(
                "attack-radius maximum {} must be finite and >= the start {}",
                self.max_radius, self.start
            ));
        }
        if self.steps == 0 || self.restarts == 0 {
            return bad("attack-radius steps and restarts must be at least 1".into());
        }
        if !(self.rel_tol > 0.0 && self.rel_tol < 1.0) {
            return bad(format!("attack-radius tolerance {} must be in (0, 1)", self.rel_tol));
        }
        if let Some((lo, hi)) = self.clip {
            if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                return bad(format!("clip box [{lo}, {hi}] is not a finite interval"));
            }
        }
        Ok(())
    }

    /// The parameters as JSON (for a certificate's method record).
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "name": "pgd-radius-search",
            "norm": crate::cert::certify::norm_name(self.norm),
            "start": self.start,
            "maxRadius": self.max_radius,
            "brackets": self.brackets,
            "bisections": self.bisections,
            "bisectionRelTol": self.rel_tol,
            "lineSearch": self.line_search,
            "steps": self.steps,
            "restarts": self.restarts,
            "seed": self.seed.to_string(),
            "description": "smallest radius at which PGD finds an input misclassified (not strict top-1) by both \
                            the f32 and the f64 forward pass: geometric bracketing from start (halving on success, \
                            doubling on failure, at most maxRadius), then bisection on the radius; each witness is \
                            shrunk by a line search towards the clean input; the radius recorded is the witness's \
                            norm distance from the input. An upper bound on the robust radius of the network f; \
                            input i uses seed + i",
        })
    }
}

/// A witness: an input (f32, inside the clip box) that the network misclassifies.
#[derive(Clone, Debug, PartialEq)]
pub struct Witness {
    pub x: Vec<f32>,
    /// Its distance from the clean input in the search norm (computed in f64).
    pub radius: f64,
    /// The f32 top-1 class there (lowest index on ties).
    pub prediction: Option<usize>,
}

/// What the search found for one input.
#[derive(Clone, Debug, PartialEq)]
pub struct RadiusResult {
    /// The closest witness found; None when PGD found none up to `max_radius`.
    pub witness: Option<Witness>,
    /// Largest radius at which PGD failed (0 when none failed): no witness was found below it
    /// by the last bracket, which says nothing certain (PGD is incomplete).
    pub largest_failed: f64,
    /// PGD runs made.
    pub pgd_runs: usize,
}

/// Distance between two points in a norm (f64).
pub fn distance(norm: Norm, a: &[f64], b: &[f64]) -> f64 {
    let d = a.iter().zip(b).map(|(x, y)| (x - y).abs());
    match norm {
        Norm::Inf => d.fold(0.0, f64::max),
        Norm::L2 => d.map(|v| v * v).sum::<f64>().sqrt(),
        Norm::L1 => d.sum(),
    }
}

struct Searcher<'a> {
    graph: &'a Graph,
    x: &'a [f64],
    out: crate::ir::NodeId,
    goal: Goal,
    s: &'a RadiusSearch,
    blo: Vec<f64>,
    bhi: Vec<f64>,
    best: Option<Witness>,
    runs: usize,
}

impl Searcher<'_> {
    /// Records a checked witness if it is closer than the best so far.
    fn offer(&mut self, w: &[f32]) -> Result<bool> {
        let Some(y) = check_point(self.graph, self.out, &self.goal, w)? else { return Ok(false) };
        let w64: Vec<f64> = w.iter().map(|&v| f64::from(v)).collect();
        if w64.iter().zip(self.blo.iter().zip(&self.bhi)).any(|(v, (l, h))| v < l || v > h) {
            return Ok(false);
        }
        let radius = distance(self.s.norm, &w64, self.x);
        if self.best.as_ref().is_none_or(|b| radius < b.radius) {
            self.best = Some(Witness { x: w.to_vec(), radius, prediction: crate::smoothing::argmax(&y) });
        }
        Ok(true)
    }

    /// Shrinks a witness towards the clean input: bisection on t in x + t (w - x) over
    /// forward-checked points (the path may leave and re-enter the misclassified set; any
    /// checked point is a valid witness, the closest is kept).
    fn line_search(&mut self, w: &[f32]) -> Result<()> {
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        let w64: Vec<f64> = w.iter().map(|&v| f64::from(v)).collect();
        for _ in 0..self.s.line_search {
            let t = 0.5 * (lo + hi);
            let p: Vec<f64> = self.x.iter().zip(&w64).map(|(a, b)| a + t * (b - a)).collect();
            let p32 = to_f32_in_box(&p, &self.blo, &self.bhi);
            if self.offer(&p32)? {
                hi = t;
            } else {
                lo = t;
            }
        }
        Ok(())
    }

    /// One PGD run at radius r; true when it found a (checked) witness.
    fn attack(&mut self, r: f64) -> Result<bool> {
        self.runs += 1;
        let region = Region::ball(self.x.to_vec(), self.s.norm, r, self.s.clip)?;
        let opts =
            PgdOptions { steps: self.s.steps, restarts: self.s.restarts, seed: self.s.seed, ..PgdOptions::default() };
        let Some(found) = pgd(self.graph, &region, self.out, &self.goal, &opts)? else { return Ok(false) };
        let f64x: Vec<f64> = found.x.iter().map(|&v| f64::from(v)).collect();
        if !region.contains(&f64x, 0.0) || !self.offer(&found.x)? {
            return Ok(false);
        }
        self.line_search(&found.x)?;
        Ok(true)
    }
}

/// Searches the smallest radius (in `s.norm`, within the clip box) at which the network
/// misclassifies `x` (label `label` not the strict top-1 in both f32 and f64). A clean input
/// the network already misclassifies has radius 0 (the witness is the input itself).
pub fn smallest_adversarial_radius(graph: &Graph, x: &[f64], label: usize, s: &RadiusSearch) -> Result<RadiusResult> {
    s.validate()?;
    let out = crate::bounds::radius::decision_node(graph);
    let classes: usize = graph.node(out).shape.iter().product();
    if label >= classes {
        return Err(Error::InvalidArgument(format!("label {label} but the model has {classes} outputs")));
    }
    let (blo, bhi) = match s.clip {
        Some((l, h)) => (vec![l; x.len()], vec![h; x.len()]),
        None => (vec![f64::NEG_INFINITY; x.len()], vec![f64::INFINITY; x.len()]),
    };
    let mut sr =
        Searcher { graph, x, out, goal: Goal::misclassification(classes, label), s, blo, bhi, best: None, runs: 0 };
    // The clean input itself, as the device sees it (rounded to f32): a misclassified clean
    // input has radius 0 (not the distance of its f32 rounding; certify classifies the same
    // rounded input).
    let x32 = to_f32_in_box(x, &sr.blo, &sr.bhi);
    if let Some(y) = check_point(graph, out, &sr.goal, &x32)? {
        let prediction = crate::smoothing::argmax(&y);
        return Ok(RadiusResult {
            witness: Some(Witness { x: x32, radius: 0.0, prediction }),
            largest_failed: 0.0,
            pgd_runs: 0,
        });
    }
    // Bracketing: lo = a radius where PGD failed, hi = best witness distance.
    let mut lo = 0.0f64;
    let mut r = s.start;
    let mut brackets = 0;
    if sr.attack(r)? {
        while brackets < s.brackets {
            brackets += 1;
            r = sr.best.as_ref().map_or(r, |b| b.radius.min(r)) / 2.0;
            if r <= 0.0 || !sr.attack(r)? {
                lo = r;
                break;
            }
        }
    } else {
        lo = r;
        while brackets < s.brackets && r < s.max_radius {
            brackets += 1;
            r = (2.0 * r).min(s.max_radius);
            if sr.attack(r)? {
                break;
            }
            lo = r;
        }
    }
    if sr.best.is_none() {
        return Ok(RadiusResult { witness: None, largest_failed: lo, pgd_runs: sr.runs });
    }
    for _ in 0..s.bisections {
        let hi = sr.best.as_ref().map_or(lo, |b| b.radius);
        if hi - lo <= s.rel_tol * hi {
            break;
        }
        let mid = 0.5 * (lo + hi);
        if !sr.attack(mid)? {
            lo = mid;
        }
    }
    Ok(RadiusResult { witness: sr.best, largest_failed: lo, pgd_runs: sr.runs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        let a = [0.0, 3.0, -4.0];
        let b = [0.0; 3];
        assert_eq!(distance(Norm::Inf, &a, &b), 4.0);
        assert_eq!(distance(Norm::L2, &a, &b), 5.0);
        assert_eq!(distance(Norm::L1, &a, &b), 7.0);
    }

    #[test]
    fn bad_parameters_are_errors() {
        let ok = RadiusSearch::new(Norm::Inf, Some((0.0, 1.0)), 0.01, 1.0);
        assert!(ok.validate().is_ok());
        for bad in [
            RadiusSearch { start: 0.0, ..ok.clone() },
            RadiusSearch { max_radius: 0.001, ..ok.clone() },
            RadiusSearch { steps: 0, ..ok.clone() },
            RadiusSearch { rel_tol: 1.0, ..ok.clone() },
            RadiusSearch { clip: Some((1.0, 0.0)), ..ok.clone() },
            RadiusSearch { max_radius: f64::INFINITY, ..ok.clone() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
