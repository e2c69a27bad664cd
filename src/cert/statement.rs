//! in-toto Attestation Framework Statement v1 (`https://in-toto.io/Statement/v1`), serialised
//! once as RFC 8785 (JSON Canonicalization Scheme) canonical JSON so that its bytes and digest are
//! reproducible, and the Sigstore bundle v0.3 (`application/vnd.dev.sigstore.bundle.v0.3+json`)
//! that carries the same DSSE envelope for cosign users.

use super::dsse::Envelope;
use super::predicate::RobustnessPredicate;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `_type` of in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// Our predicate type; a new major version gets a new URI.
pub const PREDICATE_TYPE: &str = "https://robustcert.dev/robustness-certificate/v1";
/// Media type of Sigstore bundle v0.3.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// An in-toto resource descriptor (the subset used for subjects: name and digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    /// Algorithm -> lowercase hex, e.g. {"sha256": "..."}.
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    pub fn sha256(name: &str, hex: &str) -> Self {
        Subject { name: name.to_string(), digest: BTreeMap::from([("sha256".to_string(), hex.to_string())]) }
    }
    pub fn sha256_digest(&self) -> Option<&str> {
        self.digest.get("sha256").map(String::as_str)
    }
}

/// An in-toto Statement v1 whose predicate is a robustness certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub type_: String,
    /// First the model, then the dataset manifest.
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: RobustnessPredicate,
}

impl Statement {
    /// The RFC 8785 canonical JSON bytes: sorted keys, no whitespace, ECMAScript number format.
    pub fn to_jcs(&self) -> Result<Vec<u8>> {
        serde_json_canonicalizer::to_vec(self)
            .map_err(|e| Error::Certificate(format!("cannot serialise the statement as canonical JSON: {e}")))
    }

    /// Parses an (authenticated) payload and checks `_type` and `predicateType`.
    pub fn from_payload(bytes: &[u8]) -> Result<Self> {
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| Error::Verification(format!("payload is not JSON: {e}")))?;
        let t = v.get("_type").and_then(|t| t.as_str()).unwrap_or("(none)");
        if t != STATEMENT_TYPE {
            return Err(Error::Verification(format!("payload _type is '{t}', expected '{STATEMENT_TYPE}'")));
        }
        let p = v.get("predicateType").and_then(|t| t.as_str()).unwrap_or("(none)");
        if p != PREDICATE_TYPE {
            return Err(Error::Verification(format!("predicateType is '{p}', this verifier reads '{PREDICATE_TYPE}'")));
        }
        serde_json::from_value(v)
            .map_err(|e| Error::Verification(format!("statement does not match the v1 schema: {e}")))
    }
}

/// A Sigstore bundle v0.3 holding a DSSE envelope, verified with a public key (no Fulcio
/// certificate, no transparency-log entry: `cosign verify-blob-attestation --key PUB.pem
/// --bundle CERT.sigstore.json --insecure-ignore-tlog`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigstoreBundle {
    pub media_type: String,
    pub verification_material: VerificationMaterial,
    pub dsse_envelope: Envelope,
}

/// The bundle's verification material: a public key identified by hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    pub public_key: PublicKeyHint,
    #[serde(default)]
    pub tlog_entries: Vec<serde_json::Value>,
}

/// `{"hint": keyid}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyHint {
    pub hint: String,
}

impl SigstoreBundle {
    /// Wraps `envelope`, hinting the keyid of its first signature.
    pub fn new(envelope: &Envelope) -> Self {
        let hint = envelope.signatures.first().map(|s| s.keyid.clone()).unwrap_or_default();
        SigstoreBundle {
            media_type: BUNDLE_MEDIA_TYPE.to_string(),
            verification_material: VerificationMaterial { public_key: PublicKeyHint { hint }, tlog_entries: vec![] },
            dsse_envelope: envelope.clone(),
        }
    }

    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).map(|s| s + "\n").unwrap_or_default()
    }
}
