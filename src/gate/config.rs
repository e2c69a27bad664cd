//! The gate's configuration file (`robustcert.toml`, TOML 1.0 read by the `toml` crate): what to
//! certify (model, data, method and its parameters), where the certificate goes, how it is
//! signed, and the thresholds. Unknown keys are errors (a typo must not silently loosen a gate);
//! relative paths resolve against the directory of the configuration file, so the gate gives the
//! same answer from any working directory.

use crate::cert::{Criterion, Metric};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    /// The ONNX model.
    pub model: PathBuf,
    pub data: DataConfig,
    pub method: MethodConfig,
    pub output: OutputConfig,
    /// `[[threshold]]` tables: every one must hold for the gate to pass.
    #[serde(default, rename = "threshold")]
    pub thresholds: Vec<ThresholdConfig>,
    /// Worker threads (default: all cores). Results do not depend on it.
    pub threads: Option<usize>,
}

/// The evaluation data: any source `crate::data::dataset::Dataset::load` reads, then a selection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Inputs: `x.npy`, `x.npz[:array]`, a MedMNIST `.npz` (with `split`) or an image folder.
    #[serde(alias = "inputs")]
    pub source: String,
    /// Labels for array inputs: `y.npy`, `file.npz:name`, or an array name of the inputs' `.npz`.
    pub labels: Option<String>,
    /// MedMNIST split: "train", "val" or "test" (default "test").
    pub split: Option<String>,
    /// Image folders: channels to read (1 or 3; default 3).
    pub channels: Option<usize>,
    /// Preprocessing: multiplier of stored values (default 1/255 for MedMNIST and image folders,
    /// 1 for arrays).
    pub scale: Option<f64>,
    /// Preprocessing: transpose channels-last data to channels-first (default: true for MedMNIST
    /// and image folders, false for arrays).
    pub channels_first: Option<bool>,
    /// Preprocessing: per-channel mean and std, only when the normalisation is NOT in the graph.
    pub mean: Option<Vec<f64>>,
    pub std: Option<Vec<f64>>,
    /// Class names, index = label (default: the source's, if it names them).
    pub class_names: Option<Vec<String>>,
    /// Selection: explicit source indices, as a list or text ("0-9,15").
    pub indices: Option<Indices>,
    /// Selection: a seeded random subset of this many inputs.
    pub random: Option<usize>,
    /// Seed of the random subset (default 0).
    pub random_seed: Option<u64>,
    /// Selection: the first N (after `indices` and `random`).
    pub limit: Option<usize>,
}

/// Explicit indices: `[0, 1, 5]` or `"0-9,15"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Indices {
    List(Vec<usize>),
    Text(String),
}

/// The verification method and its parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodConfig {
    pub name: MethodName,
    /// "inf", "2" or "1" (default "inf"; smoothing certifies L2 only).
    pub norm: Option<NormName>,
    /// Bound methods: the radius to prove (required). Smoothing: optional.
    pub eps: Option<Radius>,
    /// Radii at which certified accuracy is reported (threshold radii are added).
    #[serde(default)]
    pub radii: Vec<Radius>,
    /// Perturbed inputs stay in [low, high] (bound methods).
    pub clip: Option<[f64; 2]>,
    /// Bound methods: "pgd" (default) or "none".
    pub attack: Option<AttackName>,
    pub attack_steps: Option<usize>,
    pub attack_restarts: Option<usize>,
    pub attack_seed: Option<u64>,
    /// Smoothing: noise standard deviation (required).
    pub sigma: Option<f64>,
    pub n0: Option<u64>,
    pub n: Option<u64>,
    pub alpha: Option<f64>,
    pub seed: Option<u64>,
    /// Smoothing: "sound" (default) or "gaussian".
    pub noise: Option<NoiseName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MethodName {
    Ibp,
    Crown,
    AlphaCrown,
    Smoothing,
}

impl MethodName {
    pub fn as_str(self) -> &'static str {
        match self {
            MethodName::Ibp => "ibp",
            MethodName::Crown => "crown",
            MethodName::AlphaCrown => "alpha-crown",
            MethodName::Smoothing => "smoothing",
        }
    }
}

/// A norm: `"inf"`, `"2"`, `"1"` (also `"linf"`, `"l2"`, `"l1"`) or the integers 1 and 2.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum NormName {
    Number(i64),
    Text(String),
}

impl NormName {
    /// The value `certify --norm` takes.
    pub fn flag(&self) -> Option<&'static str> {
        match self {
            NormName::Number(1) => Some("1"),
            NormName::Number(2) => Some("2"),
            NormName::Number(_) => None,
            NormName::Text(t) => match t.to_ascii_lowercase().as_str() {
                "inf" | "linf" | "l-inf" | "infinity" => Some("inf"),
                "2" | "l2" => Some("2"),
                "1" | "l1" => Some("1"),
                _ => None,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttackName {
    Pgd,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoiseName {
    Sound,
    Gaussian,
}

/// A radius: a number, or a fraction as text (`"1/255"`, exact to the double nearest a / b).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Radius {
    Number(f64),
    Text(String),
}

impl Radius {
    /// The value, or a message saying why the text is not a radius.
    pub fn value(&self) -> std::result::Result<f64, String> {
        let v = match self {
            Radius::Number(v) => *v,
            Radius::Text(t) => {
                let num =
                    |s: &str| s.trim().parse::<f64>().map_err(|_| format!("'{t}' is not a number or a fraction a/b"));
                match t.split_once('/') {
                    Some((a, b)) => {
                        let (a, b) = (num(a)?, num(b)?);
                        if b == 0.0 {
                            return Err(format!("'{t}' divides by zero"));
                        }
                        a / b
                    }
                    None => num(t)?,
                }
            }
        };
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(format!("radius {v} must be finite and >= 0"))
        }
    }
}

/// Where the certificate goes and how it is signed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// The certificate: `NAME.intoto.jsonl` (the Sigstore bundle goes beside it).
    pub certificate: PathBuf,
    /// The signing key (PKCS#8 PEM). `--key` and `$ROBUSTCERT_KEY` override it.
    pub key: Option<PathBuf>,
    /// `true` (default): a key is required. `false`: without a key the certificate is sealed with
    /// a throw-away key that is discarded at once, and the gate reports it as NOT signed.
    pub sign: Option<bool>,
    /// Printed name of the signer, recorded in the certificate (21 CFR 11.50).
    pub signer: Option<String>,
    /// JUnit XML and JSON summary paths (the `--junit` and `--json` flags override them).
    pub junit: Option<PathBuf>,
    pub json: Option<PathBuf>,
    /// Continue the journal of an interrupted earlier run of this exact configuration (certify
    /// refuses a journal of another run). Default false: an old journal is discarded.
    pub resume: Option<bool>,
}

/// One `[[threshold]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    /// Name of the JUnit test case (default: the threshold written out).
    pub name: Option<String>,
    pub metric: MetricName,
    /// Radius of a certified-accuracy threshold (required for it; not for clean accuracy).
    pub radius: Option<Radius>,
    /// The metric (or its lower bound, with `confidence`) must be at least this, in [0, 1].
    pub at_least: f64,
    /// Test the one-sided lower Clopper-Pearson bound at this confidence, in (0.5, 1).
    pub confidence: Option<f64>,
    /// `"class:NAME"` or `"class:INDEX"`, or a slice name as written in the certificate.
    pub slice: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricName {
    /// Certified (proved, correct, radius >= r) accuracy.
    CertifiedAccuracy,
    /// The lower end of the certificate's two-sided Clopper-Pearson interval of it.
    CertifiedAccuracyLower,
    /// Clean accuracy.
    CleanAccuracy,
}

impl GateConfig {
    /// Reads and checks a configuration file; relative paths are made relative to its directory.
    pub fn load(path: impl AsRef<Path>) -> Result<GateConfig> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        // `Path::new("").join(p)` is `p`: a config in the working directory keeps paths as written.
        let base = path.parent().unwrap_or(Path::new(""));
        Self::parse(&text, base).map_err(|m| Error::InvalidArgument(format!("config {}: {m}", path.display())))
    }

    /// Parses configuration text; relative paths resolve against `base`. Errors are messages
    /// naming the key (and, for syntax and unknown keys, the line).
    pub fn parse(text: &str, base: &Path) -> std::result::Result<GateConfig, String> {
        let mut c: GateConfig = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
        c.model = resolve(&c.model);
        c.output.certificate = resolve(&c.output.certificate);
        for p in [&mut c.output.key, &mut c.output.junit, &mut c.output.json].into_iter().flatten() {
            *p = resolve(p);
        }
        // A data source may carry an array name (`file.npz:name`): resolve the file part only.
        let resolve_source = |s: &str| -> String {
            let p = Path::new(s);
            if p.is_absolute() {
                s.to_string()
            } else {
                base.join(p).to_string_lossy().into_owned()
            }
        };
        c.data.source = resolve_source(&c.data.source);
        if let Some(l) = &c.data.labels {
            // A bare array name of the inputs' .npz stays as it is (no path separator, no extension).
            let bare = !l.contains(['/', '\\', '.']);
            if !bare {
                c.data.labels = Some(resolve_source(l));
            }
        }
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> std::result::Result<(), String> {
        let m = &self.method;
        let bound = m.name != MethodName::Smoothing;
        if let Some(n) = &m.norm {
            let flag = n.flag().ok_or_else(|| format!("method.norm {n:?} is not one of \"inf\", \"2\", \"1\""))?;
            if !bound && flag != "2" {
                return Err("method.norm: randomized smoothing certifies L2 radii only (norm = \"2\")".into());
            }
        }
        if let Some(e) = &m.eps {
            e.value().map_err(|w| format!("method.eps: {w}"))?;
        }
        for r in &m.radii {
            r.value().map_err(|w| format!("method.radii: {w}"))?;
        }
        let smoothing_keys = [
            ("sigma", m.sigma.is_some()),
            ("n0", m.n0.is_some()),
            ("n", m.n.is_some()),
            ("alpha", m.alpha.is_some()),
            ("seed", m.seed.is_some()),
            ("noise", m.noise.is_some()),
        ];
        let bound_keys = [
            ("clip", m.clip.is_some()),
            ("attack", m.attack.is_some()),
            ("attack_steps", m.attack_steps.is_some()),
            ("attack_restarts", m.attack_restarts.is_some()),
            ("attack_seed", m.attack_seed.is_some()),
        ];
        if bound {
            if m.eps.is_none() {
                return Err(format!(
                    "method.eps is required for method.name = \"{}\" (the radius to prove)",
                    m.name.as_str()
                ));
            }
            if let Some((k, _)) = smoothing_keys.iter().find(|k| k.1) {
                return Err(format!("method.{k} is a smoothing parameter; method.name is \"{}\"", m.name.as_str()));
            }
        } else {
            if m.sigma.is_none() {
                return Err("method.sigma is required for method.name = \"smoothing\"".into());
            }
            if let Some((k, _)) = bound_keys.iter().find(|k| k.1) {
                return Err(format!("method.{k} is a bound-method parameter; method.name is \"smoothing\""));
            }
        }
        if let Some([lo, hi]) = m.clip {
            if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                return Err(format!("method.clip [{lo}, {hi}] must be finite with low <= high"));
            }
        }
        if self.data.random_seed.is_some() && self.data.random.is_none() {
            return Err("data.random_seed needs data.random (the subset size)".into());
        }
        if self.threads == Some(0) {
            return Err("threads must be at least 1 (omit it for all cores)".into());
        }
        if self.thresholds.is_empty() {
            return Err("no [[threshold]]: a gate needs at least one threshold to test".into());
        }
        for (i, t) in self.thresholds.iter().enumerate() {
            t.criterion(None).map_err(|w| format!("threshold {} ({}): {w}", i + 1, t.display_name()))?;
        }
        Ok(())
    }

    /// The radius values the run must report: `eps`, `radii` and every threshold radius, sorted.
    /// Smoothing without `eps` and `radii` keeps certify's own default curve (0, sigma / 2,
    /// sigma, 2 sigma), which passing threshold radii alone would replace.
    pub fn report_radii(&self) -> Vec<f64> {
        let mut r: Vec<f64> = self.method.eps.iter().chain(&self.method.radii).filter_map(|r| r.value().ok()).collect();
        if let (MethodName::Smoothing, true, Some(s)) = (self.method.name, r.is_empty(), self.method.sigma) {
            r.extend([0.0, s / 2.0, s, 2.0 * s]);
        }
        for t in &self.thresholds {
            if t.metric != MetricName::CleanAccuracy {
                r.extend(t.radius.as_ref().and_then(|x| x.value().ok()));
            }
        }
        r.sort_by(f64::total_cmp);
        r.dedup();
        r
    }

    /// Whether certificates must be signed with a real key (`output.sign`, default true).
    pub fn signing_required(&self) -> bool {
        self.output.sign.unwrap_or(true)
    }
}

impl ThresholdConfig {
    /// Its name in reports: `name`, or the threshold written out.
    pub fn display_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        let metric = match self.metric {
            MetricName::CertifiedAccuracy => "certified_accuracy",
            MetricName::CertifiedAccuracyLower => "certified_accuracy_lower",
            MetricName::CleanAccuracy => "clean_accuracy",
        };
        let mut s = metric.to_string();
        if let Some(r) = &self.radius {
            match r {
                Radius::Number(v) => s.push_str(&format!(" at r = {v}")),
                Radius::Text(t) => s.push_str(&format!(" at r = {t}")),
            }
        }
        s.push_str(&format!(" >= {}", self.at_least));
        if let Some(c) = self.confidence {
            s.push_str(&format!(" with {}% confidence", c * 100.0));
        }
        if let Some(sl) = &self.slice {
            s.push_str(&format!(" on {sl}"));
        }
        s
    }

    /// The certificate criterion this threshold is. `class_names` (index = label) resolve
    /// `slice = "class:NAME"`; with no names, only `class:INDEX` resolves (the slice is then named
    /// `class INDEX`, as the certificate names class slices without names). `None`: check the
    /// values only and keep the slice as written.
    pub fn criterion(&self, class_names: Option<&[String]>) -> std::result::Result<Criterion, String> {
        let metric = match self.metric {
            MetricName::CertifiedAccuracy => Metric::CertifiedAccuracy,
            MetricName::CertifiedAccuracyLower => Metric::CertifiedAccuracyLower,
            MetricName::CleanAccuracy => Metric::CleanAccuracy,
        };
        let radius = match (&self.radius, metric) {
            (Some(r), _) => r.value()?,
            (None, Metric::CleanAccuracy) => 0.0,
            (None, _) => return Err("radius is required for a certified-accuracy threshold".into()),
        };
        if metric == Metric::CleanAccuracy && radius != 0.0 {
            return Err("clean_accuracy has no radius (remove 'radius')".into());
        }
        if !(0.0..=1.0).contains(&self.at_least) {
            return Err(format!("at_least = {} must be in [0, 1]", self.at_least));
        }
        let slice = match (&self.slice, class_names) {
            (Some(s), _) if s.trim().is_empty() => return Err("slice is empty".into()),
            (Some(s), Some(names)) => Some(resolve_slice(s, names)?),
            (slice, _) => slice.clone(),
        };
        let c = Criterion { metric, radius, threshold: self.at_least, slice, confidence: self.confidence };
        c.check_confidence()?;
        Ok(c)
    }
}

/// `class:NAME` / `class:INDEX` to the certificate's class-slice name (`class 4 (mel)`, or
/// `class 4` without class names); any other text is taken as a slice name verbatim.
fn resolve_slice(s: &str, class_names: &[String]) -> std::result::Result<String, String> {
    let Some(which) = s.strip_prefix("class:").map(str::trim) else {
        return Ok(s.to_string());
    };
    if which.is_empty() {
        return Err(format!("slice '{s}': no class after 'class:'"));
    }
    let index = match which.parse::<usize>() {
        Ok(i) => i,
        Err(_) if class_names.is_empty() => {
            return Err(format!("slice '{s}': the data names no classes (give data.class_names, or use class:INDEX)"))
        }
        Err(_) => class_names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(which))
            .ok_or_else(|| format!("slice '{s}': no class named '{which}' (classes: {})", class_names.join(", ")))?,
    };
    Ok(match class_names.get(index) {
        Some(n) => format!("class {index} ({n})"),
        None if class_names.is_empty() => format!("class {index}"),
        None => return Err(format!("slice '{s}': class {index} does not exist ({} classes)", class_names.len())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
model = "m.onnx"
[data]
source = "d.npz"
limit = 4
[method]
name = "crown"
eps = "1/255"
clip = [0, 1]
[output]
certificate = "out/c.intoto.jsonl"
[[threshold]]
metric = "certified_accuracy"
radius = "1/255"
at_least = 0.5
confidence = 0.9
slice = "class:mel"
"#;

    #[test]
    fn parses_and_resolves_relative_paths() {
        let c = GateConfig::parse(GOOD, Path::new("/cfg")).unwrap();
        assert_eq!(c.model, Path::new("/cfg/m.onnx"));
        assert_eq!(c.data.source, "/cfg/d.npz");
        assert_eq!(c.output.certificate, Path::new("/cfg/out/c.intoto.jsonl"));
        assert_eq!(c.report_radii(), vec![1.0 / 255.0]);
        let names: Vec<String> = ["akiec", "mel"].iter().map(|s| s.to_string()).collect();
        let k = c.thresholds[0].criterion(Some(&names)).unwrap();
        assert_eq!(k.slice.as_deref(), Some("class 1 (mel)"));
        assert_eq!(k.confidence, Some(0.9));
        assert_eq!(Criterion::parse(&k.to_text()).unwrap(), k);
        assert!(c.thresholds[0].criterion(Some(&["a".to_string()])).is_err());
        assert!(c.thresholds[0].criterion(Some(&[])).is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let typo = GOOD.replace("at_least", "at_lest");
        let e = GateConfig::parse(&typo, Path::new(".")).unwrap_err();
        assert!(e.contains("at_lest") && e.contains("line"), "{e}");
        let e = GateConfig::parse(&GOOD.replace("certified_accuracy", "certified_acc"), Path::new(".")).unwrap_err();
        assert!(e.contains("certified_acc"), "{e}");
        let e = GateConfig::parse(&GOOD.replace("confidence = 0.9", "confidence = 0.3"), Path::new(".")).unwrap_err();
        assert!(e.contains("confidence"), "{e}");
        let e = GateConfig::parse(&GOOD.replace("eps = \"1/255\"", ""), Path::new(".")).unwrap_err();
        assert!(e.contains("method.eps"), "{e}");
        let e = GateConfig::parse(&GOOD.replace("clip = [0, 1]", "sigma = 0.1"), Path::new(".")).unwrap_err();
        assert!(e.contains("method.sigma"), "{e}");
    }
}
