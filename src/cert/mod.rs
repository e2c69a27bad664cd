//! Signed robustness certificates: an in-toto Statement v1 whose predicate
//! (`https://robustcert.dev/robustness-certificate/v1`, [`predicate`]) records model, data,
//! threat model, property, method, results and verdict; serialised as RFC 8785 canonical JSON,
//! signed in a DSSE v1 envelope ([`dsse`]) with ECDSA P-256 or Ed25519 ([`keys`]), and written as
//! `NAME.intoto.jsonl` plus a Sigstore bundle v0.3 `NAME.sigstore.json` ([`statement`]).
//!
//! What the `certify` command calls, once the engines produce [`InputResult`]s:
//!
//! ```no_run
//! use robustcert::cert::*;
//! let model = ModelSubject::from_file("model.onnx")?;
//! let data = DatasetSubject::from_files("x.npy", "y.npy")?.with_class_slices();
//! let threat = ThreatModel::evasion("linf", vec![0.01, 0.02], Some([0.0, 1.0]));
//! let method = Method::exact("crown", true);
//! let results = vec![InputResult::new(0, Some(3), Outcome::Proved, 0.02)];
//! let statement = CertificateBuilder::new(model, data, threat, method, results)
//!     .criteria(vec![Criterion::parse("certified_accuracy@0.02>=0.7")?])
//!     .build()?;
//! let key = SigningKey::read("keys/robustcert.key.pem")?;
//! let envelope = sign(&statement, &key)?;
//! let paths = write(&envelope, "certificates/model")?;
//! let checked = verify(&std::fs::read(&paths.envelope)?, &key.public_key(), &Expected::default())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod certify;
pub mod dsse;
pub mod journal;
pub mod keys;
pub mod predicate;
pub mod recheck;
pub mod statement;
pub mod stats;

pub use dsse::{pae, Envelope, INTOTO_PAYLOAD_TYPE};
pub use keys::{write_keypair, Algorithm, PublicKey, SigningKey};
pub use predicate::*;
pub use statement::{SigstoreBundle, Statement, Subject, PREDICATE_TYPE, STATEMENT_TYPE};

use crate::error::{Error, Result};
use crate::ir::Tensor;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

/// How per-input and counterexample digests are computed (recorded in the manifest).
pub const SAMPLE_DIGEST_ENCODING: &str =
    "sha256 of the sample's elements in C order as little-endian IEEE-754 binary64 \
     (numpy: hashlib.sha256(x[i].astype('<f8').tobytes()))";

/// Digest of one sample (see [`SAMPLE_DIGEST_ENCODING`]). f32 values widen exactly.
pub fn sample_digest(values: &[f64]) -> String {
    let mut h = Sha256::new();
    for v in values {
        h.update(v.to_le_bytes());
    }
    hex(&h.finalize())
}

/// RFC 3339 UTC timestamp with whole seconds, e.g. `2025-01-31T12:00:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// The model subject: its bytes' digest and a description read from the ONNX file.
#[derive(Debug, Clone)]
pub struct ModelSubject {
    pub description: ModelDescription,
}

impl ModelSubject {
    /// Reads and imports `path`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_bytes(&file_name(path), &read_file(path)?)
    }

    /// Imports a model from its bytes; `name` is the subject name (usually the file name).
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Self> {
        let m = crate::onnx::load_bytes(bytes)?;
        let input = m.graph.input_info.first().ok_or_else(|| Error::InvalidModel("the model has no input".into()))?;
        let num_classes =
            crate::onnx::output_shapes(&m.graph).first().and_then(|(_, s)| s.last().copied()).unwrap_or(0);
        Ok(ModelSubject {
            description: ModelDescription {
                name: name.to_string(),
                digest: Digest { sha256: sha256_hex(bytes) },
                format: "onnx".into(),
                opset: m.info.opset,
                ir_version: m.info.ir_version,
                producer: m.info.producer.clone(),
                input: InputSpec {
                    name: input.name.clone(),
                    shape: input.shape.clone(),
                    dtype: "float32".into(),
                    value_range: None,
                },
                preprocessing: "none: the stored arrays are the model input".into(),
                class_names: vec![],
                num_classes,
            },
        })
    }

    /// Sets the valid range of input elements.
    pub fn with_value_range(mut self, low: f64, high: f64) -> Self {
        self.description.input.value_range = Some([low, high]);
        self
    }

    /// Describes the preprocessing that turns raw data into the model input.
    pub fn with_preprocessing(mut self, text: &str) -> Self {
        self.description.preprocessing = text.to_string();
        self
    }

    /// Names the classes (index = output position).
    pub fn with_class_names(mut self, names: Vec<String>) -> Self {
        self.description.class_names = names;
        self
    }
}

/// The evaluation data: inputs and labels files, by digest, with their arrays.
#[derive(Debug, Clone)]
pub struct DatasetSubject {
    /// Subject name of the manifest.
    pub name: String,
    pub manifest: DatasetManifest,
    x: Tensor<f64>,
    labels: Vec<usize>,
    /// Named subsets reported separately.
    pub slices: Vec<Slice>,
    /// How the evaluated inputs were chosen; default: all inputs that have a result.
    pub selection: Option<Selection>,
    /// Set by [`Self::from_record`]: the number of samples in the data files, whose arrays are
    /// not loaded (results then carry their own label and input digest).
    recorded_size: Option<usize>,
}

fn data_format(path: &Path) -> String {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("npz") => "npz".into(),
        _ => "npy".into(),
    }
}

impl DatasetSubject {
    /// Reads inputs `[n, ...]` and integer labels `[n]` (or `[n, 1]`) from .npy/.npz files.
    pub fn from_files(inputs: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<Self> {
        let (xp, yp) = (inputs.as_ref(), labels.as_ref());
        let (xb, yb) = (read_file(xp)?, read_file(yp)?);
        let x = crate::data::read_array(xp)?;
        let y = crate::data::read_array(yp)?;
        let n = x.shape().first().copied().unwrap_or(0);
        if y.shape().is_empty() || y.shape()[0] != n || y.data().len() != n {
            return Err(Error::data(
                yp,
                format!("labels shaped {:?} do not match {n} inputs (expected [{n}] or [{n}, 1])", y.shape()),
            ));
        }
        let labels = y
            .data()
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                if v >= 0.0 && v.fract() == 0.0 && v < 1e9 {
                    Ok(v as usize)
                } else {
                    Err(Error::data(yp, format!("label {i} is {v}, not a class index")))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let manifest = DatasetManifest {
            inputs: DataFile {
                name: file_name(xp),
                sha256: sha256_hex(&xb),
                shape: x.shape().to_vec(),
                format: data_format(xp),
            },
            labels: DataFile {
                name: file_name(yp),
                sha256: sha256_hex(&yb),
                shape: y.shape().to_vec(),
                format: data_format(yp),
            },
            input_digest_encoding: SAMPLE_DIGEST_ENCODING.into(),
        };
        let name = format!("{}+{}", manifest.inputs.name, manifest.labels.name);
        Ok(DatasetSubject { name, manifest, x, labels, slices: vec![], selection: None, recorded_size: None })
    }

    /// The data as an earlier run recorded them ([`journal`]): manifest, size, selection and
    /// slices without the arrays. The builder then takes each result's `label` and `inputDigest`
    /// as recorded (they were filled from the data files by the run that computed the result),
    /// so `robustcert merge` can assemble a certificate from journals alone.
    pub fn from_record(
        name: String,
        manifest: DatasetManifest,
        size: usize,
        selection: Option<Selection>,
        slices: Vec<Slice>,
    ) -> Self {
        DatasetSubject {
            name,
            manifest,
            x: Tensor::new(vec![0], vec![]).expect("an empty tensor"),
            labels: vec![],
            slices,
            selection,
            recorded_size: Some(size),
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.recorded_size.unwrap_or(self.labels.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The labels.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The whole input array.
    pub fn inputs(&self) -> &Tensor<f64> {
        &self.x
    }

    /// Sample `i`'s values (C order), or None when out of range.
    pub fn sample(&self, i: usize) -> Option<&[f64]> {
        let n = self.labels.len();
        if i >= n || n == 0 {
            return None;
        }
        let per = self.x.data().len() / n;
        self.x.data().get(i * per..(i + 1) * per)
    }

    /// Adds one slice per label present ("class 3", or the class name when given at build).
    pub fn with_class_slices(mut self) -> Self {
        let mut by: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, &l) in self.labels.iter().enumerate() {
            by.entry(l).or_default().push(i);
        }
        for (l, indices) in by {
            self.slices.push(Slice { name: format!("class {l}"), kind: "class".into(), indices });
        }
        self
    }

    /// Adds a user-given subgroup (e.g. "skin type V-VI").
    pub fn with_subgroup(mut self, name: &str, indices: Vec<usize>) -> Self {
        self.slices.push(Slice { name: name.to_string(), kind: "subgroup".into(), indices });
        self
    }

    /// Records how the evaluated inputs were selected.
    pub fn with_selection(mut self, method: &str, seed: Option<u64>, description: &str) -> Self {
        self.selection = Some(Selection {
            method: method.into(),
            seed: seed.map(|s| s.to_string()),
            count: 0,
            description: description.into(),
        });
        self
    }
}

impl ThreatModel {
    /// A white-box evasion threat model (the usual one).
    pub fn evasion(norm: &str, radii: Vec<f64>, clip_box: Option<[f64; 2]>) -> Self {
        ThreatModel {
            attack_class: "evasion".into(),
            attacker_knowledge: "white-box".into(),
            norm: norm.into(),
            radii,
            input_space: "the model input tensor (after any preprocessing)".into(),
            clip_box,
        }
    }
}

impl Method {
    /// A deterministic, exact-arithmetic-aware method (bound propagation, branch and bound).
    pub fn exact(name: &str, complete: bool) -> Self {
        Method {
            name: name.into(),
            parameters: BTreeMap::new(),
            certified_classifier: "base-classifier".into(),
            complete,
            deterministic: true,
            probabilistic: false,
            arithmetic: Arithmetic {
                precision: "f64".into(),
                sound_floating_point: true,
                description: "bounds computed in f64 with outward rounding margins".into(),
            },
            assumptions: vec![
                "The deployed model computes the same function as the ONNX file named in the subject.".into()
            ],
        }
    }

    /// Randomized smoothing (Cohen et al. 2019): certifies the smoothed classifier g.
    pub fn randomized_smoothing(sigma: f64, n0: u64, n: u64) -> Self {
        let mut parameters = BTreeMap::new();
        parameters.insert("sigma".to_string(), serde_json::json!(sigma));
        parameters.insert("n0".to_string(), serde_json::json!(n0));
        parameters.insert("n".to_string(), serde_json::json!(n));
        Method {
            name: "randomized-smoothing".into(),
            parameters,
            certified_classifier: "smoothed-classifier".into(),
            complete: false,
            deterministic: true,
            probabilistic: true,
            arithmetic: Arithmetic {
                precision: "f32".into(),
                sound_floating_point: false,
                description: "Monte Carlo estimate of class probabilities under Gaussian noise; \
                              the certificate holds with probability >= 1 - alpha per input"
                    .into(),
            },
            assumptions: vec![
                "The certificate is for the smoothed classifier g(x) = argmax_c P(f(x + N(0, sigma^2 I)) = c); \
                 the device must deploy g (with the same sigma and abstention rule), not the base network f."
                    .into(),
                "Noise samples are independent draws from the stated RNG and seed.".into(),
            ],
        }
    }
}

/// When and how a run happened (the caller's part of [`Execution`]).
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub seed: Option<u64>,
    pub rng: Option<String>,
    pub threads: usize,
    pub started: SystemTime,
    pub finished: SystemTime,
}

impl Default for RunInfo {
    fn default() -> Self {
        let now = SystemTime::now();
        RunInfo { seed: None, rng: None, threads: rayon::current_num_threads(), started: now, finished: now }
    }
}

/// Host name of this machine, or "unknown".
pub fn host_name() -> String {
    for p in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        if let Ok(s) = std::fs::read_to_string(p) {
            let s = s.trim();
            if !s.is_empty() {
                return s.to_string();
            }
        }
    }
    std::env::var("HOSTNAME").or_else(|_| std::env::var("COMPUTERNAME")).unwrap_or_else(|_| "unknown".into())
}

impl Verifier {
    /// This build of robustcert: version, git commit (`ROBUSTCERT_GIT_COMMIT` at build time,
    /// else at run time, else "unknown") and the SHA-256 of the running executable.
    pub fn current() -> Verifier {
        static CACHE: std::sync::OnceLock<Verifier> = std::sync::OnceLock::new();
        CACHE
            .get_or_init(|| {
                let git_commit = option_env!("ROBUSTCERT_GIT_COMMIT")
                    .map(str::to_string)
                    .or_else(|| std::env::var("ROBUSTCERT_GIT_COMMIT").ok())
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or_else(|| "unknown".into());
                let binary = std::env::current_exe()
                    .and_then(|p| {
                        use std::io::Read;
                        let mut f = std::fs::File::open(p)?;
                        let mut h = Sha256::new();
                        let mut buf = vec![0u8; 1 << 20];
                        loop {
                            let k = f.read(&mut buf)?;
                            if k == 0 {
                                break;
                            }
                            h.update(&buf[..k]);
                        }
                        Ok(hex(&h.finalize()))
                    })
                    .unwrap_or_else(|_| "unknown".into());
                Verifier {
                    name: "robustcert".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    git_commit,
                    binary_digest: Digest { sha256: binary },
                    platform: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
                }
            })
            .clone()
    }
}

/// Builds the signed statement from model, data, threat model, method and per-input results.
#[derive(Debug, Clone)]
pub struct CertificateBuilder {
    model: ModelSubject,
    dataset: DatasetSubject,
    threat_model: ThreatModel,
    method: Method,
    results: Vec<InputResult>,
    alpha: f64,
    confidence: f64,
    criteria: Vec<Criterion>,
    run: RunInfo,
    verifier: Option<Verifier>,
    host: Option<String>,
    signer: String,
    meaning: String,
}

impl CertificateBuilder {
    pub fn new(
        model: ModelSubject,
        dataset: DatasetSubject,
        threat_model: ThreatModel,
        method: Method,
        results: Vec<InputResult>,
    ) -> Self {
        CertificateBuilder {
            model,
            dataset,
            threat_model,
            method,
            results,
            alpha: 0.0,
            confidence: 0.95,
            criteria: vec![],
            run: RunInfo::default(),
            verifier: None,
            host: None,
            signer: "robustcert (automated)".into(),
            meaning: "authorship: these results were computed by the verifier named in this certificate".into(),
        }
    }

    /// Per-input failure probability of a probabilistic method (0 for exact methods).
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// Two-sided confidence of the aggregate Clopper-Pearson intervals (default 0.95).
    pub fn interval_confidence(mut self, c: f64) -> Self {
        self.confidence = c;
        self
    }

    /// Acceptance criteria; the verdict is PASS when all hold.
    pub fn criteria(mut self, c: Vec<Criterion>) -> Self {
        self.criteria = c;
        self
    }

    /// Seed, RNG, threads, start and end times.
    pub fn run_info(mut self, run: RunInfo) -> Self {
        self.run = run;
        self
    }

    /// Overrides the verifier description (tests; default [`Verifier::current`]).
    pub fn verifier(mut self, v: Verifier) -> Self {
        self.verifier = Some(v);
        self
    }

    /// Overrides the host name (default [`host_name`]).
    pub fn host(mut self, h: &str) -> Self {
        self.host = Some(h.to_string());
        self
    }

    /// Signature manifestation: printed name of the signer and meaning of the signature.
    pub fn attestation(mut self, signer: &str, meaning: &str) -> Self {
        self.signer = signer.to_string();
        self.meaning = meaning.to_string();
        self
    }

    /// Checks everything and assembles the statement.
    pub fn build(self) -> Result<Statement> {
        let bad = |m: String| Err(Error::Certificate(m));
        let n_data = self.dataset.len();
        let num_classes = self.model.description.num_classes;
        let mut threat = self.threat_model;
        if threat.radii.iter().any(|r| !r.is_finite() || *r < 0.0) {
            return bad("radii must be finite and >= 0".into());
        }
        threat.radii.sort_by(f64::total_cmp);
        threat.radii.dedup();
        if let Some([lo, hi]) = threat.clip_box {
            if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                return bad(format!("clip box [{lo}, {hi}] is not a finite interval"));
            }
        }
        if !(0.0..1.0).contains(&self.alpha) {
            return bad(format!("alpha {} must be in [0, 1)", self.alpha));
        }
        if !self.method.probabilistic && self.alpha != 0.0 {
            return bad("alpha > 0 given for a non-probabilistic method".into());
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return bad(format!("interval confidence {} must be in (0, 1)", self.confidence));
        }
        let mut model = self.model.description;
        if model.input.value_range.is_none() {
            model.input.value_range = threat.clip_box;
        }
        let mut seen = BTreeSet::new();
        let mut results = self.results;
        for r in &mut results {
            let i = r.index;
            match self.dataset.sample(i) {
                Some(sample) => {
                    r.label = self.dataset.labels[i];
                    r.input_digest = sample_digest(sample);
                }
                // Recorded data (a journal): label and digest come with the result.
                None if i < n_data && self.dataset.recorded_size.is_some() => {
                    if r.input_digest.len() != 64 || !r.input_digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return bad(format!("recorded result for input {i} has no input digest"));
                    }
                }
                None => return bad(format!("result for input {i}, but the data has {n_data} inputs")),
            }
            if !seen.insert(i) {
                return bad(format!("two results for input {i}"));
            }
            if let Some(p) = r.prediction {
                if num_classes > 0 && p >= num_classes {
                    return bad(format!("input {i}: prediction {p} but the model has {num_classes} classes"));
                }
            }
            if !r.certified_radius.is_finite() || r.certified_radius < 0.0 {
                return bad(format!("input {i}: certified radius {} is not finite and >= 0", r.certified_radius));
            }
            match r.outcome {
                Outcome::Proved if r.prediction != Some(r.label) => {
                    return bad(format!(
                        "input {i}: outcome 'proved' but prediction {:?} differs from label {} (report 'incorrect')",
                        r.prediction, r.label
                    ))
                }
                Outcome::Proved => r.certified_radius = round_radius_down(r.certified_radius),
                _ if r.certified_radius != 0.0 => {
                    return bad(format!(
                        "input {i}: outcome '{}' with certified radius {} (only 'proved' has a radius)",
                        r.outcome.name(),
                        r.certified_radius
                    ))
                }
                _ => {}
            }
            if r.outcome == Outcome::Incorrect && r.prediction == Some(r.label) {
                return bad(format!("input {i}: outcome 'incorrect' but the prediction equals the label"));
            }
            if r.seconds.is_some_and(|s| !s.is_finite() || s < 0.0) {
                return bad(format!("input {i}: time is not finite and >= 0"));
            }
        }
        results.sort_by_key(|r| r.index);
        let mut slices = self.dataset.slices.clone();
        for s in &mut slices {
            if let Some(&bad_ix) = s.indices.iter().find(|&&k| k >= n_data) {
                return bad(format!("slice '{}' names input {bad_ix}, but the data has {n_data} inputs", s.name));
            }
            if s.kind == "class" {
                if let Some(label) = s.name.strip_prefix("class ").and_then(|l| l.parse::<usize>().ok()) {
                    if let Some(cn) = model.class_names.get(label) {
                        s.name = format!("class {label} ({cn})");
                    }
                }
            }
        }
        let n = results.len();
        let overall = aggregate("all", &results, None, &threat.radii, self.confidence);
        let slice_aggs = slices
            .iter()
            .map(|s| aggregate(&s.name, &results, Some(&s.indices), &threat.radii, self.confidence))
            .collect();
        let acceptance = evaluate(&self.criteria, &results, &slices, self.confidence);
        let mut selection = self.dataset.selection.clone().unwrap_or(Selection {
            method: if n == n_data { "all".into() } else { "given-indices".into() },
            seed: None,
            count: 0,
            description: format!("{n} of {n_data} inputs evaluated"),
        });
        selection.count = n;
        let manifest_digest = sha256_hex(
            &serde_json_canonicalizer::to_vec(&self.dataset.manifest)
                .map_err(|e| Error::Certificate(format!("cannot serialise the dataset manifest: {e}")))?,
        );
        let alpha = self.alpha;
        let statistics = Statistics {
            alpha_per_input: alpha,
            expected_wrong_certificates: alpha * n as f64,
            familywise_error_bound: (alpha * n as f64).min(1.0),
            interpretation: if alpha == 0.0 {
                "Exact method: every 'proved' outcome is a proof (up to the stated arithmetic soundness); \
                 intervals quantify only the sampling of inputs from their population."
                    .into()
            } else {
                format!(
                    "Each 'proved' outcome is wrong with probability at most {alpha}; over the {n} inputs the \
                     expected number of wrong certificates is at most {}, and the probability that any is wrong \
                     is at most {} (union bound).",
                    alpha * n as f64,
                    (alpha * n as f64).min(1.0)
                )
            },
            interval_confidence: self.confidence,
            interval_method: "clopper-pearson".into(),
        };
        let run = self.run;
        let finished = rfc3339(run.finished);
        let predicate = RobustnessPredicate {
            dataset: DatasetDescription {
                name: self.dataset.name.clone(),
                manifest_digest: Digest { sha256: manifest_digest.clone() },
                manifest: self.dataset.manifest.clone(),
                size: n_data,
                selection,
                slices,
            },
            threat_model: threat,
            property: Property::stability(),
            method: self.method,
            statistics,
            results: Results { per_input: results, aggregates: Aggregates { overall, slices: slice_aggs } },
            acceptance,
            verifier: self.verifier.unwrap_or_else(Verifier::current),
            execution: Execution {
                seed: run.seed.map(|s| s.to_string()),
                rng: run.rng,
                threads: run.threads,
                host: self.host.unwrap_or_else(host_name),
                started_at: rfc3339(run.started),
                finished_at: finished.clone(),
            },
            attestation: Attestation { signer: self.signer, meaning: self.meaning, signed_at: finished },
            model,
        };
        let statement = Statement {
            type_: STATEMENT_TYPE.into(),
            subject: vec![
                Subject::sha256(&predicate.model.name, &predicate.model.digest.sha256),
                Subject::sha256(&predicate.dataset.name, &manifest_digest),
            ],
            predicate_type: PREDICATE_TYPE.into(),
            predicate,
        };
        // Fails here, not at signing, on anything JCS refuses (non-finite numbers).
        statement.to_jcs()?;
        Ok(statement)
    }
}

/// Signs the statement's RFC 8785 bytes in a DSSE envelope.
pub fn sign(statement: &Statement, key: &SigningKey) -> Result<Envelope> {
    Ok(Envelope::sign(INTOTO_PAYLOAD_TYPE, &statement.to_jcs()?, key))
}

/// Where [`write`] put the certificate.
#[derive(Debug, Clone)]
pub struct CertificatePaths {
    /// `NAME.intoto.jsonl`: the DSSE envelope on one line.
    pub envelope: PathBuf,
    /// `NAME.sigstore.json`: the Sigstore bundle v0.3.
    pub bundle: PathBuf,
}

/// Writes `STEM.intoto.jsonl` and `STEM.sigstore.json` (`stem` = directory and name, e.g.
/// `certificates/mobilenet`; a trailing `.intoto.jsonl` is removed). Creates the directory.
pub fn write(envelope: &Envelope, stem: impl AsRef<Path>) -> Result<CertificatePaths> {
    let stem = stem.as_ref().to_string_lossy().into_owned();
    let stem = stem.strip_suffix(".intoto.jsonl").unwrap_or(&stem);
    let paths = CertificatePaths {
        envelope: PathBuf::from(format!("{stem}.intoto.jsonl")),
        bundle: PathBuf::from(format!("{stem}.sigstore.json")),
    };
    if let Some(dir) = paths.envelope.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::write(&paths.envelope, envelope.to_json() + "\n").map_err(|e| Error::io(&paths.envelope, e))?;
    std::fs::write(&paths.bundle, SigstoreBundle::new(envelope).to_json()).map_err(|e| Error::io(&paths.bundle, e))?;
    Ok(paths)
}

/// What the checker has besides the certificate: the files the subjects must match.
#[derive(Debug, Clone, Default)]
pub struct Expected<'a> {
    /// The model file bytes.
    pub model: Option<&'a [u8]>,
    /// The inputs and labels file bytes.
    pub data: Option<(&'a [u8], &'a [u8])>,
}

/// A certificate that verified.
#[derive(Debug, Clone)]
pub struct VerifiedCertificate {
    pub statement: Statement,
    pub keyid: String,
    pub algorithm: Algorithm,
    /// SHA-256 of the signed payload bytes.
    pub payload_sha256: String,
    pub model_checked: bool,
    pub data_checked: bool,
}

/// Verifies a certificate (`.intoto.jsonl` envelope or `.sigstore.json` bundle bytes): the DSSE
/// signature by `key` (keyid and payloadType included), the statement's types, the subjects
/// against the predicate, the aggregates and verdict against the per-input results, and the
/// given model/data bytes against the subject digests. Every failure is
/// [`Error::Verification`].
pub fn verify(bytes: &[u8], key: &PublicKey, expected: &Expected) -> Result<VerifiedCertificate> {
    let fail = |m: String| Err(Error::Verification(m));
    let envelope = parse_certificate(bytes, key)?;
    let payload = envelope.verify(key, INTOTO_PAYLOAD_TYPE)?;
    let statement = Statement::from_payload(&payload)?;
    let p = &statement.predicate;
    let model_subject = statement.subject.iter().find(|s| s.name == p.model.name);
    if model_subject.and_then(Subject::sha256_digest) != Some(p.model.digest.sha256.as_str()) {
        return fail("the model subject does not match predicate.model.digest".into());
    }
    let manifest = serde_json_canonicalizer::to_vec(&p.dataset.manifest)
        .map_err(|e| Error::Verification(format!("dataset manifest: {e}")))?;
    let manifest_digest = sha256_hex(&manifest);
    if manifest_digest != p.dataset.manifest_digest.sha256 {
        return fail("predicate.dataset.manifestDigest is not the digest of the manifest".into());
    }
    let data_subject = statement.subject.iter().find(|s| s.name == p.dataset.name);
    if data_subject.and_then(Subject::sha256_digest) != Some(manifest_digest.as_str()) {
        return fail("the dataset subject does not match the dataset manifest".into());
    }
    check_consistency(p)?;
    if let Some(m) = expected.model {
        let d = sha256_hex(m);
        if d != p.model.digest.sha256 {
            return fail(format!(
                "the model file's sha256 is {d}, but the certificate is for model '{}' with sha256 {}",
                p.model.name, p.model.digest.sha256
            ));
        }
    }
    if let Some((x, y)) = expected.data {
        for (what, bytes, entry) in
            [("inputs", x, &p.dataset.manifest.inputs), ("labels", y, &p.dataset.manifest.labels)]
        {
            let d = sha256_hex(bytes);
            if d != entry.sha256 {
                return fail(format!(
                    "the {what} file's sha256 is {d}, but the certificate was computed on '{}' with sha256 {}",
                    entry.name, entry.sha256
                ));
            }
        }
    }
    Ok(VerifiedCertificate {
        keyid: key.keyid().to_string(),
        algorithm: key.algorithm(),
        payload_sha256: sha256_hex(&payload),
        model_checked: expected.model.is_some(),
        data_checked: expected.data.is_some(),
        statement,
    })
}

/// Reads the envelope from `.intoto.jsonl` bytes, or from a Sigstore bundle (whose key hint,
/// when present, must be `key`'s keyid).
fn parse_certificate(bytes: &[u8], key: &PublicKey) -> Result<Envelope> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let looks_like_bundle = body.len() < dsse::MAX_ENVELOPE_BYTES
        && serde_json::from_slice::<serde_json::Value>(body).ok().is_some_and(|v| v.get("mediaType").is_some());
    if !looks_like_bundle {
        return Envelope::from_json(bytes);
    }
    let b: SigstoreBundle =
        serde_json::from_slice(body).map_err(|e| Error::Verification(format!("not a valid Sigstore bundle: {e}")))?;
    if b.media_type != statement::BUNDLE_MEDIA_TYPE {
        return Err(Error::Verification(format!(
            "bundle mediaType is '{}', expected '{}'",
            b.media_type,
            statement::BUNDLE_MEDIA_TYPE
        )));
    }
    let hint = &b.verification_material.public_key.hint;
    if !hint.is_empty() && hint != key.keyid() {
        return Err(Error::Verification(format!(
            "the bundle names key {hint}, but the given public key is {}; wrong public key?",
            key.keyid()
        )));
    }
    Ok(b.dsse_envelope)
}

/// Recomputes aggregates and the verdict from the per-input results.
fn check_consistency(p: &RobustnessPredicate) -> Result<()> {
    let fail = |m: &str| Err(Error::Verification(format!("inconsistent certificate: {m}")));
    let rs = &p.results.per_input;
    let conf = p.statistics.interval_confidence;
    let radii = &p.threat_model.radii;
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9;
    let same = |a: &SliceAggregate, b: &SliceAggregate| {
        a.n == b.n
            && a.outcomes == b.outcomes
            && a.clean_accuracy.count == b.clean_accuracy.count
            && a.certified_accuracy.len() == b.certified_accuracy.len()
            && a.certified_accuracy.iter().zip(&b.certified_accuracy).all(|(x, y)| {
                x.value.count == y.value.count
                    && close(x.radius, y.radius)
                    && close(x.value.lower, y.value.lower)
                    && close(x.value.upper, y.value.upper)
            })
    };
    if !same(&aggregate("all", rs, None, radii, conf), &p.results.aggregates.overall) {
        return fail("overall aggregates do not follow from the per-input results");
    }
    if p.results.aggregates.slices.len() != p.dataset.slices.len() {
        return fail("one aggregate per slice expected");
    }
    for (s, a) in p.dataset.slices.iter().zip(&p.results.aggregates.slices) {
        if !same(&aggregate(&s.name, rs, Some(&s.indices), radii, conf), a) {
            return fail(&format!("aggregates of slice '{}' do not follow from the per-input results", s.name));
        }
    }
    let criteria: Vec<Criterion> = p.acceptance.criteria.iter().map(|c| c.criterion.clone()).collect();
    if evaluate(&criteria, rs, &p.dataset.slices, conf).verdict != p.acceptance.verdict {
        return fail("the verdict does not follow from the criteria and results");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400 + 3661);
        assert_eq!(rfc3339(t), "2000-02-29T01:01:01Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_735_689_599);
        assert_eq!(rfc3339(t), "2024-12-31T23:59:59Z");
    }

    #[test]
    fn digests() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(sample_digest(&[]), sha256_hex(b""));
    }
}
