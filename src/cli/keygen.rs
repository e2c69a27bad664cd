//! `robustcert keygen --out DIR [--algorithm ecdsa-p256|ed25519]`: writes a signing key pair
//! (PKCS#8 private key, mode 0600; SubjectPublicKeyInfo public key, both PEM) for certificates.

use super::Outcome;
use crate::cert::keys::{write_keypair, Algorithm};
use anyhow::Context;
use std::path::PathBuf;

/// Signature algorithm of the key pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyAlgorithm {
    /// ECDSA P-256 with SHA-256, DER signatures (what cosign and OpenSSF model signing accept).
    EcdsaP256,
    /// Ed25519 (RFC 8032).
    Ed25519,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory for robustcert.key.pem (private, never share) and robustcert.pub.pem (public).
    #[arg(long)]
    pub out: PathBuf,
    /// Signature algorithm.
    #[arg(long, value_enum, default_value_t = KeyAlgorithm::EcdsaP256)]
    pub algorithm: KeyAlgorithm,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let alg = match a.algorithm {
        KeyAlgorithm::EcdsaP256 => Algorithm::EcdsaP256Sha256,
        KeyAlgorithm::Ed25519 => Algorithm::Ed25519,
    };
    let files =
        write_keypair(&a.out, alg).with_context(|| format!("cannot create a key pair in {}", a.out.display()))?;
    println!("algorithm   {}", files.algorithm);
    println!("keyid       {}", files.keyid);
    println!("private key {} (mode 0600; keep it secret)", files.private_key.display());
    println!("public key  {}", files.public_key.display());
    Ok(Outcome::Ok)
}
