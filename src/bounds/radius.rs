//! Certified radius: the largest eps for which bound propagation proves that the label stays
//! top-1 on the Lp ball (bisection to 1e-3 relative; the reported radius is the largest eps
//! actually proved, never an interpolated one).

use super::propagate::{bound_spec, Method};
use crate::error::{Error, Result};
use crate::ir::Graph;
use crate::spec::{Norm, Region};

/// The margin specification C = e_label - e_j for every j != label (rows x classes).
pub fn margin_spec(classes: usize, label: usize) -> Vec<f64> {
    let mut c = Vec::with_capacity((classes - 1) * classes);
    for j in (0..classes).filter(|&j| j != label) {
        for k in 0..classes {
            c.push(if k == label {
                1.0
            } else if k == j {
                -1.0
            } else {
                0.0
            });
        }
    }
    c
}

/// The node whose argmax is the model's decision: the first output, or the input of a final
/// Softmax (which does not change the argmax and has no linear relaxation).
pub fn decision_node(graph: &Graph) -> crate::ir::NodeId {
    let out = graph.outputs[0];
    match (&graph.node(out).op, graph.node(out).inputs.as_slice()) {
        (crate::ops::Op::Softmax(_), [x]) => *x,
        _ => out,
    }
}

/// Whether the label provably stays top-1 over the region (all margins' lower bounds > 0).
pub fn certifies(graph: &Graph, region: &Region, method: Method, label: usize) -> Result<bool> {
    let out = decision_node(graph);
    let classes: usize = graph.node(out).shape.iter().product();
    if label >= classes {
        return Err(Error::InvalidArgument(format!("label {label} but the model has {classes} outputs")));
    }
    if classes < 2 {
        return Err(Error::InvalidArgument("a certified radius needs at least two classes".into()));
    }
    let spec = margin_spec(classes, label);
    if method == Method::AlphaCrown {
        // Only lower bounds matter: optimise those alone, after a cheap CROWN check.
        let mut t = super::BoundTable::new(graph, region, method, out)?;
        let crown = t.backward(out, &spec, classes - 1)?;
        if crown.lower.iter().all(|&l| l > 0.0) {
            return Ok(true);
        }
        let lower = t.alpha_lower(out, &spec, classes - 1, super::propagate::AlphaOptions::default())?;
        return Ok(lower.iter().zip(&crown.lower).all(|(a, c)| a.max(*c) > 0.0));
    }
    let b = bound_spec(graph, region, method, out, &spec, classes - 1)?;
    Ok(b.lower.iter().all(|&l| l > 0.0))
}

/// Outcome of a radius search.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CertifiedRadius {
    /// Largest radius proved (0 when not even the centre is proved).
    pub radius: f64,
    /// Smallest radius tried that could not be proved (None when the search cap was proved).
    pub first_failure: Option<f64>,
    /// Bound computations run.
    pub evaluations: usize,
}

/// Bisection for the largest provable radius, up to `max_radius`, to `rel_tol` relative.
pub fn certified_radius(
    graph: &Graph,
    center: &[f64],
    label: usize,
    norm: Norm,
    method: Method,
    clip: Option<(f64, f64)>,
    max_radius: f64,
    rel_tol: f64,
) -> Result<CertifiedRadius> {
    // A NaN or infinite limit would grow the bracket forever; a NaN tolerance would skip the
    // bisection.
    if !max_radius.is_finite() || max_radius <= 0.0 {
        return Err(Error::InvalidArgument(format!("the largest radius {max_radius} must be positive and finite")));
    }
    if rel_tol.is_nan() || rel_tol <= 0.0 || rel_tol >= 1.0 {
        return Err(Error::InvalidArgument(format!("bisection tolerance {rel_tol} must be in (0, 1)")));
    }
    let mut evals = 0;
    let mut check = |eps: f64| -> Result<bool> {
        evals += 1;
        let region = Region::ball(center.to_vec(), norm, eps, clip)?;
        certifies(graph, &region, method, label)
    };
    if !check(0.0)? {
        return Ok(CertifiedRadius { radius: 0.0, first_failure: Some(0.0), evaluations: evals });
    }
    // Grow geometrically to bracket the radius, then bisect.
    let (mut lo, mut hi) = (0.0f64, max_radius.clamp(f64::MIN_POSITIVE, 1e-3));
    loop {
        if check(hi)? {
            lo = hi;
            if hi >= max_radius {
                return Ok(CertifiedRadius { radius: lo, first_failure: None, evaluations: evals });
            }
            hi = (hi * 4.0).min(max_radius);
        } else {
            break;
        }
    }
    while hi - lo > rel_tol * hi {
        let mid = lo + (hi - lo) / 2.0;
        // A tolerance below the spacing of floats cannot be met: stop at adjacent floats.
        if mid <= lo || mid >= hi {
            break;
        }
        if check(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(CertifiedRadius { radius: lo, first_failure: Some(hi), evaluations: evals })
}
