//! `robustcert certify MODEL.onnx --data X.npy --labels Y.npy --method {ibp,crown,alpha-crown,smoothing}
//! --norm {inf,2,1} (--eps E | --sigma S [--n0 --n --alpha --seed --noise]) [--radii r1,r2,..]
//! [--clip LO HI] [--criteria C ...] --key KEY.pem --out CERT.intoto.jsonl [--json]`:
//! runs the engine over every input (in parallel; results independent of the thread count),
//! builds the signed robustness certificate and writes the DSSE envelope and the Sigstore
//! bundle. Exit 0: verdict PASS or no criteria; 1: verdict FAIL; 2: an error.

use super::{print_json, Outcome};
use crate::bounds::Method as BoundMethod;
use crate::cert::certify::{certify_all, radius_on_grid, samples, Attack, Engine, RADIUS_REL_TOL, SMOOTHING_RNG};
use crate::cert::{
    self, CertificateBuilder, Criterion, DatasetSubject, ModelSubject, RunInfo, SigningKey, ThreatModel,
};
use crate::spec::Norm;
use crate::{onnx, smoothing};
use anyhow::{bail, Context};
use serde_json::json;
use std::path::PathBuf;
use std::time::SystemTime;

/// The verification method.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    /// Interval bound propagation (fast, loose).
    Ibp,
    /// CROWN linear relaxation (never looser than IBP).
    Crown,
    /// alpha-CROWN: CROWN with optimised lower ReLU slopes (Xu et al. 2021).
    #[value(name = "alpha-crown")]
    AlphaCrown,
    /// Randomized smoothing CERTIFY (L2, certifies the smoothed classifier g).
    Smoothing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NoiseArg {
    /// Rounded Gaussian on the 1/255 grid (Voracek & Hein 2023): sound for f o round.
    Sound,
    /// Plain Gaussian: valid in exact arithmetic only.
    Gaussian,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AttackArg {
    /// Projected gradient descent with restarts; a point counts only when checked in f32 and f64.
    Pgd,
    /// No attack.
    None,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ONNX model (a classifier with one input).
    pub model: PathBuf,
    /// Inputs [N, ...] (.npy or one-array .npz, any numeric type; float32 recommended).
    #[arg(long)]
    pub data: PathBuf,
    /// Integer class labels [N] (or [N, 1]); integer or float .npy.
    #[arg(long)]
    pub labels: PathBuf,
    #[arg(long, value_enum)]
    pub method: MethodArg,
    /// Norm of the threat model: inf, 2 or 1 (default inf; smoothing certifies L2 only).
    #[arg(long)]
    pub norm: Option<Norm>,
    /// Radius to prove (bound methods: required; an input is "proved" when its certified radius
    /// reaches it; smoothing: optional, same meaning).
    #[arg(long)]
    pub eps: Option<f64>,
    /// Smoothing noise standard deviation (in the units of the model input).
    #[arg(long)]
    pub sigma: Option<f64>,
    /// Smoothing: selection samples.
    #[arg(long, default_value_t = smoothing::DEFAULT_N0)]
    pub n0: u64,
    /// Smoothing: estimation samples.
    #[arg(long, default_value_t = smoothing::DEFAULT_N)]
    pub n: u64,
    /// Smoothing: failure probability per input.
    #[arg(long, default_value_t = smoothing::DEFAULT_ALPHA)]
    pub alpha: f64,
    /// Smoothing: seed of the noise (recorded; replayable).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Smoothing noise mode.
    #[arg(long, value_enum, default_value_t = NoiseArg::Sound)]
    pub noise: NoiseArg,
    /// Bound methods: search a counterexample by PGD at --eps on inputs not proved (`none`: no
    /// attack; those inputs stay inconclusive).
    #[arg(long, value_enum, default_value_t = AttackArg::Pgd)]
    pub attack: AttackArg,
    /// PGD steps per restart.
    #[arg(long, default_value_t = Attack::default().steps)]
    pub attack_steps: usize,
    /// PGD restarts (the first from the input itself).
    #[arg(long, default_value_t = Attack::default().restarts)]
    pub attack_restarts: usize,
    /// PGD seed (input i uses seed + i; recorded).
    #[arg(long, default_value_t = 0)]
    pub attack_seed: u64,
    /// Radii at which certified accuracy is reported, comma-separated (default: --eps; for
    /// smoothing without --eps: 0, sigma/2, sigma, 2 sigma).
    #[arg(long, value_delimiter = ',')]
    pub radii: Vec<f64>,
    /// Perturbed inputs stay in [LO, HI] element-wise (the valid input range).
    #[arg(long, num_args = 2, value_names = ["LO", "HI"], allow_negative_numbers = true)]
    pub clip: Option<Vec<f64>>,
    /// Acceptance criteria, e.g. "certified_accuracy@0.25>=0.7" (repeatable; all must hold).
    #[arg(long)]
    pub criteria: Vec<String>,
    /// Only the first N inputs of the data files.
    #[arg(long)]
    pub first: Option<usize>,
    /// The signing key (PKCS#8 PEM, ECDSA P-256 or Ed25519, as written by `keygen`).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The certificate: CERT.intoto.jsonl (the Sigstore bundle goes beside it as CERT.sigstore.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Class names in output order, comma-separated (recorded in model.classNames).
    #[arg(long, value_delimiter = ',')]
    pub class_names: Vec<String>,
    /// What turns raw data into the model input (recorded in model.preprocessing).
    #[arg(long)]
    pub preprocessing: Option<String>,
    /// Printed name of the signer (21 CFR 11.50).
    #[arg(long)]
    pub signer: Option<String>,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Record per-input wall-clock seconds (then results differ from run to run).
    #[arg(long)]
    pub record_times: bool,
    /// Print one JSON summary object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn engine(a: &Args) -> anyhow::Result<Engine> {
    // Radii go on the certificate's 1e-6 grid, rounded up (a claim at least as strong).
    let eps = a.eps.map(radius_on_grid);
    let radii: Vec<f64> = a.radii.iter().map(|&r| radius_on_grid(r)).collect();
    let clip = match a.clip.as_deref() {
        Some([lo, hi]) => Some((*lo, *hi)),
        _ => None,
    };
    let method = match a.method {
        MethodArg::Ibp => Some(BoundMethod::Ibp),
        MethodArg::Crown => Some(BoundMethod::Crown),
        MethodArg::AlphaCrown => Some(BoundMethod::AlphaCrown),
        MethodArg::Smoothing => None,
    };
    let e = match method {
        Some(method) => {
            if a.sigma.is_some() {
                bail!("--sigma is for --method smoothing; bound methods take --eps");
            }
            let eps = eps.context("--method ibp/crown needs --eps E (the radius to prove)")?;
            let max_radius = radii.iter().copied().fold(eps, f64::max);
            let attack = (a.attack == AttackArg::Pgd).then_some(Attack {
                steps: a.attack_steps,
                restarts: a.attack_restarts,
                seed: a.attack_seed,
            });
            Engine::Bounds {
                method,
                norm: a.norm.unwrap_or(Norm::Inf),
                eps,
                max_radius,
                rel_tol: RADIUS_REL_TOL,
                clip,
                attack,
            }
        }
        None => {
            if a.norm.is_some_and(|n| n != Norm::L2) {
                bail!("randomized smoothing certifies L2 radii only: use --norm 2 (or omit --norm)");
            }
            if a.clip.is_some() {
                bail!("--clip is not supported with smoothing (the smoothed classifier's noise is not clipped)");
            }
            Engine::Smoothing {
                sigma: a.sigma.context("--method smoothing needs --sigma S")?,
                sound: a.noise == NoiseArg::Sound,
                n0: a.n0,
                n: a.n,
                alpha: a.alpha,
                seed: a.seed,
                batch: smoothing::DEFAULT_BATCH,
                eps,
            }
        }
    };
    e.validate()?;
    Ok(e)
}

/// A signed certificate as [`certify_and_sign`] wrote it.
pub(crate) struct Signed {
    pub statement: cert::Statement,
    pub paths: cert::CertificatePaths,
    pub key: SigningKey,
    pub threads: usize,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let Signed { statement, paths, key, threads } = certify_and_sign(&a)?;
    print_summary(&a, &statement, &paths, &key, threads)
}

/// Runs the engine over the inputs, builds, signs and writes the certificate (no printing).
pub(crate) fn certify_and_sign(a: &Args) -> anyhow::Result<Signed> {
    let engine = engine(a)?;
    let Some(key_path) = &a.key else {
        bail!(
            "certify signs every certificate and no --key was given: pass --key PRIVATE.pem (create a pair with \
             `robustcert keygen --out DIR`; keep the private key out of the repository)"
        );
    };
    let key =
        SigningKey::read(key_path).with_context(|| format!("cannot load the signing key {}", key_path.display()))?;
    let criteria = a
        .criteria
        .iter()
        .map(|c| Criterion::parse(c).map(|c| Criterion { radius: radius_on_grid(c.radius), ..c }))
        .collect::<crate::Result<Vec<_>>>()
        .context("bad --criteria")?;
    let model_bytes = std::fs::read(&a.model).with_context(|| format!("cannot read {}", a.model.display()))?;
    let model_name = a.model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut subject = ModelSubject::from_bytes(&model_name, &model_bytes)
        .with_context(|| format!("cannot import {}", a.model.display()))?;
    let m = onnx::load_bytes(&model_bytes).with_context(|| format!("cannot import {}", a.model.display()))?;
    let mut data = DatasetSubject::from_files(&a.data, &a.labels).context("cannot read the data")?.with_class_slices();
    let rows = samples(&m.graph, data.inputs()).context("the inputs do not fit the model")?;
    let n_data = rows.len();
    let count = a.first.map_or(n_data, |k| k.min(n_data));
    if count == 0 {
        bail!("no inputs to certify");
    }
    if let Some(k) = a.first {
        data = data.with_selection("first-n", None, &format!("the first {count} of {n_data} inputs (--first {k})"));
        for s in &mut data.slices {
            s.indices.retain(|&i| i < count);
        }
        data.slices.retain(|s| !s.indices.is_empty());
    }
    let clip = a.clip.as_deref().map(|c| [c[0], c[1]]);
    if let Some([lo, hi]) = clip {
        subject = subject.with_value_range(lo, hi);
    }
    if !a.class_names.is_empty() {
        let k = subject.description.num_classes;
        if k > 0 && a.class_names.len() != k {
            bail!("--class-names gives {} names, the model has {k} outputs", a.class_names.len());
        }
        subject = subject.with_class_names(a.class_names.clone());
    }
    if let Some(text) = &a.preprocessing {
        subject = subject.with_preprocessing(text);
    }
    let mut radii: Vec<f64> = a.radii.iter().map(|&r| radius_on_grid(r)).collect();
    if radii.is_empty() {
        radii = match (&engine, a.eps) {
            (_, Some(e)) => vec![radius_on_grid(e)],
            (Engine::Smoothing { sigma, .. }, None) => {
                [0.0, sigma / 2.0, *sigma, 2.0 * sigma].into_iter().map(radius_on_grid).collect()
            }
            (Engine::Bounds { eps, .. }, None) => vec![*eps],
        };
    }

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads.unwrap_or(0))
        .build()
        .context("cannot start the worker threads")?;
    let indices: Vec<usize> = (0..count).collect();
    let started = SystemTime::now();
    let (results, threads) = pool.install(|| {
        (certify_all(&m.graph, &engine, &rows, data.labels(), &indices, a.record_times), rayon::current_num_threads())
    });
    let results = results?;
    let finished = SystemTime::now();
    if results.iter().all(|r| r.outcome == crate::cert::Outcome::Error) {
        // A configuration error (e.g. inputs off the 1/255 grid for --noise sound): sign nothing.
        bail!(
            "the engine failed on every input; first failure (input {}): {}",
            results[0].index,
            results[0].detail.as_deref().unwrap_or("no detail")
        );
    }

    let threat = ThreatModel::evasion(engine.norm_name(), radii, clip);
    let run = RunInfo {
        seed: engine.seed(),
        rng: engine.seed().map(|_| SMOOTHING_RNG.to_string()),
        threads,
        started,
        finished,
    };
    let mut builder = CertificateBuilder::new(subject, data, threat, engine.method(), results)
        .alpha(engine.alpha())
        .criteria(criteria)
        .run_info(run);
    if let Some(s) = &a.signer {
        builder =
            builder.attestation(s, "authorship: these results were computed by the verifier named in this certificate");
    }
    let statement = builder.build().context("cannot build the certificate")?;
    let envelope = cert::sign(&statement, &key)?;
    let paths = cert::write(&envelope, &a.out)?;
    Ok(Signed { statement, paths, key, threads })
}

fn print_summary(
    a: &Args,
    statement: &cert::Statement,
    paths: &cert::CertificatePaths,
    key: &SigningKey,
    threads: usize,
) -> anyhow::Result<Outcome> {
    let p = &statement.predicate;
    let overall = &p.results.aggregates.overall;
    let verdict = p.acceptance.verdict.as_str();
    if a.json {
        print_json(&json!({
            "envelope": paths.envelope,
            "bundle": paths.bundle,
            "keyid": key.public_key().keyid(),
            "model": {"name": p.model.name, "sha256": p.model.digest.sha256},
            "dataset": {"name": p.dataset.name, "manifestSha256": p.dataset.manifest_digest.sha256},
            "method": p.method.name,
            "norm": p.threat_model.norm,
            "n": overall.n,
            "outcomes": overall.outcomes,
            "cleanAccuracy": overall.clean_accuracy,
            "certifiedAccuracy": overall.certified_accuracy,
            "criteria": p.acceptance.criteria,
            "verdict": verdict,
            "alphaPerInput": p.statistics.alpha_per_input,
            "expectedWrongCertificates": p.statistics.expected_wrong_certificates,
            "threads": threads,
        }))?;
    } else {
        println!("certificate {} (bundle {})", paths.envelope.display(), paths.bundle.display());
        println!("signed by   {} key {}", key.algorithm(), key.public_key().keyid());
        println!("model       {} sha256 {}", p.model.name, p.model.digest.sha256);
        println!(
            "method      {} ({}), {} norm, {} inputs",
            p.method.name, p.method.certified_classifier, p.threat_model.norm, overall.n
        );
        let outcomes: Vec<String> =
            overall.outcomes.iter().filter(|(_, &v)| v > 0).map(|(k, v)| format!("{k} {v}")).collect();
        println!("outcomes    {}", outcomes.join(", "));
        super::print_certified_accuracy(p);
        if p.statistics.alpha_per_input > 0.0 {
            println!("statistics  {}", p.statistics.interpretation);
        }
        for c in &p.acceptance.criteria {
            println!(
                "criterion   {:?}@{} >= {}{}: observed {:?} {}",
                c.criterion.metric,
                c.criterion.radius,
                c.criterion.threshold,
                c.criterion.slice.as_ref().map(|s| format!(" on '{s}'")).unwrap_or_default(),
                c.observed,
                if c.pass { "pass" } else { "FAIL" }
            );
        }
        println!("verdict     {verdict}");
    }
    let errors = overall.outcomes.get("error").copied().unwrap_or(0);
    if errors > 0 {
        eprintln!("warning: the engine failed on {errors} input(s); see results.perInput[].detail");
    }
    Ok(if verdict == "FAIL" { Outcome::Failed } else { Outcome::Ok })
}
