//! `robustcert check-cert CERT --key PUB.pem [--model MODEL.onnx] [--data X.npy --labels Y.npy]`:
//! verifies a signed robustness certificate (DSSE v1 envelope `.intoto.jsonl`, or the Sigstore
//! bundle v0.3 `.sigstore.json`). Exit 0: signature, keyid and the given subject digests verify;
//! 1: verification failed; 2: an error (unreadable file, malformed key).

use super::{print_json, Outcome};
use crate::cert::{self, Expected, PublicKey};
use crate::Error;
use anyhow::Context;
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
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn read(p: &PathBuf, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("cannot read the {what} {}", p.display()))
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
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
            for c in &overall.certified_accuracy {
                println!(
                    "  r = {:<8} certified accuracy {}/{} = {:.4}  [{:.4}, {:.4}] ({}% Clopper-Pearson)",
                    c.radius,
                    c.value.count,
                    c.value.n,
                    c.value.rate,
                    c.value.lower,
                    c.value.upper,
                    p.statistics.interval_confidence * 100.0
                );
            }
            println!("verdict     {} ({} criteria)", p.acceptance.verdict, p.acceptance.criteria.len());
            println!("signed at   {} by {} ({})", p.attestation.signed_at, p.attestation.signer, p.attestation.meaning);
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
