//! The engines behind `robustcert certify`: per-input results for bound propagation (IBP,
//! CROWN: clean f32 prediction, then the certified radius by bisection) and randomized
//! smoothing (CERTIFY with recorded seed and counts), run in parallel over inputs with results
//! independent of the thread count, and the [`Method`] record that lets `check-cert --recheck`
//! ([`super::recheck`]) rerun exactly the same computation.

use super::predicate::{InputResult, Method, Outcome};
use crate::bounds::radius::certified_radius;
use crate::bounds::Method as BoundMethod;
use crate::error::{Error, Result};
use crate::ir::{Graph, Tensor};
use crate::smoothing::{self, Sampler};
use crate::spec::Norm;
use rayon::prelude::*;
use serde_json::{json, Value};
use std::time::Instant;

/// Relative tolerance of the radius bisection.
pub const RADIUS_REL_TOL: f64 = 1e-3;

/// What the smoothing engine uses to key and count its noise (recorded as `method.parameters.rng`).
pub const SMOOTHING_RNG: &str = "ChaCha20, key = (\"rcsmooth\", seed, input index), nonce = stream << 56 | sample \
                                 index; streams 0 selection, 1 estimation";

/// What the bound-propagation guarantee covers (recorded as an assumption).
pub const BOUND_GUARANTEE: &str = "Bounds are sound for the real-valued network: computed in f64 with every \
     rounding error bounded and charged outward; f32 execution on a device may differ from the real-valued network \
     by its own rounding.";

/// The engine and its parameters: everything that determines a per-input result.
#[derive(Debug, Clone, PartialEq)]
pub enum Engine {
    /// Bound propagation (IBP or CROWN) with the radius found by bisection.
    Bounds {
        method: BoundMethod,
        norm: Norm,
        /// The radius to prove: "proved" when the certified radius reaches it.
        eps: f64,
        /// Largest radius searched (max of eps and the reported radii).
        max_radius: f64,
        /// Relative tolerance of the bisection.
        rel_tol: f64,
        clip: Option<(f64, f64)>,
        /// PGD on the inputs not proved at eps (None: no attack, no counterexamples).
        attack: Option<Attack>,
    },
    /// Randomized smoothing CERTIFY (L2).
    Smoothing {
        sigma: f64,
        /// Rounded-Gaussian (Voracek & Hein 2023) noise when true, plain Gaussian otherwise.
        sound: bool,
        n0: u64,
        n: u64,
        alpha: f64,
        seed: u64,
        /// Samples per forward pass (does not change results).
        batch: usize,
        /// "proved" requires radius >= eps when given.
        eps: Option<f64>,
    },
}

/// The falsification run on inputs not proved at eps: PGD with restarts (Madry et al. 2018,
/// [`crate::attack::pgd`]); a point counts only when it lies in the region and misclassifies
/// in both the f32 and the f64 forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attack {
    pub steps: usize,
    pub restarts: usize,
    /// Input i uses seed `seed + i` (wrapping).
    pub seed: u64,
}

impl Default for Attack {
    fn default() -> Self {
        Attack { steps: 50, restarts: 5, seed: 0 }
    }
}

/// The smallest radius >= `r` on the certificates' radius grid (multiples of 1e-6 that
/// [`super::round_radius_down`] leaves unchanged). A radius proved at or above it stays at or
/// above it after the builder rounds it down, so "proved at eps" is also "certified at eps" in
/// the aggregates. Rounding up keeps the claim at least as strong as the one requested.
/// Above [`MAX_GRID_RADIUS`] the answer is infinity, which every caller refuses as a radius.
pub fn radius_on_grid(r: f64) -> f64 {
    if !(r.is_finite() && r > 0.0) {
        return r;
    }
    if r > MAX_GRID_RADIUS {
        return f64::INFINITY;
    }
    let mut k = (r * 1e6).ceil().max(0.0);
    // One or two steps in practice; the bound only guarantees an end.
    for _ in 0..1000 {
        let q = k / 1e6;
        if q >= r && super::round_radius_down(q) == q {
            return q;
        }
        k += 1.0;
    }
    f64::INFINITY
}

/// The largest radius a certificate records. Past 2^53 x 1e-6 (about 9e9) the multiples of
/// 1e-6 are no longer distinct floats, and past about 1.8e302 r x 1e6 is not finite: searching
/// for a grid point there never ended (`--eps 1e303` hung). No normalised input needs more.
pub const MAX_GRID_RADIUS: f64 = 1e9;

/// The threat-model norm name of a [`Norm`] (`linf`, `l2`, `l1`).
pub fn norm_name(n: Norm) -> &'static str {
    match n {
        Norm::Inf => "linf",
        Norm::L2 => "l2",
        Norm::L1 => "l1",
    }
}

fn bound_method_name(m: BoundMethod) -> &'static str {
    match m {
        BoundMethod::Ibp => "ibp",
        BoundMethod::Crown => "crown",
        BoundMethod::AlphaCrown => "alpha-crown",
    }
}

fn noise_name(sound: bool) -> &'static str {
    if sound {
        "sound"
    } else {
        "gaussian"
    }
}

impl Engine {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        match self {
            Engine::Bounds { eps, max_radius, rel_tol, clip, attack, .. } => {
                if attack.is_some_and(|a| a.steps == 0 || a.restarts == 0) {
                    return bad("attack steps and restarts must be at least 1".into());
                }
                if !(eps.is_finite() && *eps > 0.0) {
                    return bad(format!("eps must be positive and finite, got {eps}"));
                }
                if !(max_radius.is_finite() && max_radius >= eps) {
                    return bad(format!("the largest radius {max_radius} must be finite and >= eps {eps}"));
                }
                if !(*rel_tol > 0.0 && *rel_tol < 1.0) {
                    return bad(format!("bisection tolerance {rel_tol} must be in (0, 1)"));
                }
                if let Some((lo, hi)) = clip {
                    if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                        return bad(format!("clip box [{lo}, {hi}] is not a finite interval"));
                    }
                }
                Ok(())
            }
            Engine::Smoothing { sigma, sound, n0, n, alpha, seed, batch, eps } => {
                if let Some(e) = eps {
                    if !(e.is_finite() && *e >= 0.0) {
                        return bad(format!("eps must be finite and >= 0, got {e}"));
                    }
                }
                smoothing::Config::new(*sigma, *sound, *n0, *n, *alpha, *seed, *batch).map(|_| ())
            }
        }
    }

    /// Per-input failure probability (alpha for smoothing, 0 for exact methods).
    pub fn alpha(&self) -> f64 {
        match self {
            Engine::Bounds { .. } => 0.0,
            Engine::Smoothing { alpha, .. } => *alpha,
        }
    }

    /// The seed of all randomness (smoothing only).
    pub fn seed(&self) -> Option<u64> {
        match self {
            Engine::Bounds { .. } => None,
            Engine::Smoothing { seed, .. } => Some(*seed),
        }
    }

    /// The threat-model norm name.
    pub fn norm_name(&self) -> &'static str {
        match self {
            Engine::Bounds { norm, .. } => norm_name(*norm),
            Engine::Smoothing { .. } => "l2",
        }
    }

    /// The certificate's `method` record: name, every parameter needed to rerun, soundness and
    /// assumptions. [`Engine::from_method`] reads it back.
    pub fn method(&self) -> Method {
        match self {
            Engine::Bounds { method, norm, eps, max_radius, rel_tol, clip, attack } => {
                let mut m = Method::exact(bound_method_name(*method), false);
                let p = &mut m.parameters;
                p.insert(
                    "attack".into(),
                    match attack {
                        Some(a) => json!({
                            "name": "pgd",
                            "steps": a.steps,
                            "restarts": a.restarts,
                            "seed": a.seed.to_string(),
                            "description": "projected gradient descent with restarts at radius eps on inputs not \
                                            proved at eps; input i uses seed + i; a counterexample is recorded only \
                                            when it lies in the region and fails strict top-1 in both the f32 and \
                                            the f64 forward pass",
                        }),
                        None => Value::Null,
                    },
                );
                p.insert("norm".into(), json!(norm_name(*norm)));
                p.insert("eps".into(), json!(eps));
                p.insert("maxRadius".into(), json!(max_radius));
                p.insert("bisectionRelTol".into(), json!(rel_tol));
                p.insert("clip".into(), json!(clip.map(|(a, b)| [a, b])));
                p.insert(
                    "cleanPrediction".into(),
                    json!(
                        "argmax of the f32 forward pass (lowest index on ties); 'incorrect' when it is not the label"
                    ),
                );
                p.insert(
                    "radiusSearch".into(),
                    json!(
                        "largest radius proved by bisection up to maxRadius (geometric bracketing from 1e-3, then \
                           bisection to bisectionRelTol relative); 'proved' when it reaches eps, else 'inconclusive' \
                           with the radius in 'detail'"
                    ),
                );
                m.arithmetic.description = BOUND_GUARANTEE.into();
                m.assumptions.push(BOUND_GUARANTEE.into());
                m.assumptions.push(
                    "Inputs outside the clip box (when given) are outside the threat model; without a clip box the \
                     ball is unconstrained."
                        .into(),
                );
                m
            }
            Engine::Smoothing { sigma, sound, n0, n, alpha, seed, batch: _, eps } => {
                let mut m = Method::randomized_smoothing(*sigma, *n0, *n);
                let p = &mut m.parameters;
                p.insert("alpha".into(), json!(alpha));
                p.insert("seed".into(), json!(seed.to_string()));
                p.insert("noise".into(), json!(noise_name(*sound)));
                p.insert("rng".into(), json!(SMOOTHING_RNG));
                p.insert("norm".into(), json!("l2"));
                p.insert("eps".into(), json!(eps));
                p.insert(
                    "noiseSpace".into(),
                    json!("the model input as supplied (pixel space when normalisation is inside the graph)"),
                );
                p.insert(
                    "perInputRecord".into(),
                    json!(
                        "results.perInput[].detail is a JSON object with the selected class, the base network's \
                           clean class, the selection and estimation counts (last entry: outputs with no class), \
                           n_A, the lower bound on p_A and the sampling margin; replayable from the seed"
                    ),
                );
                m.arithmetic.sound_floating_point = *sound;
                m.arithmetic.description = if *sound {
                    "Monte Carlo estimate of class probabilities under rounded Gaussian noise on the 1/255 grid \
                     (Voracek & Hein 2023): sound for h = f o round as it runs in f32, up to a proven sampling \
                     margin; each certificate holds with probability >= 1 - alpha"
                        .into()
                } else {
                    "Monte Carlo estimate of class probabilities under plain Gaussian noise in f32: valid in exact \
                     real arithmetic only (not sound for f as it runs in floating point); each certificate holds with \
                     probability >= 1 - alpha"
                        .into()
                };
                m.assumptions = vec![
                    format!(
                        "The certificate covers the smoothed classifier g(x) = argmax_c P(h(x + delta) = c), delta ~ \
                         N(0, {sigma}^2 I), h = {}, not the base network f: the device must deploy g (the same sigma, \
                         noise mode and abstention rule), not f.",
                        if *sound { "f o round (round to the 1/255 grid, then f32)" } else { "f" }
                    ),
                    format!(
                        "Each 'proved' input is wrong with probability at most alpha = {alpha}; over n inputs about \
                         alpha x n certificates are expected to be wrong (see statistics)."
                    ),
                    "Noise samples are the stated ChaCha20 streams of the recorded seed; a different RNG gives \
                     different counts but the same guarantee."
                        .into(),
                ];
                if *sound {
                    m.assumptions.push("Inputs lie on the 1/255 grid (the sound noise mode requires it).".into());
                }
                m
            }
        }
    }

    /// Reads the engine back from a certificate's method record (and threat model norm/clip).
    pub fn from_method(m: &Method, norm: &str, clip_box: Option<[f64; 2]>) -> Result<Engine> {
        let bad = |what: &str| Error::Certificate(format!("method '{}': {what}", m.name));
        let num = |k: &str| m.parameters.get(k).and_then(Value::as_f64).ok_or_else(|| bad(&format!("no number '{k}'")));
        let int =
            |k: &str| m.parameters.get(k).and_then(Value::as_u64).ok_or_else(|| bad(&format!("no integer '{k}'")));
        let norm = match norm {
            "linf" => Norm::Inf,
            "l2" => Norm::L2,
            "l1" => Norm::L1,
            other => return Err(bad(&format!("unknown norm '{other}'"))),
        };
        let e = match m.name.as_str() {
            "ibp" | "crown" | "alpha-crown" => Engine::Bounds {
                method: match m.name.as_str() {
                    "ibp" => BoundMethod::Ibp,
                    "alpha-crown" => BoundMethod::AlphaCrown,
                    _ => BoundMethod::Crown,
                },
                norm,
                eps: num("eps")?,
                max_radius: num("maxRadius")?,
                rel_tol: num("bisectionRelTol")?,
                clip: clip_box.map(|[a, b]| (a, b)),
                attack: match m.parameters.get("attack") {
                    None | Some(Value::Null) => None,
                    Some(a) => Some(Attack {
                        steps: a.get("steps").and_then(Value::as_u64).ok_or_else(|| bad("attack without steps"))?
                            as usize,
                        restarts: a
                            .get("restarts")
                            .and_then(Value::as_u64)
                            .ok_or_else(|| bad("attack without restarts"))? as usize,
                        seed: a
                            .get("seed")
                            .and_then(Value::as_str)
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| bad("attack without a decimal string seed"))?,
                    }),
                },
            },
            "randomized-smoothing" => Engine::Smoothing {
                sigma: num("sigma")?,
                sound: match m.parameters.get("noise").and_then(Value::as_str) {
                    Some("sound") => true,
                    Some("gaussian") => false,
                    _ => return Err(bad("'noise' is not 'sound' or 'gaussian'")),
                },
                n0: int("n0")?,
                n: int("n")?,
                alpha: num("alpha")?,
                seed: m
                    .parameters
                    .get("seed")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad("no decimal string 'seed'"))?,
                batch: smoothing::DEFAULT_BATCH,
                eps: m.parameters.get("eps").and_then(Value::as_f64),
            },
            other => return Err(bad(&format!("cannot rerun method '{other}'"))),
        };
        e.validate()?;
        Ok(e)
    }
}

/// The model's samples: `x` (any layout [`Graph::as_samples`] accepts) as flat per-sample rows.
pub fn samples(graph: &Graph, x: &Tensor<f64>) -> Result<Vec<Vec<f64>>> {
    let s = graph.as_samples(x.clone())?;
    let n = s.shape()[0];
    if n == 0 {
        return Ok(vec![]);
    }
    let per = s.len() / n;
    Ok(s.data().chunks(per).map(<[f64]>::to_vec).collect())
}

/// The f32 clean prediction of the network on one sample (argmax of the first output, lowest
/// index on ties, NaN ignored).
pub fn clean_prediction(graph: &Graph, x: &[f64]) -> Result<Option<usize>> {
    let decl = &graph.input_info[0].shape;
    let shape = if decl.first() == Some(&1) {
        std::iter::once(1).chain(graph.sample_shape().iter().copied()).collect()
    } else {
        decl.clone()
    };
    let t = Tensor::new(shape, x.iter().map(|&v| v as f32).collect())?;
    let out = graph.forward(&[&t])?.swap_remove(0);
    Ok(smoothing::argmax(out.data()))
}

/// One input's result (label known; `index` keys the smoothing noise). Engine failures become
/// an `error` outcome with the message in `detail`, never an `Err`.
pub fn certify_input(graph: &Graph, engine: &Engine, x: &[f64], label: usize, index: usize) -> InputResult {
    match certify_input_inner(graph, engine, x, label, index) {
        Ok(r) => r,
        Err(e) => {
            let mut r = InputResult::new(index, None, Outcome::Error, 0.0);
            r.detail = Some(e.to_string());
            r
        }
    }
}

fn certify_input_inner(graph: &Graph, engine: &Engine, x: &[f64], label: usize, index: usize) -> Result<InputResult> {
    match engine {
        Engine::Bounds { method, norm, eps, max_radius, rel_tol, clip, attack } => {
            let pred = clean_prediction(graph, x)?;
            if pred != Some(label) {
                let mut r = InputResult::new(index, pred, Outcome::Incorrect, 0.0);
                r.detail = Some(format!("the f32 clean prediction {pred:?} is not the label {label}"));
                return Ok(r);
            }
            let c = certified_radius(graph, x, label, *norm, *method, *clip, *max_radius, *rel_tol)?;
            let detail = format!(
                "certified radius {} ({} bound computations; first radius not proved: {})",
                c.radius,
                c.evaluations,
                c.first_failure.map_or("none up to maxRadius".to_string(), |f| f.to_string())
            );
            if c.radius >= *eps {
                let mut r = InputResult::new(index, pred, Outcome::Proved, c.radius);
                r.detail = Some(detail);
                return Ok(r);
            }
            if let Some(a) = attack {
                if let Some(found) = counterexample(graph, x, label, *norm, *eps, *clip, a, index)? {
                    let x64: Vec<f64> = found.x.iter().map(|&v| f64::from(v)).collect();
                    let mut r = InputResult::new(index, pred, Outcome::Counterexample, 0.0).with_counterexample(&x64);
                    r.detail = Some(format!(
                        "{detail}; PGD found an input at {} distance {} <= eps {eps} classified {:?} (f32 decision \
                         values {:?})",
                        norm_name(*norm),
                        distance(*norm, &x64, x),
                        crate::smoothing::argmax(&found.y),
                        found.y
                    ));
                    return Ok(r);
                }
            }
            let mut r = InputResult::new(index, pred, Outcome::Inconclusive, 0.0);
            r.detail = Some(detail);
            Ok(r)
        }
        Engine::Smoothing { sigma, sound, n0, n, alpha, seed, batch, eps } => {
            let cfg = smoothing::Config::new(*sigma, *sound, *n0, *n, *alpha, *seed, *batch)?;
            let sampler = Sampler::new(graph)?;
            let c = smoothing::certify(&sampler, &cfg, x, index as u64, None)?;
            let detail = json!({
                "class": c.class,
                "baseClass": c.base_class,
                "countsSelection": c.counts_selection,
                "counts": c.counts,
                "nA": c.n_a,
                "n": c.n_estimation,
                "pALower": c.p_a_lower,
                "pMargin": c.p_margin,
                "radius": c.radius,
            });
            let (outcome, radius) = match c.prediction {
                None => (Outcome::Abstain, 0.0),
                Some(p) if p != label => (Outcome::Incorrect, 0.0),
                Some(_) if eps.is_some_and(|e| c.radius < e) => (Outcome::Inconclusive, 0.0),
                Some(_) => (Outcome::Proved, c.radius),
            };
            let mut r = InputResult::new(index, c.prediction, outcome, radius);
            r.detail = Some(detail.to_string());
            Ok(r)
        }
    }
}

fn distance(norm: Norm, a: &[f64], b: &[f64]) -> f64 {
    let d = a.iter().zip(b).map(|(x, y)| (x - y).abs());
    match norm {
        Norm::Inf => d.fold(0.0, f64::max),
        Norm::L2 => d.map(|v| v * v).sum::<f64>().sqrt(),
        Norm::L1 => d.sum(),
    }
}

/// PGD at radius eps; a found point is re-checked here (inside the region, and failing strict
/// top-1 in f32 and f64) before it is returned.
#[allow(clippy::too_many_arguments)]
fn counterexample(
    graph: &Graph,
    x: &[f64],
    label: usize,
    norm: Norm,
    eps: f64,
    clip: Option<(f64, f64)>,
    a: &Attack,
    index: usize,
) -> Result<Option<crate::attack::Found>> {
    use crate::attack::{check_point, pgd, Goal, PgdOptions};
    let out = crate::bounds::radius::decision_node(graph);
    let classes: usize = graph.node(out).shape.iter().product();
    let region = crate::spec::Region::ball(x.to_vec(), norm, eps, clip)?;
    let goal = Goal::misclassification(classes, label);
    let opts = PgdOptions {
        steps: a.steps,
        restarts: a.restarts,
        seed: a.seed.wrapping_add(index as u64),
        ..PgdOptions::default()
    };
    let Some(found) = pgd(graph, &region, out, &goal, &opts)? else { return Ok(None) };
    let x64: Vec<f64> = found.x.iter().map(|&v| f64::from(v)).collect();
    if !region.contains(&x64, 0.0) || check_point(graph, out, &goal, &found.x)?.is_none() {
        return Ok(None);
    }
    Ok(Some(found))
}

/// Searches the smallest adversarial radius ([`crate::attack::radius`]) of every result's
/// input (skipping `error` outcomes) in parallel on the current rayon pool, records it in
/// `attack_radius`, and returns the witnesses by input index (for
/// [`crate::report::witnesses::save`]). Input i uses seed `search.seed + i`, so the results do
/// not depend on the number of threads. The search attacks the base network f in
/// `search.norm`, whatever the engine certified.
pub fn attack_radii(
    graph: &Graph,
    search: &crate::attack::radius::RadiusSearch,
    rows: &[Vec<f64>],
    labels: &[usize],
    results: &mut [InputResult],
) -> Result<Vec<(usize, Vec<f32>)>> {
    search.validate()?;
    if let Some(r) = results.iter().find(|r| r.index >= rows.len() || r.index >= labels.len()) {
        return Err(Error::InvalidArgument(format!("input {} is out of range ({} inputs)", r.index, rows.len())));
    }
    let found: Vec<Result<Option<(usize, Vec<f32>)>>> = results
        .par_iter_mut()
        .map(|r| {
            let i = r.index;
            Ok(attack_one(graph, search, &rows[i], labels[i], r)?.map(|w| (i, w)))
        })
        .collect();
    let mut out = Vec::new();
    for f in found {
        out.extend(f?);
    }
    Ok(out)
}

/// [`attack_radii`] for one result (input `x`, label `label`; nothing for `error` outcomes):
/// fills `r.attack_radius` and returns the witness. Input i uses seed `search.seed + i`.
pub fn attack_one(
    graph: &Graph,
    search: &crate::attack::radius::RadiusSearch,
    x: &[f64],
    label: usize,
    r: &mut InputResult,
) -> Result<Option<Vec<f32>>> {
    if r.outcome == Outcome::Error {
        return Ok(None);
    }
    let s = crate::attack::radius::RadiusSearch { seed: search.seed.wrapping_add(r.index as u64), ..search.clone() };
    let f = crate::attack::radius::smallest_adversarial_radius(graph, x, label, &s)?;
    let w = f.witness.as_ref();
    r.attack_radius = Some(super::predicate::AttackRadius {
        norm: norm_name(search.norm).into(),
        radius: w.map(|w| w.radius),
        searched_up_to: search.max_radius,
        witness_digest: w.map(|w| super::sample_digest(&w.x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>())),
        witness_prediction: w.and_then(|w| w.prediction),
    });
    Ok(f.witness.map(|w| w.x))
}

/// The counterexample at eps behind one result's `counterexampleDigest` (None when it has
/// none): the bound engines' PGD is deterministic, so it is rerun; a rerun whose digest differs
/// is an error, never a silent substitution.
pub fn counterexample_of(
    graph: &Graph,
    engine: &Engine,
    x: &[f64],
    label: usize,
    r: &InputResult,
) -> Result<Option<Vec<f32>>> {
    let Some(recorded) = r.counterexample_digest.as_deref() else { return Ok(None) };
    let Engine::Bounds { norm, eps, clip, attack: Some(a), .. } = engine else { return Ok(None) };
    let found = counterexample(graph, x, label, *norm, *eps, *clip, a, r.index)?;
    let v = found.map(|f| f.x).unwrap_or_default();
    if v.is_empty() || super::sample_digest(&v.iter().map(|&v| f64::from(v)).collect::<Vec<_>>()) != recorded {
        return Err(Error::Verification(format!(
            "input {}: rerunning the attack did not reproduce the recorded counterexample",
            r.index
        )));
    }
    Ok(Some(v))
}

/// The values behind every recorded `counterexampleDigest`, for saving beside the certificate:
/// the bound engines' PGD is deterministic (input i uses the recorded seed + i), so it is rerun
/// here on the counterexample inputs; a rerun whose digest differs from the recorded one is an
/// error, never a silent substitution.
pub fn counterexample_values(
    graph: &Graph,
    engine: &Engine,
    rows: &[Vec<f64>],
    labels: &[usize],
    results: &[InputResult],
) -> Result<Vec<(usize, Vec<f32>)>> {
    let Engine::Bounds { attack: Some(_), .. } = engine else { return Ok(vec![]) };
    let todo: Vec<&InputResult> = results.iter().filter(|r| r.counterexample_digest.is_some()).collect();
    if let Some(r) = todo.iter().find(|r| r.index >= rows.len() || r.index >= labels.len()) {
        return Err(Error::InvalidArgument(format!("input {} is out of range ({} inputs)", r.index, rows.len())));
    }
    todo.par_iter()
        .map(|r| {
            let i = r.index;
            let v = counterexample_of(graph, engine, &rows[i], labels[i], r)?;
            v.map(|v| (i, v)).ok_or_else(|| Error::Verification(format!("input {i}: no counterexample")))
        })
        .collect()
}

/// Runs the engine on the chosen inputs (`rows[i]` with `labels[i]`, for i in `indices`) in
/// parallel on the current rayon pool. Results come back in the order of `indices` and do not
/// depend on the number of threads; with `record_times` each carries its wall-clock seconds
/// (which do).
pub fn certify_all(
    graph: &Graph,
    engine: &Engine,
    rows: &[Vec<f64>],
    labels: &[usize],
    indices: &[usize],
    record_times: bool,
) -> Result<Vec<InputResult>> {
    engine.validate()?;
    if let Some(&i) = indices.iter().find(|&&i| i >= rows.len() || i >= labels.len()) {
        return Err(Error::InvalidArgument(format!("input {i} is out of range ({} inputs)", rows.len())));
    }
    Ok(indices
        .par_iter()
        .map(|&i| {
            let t = Instant::now();
            let mut r = certify_input(graph, engine, &rows[i], labels[i], i);
            if record_times {
                r.seconds = Some(t.elapsed().as_secs_f64());
            }
            r
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radii_on_the_grid_survive_rounding() {
        for r in [1.0 / 255.0, 2.0 / 255.0, 0.25, 0.004, 1e-7, 0.1 + 0.2, 3.0, 0.5 / 255.0] {
            let q = radius_on_grid(r);
            assert!(q >= r && q - r < 1.0000001e-6, "{r} {q}");
            assert_eq!(super::super::round_radius_down(q), q);
            // Anything proved at q keeps a recorded radius >= q.
            for above in [q, f64::from_bits(q.to_bits() + 1), q * (1.0 + 1e-12)] {
                assert!(super::super::round_radius_down(above) >= q);
            }
        }
        assert_eq!(radius_on_grid(0.0), 0.0);
        assert_eq!(radius_on_grid(0.25), 0.25);
        assert_eq!(radius_on_grid(MAX_GRID_RADIUS), MAX_GRID_RADIUS);
        // Beyond the grid: infinity (refused by every caller), never an endless search.
        for r in [1.0000001e9, 1e12, 1e200, 1e303, f64::MAX] {
            assert_eq!(radius_on_grid(r), f64::INFINITY, "{r}");
        }
    }

    #[test]
    fn method_record_round_trips() {
        let engines = [
            Engine::Bounds {
                method: BoundMethod::Crown,
                norm: Norm::L2,
                eps: 0.25,
                max_radius: 0.5,
                rel_tol: RADIUS_REL_TOL,
                clip: Some((0.0, 1.0)),
                attack: Some(Attack { steps: 7, restarts: 2, seed: u64::MAX }),
            },
            Engine::Bounds {
                method: BoundMethod::Ibp,
                norm: Norm::Inf,
                eps: 0.01,
                max_radius: 0.01,
                rel_tol: 1e-2,
                clip: None,
                attack: None,
            },
            Engine::Smoothing {
                sigma: 0.5,
                sound: true,
                n0: 10,
                n: 100,
                alpha: 0.001,
                seed: u64::MAX,
                batch: smoothing::DEFAULT_BATCH,
                eps: Some(0.1),
            },
        ];
        for e in engines {
            let m = e.method();
            let clip = match &e {
                Engine::Bounds { clip, .. } => clip.map(|(a, b)| [a, b]),
                _ => None,
            };
            // Through JSON, as in a certificate.
            let m: Method = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
            assert_eq!(Engine::from_method(&m, e.norm_name(), clip).unwrap(), e);
        }
    }
}
