//! `robustcert certify MODEL.onnx --data X.npy --labels Y.npy --method {ibp,crown,alpha-crown,smoothing}
//! --norm {inf,2,1} (--eps E | --sigma S [--n0 --n --alpha --seed --noise]) [--radii r1,r2,..]
//! [--clip LO HI] [--criteria C ...] --key KEY.pem --out CERT.intoto.jsonl [--json]`:
//! runs the engine over every input (in parallel; results independent of the thread count),
//! builds the signed robustness certificate and writes the DSSE envelope and the Sigstore
//! bundle. Exit 0: verdict PASS or no criteria; 1: verdict FAIL; 2: an error.

use super::{print_json, Outcome};
use crate::bounds::Method as BoundMethod;
use crate::cert::certify::{
    certify_input, radius_on_grid, samples, Attack, Engine, MAX_GRID_RADIUS, RADIUS_REL_TOL, SMOOTHING_RNG,
};
use crate::cert::journal::{
    self, assemble, Assembly, DatasetRecord, Header, JournalWriter, ReadOutcome, RunRecord, Session, Shard,
};
use crate::cert::{self, Criterion, DatasetSubject, InputResult, ModelSubject, SigningKey, ThreatModel, Verifier};
use crate::data::dataset::{parse_indices, Dataset, LoadOptions, Preprocess, RandomSubset, Selection};
use crate::spec::Norm;
use crate::{onnx, smoothing};
use anyhow::{bail, Context};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

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
    /// Inputs [N, ...] (.npy or one-array .npz, any numeric type; float32 recommended). Or
    /// --dataset SOURCE.
    #[arg(long, default_value = "", hide_default_value = true, value_parser = path_or_empty())]
    pub data: PathBuf,
    /// Integer class labels [N] (or [N, 1]); integer or float .npy. With --dataset: the labels of
    /// an array source (a file, file.npz:name or an array name of the .npz).
    #[arg(long, default_value = "", hide_default_value = true, value_parser = path_or_empty())]
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
    /// Only the first N inputs (alias of --limit).
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
    /// Worker threads, 1 to 1024 (default: all cores). Results do not depend on it.
    #[arg(long, value_parser = super::thread_count)]
    pub threads: Option<usize>,
    /// Record per-input wall-clock seconds (then results differ from run to run).
    #[arg(long)]
    pub record_times: bool,
    /// Print one JSON summary object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also search each input's smallest adversarial radius by PGD (an upper bound on its
    /// robust radius; for smoothing, of the base network f in L2), recorded as
    /// `attackRadius`; witnesses go to CERT.witnesses/. At most 19 PGD runs per input.
    #[arg(long)]
    pub attack_radius: bool,
    /// Write a self-contained HTML report (curves, gap, tables, thumbnails) to this file.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
}

/// The adversarial radius search `--attack-radius` asks for: in the threat norm from eps
/// (bound methods), in L2 from sigma (smoothing, attacking the base network f).
pub(crate) fn attack_radius_search(a: &Args, engine: &Engine) -> Option<crate::attack::radius::RadiusSearch> {
    use crate::attack::radius::RadiusSearch;
    if !a.attack_radius {
        return None;
    }
    let mut s = match engine {
        Engine::Bounds { norm, eps, max_radius, clip, .. } => {
            let max = match (norm, clip) {
                // The whole clip box is within this L-inf distance of any point in it.
                (Norm::Inf, Some((lo, hi))) => (hi - lo).max(*eps),
                _ => 64.0 * max_radius,
            };
            RadiusSearch::new(*norm, *clip, *eps, max)
        }
        Engine::Smoothing { sigma, .. } => RadiusSearch::new(Norm::L2, None, *sigma, 64.0 * sigma),
    };
    s.seed = a.attack_seed;
    Some(s)
}

/// Paths where the empty default means "not given" (`--data`/`--labels` are optional with
/// `--dataset`; the field stays a `PathBuf` so callers building `Args` are unaffected).
fn path_or_empty() -> impl clap::builder::TypedValueParser<Value = PathBuf> {
    use clap::builder::TypedValueParser as _;
    clap::builder::OsStringValueParser::new().map(PathBuf::from)
}

/// Refuses a radius the certificate's grid cannot hold (`what` names where it came from).
fn check_grid_radius(what: &str, r: f64) -> anyhow::Result<()> {
    if r > MAX_GRID_RADIUS {
        bail!("{what} {r:e} is beyond the largest radius a certificate records ({MAX_GRID_RADIUS:e})");
    }
    Ok(())
}

fn engine(a: &Args) -> anyhow::Result<Engine> {
    for (what, r) in a.eps.iter().map(|&e| ("--eps", e)).chain(a.radii.iter().map(|&r| ("--radii", r))) {
        check_grid_radius(what, r)?;
    }
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

/// Where the inputs come from, which of them to certify, and how a long run is kept (journal,
/// resume, progress, shards). `Default` is a plain run over every input of `--data`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BatchArgs {
    /// A dataset to load instead of --data/--labels: a MedMNIST .npz (split chosen by --split),
    /// an .npy/.npz array (labels by --labels: a file, file.npz:name, or an array name of the
    /// .npz), or an image folder DIR/<class>/<image>.png|jpg. The selected, preprocessed inputs
    /// are written beside the certificate as dataset-<digest>.{inputs,labels}.npy (what the
    /// certificate's data digests and `check-cert --data/--labels` refer to) with the dataset
    /// manifest dataset-<digest>.manifest.json (source indices and ids).
    #[arg(long, conflicts_with = "data", help_heading = "Dataset")]
    pub dataset: Option<String>,
    /// MedMNIST split: train, val or test (default test).
    #[arg(long, requires = "dataset", help_heading = "Dataset")]
    pub split: Option<String>,
    /// Image folders: channels to read, 1 or 3 (default 3).
    #[arg(long, requires = "dataset", help_heading = "Dataset")]
    pub channels: Option<usize>,
    /// Multiplier of the stored values, a number or 1/K (default 1/255 for images and MedMNIST,
    /// 1 for arrays).
    #[arg(long, requires = "dataset", help_heading = "Dataset")]
    pub scale: Option<String>,
    /// Layout of the model input: nchw transposes the stored channels-last images (default for
    /// images and MedMNIST), nhwc keeps them (default for arrays).
    #[arg(long, value_enum, requires = "dataset", help_heading = "Dataset")]
    pub layout: Option<LayoutArg>,
    /// Per-channel mean subtracted after scaling (only when normalisation is not in the model).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true, requires = "dataset", help_heading = "Dataset")]
    pub mean: Vec<f64>,
    /// Per-channel standard deviation divided by after the mean.
    #[arg(long, value_delimiter = ',', requires = "dataset", help_heading = "Dataset")]
    pub std: Vec<f64>,
    /// Certify only the first N selected inputs (--first is an alias).
    #[arg(long, help_heading = "Selection")]
    pub limit: Option<usize>,
    /// Certify these inputs, e.g. 3,5,10-20 (0-based, in this order).
    #[arg(long, help_heading = "Selection")]
    pub indices: Option<String>,
    /// Certify a seeded random subset of K inputs (recorded with its seed and algorithm).
    #[arg(long, value_name = "K", help_heading = "Selection")]
    pub random: Option<usize>,
    /// Seed of --random (default 0).
    #[arg(long, requires = "random", help_heading = "Selection")]
    pub select_seed: Option<u64>,
    /// The journal: one JSON line per finished input, fsynced (default: CERT.journal.jsonl beside
    /// the certificate; with --shard I/N: CERT.shard-I-of-N.journal.jsonl).
    #[arg(long, help_heading = "Long runs")]
    pub journal: Option<PathBuf>,
    /// Continue the run of an existing journal (same model, data, selection and method): skip the
    /// inputs it holds, certify the rest.
    #[arg(long, conflicts_with = "force", help_heading = "Long runs")]
    pub resume: bool,
    /// Discard an existing journal and start over.
    #[arg(long, help_heading = "Long runs")]
    pub force: bool,
    /// Keep the journal after the certificate is written (default: removed once signed).
    #[arg(long, help_heading = "Long runs")]
    pub keep_journal: bool,
    /// Certify shard I of N: input position p of the selection goes to shard p mod N. Writes the
    /// shard's journal and no certificate; `robustcert merge` signs one from all N journals.
    #[arg(long, value_name = "I/N", help_heading = "Long runs")]
    pub shard: Option<String>,
    /// No progress output on stderr.
    #[arg(long, help_heading = "Long runs")]
    pub quiet: bool,
    /// Seconds between plain progress lines when stderr is not a terminal (default 10).
    #[arg(long, value_name = "SECONDS", help_heading = "Long runs")]
    pub progress_every: Option<f64>,
}

/// The layout the model takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LayoutArg {
    /// Channels first: stored channels-last images are transposed.
    Nchw,
    /// As stored.
    Nhwc,
}

/// `robustcert certify`: the run's parameters and the batch options.
#[derive(Debug, clap::Args)]
pub struct CertifyArgs {
    #[command(flatten)]
    pub args: Args,
    #[command(flatten)]
    pub batch: BatchArgs,
}

/// A signed certificate as [`certify_and_sign`] wrote it.
pub(crate) struct Signed {
    pub statement: cert::Statement,
    pub paths: cert::CertificatePaths,
    pub key: SigningKey,
    pub threads: usize,
}

/// How a batch run ended.
pub(crate) enum Finished {
    /// The whole run: certificate signed and written.
    Signed(Signed),
    /// One shard: its journal is complete; no certificate.
    Shard { shard: Shard, journal: PathBuf, done: usize },
}

pub fn run(c: CertifyArgs) -> anyhow::Result<Outcome> {
    match certify_batch(&c.args, &c.batch)? {
        Finished::Signed(Signed { statement, paths, key, threads }) => {
            let outcome = print_summary(c.args.json, &statement, &paths, &key, threads)?;
            report_and_check(&c.args, &statement, &paths)?;
            Ok(outcome)
        }
        Finished::Shard { shard, journal, done } => {
            if c.args.json {
                print_json(&json!({
                    "shard": format!("{}/{}", shard.index, shard.count),
                    "journal": journal,
                    "inputs": done,
                }))?;
            } else {
                println!(
                    "shard {}/{}: {done} inputs certified, journal {}",
                    shard.index,
                    shard.count,
                    journal.display()
                );
                println!(
                    "when all {} shards are done: robustcert merge JOURNAL... --key KEY.pem --out CERT.intoto.jsonl",
                    shard.count
                );
            }
            Ok(Outcome::Ok)
        }
    }
}

/// `--report` and the attack summary; a SOUNDNESS ERROR (attack radius below a certified
/// radius of f) after everything is written.
fn report_and_check(a: &Args, statement: &cert::Statement, paths: &cert::CertificatePaths) -> anyhow::Result<()> {
    if let Some(report) = &a.report {
        let p = &statement.predicate;
        let title = format!("{} ({} norm)", p.method.name, p.threat_model.norm);
        let data = p.dataset.manifest.inputs.name.clone();
        let data = paths.envelope.parent().map(|d| d.join(&data)).filter(|f| f.exists()).unwrap_or(a.data.clone());
        crate::report::write_single(report, &title, statement, &paths.envelope, Some(&data))
            .with_context(|| format!("cannot write the report {}", report.display()))?;
        if !a.json {
            println!("report      {}", report.display());
        }
    }
    if !a.json {
        if let Some(line) = crate::report::attack_summary(statement) {
            println!("attack      {line}");
        }
    }
    crate::report::fail_on_soundness_violations(statement)?;
    Ok(())
}

/// Runs the engine over the inputs, builds, signs and writes the certificate (no printing; a
/// journal from an interrupted earlier call with the same `--out` is discarded).
pub(crate) fn certify_and_sign(a: &Args) -> anyhow::Result<Signed> {
    let batch = BatchArgs { force: true, ..BatchArgs::default() };
    match certify_batch(a, &batch)? {
        Finished::Signed(s) => Ok(s),
        Finished::Shard { .. } => bail!("internal error: a shard without --shard"),
    }
}

fn read_key(a: &Args) -> anyhow::Result<SigningKey> {
    let Some(key_path) = &a.key else {
        bail!(
            "certify signs every certificate and no --key was given: pass --key PRIVATE.pem (create a pair with \
             `robustcert keygen --out DIR`; keep the private key out of the repository)"
        );
    };
    SigningKey::read(key_path).with_context(|| format!("cannot load the signing key {}", key_path.display()))
}

/// `--limit/--first`, `--indices`, `--random/--select-seed` as one selection (None: all inputs).
fn selection(a: &Args, b: &BatchArgs) -> anyhow::Result<Option<Selection>> {
    if a.first.is_some() && b.limit.is_some() {
        bail!("--first is an alias of --limit: give one of them");
    }
    let sel = Selection {
        indices: b.indices.as_deref().map(parse_indices).transpose()?,
        random: b.random.map(|count| RandomSubset { count, seed: b.select_seed.unwrap_or(0) }),
        limit: b.limit.or(a.first),
    };
    if sel.random.is_some_and(|r| r.count == 0) {
        bail!("--random must be at least 1");
    }
    Ok((sel != Selection::all()).then_some(sel))
}

/// `1/255` or a number.
fn parse_scale(s: &str) -> anyhow::Result<f64> {
    let v = match s.split_once('/') {
        Some((a, b)) => {
            let (a, b): (f64, f64) = (
                a.trim().parse().with_context(|| format!("--scale '{s}': not a number"))?,
                b.trim().parse().with_context(|| format!("--scale '{s}': not a number"))?,
            );
            a / b
        }
        None => s.trim().parse().with_context(|| format!("--scale '{s}': not a number"))?,
    };
    if !(v.is_finite() && v != 0.0) {
        bail!("--scale '{s}' must be finite and nonzero");
    }
    Ok(v)
}

/// The preprocessing flags over the source's default (None: the default as is).
fn preprocess(source: &str, b: &BatchArgs, labels_given: bool) -> anyhow::Result<Option<Preprocess>> {
    if b.scale.is_none() && b.layout.is_none() && b.mean.is_empty() && b.std.is_empty() {
        return Ok(None);
    }
    let path = Path::new(source);
    // As Dataset::load decides: folders and MedMNIST files hold 8-bit channels-last images.
    let images = path.is_dir() || (source.to_ascii_lowercase().ends_with(".npz") && !labels_given);
    let mut p = if images { Preprocess::pixels() } else { Preprocess::none() };
    if let Some(s) = &b.scale {
        p.scale = parse_scale(s)?;
    }
    if let Some(l) = b.layout {
        p.channels_first = l == LayoutArg::Nchw;
    }
    p.mean = (!b.mean.is_empty()).then(|| b.mean.clone());
    p.std = (!b.std.is_empty()).then(|| b.std.clone());
    Ok(Some(p))
}

/// The certificate's data and the data indices to certify (selection order).
struct ChosenData {
    subject: DatasetSubject,
    inputs: Vec<usize>,
    class_names: Option<Vec<String>>,
    preprocessing: Option<String>,
}

/// `--data X --labels Y`: the files as given; results keep the files' indices.
fn files_data(a: &Args, b: &BatchArgs, sel: Option<Selection>) -> anyhow::Result<ChosenData> {
    if a.data.as_os_str().is_empty() || a.labels.as_os_str().is_empty() {
        bail!("give the inputs: --data X.npy --labels Y.npy, or --dataset SOURCE");
    }
    if b.split.is_some() || b.channels.is_some() || b.scale.is_some() || b.layout.is_some() {
        bail!("--split, --channels, --scale and --layout apply to --dataset; --data files are used as stored");
    }
    let mut data = DatasetSubject::from_files(&a.data, &a.labels).context("cannot read the data")?.with_class_slices();
    let n = data.len();
    if n == 0 {
        bail!("no inputs to certify");
    }
    let inputs = match sel {
        None => (0..n).collect(),
        Some(sel) => {
            let rec = sel.apply_to(n).context("bad input selection")?;
            data = data.with_selection(&rec.method, rec.seed, &rec.description);
            let chosen: std::collections::BTreeSet<usize> = rec.indices.iter().copied().collect();
            for s in &mut data.slices {
                s.indices.retain(|i| chosen.contains(i));
            }
            data.slices.retain(|s| !s.indices.is_empty());
            rec.indices
        }
    };
    Ok(ChosenData { subject: data, inputs, class_names: None, preprocessing: None })
}

/// Writes `bytes` to `path` unless it already holds them (atomically: temporary file, rename),
/// so shards and resumed runs sharing a directory never see a half-written file.
fn write_if_changed(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// `--dataset SOURCE`: loaded and selected by [`Dataset`], the selection written beside the
/// certificate as canonical .npy files named by the dataset manifest's digest.
fn dataset_data(a: &Args, b: &BatchArgs, source: &str, sel: Option<Selection>) -> anyhow::Result<ChosenData> {
    let labels = (!a.labels.as_os_str().is_empty()).then(|| a.labels.to_string_lossy().into_owned());
    let opts = LoadOptions {
        preprocess: preprocess(source, b, labels.is_some())?,
        labels,
        split: b.split.clone().unwrap_or_else(|| "test".into()),
        channels: b.channels.unwrap_or(3),
        class_names: None,
    };
    let all = Dataset::load(source, &opts).with_context(|| format!("cannot load the dataset {source}"))?;
    let data = match &sel {
        Some(s) => all.select(s).context("bad input selection")?,
        None => all,
    };
    let dir = cert_dir(&a.out);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (x, y, manifest_path, manifest_sha) = write_selected(&data, &dir)?;
    let rec = &data.selection;
    let m = data.manifest();
    let description = format!(
        "{} {}; source {} ({}, sha256 of the source files' listing {}), preprocessing {}; the selected inputs are \
         stored in selection order in {} and {}; the dataset manifest {} (sha256 {manifest_sha}) lists their \
         source indices and ids",
        if rec.method == "all" { "all inputs" } else { "selected" },
        rec.description,
        m.source,
        m.format,
        m.source_sha256,
        m.preprocess,
        file_name(&x),
        file_name(&y),
        file_name(&manifest_path),
    );
    let subject = DatasetSubject::from_files(&x, &y)
        .context("cannot read the selected data back")?
        .with_class_slices()
        .with_selection(&rec.method, rec.seed, &description);
    Ok(ChosenData {
        inputs: (0..data.len()).collect(),
        subject,
        class_names: data.class_names.clone(),
        preprocessing: Some(data.preprocess.clone()),
    })
}

/// Writes a selected dataset into `dir` as `dataset-<manifest sha256, 16 hex>.inputs.npy`,
/// `.labels.npy` and `.manifest.json` (the same names for every run, shard and resume over the
/// same selection); returns the three paths and the manifest's full sha256.
pub(crate) fn write_selected(data: &Dataset, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf, PathBuf, String)> {
    let manifest = data.manifest();
    let sha = manifest.sha256()?;
    let stem = format!("dataset-{}", &sha[..16]);
    let x = dir.join(format!("{stem}.inputs.npy"));
    let y = dir.join(format!("{stem}.labels.npy"));
    let mp = dir.join(format!("{stem}.manifest.json"));
    write_if_changed(&x, &data.inputs_npy())?;
    write_if_changed(&y, &data.labels_npy())?;
    write_if_changed(&mp, (serde_json::to_string_pretty(&manifest)? + "\n").as_bytes())?;
    Ok((x, y, mp, sha))
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The directory the certificate goes to.
fn cert_dir(out: &Path) -> PathBuf {
    out.parent().filter(|d| !d.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `CERT` of `CERT.intoto.jsonl` (as [`cert::write`] names the files).
fn cert_stem(out: &Path) -> String {
    let s = out.to_string_lossy().into_owned();
    s.strip_suffix(".intoto.jsonl").unwrap_or(&s).to_string()
}

/// The default journal: `CERT.journal.jsonl`, or `CERT.shard-I-of-N.journal.jsonl`.
fn default_journal(out: &Path, shard: Shard) -> PathBuf {
    let stem = cert_stem(out);
    if shard.count == 1 {
        PathBuf::from(format!("{stem}.journal.jsonl"))
    } else {
        PathBuf::from(format!("{stem}.shard-{}-of-{}.journal.jsonl", shard.index, shard.count))
    }
}

/// Runs certify with journal, resume, progress and shards.
pub(crate) fn certify_batch(a: &Args, b: &BatchArgs) -> anyhow::Result<Finished> {
    let engine = engine(a)?;
    // --attack-radius (src/attack/radius.rs); its parameters are part of the method record.
    let search = attack_radius_search(a, &engine);
    let mut method = engine.method();
    if let Some(s) = &search {
        method.parameters.insert("attackRadius".into(), s.describe());
    }
    let shard = b.shard.as_deref().map(Shard::parse).transpose()?.unwrap_or(Shard::WHOLE);
    let whole = shard.count == 1;
    // A whole run signs: fail on a missing or bad key before any work. Shards do not sign.
    let key = if whole { Some(read_key(a)?) } else { None };
    if let Some(e) = b.progress_every {
        if !(e.is_finite() && e > 0.0) {
            bail!("--progress-every must be a positive number of seconds");
        }
    }
    let mut criteria =
        a.criteria.iter().map(|c| Criterion::parse(c)).collect::<crate::Result<Vec<_>>>().context("bad --criteria")?;
    for c in &mut criteria {
        check_grid_radius("bad --criteria: radius", c.radius)?;
        c.radius = radius_on_grid(c.radius);
    }
    let model_bytes = std::fs::read(&a.model).with_context(|| format!("cannot read {}", a.model.display()))?;
    let model_name = a.model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut subject = ModelSubject::from_bytes(&model_name, &model_bytes)
        .with_context(|| format!("cannot import {}", a.model.display()))?;
    let m = onnx::load_bytes(&model_bytes).with_context(|| format!("cannot import {}", a.model.display()))?;

    let sel = selection(a, b)?;
    let chosen = match &b.dataset {
        Some(source) => dataset_data(a, b, source, sel)?,
        None => files_data(a, b, sel)?,
    };
    let data = chosen.subject;
    let rows = samples(&m.graph, data.inputs()).context("the inputs do not fit the model")?;
    if chosen.inputs.is_empty() {
        bail!("no inputs to certify");
    }
    let clip = a.clip.as_deref().map(|c| [c[0], c[1]]);
    if let Some([lo, hi]) = clip {
        subject = subject.with_value_range(lo, hi);
    }
    let k = subject.description.num_classes;
    if !a.class_names.is_empty() {
        if k > 0 && a.class_names.len() != k {
            bail!("--class-names gives {} names, the model has {k} outputs", a.class_names.len());
        }
        subject = subject.with_class_names(a.class_names.clone());
    } else if let Some(names) = chosen.class_names.filter(|n| n.len() == k) {
        subject = subject.with_class_names(names);
    }
    if let Some(text) = a.preprocessing.as_ref().or(chosen.preprocessing.as_ref()) {
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

    let record = RunRecord {
        model: subject.description.clone(),
        dataset: DatasetRecord {
            name: data.name.clone(),
            manifest: data.manifest.clone(),
            size: data.len(),
            selection: data.selection.clone(),
            slices: data.slices.clone(),
        },
        inputs: chosen.inputs.clone(),
        threat_model: ThreatModel::evasion(engine.norm_name(), radii, clip),
        method,
        alpha: engine.alpha(),
        interval_confidence: 0.95,
        criteria,
        seed: engine.seed().map(|s| s.to_string()),
        rng: engine.seed().map(|_| SMOOTHING_RNG.to_string()),
        signer: a.signer.clone().unwrap_or_else(|| "robustcert (automated)".into()),
        meaning: "authorship: these results were computed by the verifier named in this certificate".into(),
        record_times: a.record_times,
        verifier: Verifier::current(),
    };
    let header = Header::new(record, shard)?;
    let journal_path = b.journal.clone().unwrap_or_else(|| default_journal(&a.out, shard));
    let (mut writer, mut results, mut sessions) = open_journal(&journal_path, &header, b)?;

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads.unwrap_or(0))
        .build()
        .context("cannot start the worker threads")?;
    let threads = pool.current_num_threads();
    let now_unix = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let session = Session { started_unix: now_unix, threads, host: cert::host_name() };
    writer.session(&session)?;
    sessions.push(session);

    let done: std::collections::BTreeSet<usize> = results.iter().map(|r| r.index).collect();
    let mine = shard.inputs(&header.run.inputs);
    let todo: Vec<usize> = mine.iter().copied().filter(|i| !done.contains(i)).collect();
    let labels = data.labels();
    let label_of = |i: usize| labels.get(i).copied();
    if let Some(&i) = todo.iter().find(|&&i| i >= rows.len() || label_of(i).is_none()) {
        bail!("input {i} is out of range ({} inputs)", rows.len());
    }
    let what = if whole { "certify".to_string() } else { format!("certify shard {}/{}", shard.index, shard.count) };
    let progress = Progress::new(&what, mine.len(), results.len(), b);
    let run_one = |i: usize| -> InputResult {
        let t = Instant::now();
        let mut r = certify_input(&m.graph, &engine, &rows[i], labels[i], i);
        if a.record_times {
            r.seconds = Some(t.elapsed().as_secs_f64());
        }
        // Attack radius and witness files beside the certificate (src/report/witnesses.rs).
        let shape = &header.run.model.input.shape;
        crate::report::witnesses::attack_and_save(
            &m.graph,
            &engine,
            search.as_ref(),
            &rows[i],
            labels[i],
            &mut r,
            &crate::report::witnesses::dir_for(&a.out),
            shape,
        );
        // What the builder fills in from the data files, recorded so the journal alone suffices.
        r.label = labels[i];
        r.input_digest = cert::sample_digest(data.sample(i).unwrap_or(&[]));
        r
    };
    let new = run_journaled(&pool, &todo, run_one, &mut writer, progress)?;
    results.extend(new);
    if !whole {
        return Ok(Finished::Shard { shard, journal: journal_path, done: results.len() });
    }
    if results.iter().all(|r| r.outcome == crate::cert::Outcome::Error) {
        // A configuration error (e.g. inputs off the 1/255 grid for --noise sound): sign nothing.
        let first = results.iter().min_by_key(|r| r.index).expect("at least one input");
        bail!(
            "the engine failed on every input; first failure (input {}): {}",
            first.index,
            first.detail.as_deref().unwrap_or("no detail")
        );
    }
    let at = Assembly::from_sessions(&sessions, threads)?;
    let statement = assemble(&header.run, results, &at).context("cannot build the certificate")?;
    let key = key.expect("whole runs read the key");
    let envelope = cert::sign(&statement, &key)?;
    let paths = cert::write(&envelope, &a.out)?;
    if !b.keep_journal {
        // The certificate holds every result now; the journal was only the run's working state.
        std::fs::remove_file(&journal_path)
            .with_context(|| format!("cannot remove the journal {}", journal_path.display()))?;
    }
    Ok(Finished::Signed(Signed { statement, paths, key, threads }))
}

/// Opens the journal for this run: a new one (refusing to overwrite without --force), or, with
/// --resume, the existing one after checking it was written for exactly this run. Returns the
/// writer, the results already recorded and the earlier sessions.
fn open_journal(
    path: &Path,
    header: &Header,
    b: &BatchArgs,
) -> anyhow::Result<(JournalWriter, Vec<InputResult>, Vec<Session>)> {
    if !b.resume || !path.exists() {
        if b.resume {
            eprintln!("note: no journal at {} yet; starting the run", path.display());
        }
        return Ok((JournalWriter::create(path, header, b.force)?, vec![], vec![]));
    }
    let j = match journal::read(path).with_context(|| format!("cannot resume from {}", path.display()))? {
        ReadOutcome::NoHeader => {
            eprintln!("note: the journal {} holds no complete header (killed at start); starting over", path.display());
            return Ok((JournalWriter::create(path, header, true)?, vec![], vec![]));
        }
        ReadOutcome::Journal(j) => j,
    };
    if j.header.run_sha256 != header.run_sha256 {
        bail!(
            "the journal {} was written for a different model/data/method: {}; certify with the same arguments to \
             resume it, or pass --force (or another --journal) to start a new run",
            path.display(),
            header.run.differences(&j.header.run).join("; ")
        );
    }
    if j.header.shard != header.shard {
        bail!(
            "the journal {} is for shard {}/{}, this run is shard {}/{}",
            path.display(),
            j.header.shard.index,
            j.header.shard.count,
            header.shard.index,
            header.shard.count
        );
    }
    if j.torn_tail {
        eprintln!("note: {}: ignored a torn last line (a crash while it was written)", path.display());
    }
    let writer = JournalWriter::resume(&j)?;
    let j = *j;
    Ok((writer, j.results, j.sessions))
}

/// Certifies `todo` on `pool`; every finished input goes through a channel to this thread, which
/// appends it to the journal (durably) and advances the progress display, so workers never wait
/// on the disk. A journal write error stops the run (workers skip what is left).
fn run_journaled(
    pool: &rayon::ThreadPool,
    todo: &[usize],
    run_one: impl Fn(usize) -> InputResult + Sync,
    writer: &mut JournalWriter,
    mut progress: Progress,
) -> anyhow::Result<Vec<InputResult>> {
    use rayon::prelude::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel::<InputResult>();
    let mut out = Vec::with_capacity(todo.len());
    let written = std::thread::scope(|s| -> anyhow::Result<()> {
        let stop = &stop;
        let run_one = &run_one;
        s.spawn(move || {
            pool.install(|| {
                todo.par_iter().for_each_with(tx, |tx, &i| {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if tx.send(run_one(i)).is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                })
            })
        });
        for r in rx.iter() {
            if let Err(e) = writer.result(&r) {
                stop.store(true, Ordering::Relaxed);
                drop(rx);
                return Err(anyhow::Error::new(e).context("cannot append to the journal; the run stopped"));
            }
            out.push(r);
            progress.tick(1);
        }
        Ok(())
    });
    progress.finish();
    written?;
    Ok(out)
}

/// Progress on stderr: an indicatif bar with rate and ETA on a terminal, plain lines every few
/// seconds otherwise ("certify: 120/1000 inputs, 3.1/s, ETA 4m43s"), nothing with --quiet.
struct Progress {
    what: String,
    total: usize,
    done: usize,
    done_at_start: usize,
    started: Instant,
    bar: Option<indicatif::ProgressBar>,
    plain_every: Option<Duration>,
    last_line: Instant,
    lines: usize,
}

impl Progress {
    fn new(what: &str, total: usize, done: usize, b: &BatchArgs) -> Progress {
        use std::io::IsTerminal;
        let terminal = std::io::stderr().is_terminal();
        let bar = (!b.quiet && terminal).then(|| {
            let bar =
                indicatif::ProgressBar::with_draw_target(Some(total as u64), indicatif::ProgressDrawTarget::stderr());
            let style = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} inputs, {per_sec}, ETA {eta} ({elapsed})",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(what.to_string());
            bar.set_position(done as u64);
            bar.reset_eta();
            bar
        });
        let plain_every = (!b.quiet && !terminal).then(|| Duration::from_secs_f64(b.progress_every.unwrap_or(10.0)));
        Progress {
            what: what.into(),
            total,
            done,
            done_at_start: done,
            started: Instant::now(),
            bar,
            plain_every,
            last_line: Instant::now(),
            lines: 0,
        }
    }

    fn tick(&mut self, k: usize) {
        self.done += k;
        if let Some(bar) = &self.bar {
            bar.inc(k as u64);
        }
        if let Some(every) = self.plain_every {
            if self.last_line.elapsed() >= every {
                self.last_line = Instant::now();
                self.lines += 1;
                eprintln!("{}", self.line());
            }
        }
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        let new = self.done - self.done_at_start;
        let rate = if secs > 0.0 { new as f64 / secs } else { 0.0 };
        let left = self.total.saturating_sub(self.done);
        let eta = if rate > 0.0 { short_duration(left as f64 / rate) } else { "unknown".into() };
        format!("{}: {}/{} inputs, {rate:.1}/s, ETA {eta}", self.what, self.done, self.total)
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        // Long runs that printed progress also say how they ended.
        if self.plain_every.is_some() && self.lines > 0 {
            eprintln!(
                "{}: {}/{} inputs in {}",
                self.what,
                self.done,
                self.total,
                short_duration(self.started.elapsed().as_secs_f64())
            );
        }
    }
}

/// `4m43s`, `2h05m`, `12s`.
fn short_duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

pub(crate) fn print_summary(
    json_out: bool,
    statement: &cert::Statement,
    paths: &cert::CertificatePaths,
    key: &SigningKey,
    threads: usize,
) -> anyhow::Result<Outcome> {
    let p = &statement.predicate;
    let overall = &p.results.aggregates.overall;
    let verdict = p.acceptance.verdict.as_str();
    if json_out {
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
