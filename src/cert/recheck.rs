//! `check-cert --recheck`: recompute the deterministic parts of a verified certificate (bound
//! propagation radii and outcomes; smoothing counts replayed from the recorded seed) from the
//! model and data files, and list every input whose recorded result differs.

use super::certify::{certify_all, samples, Engine};
use super::predicate::{round_radius_down, InputResult, Outcome, RobustnessPredicate};
use super::DatasetSubject;
use crate::error::{Error, Result};
use crate::ir::Graph;
use serde::Serialize;
use serde_json::{json, Value};

/// One field of one input that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub index: usize,
    pub field: String,
    pub recorded: Value,
    pub recomputed: Value,
}

/// What a recheck found.
#[derive(Debug, Clone, Serialize)]
pub struct RecheckReport {
    /// The method rerun.
    pub method: String,
    /// Inputs recomputed.
    pub inputs: usize,
    /// Empty when every recorded result was reproduced exactly.
    pub differences: Vec<Difference>,
}

impl RecheckReport {
    pub fn matches(&self) -> bool {
        self.differences.is_empty()
    }

    /// Indices of the inputs that differ (ascending, each once).
    pub fn differing_inputs(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.differences.iter().map(|d| d.index).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// What the certificate builder does to an engine's result before it is recorded.
fn normalise(mut r: InputResult) -> InputResult {
    if r.outcome == Outcome::Proved {
        r.certified_radius = round_radius_down(r.certified_radius);
    }
    r
}

/// The parts of a result that are recomputed (times are not).
fn fields(r: &InputResult) -> Vec<(&'static str, Value)> {
    let detail = r.detail.as_deref().map(|d| serde_json::from_str::<Value>(d).unwrap_or_else(|_| json!(d)));
    vec![
        ("label", json!(r.label)),
        ("inputDigest", json!(r.input_digest)),
        ("prediction", json!(r.prediction)),
        ("outcome", json!(r.outcome)),
        ("certifiedRadius", json!(r.certified_radius)),
        ("counterexampleDigest", json!(r.counterexample_digest)),
        ("detail", json!(detail)),
    ]
}

/// Reruns the recorded method with the recorded parameters on the recorded inputs of `data`
/// (which must be the certified files: check them with [`super::verify`] first) and compares.
/// Counterexample outcomes are compared as recorded (an attack's search is not rerun; its
/// recorded digest is compared when the rerun also finds one).
pub fn recheck(p: &RobustnessPredicate, graph: &Graph, data: &DatasetSubject) -> Result<RecheckReport> {
    let engine = Engine::from_method(&p.method, &p.threat_model.norm, p.threat_model.clip_box)?;
    if data.len() != p.dataset.size {
        return Err(Error::Verification(format!(
            "the data holds {} inputs, the certificate was computed on {}",
            data.len(),
            p.dataset.size
        )));
    }
    let rows = samples(graph, data.inputs())?;
    let indices: Vec<usize> = p.results.per_input.iter().map(|r| r.index).collect();
    if let Some(&i) = indices.iter().find(|&&i| i >= rows.len()) {
        return Err(Error::Verification(format!("the certificate names input {i}, the data holds {}", rows.len())));
    }
    let now = certify_all(graph, &engine, &rows, data.labels(), &indices, false)?;
    let mut differences = Vec::new();
    for (rec, new) in p.results.per_input.iter().zip(now) {
        let i = rec.index;
        let mut new = normalise(new);
        new.label = data.labels()[i];
        new.input_digest = super::sample_digest(data.sample(i).unwrap_or(&[]));
        if rec.outcome == Outcome::Counterexample && new.outcome != Outcome::Counterexample {
            // No attack is rerun here: a recorded counterexample cannot be reproduced by the
            // bound engines alone, so it is reported as such.
            differences.push(Difference {
                index: i,
                field: "outcome".into(),
                recorded: json!(rec.outcome),
                recomputed: json!(format!("{} (counterexamples are not re-searched)", new.outcome.name())),
            });
            continue;
        }
        for ((field, a), (_, b)) in fields(rec).into_iter().zip(fields(&new)) {
            if a != b {
                differences.push(Difference { index: i, field: field.into(), recorded: a, recomputed: b });
            }
        }
    }
    Ok(RecheckReport { method: p.method.name.clone(), inputs: indices.len(), differences })
}
