//! `robustcert check-cert CERT --key PUB.pem [--model MODEL.onnx] [--data X.npy --labels Y.npy]`:
//! verifies a signed robustness certificate (DSSE v1 envelope `.intoto.jsonl`, or the Sigstore
//! bundle v0.3 `.sigstore.json`). Exit 0: signature, keyid and the given subject digests verify;
//! 1: verification failed; 2: an error (unreadable file, malformed key).
//!
//! With `--recheck` (needs `--model`, `--data`, `--labels`) it also reruns the recorded method with
//! the recorded parameters on the recorded inputs (bound radii and outcomes; smoothing counts
//! replayed from the recorded seed) and fails (exit 1) on any difference, listing the inputs.

use super::{print_json, Outcome};
use crate::cert::{self, recheck::RecheckReport, DatasetSubject, Expected, PublicKey};
use crate::Error;
use anyhow::{bail, Context};
use serde_json::json;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The certificate: NAME.intoto.jsonl (or NAME.sigstore.json).
    pub cert: PathBuf,
    /// The signer's public key (PEM SubjectPublicKeyInfo, as written by `keygen`).
    #[arg(long)]
    pub key: PathBuf,
    /// Also check that the certificate is about this model file.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Also check that it was computed on these inputs (requires --labels).
    #[arg(long, requires = "labels")]
    pub data: Option<PathBuf>,
    /// The labels file that goes with --data.
    #[arg(long, requires = "data")]
    pub labels: Option<PathBuf>,
    /// Also recompute the deterministic results (bound radii and outcomes, smoothing counts from
    /// the recorded seed) and fail on any difference. Needs --model, --data and --labels.
    #[arg(long)]
    pub recheck: bool,
    /// Worker threads for --recheck, 1 to 1024 (default: all cores). Results do not depend on it.
    #[arg(long, value_parser = super::thread_count)]
    pub threads: Option<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn read(p: &PathBuf, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("cannot read the {what} {}", p.display()))
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    if a.recheck && (a.model.is_none() || a.data.is_none() || a.labels.is_none()) {
        bail!(
            "--recheck reruns the certified computation and needs the files it ran on: give --model MODEL.onnx \
             --data X.npy --labels Y.npy"
        );
    }
    let cert_bytes = read(&a.cert, "certificate")?;
    let key = PublicKey::read(&a.key).context("cannot load the public key")?;
    let model = a.model.as_ref().map(|p| read(p, "model")).transpose()?;
    let x = a.data.as_ref().map(|p| read(p, "inputs file")).transpose()?;
    let y = a.labels.as_ref().map(|p| read(p, "labels file")).transpose()?;
    let expected = Expected { model: model.as_deref(), data: x.as_deref().zip(y.as_deref()) };
    match cert::verify(&cert_bytes, &key, &expected) {
        Ok(v) => {
            let p = &v.statement.predicate;
            let overall = &p.results.aggregates.overall;
            let report = if a.recheck { Some(run_recheck(&a, p, model.as_deref().unwrap_or_default())?) } else { None };
            let rechecked = report.as_ref().map(|r| {
                json!({"method": r.method, "inputs": r.inputs, "matches": r.matches(),
                       "differingInputs": r.differing_inputs(), "differences": r.differences})
            });
            if let Some(r) = report.as_ref().filter(|r| !r.matches()) {
                if a.json {
                    print_json(&json!({"verified": false, "reason": recheck_reason(r), "recheck": rechecked}))?;
                }
                eprintln!("certificate {} FAILED recheck: {}", a.cert.display(), recheck_reason(r));
                for d in &r.differences {
                    eprintln!("  input {}: {} recorded {} recomputed {}", d.index, d.field, d.recorded, d.recomputed);
                }
                return Ok(Outcome::Failed);
            }
            if a.json {
                print_json(&json!({
                    "verified": true,
                    "keyid": v.keyid,
                    "algorithm": v.algorithm.name(),
                    "payloadSha256": v.payload_sha256,
                    "model": {"name": p.model.name, "sha256": p.model.digest.sha256, "checked": v.model_checked},
                    "dataset": {"name": p.dataset.name, "manifestSha256": p.dataset.manifest_digest.sha256, "checked": v.data_checked},
                    "method": p.method.name,
                    "n": overall.n,
                    "certifiedAccuracy": overall.certified_accuracy,
                    "verdict": p.acceptance.verdict,
                    "recheck": rechecked,
                }))?;
                return Ok(Outcome::Ok);
            }
            println!("certificate {} VERIFIED", a.cert.display());
            println!("signed by   {} key {}", v.algorithm, v.keyid);
            let checked = |c: bool| if c { "matches the given file" } else { "not checked, no file given" };
            println!("model       {} sha256 {} ({})", p.model.name, p.model.digest.sha256, checked(v.model_checked));
            println!(
                "dataset     {} manifest sha256 {} ({})",
                p.dataset.name,
                p.dataset.manifest_digest.sha256,
                checked(v.data_checked)
            );
            println!(
                "method      {}, certifies the {}; threat model {} radii {:?}",
                p.method.name, p.method.certified_classifier, p.threat_model.norm, p.threat_model.radii
            );
            super::print_certified_accuracy(p);
            println!("verdict     {} ({} criteria)", p.acceptance.verdict, p.acceptance.criteria.len());
            println!("signed at   {} by {} ({})", p.attestation.signed_at, p.attestation.signer, p.attestation.meaning);
            if let Some(r) = &report {
                println!("recheck     {} reproduced exactly on all {} inputs", r.method, r.inputs);
            }
            Ok(Outcome::Ok)
        }
        Err(Error::Verification(msg)) => {
            if a.json {
                print_json(&json!({"verified": false, "reason": msg}))?;
            }
            eprintln!("certificate {} FAILED verification: {msg}", a.cert.display());
            Ok(Outcome::Failed)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot check {}", a.cert.display()))),
    }
}

fn recheck_reason(r: &RecheckReport) -> String {
    let ix: Vec<String> = r.differing_inputs().iter().map(usize::to_string).collect();
    format!(
        "recomputing {} gives different results for {} of {} inputs: {}",
        r.method,
        ix.len(),
        r.inputs,
        ix.join(", ")
    )
}

/// Reruns the certified computation on the given (already digest-checked) files.
fn run_recheck(a: &Args, p: &cert::RobustnessPredicate, model: &[u8]) -> anyhow::Result<RecheckReport> {
    let (Some(x), Some(y)) = (&a.data, &a.labels) else { bail!("--recheck needs --data and --labels") };
    let m = crate::onnx::load_bytes(model).context("cannot import the model for --recheck")?;
    let data = DatasetSubject::from_files(x, y).context("cannot read the data for --recheck")?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads.unwrap_or(0))
        .build()
        .context("cannot start the worker threads")?;
    pool.install(|| cert::recheck::recheck(p, &m.graph, &data)).context("cannot recheck the certificate")
}
