//! The predicate of a robustness certificate, predicate type
//! `https://robustcert.dev/robustness-certificate/v1` (the `predicate` of an in-toto Statement
//! v1). Field names follow what assessors ask for: ISO/IEC 24029-2 (formal robustness
//! assessment: domain, property, method soundness and completeness), EU AI Act Art. 15 and
//! Annex IV 2(g) (accuracy and robustness metrics, test logs, dated and signed), FDA guidance on
//! AI-enabled device software functions (model and data description, subgroup performance),
//! 21 CFR 11.50 (signature manifestation: signer, time, meaning) and NIST AI 100-2 (threat model:
//! attack class, attacker knowledge). The JSON Schema is
//! `certificates/schema/robustness-certificate-v1.schema.json`.

use super::stats::clopper_pearson;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The whole predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RobustnessPredicate {
    pub model: ModelDescription,
    pub dataset: DatasetDescription,
    pub threat_model: ThreatModel,
    pub property: Property,
    pub method: Method,
    pub statistics: Statistics,
    pub results: Results,
    pub acceptance: Acceptance,
    pub verifier: Verifier,
    pub execution: Execution,
    pub attestation: Attestation,
}

/// A SHA-256 digest (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub sha256: String,
}

/// The model under assessment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelDescription {
    /// File name of the model (also the statement's first subject).
    pub name: String,
    /// SHA-256 of the exact model file bytes.
    pub digest: Digest,
    /// Always "onnx".
    pub format: String,
    /// Default-domain ONNX opset.
    pub opset: i64,
    pub ir_version: i64,
    pub producer: String,
    pub input: InputSpec,
    /// Preprocessing applied before the model's input (free text; "none" when the model takes
    /// the stored arrays as they are).
    pub preprocessing: String,
    /// Class names, index = output position; empty when not given.
    pub class_names: Vec<String>,
    pub num_classes: usize,
}

/// The model input the threat model perturbs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputSpec {
    pub name: String,
    /// Shape of one sample including the batch axis (1).
    pub shape: Vec<usize>,
    pub dtype: String,
    /// Valid range [low, high] of every input element (the domain of the input space); null
    /// when not stated (then the clip box, if any, is used).
    pub value_range: Option<[f64; 2]>,
}

/// The evaluation data: which files, how many inputs, how they were chosen, which slices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetDescription {
    /// Name of the dataset subject (the manifest).
    pub name: String,
    /// SHA-256 of the RFC 8785 canonical JSON of `manifest` (the statement's second subject).
    pub manifest_digest: Digest,
    pub manifest: DatasetManifest,
    /// Number of samples in the data files.
    pub size: usize,
    pub selection: Selection,
    /// Named subsets reported separately (per class, or user-given subgroups).
    pub slices: Vec<Slice>,
}

/// The data files, by digest. `check-cert --data X --labels Y` recomputes both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetManifest {
    pub inputs: DataFile,
    pub labels: DataFile,
    /// How per-input digests in `results.perInput[].inputDigest` are computed.
    pub input_digest_encoding: String,
}

/// One data file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataFile {
    pub name: String,
    /// SHA-256 of the exact file bytes.
    pub sha256: String,
    pub shape: Vec<usize>,
    /// "npy" or "npz".
    pub format: String,
}

/// How the evaluated inputs were selected from the data files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selection {
    /// "all", "first-n" or "random-subset".
    pub method: String,
    /// Decimal seed of the subset draw (a string: JSON numbers lose precision above 2^53).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    /// Number of inputs evaluated (= `results.perInput` length).
    pub count: usize,
    pub description: String,
}

/// A named subset of the inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Slice {
    pub name: String,
    /// "class" (all inputs of one label) or "subgroup" (user-given).
    pub kind: String,
    /// Dataset indices in the slice.
    pub indices: Vec<usize>,
}

/// The adversary (NIST AI 100-2 vocabulary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreatModel {
    /// "evasion": test-time perturbation of inputs.
    pub attack_class: String,
    /// "white-box": the adversary knows the model and its weights.
    pub attacker_knowledge: String,
    /// "linf", "l2" or "l1".
    pub norm: String,
    /// The radii reported, ascending.
    pub radii: Vec<f64>,
    /// Where the perturbation is applied (e.g. "model input tensor, after preprocessing").
    pub input_space: String,
    /// Perturbed inputs are clipped to [low, high] element-wise; null when unconstrained.
    pub clip_box: Option<[f64; 2]>,
}

/// The property certified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Property {
    /// "stability".
    pub name: String,
    /// Statement in words.
    pub description: String,
    /// Statement in symbols.
    pub formal: String,
}

impl Property {
    /// Local robustness: the label stays the strict top-1 output on the whole threat domain.
    pub fn stability() -> Self {
        Property {
            name: "stability".into(),
            description: "For each evaluated input x0 with label y and each reported radius r: every input x \
                          with ||x - x0||_p <= r that lies inside the clip box is classified as y (strict top-1; \
                          a tie counts as a failure)."
                .into(),
            formal: "forall x: ||x - x0||_p <= r and clip_low <= x <= clip_high  =>  f_y(x) > max_{k != y} f_k(x)"
                .into(),
        }
    }
}

/// The verification method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Method {
    /// E.g. "ibp", "crown", "alpha-crown", "branch-and-bound", "randomized-smoothing".
    pub name: String,
    /// Method parameters (free-form JSON object; numbers, strings, booleans).
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// "base-classifier" (f, the network as exported) or "smoothed-classifier" (g).
    pub certified_classifier: String,
    /// Complete: every true property is eventually proved (no "inconclusive" for lack of precision).
    pub complete: bool,
    /// Same inputs and seed give the same results bit for bit.
    pub deterministic: bool,
    /// Probabilistic (results hold with probability >= 1 - alpha per input) or exact.
    pub probabilistic: bool,
    pub arithmetic: Arithmetic,
    /// Everything the certificate relies on besides the model and data (e.g. for smoothing:
    /// the device must deploy the smoothed classifier g, not f).
    pub assumptions: Vec<String>,
}

/// Numerical soundness of the method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arithmetic {
    /// "f32", "f64".
    pub precision: String,
    /// True when floating-point rounding is accounted for (outward rounding or error margins),
    /// so a "proved" outcome is sound for real-number semantics of the network.
    pub sound_floating_point: bool,
    pub description: String,
}

/// What the per-input and aggregate numbers mean statistically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statistics {
    /// Probability that one "proved" certificate is wrong (0 for exact methods).
    pub alpha_per_input: f64,
    /// `alpha_per_input * number of evaluated inputs`.
    pub expected_wrong_certificates: f64,
    /// Upper bound on the probability that at least one certificate is wrong (union bound, <= 1).
    pub familywise_error_bound: f64,
    pub interpretation: String,
    /// Two-sided confidence of the aggregate intervals.
    pub interval_confidence: f64,
    /// "clopper-pearson".
    pub interval_method: String,
}

/// The outcome for one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The property holds for this input up to `certifiedRadius`.
    Proved,
    /// A concrete input inside the domain with another prediction was found.
    Counterexample,
    /// Neither proved nor refuted within the budget.
    Inconclusive,
    /// The (smoothed) classifier abstains.
    Abstain,
    /// The clean input is already misclassified: nothing to certify.
    Incorrect,
    /// The engine failed on this input (see `detail`).
    Error,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Proved,
        Outcome::Counterexample,
        Outcome::Inconclusive,
        Outcome::Abstain,
        Outcome::Incorrect,
        Outcome::Error,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Proved => "proved",
            Outcome::Counterexample => "counterexample",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Abstain => "abstain",
            Outcome::Incorrect => "incorrect",
            Outcome::Error => "error",
        }
    }
}

/// The result for one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputResult {
    /// Index of the sample in the data files.
    pub index: usize,
    /// SHA-256 of the sample (see `dataset.manifest.inputDigestEncoding`); filled in by the builder.
    pub input_digest: String,
    /// True label; filled in by the builder from the labels file.
    pub label: usize,
    /// Top-1 class of the certified classifier on the clean input (null when it abstains).
    pub prediction: Option<usize>,
    pub outcome: Outcome,
    /// Largest radius proved, rounded down to a multiple of 1e-6 (0 unless "proved").
    pub certified_radius: f64,
    /// SHA-256 of the counterexample, same encoding as inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterexample_digest: Option<String>,
    /// The smallest adversarial radius found by PGD (an upper bound on the robust radius of the
    /// base network f; absent when no radius search was run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attack_radius: Option<AttackRadius>,
    /// Wall-clock seconds spent on this input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Free-text detail (error message, engine notes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl InputResult {
    /// A result as an engine reports it; `label` and `input_digest` are filled in by
    /// [`super::CertificateBuilder`].
    pub fn new(index: usize, prediction: Option<usize>, outcome: Outcome, certified_radius: f64) -> Self {
        InputResult {
            index,
            input_digest: String::new(),
            label: 0,
            prediction,
            outcome,
            certified_radius,
            counterexample_digest: None,
            attack_radius: None,
            seconds: None,
            detail: None,
        }
    }

    /// Records the counterexample by digest (values widened to f64, see [`super::sample_digest`]).
    pub fn with_counterexample(mut self, values: &[f64]) -> Self {
        self.counterexample_digest = Some(super::sample_digest(values));
        self
    }

    /// Certified (robust and correct) at radius `r`.
    pub fn certified_at(&self, r: f64) -> bool {
        self.outcome == Outcome::Proved && self.prediction == Some(self.label) && self.certified_radius >= r
    }
}

/// What the adversarial radius search ([`crate::attack::radius`]) found for one input. The
/// radius is an UPPER bound on the robust radius of the base network f (a certified radius of f
/// is a LOWER bound, so for bound methods `certifiedRadius <= radius` always; the contrary is a
/// soundness bug). For smoothing certificates it bounds f, not the smoothed classifier g, whose
/// certified radius may legitimately exceed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttackRadius {
    /// "linf", "l2" or "l1".
    pub norm: String,
    /// Distance from the input of the closest witness found (misclassified in both the f32 and
    /// the f64 forward pass; 0 when the clean input already is); null when none was found up to
    /// `searchedUpTo`.
    pub radius: Option<f64>,
    /// The largest radius attacked.
    pub searched_up_to: f64,
    /// SHA-256 of the witness, same encoding as inputs (saved beside the certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness_digest: Option<String>,
    /// The f32 top-1 class at the witness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness_prediction: Option<usize>,
}

/// Per-input results and their aggregates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Results {
    pub per_input: Vec<InputResult>,
    pub aggregates: Aggregates,
}

/// Aggregates over all evaluated inputs and over each slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Aggregates {
    pub overall: SliceAggregate,
    pub slices: Vec<SliceAggregate>,
}

/// Aggregates of one set of inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SliceAggregate {
    /// "all" or the slice name.
    pub slice: String,
    pub n: usize,
    /// Count of each outcome (all six keys present).
    pub outcomes: BTreeMap<String, usize>,
    /// Clean accuracy (prediction == label), with its interval.
    pub clean_accuracy: RateWithInterval,
    /// Certified accuracy (proved, correct, certified radius >= r) at each reported radius.
    pub certified_accuracy: Vec<CertifiedAccuracy>,
}

/// A proportion k / n with its two-sided Clopper-Pearson interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateWithInterval {
    pub count: usize,
    pub n: usize,
    pub rate: f64,
    pub lower: f64,
    pub upper: f64,
}

impl RateWithInterval {
    pub fn new(count: usize, n: usize, confidence: f64) -> Self {
        let (lower, upper) = clopper_pearson(count as u64, n as u64, confidence);
        let rate = if n == 0 { 0.0 } else { count as f64 / n as f64 };
        RateWithInterval { count, n, rate, lower, upper }
    }
}

/// Certified accuracy at one radius.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertifiedAccuracy {
    pub radius: f64,
    #[serde(flatten)]
    pub value: RateWithInterval,
}

/// Computes the aggregate of `results` restricted to `indices` (all when None).
pub fn aggregate(
    name: &str,
    results: &[InputResult],
    indices: Option<&[usize]>,
    radii: &[f64],
    confidence: f64,
) -> SliceAggregate {
    let chosen: Vec<&InputResult> = match indices {
        None => results.iter().collect(),
        Some(ix) => {
            let set: std::collections::BTreeSet<usize> = ix.iter().copied().collect();
            results.iter().filter(|r| set.contains(&r.index)).collect()
        }
    };
    let n = chosen.len();
    let mut outcomes: BTreeMap<String, usize> = Outcome::ALL.iter().map(|o| (o.name().to_string(), 0)).collect();
    for r in &chosen {
        *outcomes.entry(r.outcome.name().to_string()).or_insert(0) += 1;
    }
    let clean = chosen.iter().filter(|r| r.prediction == Some(r.label)).count();
    let certified_accuracy = radii
        .iter()
        .map(|&radius| CertifiedAccuracy {
            radius,
            value: RateWithInterval::new(chosen.iter().filter(|r| r.certified_at(radius)).count(), n, confidence),
        })
        .collect();
    SliceAggregate {
        slice: name.to_string(),
        n,
        outcomes,
        clean_accuracy: RateWithInterval::new(clean, n, confidence),
        certified_accuracy,
    }
}

/// Acceptance criteria and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Acceptance {
    pub criteria: Vec<CriterionResult>,
    /// "all criteria must hold".
    pub rule: String,
    /// "PASS", "FAIL", or "NONE" when no criterion was given.
    pub verdict: String,
}

/// Which number a criterion tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Metric {
    /// The observed certified accuracy k / n at the radius.
    CertifiedAccuracy,
    /// The lower end of its Clopper-Pearson interval (the conservative choice).
    CertifiedAccuracyLower,
    /// Observed clean accuracy (radius ignored).
    CleanAccuracy,
}

/// One acceptance criterion: `metric at radius (on slice) >= threshold`, or, with a
/// `confidence`, `one-sided lower Clopper-Pearson bound of the metric >= threshold`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Criterion {
    pub metric: Metric,
    pub radius: f64,
    pub threshold: f64,
    /// A slice name; None = all evaluated inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<String>,
    /// When set (in (0.5, 1)), the value tested is the one-sided lower Clopper-Pearson bound of
    /// the metric at this confidence (P(true rate < bound) <= 1 - confidence), not the point
    /// estimate: "certified accuracy >= 0.7 with 99% confidence". Absent in older certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
}

impl Criterion {
    /// Parses `METRIC@RADIUS>=THRESHOLD[;confidence=C][/SLICE]`, METRIC one of
    /// `certified_accuracy`, `certified_accuracy_lower`, `clean_accuracy` (e.g.
    /// `certified_accuracy@0.25>=0.7`, `certified_accuracy@0.25>=0.7;confidence=0.99`).
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::InvalidArgument(format!(
                "criterion '{text}': {why} (expected METRIC@RADIUS>=THRESHOLD[;confidence=C][/SLICE], e.g. \
                 certified_accuracy@0.25>=0.7)"
            ))
        };
        let (body, slice) = match text.split_once('/') {
            Some((b, s)) if !s.is_empty() => (b, Some(s.to_string())),
            Some(_) => return Err(bad("empty slice name")),
            None => (text, None),
        };
        let (body, confidence) = match body.split_once(';') {
            Some((b, c)) => {
                let v = c.trim().strip_prefix("confidence=").ok_or_else(|| bad("expected ';confidence=C'"))?;
                (b, Some(v.trim().parse::<f64>().map_err(|_| bad("confidence is not a number"))?))
            }
            None => (body, None),
        };
        let (lhs, thr) = body.split_once(">=").ok_or_else(|| bad("no '>='"))?;
        let (metric, radius) = match lhs.split_once('@') {
            Some((m, r)) => (m.trim(), r.trim().parse::<f64>().map_err(|_| bad("radius is not a number"))?),
            None => (lhs.trim(), 0.0),
        };
        let metric = match metric {
            "certified_accuracy" | "certified-accuracy" => Metric::CertifiedAccuracy,
            "certified_accuracy_lower" | "certified-accuracy-lower" => Metric::CertifiedAccuracyLower,
            "clean_accuracy" | "clean-accuracy" | "accuracy" => Metric::CleanAccuracy,
            _ => return Err(bad("unknown metric")),
        };
        let threshold = thr.trim().parse::<f64>().map_err(|_| bad("threshold is not a number"))?;
        if !(radius.is_finite() && radius >= 0.0 && (0.0..=1.0).contains(&threshold)) {
            return Err(bad("radius must be >= 0 and threshold in [0, 1]"));
        }
        let c = Criterion { metric, radius, threshold, slice, confidence };
        c.check_confidence().map_err(|why| bad(&why))?;
        Ok(c)
    }

    /// A confidence must lie in (0.5, 1) (a one-sided bound below 50% is above the estimate) and
    /// applies to a point-estimate metric, not to `certified_accuracy_lower` (already a bound).
    pub fn check_confidence(&self) -> std::result::Result<(), String> {
        match self.confidence {
            None => Ok(()),
            Some(c) if !(c > 0.5 && c < 1.0) => Err(format!("confidence {c} must be in (0.5, 1), e.g. 0.99")),
            Some(_) if self.metric == Metric::CertifiedAccuracyLower => {
                Err("certified_accuracy_lower is already a bound (at the certificate's interval confidence): use \
                 certified_accuracy with a confidence"
                    .into())
            }
            Some(_) => Ok(()),
        }
    }

    /// The text form [`Criterion::parse`] reads back to the same criterion.
    pub fn to_text(&self) -> String {
        let metric = match self.metric {
            Metric::CertifiedAccuracy => "certified_accuracy",
            Metric::CertifiedAccuracyLower => "certified_accuracy_lower",
            Metric::CleanAccuracy => "clean_accuracy",
        };
        // f64 Display is the shortest text that parses back to the same value.
        let mut s = format!("{metric}@{}>={}", self.radius, self.threshold);
        if let Some(c) = self.confidence {
            s.push_str(&format!(";confidence={c}"));
        }
        if let Some(sl) = &self.slice {
            s.push('/');
            s.push_str(sl);
        }
        s
    }
}

/// A criterion with what was observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CriterionResult {
    #[serde(flatten)]
    pub criterion: Criterion,
    /// The observed value (null when the radius or slice was not evaluated: the criterion fails):
    /// the metric, or, with a `confidence`, its one-sided lower Clopper-Pearson bound.
    pub observed: Option<f64>,
    /// With a `confidence`: the metric's point estimate k / n (what `observed` bounds from below).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_estimate: Option<f64>,
    pub pass: bool,
}

/// Evaluates criteria on the aggregates. A criterion whose radius is not among the reported
/// radii is evaluated by recounting at that radius.
pub fn evaluate(criteria: &[Criterion], results: &[InputResult], slices: &[Slice], confidence: f64) -> Acceptance {
    let out: Vec<CriterionResult> = criteria
        .iter()
        .map(|c| {
            let indices = match &c.slice {
                None => Some(None),
                Some(s) => slices.iter().find(|x| &x.name == s).map(|x| Some(x.indices.as_slice())),
            };
            let values = indices.map(|ix| {
                let a = aggregate("criterion", results, ix, &[c.radius], confidence);
                let value = match c.metric {
                    Metric::CertifiedAccuracy | Metric::CertifiedAccuracyLower => &a.certified_accuracy[0].value,
                    Metric::CleanAccuracy => &a.clean_accuracy,
                };
                match (c.metric, c.confidence) {
                    (Metric::CertifiedAccuracyLower, _) => (value.lower, None),
                    // One-sided at level c = the lower end of the two-sided interval at 2c - 1
                    // (each tail of that interval holds (1 - (2c - 1)) / 2 = 1 - c).
                    (_, Some(conf)) if conf > 0.5 && conf < 1.0 => {
                        (clopper_pearson(value.count as u64, value.n as u64, 2.0 * conf - 1.0).0, Some(value.rate))
                    }
                    // A confidence outside (0.5, 1) cannot be honoured: the criterion fails.
                    (_, Some(_)) => (f64::NEG_INFINITY, Some(value.rate)),
                    (_, None) => (value.rate, None),
                }
            });
            let observed = values.map(|v| v.0).filter(|v| v.is_finite());
            let point_estimate = values.and_then(|v| v.1);
            let pass = observed.is_some_and(|v| v >= c.threshold);
            CriterionResult { criterion: c.clone(), observed, point_estimate, pass }
        })
        .collect();
    let verdict = if out.is_empty() {
        "NONE"
    } else if out.iter().all(|c| c.pass) {
        "PASS"
    } else {
        "FAIL"
    };
    Acceptance { criteria: out, rule: "all criteria must hold".into(), verdict: verdict.into() }
}

/// The tool that produced the certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verifier {
    pub name: String,
    pub version: String,
    /// Git commit the binary was built from, or "unknown".
    pub git_commit: String,
    /// SHA-256 of the running executable.
    pub binary_digest: Digest,
    /// Target OS and architecture, e.g. "linux-x86_64".
    pub platform: String,
}

/// How and when the run happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    /// Decimal seed of all randomness (null for deterministic methods without randomness).
    pub seed: Option<String>,
    /// Name of the random number generator (null when none is used).
    pub rng: Option<String>,
    pub threads: usize,
    pub host: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// RFC 3339 UTC.
    pub finished_at: String,
}

/// Signature manifestation (21 CFR 11.50): who signs, when, and what the signature means.
/// The signature itself is the DSSE envelope's; its keyid identifies the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    /// Printed name of the signer (person or system).
    pub signer: String,
    /// Meaning of the signature (e.g. "authorship", "review", "approval").
    pub meaning: String,
    /// RFC 3339 UTC time the statement was produced for signing.
    pub signed_at: String,
}

/// Rounds a radius down to a multiple of 1e-6, never above the input.
pub fn round_radius_down(r: f64) -> f64 {
    if !r.is_finite() || r <= 0.0 {
        return 0.0;
    }
    let mut q = (r * 1e6).floor() / 1e6;
    while q > r {
        q = f64::from_bits(q.to_bits() - 1);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radius_rounding_is_downward() {
        for r in [0.3, 0.1234567, 1e-7, 2.0, 0.0, 0.25, 1.0 / 3.0] {
            let q = round_radius_down(r);
            assert!(q <= r && r - q < 1.0000001e-6, "{r} {q}");
        }
        assert_eq!(round_radius_down(0.1234567), 0.123456);
        assert_eq!(round_radius_down(f64::NAN), 0.0);
    }

    #[test]
    fn criteria_parse_and_evaluate() {
        let c = Criterion::parse("certified_accuracy@0.25>=0.7").unwrap();
        assert_eq!((c.metric, c.radius, c.threshold), (Metric::CertifiedAccuracy, 0.25, 0.7));
        assert!(Criterion::parse("certified_accuracy@x>=0.7").is_err());
        assert!(Criterion::parse("foo@0.1>=0.7").is_err());
        let mut rs: Vec<InputResult> = (0..10)
            .map(|i| InputResult::new(i, Some(0), if i < 8 { Outcome::Proved } else { Outcome::Inconclusive }, 0.3))
            .collect();
        rs.iter_mut().for_each(|r| r.label = 0);
        let a = evaluate(std::slice::from_ref(&c), &rs, &[], 0.95);
        assert_eq!(a.verdict, "PASS");
        let lower = Criterion { metric: Metric::CertifiedAccuracyLower, ..c };
        assert_eq!(evaluate(&[lower], &rs, &[], 0.95).verdict, "FAIL");
        assert_eq!(evaluate(&[], &rs, &[], 0.95).verdict, "NONE");
    }

    #[test]
    fn confidence_tests_the_one_sided_lower_bound() {
        let c = Criterion::parse("certified_accuracy@0.25>=0.7;confidence=0.99/class 0").unwrap();
        assert_eq!(c.confidence, Some(0.99));
        assert_eq!(c.slice.as_deref(), Some("class 0"));
        assert_eq!(Criterion::parse(&c.to_text()).unwrap(), c);
        for bad in [
            "certified_accuracy@0.25>=0.7;confidence=0.4",
            "certified_accuracy@0.25>=0.7;confidence=1",
            "certified_accuracy@0.25>=0.7;conf=0.9",
            "certified_accuracy_lower@0.25>=0.7;confidence=0.9",
        ] {
            assert!(Criterion::parse(bad).is_err(), "{bad}");
        }
        // 8 of 10 certified: the point estimate 0.8 passes 0.7, the 99% lower bound (R:
        // qbeta(0.01, 8, 3) = 0.38826, the one-sided 99% bound) does not.
        let mut rs: Vec<InputResult> = (0..10)
            .map(|i| InputResult::new(i, Some(0), if i < 8 { Outcome::Proved } else { Outcome::Inconclusive }, 0.3))
            .collect();
        rs.iter_mut().for_each(|r| r.label = 0);
        let slices = [Slice { name: "class 0".into(), kind: "class".into(), indices: (0..10).collect() }];
        let a = evaluate(std::slice::from_ref(&c), &rs, &slices, 0.95);
        let r = &a.criteria[0];
        assert_eq!(r.point_estimate, Some(0.8));
        let lower = r.observed.unwrap();
        assert!((lower - 0.388257).abs() < 1e-5, "{lower}");
        assert!(!r.pass && a.verdict == "FAIL");
        let loose = Criterion { threshold: 0.388, ..c };
        assert_eq!(evaluate(&[loose], &rs, &slices, 0.95).verdict, "PASS");
    }
}
