//! DSSE v1 (Dead Simple Signing Envelope, secure-systems-lab/dsse, protocol v1.0.0).
//!
//! The signature covers the pre-authentication encoding
//! `PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body` (LEN = ASCII decimal
//! byte count), never the JSON envelope itself, so no JSON canonicalisation is needed to verify.
//! The envelope is `{"payloadType":..,"payload":<standard padded base64>,"signatures":[{"keyid":..,"sig":<base64>}]}`.

use super::keys::{PublicKey, SigningKey};
use crate::error::{Error, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The payload type of in-toto statements.
pub const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Largest envelope [`Envelope::from_json`] accepts (64 MiB).
pub const MAX_ENVELOPE_BYTES: usize = 64 << 20;

/// A DSSE v1 envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Standard (RFC 4648 section 4, padded) base64 of the payload bytes.
    pub payload: String,
    pub signatures: Vec<Signature>,
}

/// One signature of a DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Hex SHA-256 of the signer's DER SubjectPublicKeyInfo.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyid: String,
    /// Standard base64 of the signature bytes.
    pub sig: String,
}

/// The DSSE v1 pre-authentication encoding of `payload_type` and `body`.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + body.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(body);
    out
}

impl Envelope {
    /// Signs `payload` of type `payload_type` with `key`: one signature, keyid set.
    pub fn sign(payload_type: &str, payload: &[u8], key: &SigningKey) -> Envelope {
        let sig = key.sign(&pae(payload_type, payload));
        Envelope {
            payload_type: payload_type.to_string(),
            payload: STANDARD.encode(payload),
            signatures: vec![Signature { keyid: key.public_key().keyid().to_string(), sig: STANDARD.encode(sig) }],
        }
    }

    /// Compact JSON (one line, no trailing newline).
    pub fn to_json(&self) -> String {
        // Serialising plain strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses an envelope strictly: exactly one JSON object, optionally followed by one `\n`
    /// (the `.intoto.jsonl` line), no other surrounding bytes, no unknown fields.
    pub fn from_json(bytes: &[u8]) -> Result<Envelope> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(Error::Verification(format!("envelope of {} bytes is too large", bytes.len())));
        }
        let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        if body.first() != Some(&b'{') || body.last() != Some(&b'}') {
            return Err(Error::Verification(
                "not a DSSE envelope: expected one JSON object on one line, without surrounding whitespace".into(),
            ));
        }
        serde_json::from_slice(body).map_err(|e| Error::Verification(format!("not a valid DSSE envelope: {e}")))
    }

    /// The decoded payload bytes (strict canonical base64). Unauthenticated until [`Self::verify`].
    pub fn payload_bytes(&self) -> Result<Vec<u8>> {
        STANDARD.decode(&self.payload).map_err(|e| Error::Verification(format!("payload is not valid base64: {e}")))
    }

    /// Verifies the envelope: the payload type must equal `expected_type`, and a signature whose
    /// keyid is `key`'s must verify over the PAE. Returns the authenticated payload.
    pub fn verify(&self, key: &PublicKey, expected_type: &str) -> Result<Vec<u8>> {
        if self.payload_type != expected_type {
            return Err(Error::Verification(format!(
                "payloadType is '{}', expected '{expected_type}'",
                self.payload_type
            )));
        }
        let body = self.payload_bytes()?;
        let message = pae(&self.payload_type, &body);
        let mine: Vec<&Signature> = self.signatures.iter().filter(|s| s.keyid == key.keyid()).collect();
        if mine.is_empty() {
            let ids: Vec<&str> = self
                .signatures
                .iter()
                .map(|s| if s.keyid.is_empty() { "(no keyid)" } else { s.keyid.as_str() })
                .collect();
            return Err(Error::Verification(format!(
                "no signature by key {} (the envelope is signed by: {}); wrong public key?",
                key.keyid(),
                if ids.is_empty() { "nobody".to_string() } else { ids.join(", ") }
            )));
        }
        let mut last = None;
        for s in mine {
            let sig = match STANDARD.decode(&s.sig) {
                Ok(b) => b,
                Err(e) => {
                    last = Some(Error::Verification(format!("signature is not valid base64: {e}")));
                    continue;
                }
            };
            match key.verify(&message, &sig) {
                Ok(()) => return Ok(body),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Verification("no valid signature".into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::keys::Algorithm;

    #[test]
    fn pae_matches_the_spec_vector() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    #[test]
    fn sign_verify_and_refuse() {
        let k = SigningKey::generate(Algorithm::EcdsaP256Sha256);
        let env = Envelope::sign(INTOTO_PAYLOAD_TYPE, b"{\"a\":1}", &k);
        let back = Envelope::from_json(env.to_json().as_bytes()).unwrap();
        assert_eq!(back.verify(&k.public_key(), INTOTO_PAYLOAD_TYPE).unwrap(), b"{\"a\":1}");
        assert!(back.verify(&k.public_key(), "text/plain").is_err());
        let other = SigningKey::generate(Algorithm::EcdsaP256Sha256);
        assert!(back.verify(&other.public_key(), INTOTO_PAYLOAD_TYPE).is_err());
        let line = env.to_json() + "\n";
        assert!(Envelope::from_json(line.as_bytes()).is_ok());
        assert!(Envelope::from_json((env.to_json() + " ").as_bytes()).is_err());
        assert!(Envelope::from_json((env.to_json() + "\n\n").as_bytes()).is_err());
    }
}
