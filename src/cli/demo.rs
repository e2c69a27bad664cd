//! `robustcert demo [--out DIR] [--count N] [--report FILE] [--key KEY.pem]`: certifies the first
//! N test images of the bundled SYNTHETIC dermatology demo (`demo/`) with CROWN (L-inf) and with
//! randomized smoothing (L2), through the same code as `certify` (with `--attack-radius`: each
//! image's smallest adversarial radius, the upper bound beside the certified lower bound), signs
//! both certificates (with a throw-away key generated into DIR unless --key is given), writes a
//! self-contained HTML report (curves, gap, counterexample thumbnails) and prints a short summary.

use super::certify::{self as certify_cmd, AttackArg, MethodArg, NoiseArg, Signed};
use super::Outcome;
use crate::cert::certify::Attack;
use crate::cert::{self, Algorithm, SigningKey};
use crate::data::dataset::{Dataset, LoadOptions, Selection};
use crate::report::{self, ReportRun};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output directory (certificates, data files, throw-away key, report).
    #[arg(long, default_value = "certificates/demo")]
    pub out: PathBuf,
    /// Number of test images to certify (the first N of the test split).
    #[arg(long, default_value_t = 32)]
    pub count: usize,
    /// The HTML report (default: DIR/report.html).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Sign with this key (PKCS#8 PEM) instead of a throw-away key.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Smoothing: estimation samples per input.
    #[arg(long, default_value_t = 2000)]
    pub n: u64,
    /// The demo folder (default: ./demo, else the one in the source tree).
    #[arg(long)]
    pub demo_dir: Option<PathBuf>,
    /// Worker threads, 1 to 1024 (default: all cores).
    #[arg(long, value_parser = super::thread_count)]
    pub threads: Option<usize>,
}

const SIGMA: f64 = 0.12;

fn demo_dir(a: &Args) -> PathBuf {
    if let Some(d) = &a.demo_dir {
        return d.clone();
    }
    let local = PathBuf::from("demo");
    if local.join("dermacnn.onnx").exists() {
        local
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("demo")
    }
}

fn base_args(
    model: &Path,
    x: &Path,
    y: &Path,
    key: &Path,
    out: PathBuf,
    names: &[String],
    pre: &str,
) -> certify_cmd::Args {
    certify_cmd::Args {
        model: model.to_path_buf(),
        data: x.to_path_buf(),
        labels: y.to_path_buf(),
        method: MethodArg::Crown,
        norm: None,
        eps: None,
        sigma: None,
        n0: crate::smoothing::DEFAULT_N0,
        n: crate::smoothing::DEFAULT_N,
        alpha: crate::smoothing::DEFAULT_ALPHA,
        seed: 0,
        noise: NoiseArg::Sound,
        attack: AttackArg::Pgd,
        attack_steps: Attack::default().steps,
        attack_restarts: Attack::default().restarts,
        attack_seed: 0,
        radii: vec![],
        clip: None,
        criteria: vec![],
        first: None,
        key: Some(key.to_path_buf()),
        out,
        class_names: names.to_vec(),
        preprocessing: Some(pre.to_string()),
        signer: None,
        threads: None,
        record_times: true,
        json: false,
        // Both runs search each input's smallest adversarial radius (the gap in the report).
        attack_radius: true,
        report: None,
    }
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let t0 = Instant::now();
    if a.count == 0 {
        bail!("--count must be at least 1");
    }
    let dir = demo_dir(&a);
    let model = dir.join("dermacnn.onnx");
    let npz = dir.join("synthetic_dermamnist.npz");
    let card_path = dir.join("model_card.json");
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&card_path).with_context(|| format!("cannot read {}", card_path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", card_path.display()))?;
    let names: Vec<String> = card["class_names"]
        .as_array()
        .context("model_card.json has no class_names")?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();

    let opts = LoadOptions { class_names: Some(names.clone()), ..LoadOptions::default() };
    let all = Dataset::load(&npz.to_string_lossy(), &opts).context("cannot load the demo data")?;
    let data = all.select(&Selection::first(a.count)).context("cannot select the demo inputs")?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let x = a.out.join("demo_inputs.npy");
    let y = a.out.join("demo_labels.npy");
    data.write_npy(&x, &y)?;
    let manifest_path = a.out.join("demo_manifest.json");
    std::fs::write(&manifest_path, serde_json::to_string_pretty(&data.manifest())? + "\n")
        .with_context(|| format!("cannot write {}", manifest_path.display()))?;

    // The signing key.
    let (key_path, pub_path, key_note) = match &a.key {
        Some(k) => {
            let key = SigningKey::read(k).with_context(|| format!("cannot load the signing key {}", k.display()))?;
            let pub_path = a.out.join("signer.pub.pem");
            std::fs::write(&pub_path, key.public_key().to_pem())?;
            (k.clone(), pub_path, format!("signed with your key {}", k.display()))
        }
        None => {
            let priv_path = a.out.join(cert::keys::PRIVATE_KEY_FILE);
            let pub_path = a.out.join(cert::keys::PUBLIC_KEY_FILE);
            let earlier = if priv_path.exists() && pub_path.exists() {
                " (reused from an earlier demo run)"
            } else {
                cert::write_keypair(&a.out, Algorithm::EcdsaP256Sha256).context("cannot write the throw-away key")?;
                ""
            };
            let note = format!(
                "signed with a throw-away key generated for this demo: {}{earlier}; use your own key in production (robustcert keygen)",
                priv_path.display()
            );
            (priv_path, pub_path, note)
        }
    };

    let pre = data.preprocess.clone();
    let eps = 1.0 / 255.0;
    let mut crown = base_args(&model, &x, &y, &key_path, a.out.join("dermacnn-crown-linf"), &names, &pre);
    crown.method = MethodArg::Crown;
    crown.eps = Some(eps);
    crown.radii = vec![0.5 / 255.0, 1.0 / 255.0, 2.0 / 255.0];
    crown.clip = Some(vec![0.0, 1.0]);
    crown.threads = a.threads;
    let mut smooth = base_args(&model, &x, &y, &key_path, a.out.join("dermacnn-smoothing-l2"), &names, &pre);
    smooth.method = MethodArg::Smoothing;
    smooth.norm = Some(crate::spec::Norm::L2);
    smooth.sigma = Some(SIGMA);
    smooth.n0 = 100;
    smooth.n = a.n;
    smooth.threads = a.threads;

    println!("robustcert demo: {} SYNTHETIC test images of {} (not real patient data)", data.len(), npz.display());
    let t = Instant::now();
    let c = certify_cmd::certify_and_sign(&crown).context("CROWN certification failed")?;
    let crown_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let s = certify_cmd::certify_and_sign(&smooth).context("smoothing certification failed")?;
    let smooth_s = t.elapsed().as_secs_f64();

    let report_path = a.report.clone().unwrap_or_else(|| a.out.join("report.html"));
    let runs = [
        ReportRun::new("CROWN, L-inf (base network f)", &c.statement, c.paths.envelope.display().to_string())
            .with_witnesses_from(&c.paths.envelope, Some(&x))
            .context("cannot read the CROWN witnesses")?,
        ReportRun::new(
            format!("Randomized smoothing, L2, sigma {SIGMA} (smoothed classifier g)"),
            &s.statement,
            s.paths.envelope.display().to_string(),
        )
        .with_witnesses_from(&s.paths.envelope, Some(&x))
        .context("cannot read the smoothing witnesses")?,
    ];
    let notes = vec![
        "The data is SYNTHETIC: procedurally drawn dermoscopy-like lesions (demo/synthetic_dermamnist.npz), \
         not real patient data; neither the images nor the model have any clinical meaning."
            .to_string(),
        format!(
            "The randomized-smoothing certificate covers the smoothed classifier g (the majority vote of the network \
             under Gaussian noise, sigma {SIGMA}), not the base network f; each smoothing certificate may be wrong with \
             probability alpha. The CROWN certificate covers the base network f itself."
        ),
        key_note.clone(),
    ];
    let html = report::render_html("robustcert demo: dermacnn on synthetic DermaMNIST", &notes, &runs);
    if let Some(parent) = report_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(&report_path, html).with_context(|| format!("cannot write {}", report_path.display()))?;

    for (label, signed, secs) in [("CROWN L-inf (f)", &c, crown_s), ("smoothing L2 (g)", &s, smooth_s)] {
        summary(label, signed, secs);
    }
    println!("{key_note}");
    println!("certificates {}", c.paths.envelope.display());
    println!("             {}", s.paths.envelope.display());
    println!("public key   {}", pub_path.display());
    println!("report       {}", report_path.display());
    println!("check with   robustcert check-cert {} --key {}", c.paths.envelope.display(), pub_path.display());
    println!("done in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(Outcome::Ok)
}

fn summary(label: &str, s: &Signed, secs: f64) {
    let p = &s.statement.predicate;
    let ov = &p.results.aggregates.overall;
    let outcomes: Vec<String> = ov.outcomes.iter().filter(|(_, &v)| v > 0).map(|(k, v)| format!("{k} {v}")).collect();
    println!(
        "{label}: clean accuracy {}/{} = {:.3}; {} ({secs:.1} s)",
        ov.clean_accuracy.count,
        ov.n,
        ov.clean_accuracy.rate,
        outcomes.join(", ")
    );
    for c in &ov.certified_accuracy {
        println!(
            "  r = {:<9} ({:.2}/255) certified accuracy {}/{} = {:.3}",
            c.radius,
            c.radius * 255.0,
            c.value.count,
            c.value.n,
            c.value.rate
        );
    }
    println!("  verdict {}", p.acceptance.verdict);
    if let Some(line) = report::attack_summary(&s.statement) {
        println!("  {line}");
    }
}
