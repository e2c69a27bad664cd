//! Signing keys for certificates.
//!
//! Two algorithms: ECDSA over NIST P-256 with SHA-256 (FIPS 186-5; signatures are ASN.1 DER,
//! RFC 3279, as cosign and OpenSSF model signing produce and accept; the default) and Ed25519
//! (RFC 8032, strict verification). Private keys are stored as PKCS#8 PEM (RFC 5958, file mode
//! 0600), public keys as SubjectPublicKeyInfo PEM (RFC 5280). A key's `keyid` is the lowercase
//! hex SHA-256 of its DER SubjectPublicKeyInfo, so it can be recomputed with
//! `openssl pkey -pubin -in PUB.pem -outform DER | sha256sum`.

use super::sha256_hex;
use crate::error::{Error, Result};
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
use p256::pkcs8::der::pem;
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rand_core::OsRng;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// File name of the private key written by [`write_keypair`].
pub const PRIVATE_KEY_FILE: &str = "robustcert.key.pem";
/// File name of the public key written by [`write_keypair`].
pub const PUBLIC_KEY_FILE: &str = "robustcert.pub.pem";

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_ED25519: &str = "1.3.101.112";

/// A signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// ECDSA over P-256 with SHA-256, ASN.1 DER signatures.
    #[default]
    EcdsaP256Sha256,
    /// Ed25519 (pure, no pre-hash).
    Ed25519,
}

impl Algorithm {
    /// Stable name, as written in certificates and accepted by `keygen --algorithm`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            Algorithm::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ecdsa-p256" | "ecdsa-p256-sha256" | "p256" | "es256" => Ok(Algorithm::EcdsaP256Sha256),
            "ed25519" | "eddsa" => Ok(Algorithm::Ed25519),
            other => Err(Error::InvalidArgument(format!(
                "unknown signature algorithm '{other}' (expected ecdsa-p256 or ed25519)"
            ))),
        }
    }
}

#[derive(Clone)]
enum SigningInner {
    P256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

/// A private signing key. Its `Debug` output never shows the secret.
#[derive(Clone)]
pub struct SigningKey {
    inner: SigningInner,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, keyid {})", self.algorithm(), self.public_key().keyid())
    }
}

impl SigningKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate(algorithm: Algorithm) -> Self {
        let inner = match algorithm {
            Algorithm::EcdsaP256Sha256 => SigningInner::P256(p256::ecdsa::SigningKey::random(&mut OsRng)),
            Algorithm::Ed25519 => SigningInner::Ed25519(ed25519_dalek::SigningKey::generate(&mut OsRng)),
        };
        SigningKey { inner }
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self.inner {
            SigningInner::P256(_) => Algorithm::EcdsaP256Sha256,
            SigningInner::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match &self.inner {
            SigningInner::P256(k) => PublicKey::from_inner(PublicInner::P256(*k.verifying_key())),
            SigningInner::Ed25519(k) => PublicKey::from_inner(PublicInner::Ed25519(k.verifying_key())),
        }
    }

    /// Signs `message`: ECDSA P-256 hashes it with SHA-256 (RFC 6979 deterministic nonce) and
    /// returns the ASN.1 DER signature; Ed25519 returns the 64-byte signature.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer;
        match &self.inner {
            SigningInner::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
            SigningInner::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
        }
    }

    /// The private key as PKCS#8 PEM. Wrapped so the memory is wiped on drop.
    pub fn to_pkcs8_pem(&self) -> Result<p256::elliptic_curve::zeroize::Zeroizing<String>> {
        let r = match &self.inner {
            SigningInner::P256(k) => k.to_pkcs8_pem(LineEnding::LF),
            SigningInner::Ed25519(k) => {
                use ed25519_dalek::pkcs8::EncodePrivateKey as _;
                k.to_pkcs8_pem(LineEnding::LF)
            }
        };
        r.map_err(|e| Error::Key(format!("cannot encode the private key: {e}")))
    }

    /// Parses a private key PEM: PKCS#8 (`PRIVATE KEY`, P-256 or Ed25519) or SEC1
    /// (`EC PRIVATE KEY`, P-256 only, as `openssl ecparam -genkey` writes).
    pub fn from_pem(text: &str) -> Result<Self> {
        let (label, der) = decode_pem(text)?;
        match label.as_str() {
            "PRIVATE KEY" => {}
            "EC PRIVATE KEY" => {
                let sk = p256::SecretKey::from_sec1_der(&der).map_err(|e| {
                    Error::Key(format!("EC PRIVATE KEY is not a valid P-256 key (only P-256 is supported): {e}"))
                })?;
                return Ok(SigningKey { inner: SigningInner::P256(sk.into()) });
            }
            "PUBLIC KEY" => {
                return Err(Error::Key(
                    "this is a public key; signing needs the private key (PKCS#8 PEM, 'PRIVATE KEY')".into(),
                ))
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(Error::Key(
                    "encrypted private keys are not supported; decrypt with `openssl pkcs8 -in KEY -out PLAIN.pem`"
                        .into(),
                ))
            }
            other => {
                return Err(Error::Key(format!("expected a PKCS#8 private key PEM ('PRIVATE KEY'), found '{other}'")))
            }
        }
        let info = p256::pkcs8::PrivateKeyInfo::try_from(der.as_slice())
            .map_err(|e| Error::Key(format!("malformed PKCS#8 private key: {e}")))?;
        let oid = info.algorithm.oid.to_string();
        let params = info.algorithm.parameters_oid().ok().map(|o| o.to_string());
        let inner = match (oid.as_str(), params.as_deref()) {
            (OID_EC_PUBLIC_KEY, Some(OID_P256)) => SigningInner::P256(
                p256::ecdsa::SigningKey::from_pkcs8_der(&der)
                    .map_err(|e| Error::Key(format!("malformed P-256 private key: {e}")))?,
            ),
            (OID_ED25519, _) => SigningInner::Ed25519(
                ed25519_dalek::SigningKey::from_pkcs8_der(&der)
                    .map_err(|e| Error::Key(format!("malformed Ed25519 private key: {e}")))?,
            ),
            _ => return Err(unsupported_algorithm(&oid, params.as_deref())),
        };
        Ok(SigningKey { inner })
    }

    /// Reads a private key PEM file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = read_pem_file(path)?;
        Self::from_pem(&text).map_err(|e| Error::Key(format!("{}: {}", path.display(), strip_key_prefix(&e))))
    }
}

#[derive(Clone)]
enum PublicInner {
    P256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// A public verification key with its DER SubjectPublicKeyInfo and keyid.
#[derive(Clone)]
pub struct PublicKey {
    inner: PublicInner,
    spki_der: Vec<u8>,
    keyid: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}, keyid {})", self.algorithm(), self.keyid)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki_der == other.spki_der
    }
}

impl PublicKey {
    fn from_inner(inner: PublicInner) -> Self {
        // Encoding a valid in-memory key cannot fail; fall back to an empty DER (which can never
        // match a keyid) rather than panic.
        let spki_der = match &inner {
            PublicInner::P256(k) => k.to_public_key_der().map(|d| d.as_bytes().to_vec()),
            PublicInner::Ed25519(k) => {
                use ed25519_dalek::pkcs8::EncodePublicKey as _;
                k.to_public_key_der().map(|d| d.as_bytes().to_vec())
            }
        }
        .unwrap_or_default();
        let keyid = sha256_hex(&spki_der);
        PublicKey { inner, spki_der, keyid }
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self.inner {
            PublicInner::P256(_) => Algorithm::EcdsaP256Sha256,
            PublicInner::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// Lowercase hex SHA-256 of the DER SubjectPublicKeyInfo.
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// The DER SubjectPublicKeyInfo (P-256 points uncompressed).
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The SubjectPublicKeyInfo as PEM (`PUBLIC KEY`).
    pub fn to_pem(&self) -> String {
        pem::encode_string("PUBLIC KEY", pem::LineEnding::LF, &self.spki_der).unwrap_or_default()
    }

    /// Parses a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        let info = p256::pkcs8::spki::SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|e| Error::Key(format!("malformed SubjectPublicKeyInfo: {e}")))?;
        let oid = info.algorithm.oid.to_string();
        let params = info.algorithm.parameters_oid().ok().map(|o| o.to_string());
        let inner = match (oid.as_str(), params.as_deref()) {
            (OID_EC_PUBLIC_KEY, Some(OID_P256)) => {
                use p256::pkcs8::DecodePublicKey as _;
                PublicInner::P256(
                    p256::ecdsa::VerifyingKey::from_public_key_der(der)
                        .map_err(|e| Error::Key(format!("malformed P-256 public key: {e}")))?,
                )
            }
            (OID_ED25519, _) => PublicInner::Ed25519(
                ed25519_dalek::VerifyingKey::from_public_key_der(der)
                    .map_err(|e| Error::Key(format!("malformed Ed25519 public key: {e}")))?,
            ),
            _ => return Err(unsupported_algorithm(&oid, params.as_deref())),
        };
        Ok(Self::from_inner(inner))
    }

    /// Parses a public key PEM (`PUBLIC KEY`, SubjectPublicKeyInfo). A private key is refused
    /// with a message saying so.
    pub fn from_pem(text: &str) -> Result<Self> {
        let (label, der) = decode_pem(text)?;
        match label.as_str() {
            "PUBLIC KEY" => Self::from_spki_der(&der),
            "PRIVATE KEY" | "EC PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" | "RSA PRIVATE KEY" => Err(Error::Key(
                "this is a private key; verification needs the public key (never hand out the private key; \
                 `robustcert keygen` writes both)"
                    .into(),
            )),
            "CERTIFICATE" => Err(Error::Key(
                "X.509 certificates are not supported; extract the key with `openssl x509 -pubkey -noout -in CERT`"
                    .into(),
            )),
            other => Err(Error::Key(format!("expected a public key PEM ('PUBLIC KEY'), found '{other}'"))),
        }
    }

    /// Reads a public key PEM file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = read_pem_file(path)?;
        Self::from_pem(&text).map_err(|e| Error::Key(format!("{}: {}", path.display(), strip_key_prefix(&e))))
    }

    /// Verifies `sig` over `message`. ECDSA: DER signature over SHA-256(message); Ed25519:
    /// strict RFC 8032 verification (canonical S, no small-order keys).
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> Result<()> {
        let ok = match &self.inner {
            PublicInner::P256(k) => {
                use p256::ecdsa::signature::Verifier;
                match p256::ecdsa::Signature::from_der(sig) {
                    Ok(s) => k.verify(message, &s).is_ok(),
                    Err(_) => false,
                }
            }
            PublicInner::Ed25519(k) => match ed25519_dalek::Signature::from_slice(sig) {
                Ok(s) => k.verify_strict(message, &s).is_ok(),
                Err(_) => false,
            },
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Verification(format!(
                "the {} signature does not verify with key {}",
                self.algorithm(),
                self.keyid
            )))
        }
    }
}

/// Paths and keyid of a key pair written by [`write_keypair`].
#[derive(Debug, Clone)]
pub struct KeyFiles {
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    pub keyid: String,
    pub algorithm: Algorithm,
}

/// Generates a key pair and writes `DIR/robustcert.key.pem` (PKCS#8, mode 0600) and
/// `DIR/robustcert.pub.pem` (SubjectPublicKeyInfo). Creates `dir` if needed; refuses to
/// overwrite existing key files.
pub fn write_keypair(dir: impl AsRef<Path>, algorithm: Algorithm) -> Result<KeyFiles> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let private_key = dir.join(PRIVATE_KEY_FILE);
    let public_key = dir.join(PUBLIC_KEY_FILE);
    for p in [&private_key, &public_key] {
        if p.exists() {
            return Err(Error::InvalidArgument(format!(
                "{} already exists; refusing to overwrite a key (choose another --out directory)",
                p.display()
            )));
        }
    }
    let key = SigningKey::generate(algorithm);
    let pem = key.to_pkcs8_pem()?;
    write_private(&private_key, pem.as_bytes())?;
    let public = key.public_key();
    std::fs::write(&public_key, public.to_pem()).map_err(|e| Error::io(&public_key, e))?;
    Ok(KeyFiles { private_key, public_key, keyid: public.keyid().to_string(), algorithm })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| Error::io(path, e))?;
    #[cfg(unix)]
    {
        // The mode above is filtered by the umask, which can only remove bits; set it exactly.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(|e| Error::io(path, e))?;
    }
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| Error::io(path, e))
}

fn read_pem_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.len() > 64 * 1024 {
        return Err(Error::Key(format!("{}: {} bytes is too large for a key file", path.display(), bytes.len())));
    }
    String::from_utf8(bytes).map_err(|_| Error::Key(format!("{}: not a PEM file (not UTF-8 text)", path.display())))
}

fn decode_pem(text: &str) -> Result<(String, Vec<u8>)> {
    // Take the first PEM block; tolerate text around it (as openssl does) and CRLF line ends.
    let start = text.find("-----BEGIN ").ok_or_else(|| Error::Key("not a PEM file (no '-----BEGIN' line)".into()))?;
    let block = &text[start..];
    let label_end =
        block[11..].find("-----").map(|i| i + 11).ok_or_else(|| Error::Key("malformed PEM header".into()))?;
    let label = &block[11..label_end];
    let end_marker = format!("-----END {label}-----");
    let end = block
        .find(&end_marker)
        .map(|i| i + end_marker.len())
        .ok_or_else(|| Error::Key(format!("PEM block '{label}' has no END line")))?;
    let normalized = block[..end].replace("\r\n", "\n") + "\n";
    let (label, der) =
        pem::decode_vec(normalized.as_bytes()).map_err(|e| Error::Key(format!("corrupt PEM block '{label}': {e}")))?;
    Ok((label.to_string(), der))
}

fn unsupported_algorithm(oid: &str, params: Option<&str>) -> Error {
    let name = match (oid, params) {
        ("1.2.840.113549.1.1.1", _) => "RSA".to_string(),
        (OID_EC_PUBLIC_KEY, Some("1.3.132.0.34")) => "ECDSA P-384".to_string(),
        (OID_EC_PUBLIC_KEY, Some("1.3.132.0.35")) => "ECDSA P-521".to_string(),
        (OID_EC_PUBLIC_KEY, Some("1.3.132.0.10")) => "ECDSA secp256k1".to_string(),
        (OID_EC_PUBLIC_KEY, p) => format!("ECDSA on curve {}", p.unwrap_or("(unnamed)")),
        ("1.3.101.113", _) => "Ed448".to_string(),
        (o, _) => format!("algorithm OID {o}"),
    };
    Error::Key(format!("unsupported key type {name}; robustcert signs with ECDSA P-256 or Ed25519"))
}

fn strip_key_prefix(e: &Error) -> String {
    match e {
        Error::Key(m) => m.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_both_algorithms() {
        for alg in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
            let k = SigningKey::generate(alg);
            let pem = k.to_pkcs8_pem().unwrap();
            let k2 = SigningKey::from_pem(&pem).unwrap();
            assert_eq!(k2.algorithm(), alg);
            assert_eq!(k.public_key(), k2.public_key());
            let p = PublicKey::from_pem(&k.public_key().to_pem()).unwrap();
            assert_eq!(p.keyid(), k.public_key().keyid());
            assert_eq!(p.keyid().len(), 64);
            let sig = k.sign(b"msg");
            p.verify(b"msg", &sig).unwrap();
            assert!(matches!(p.verify(b"msh", &sig), Err(Error::Verification(_))));
        }
    }

    #[test]
    fn wrong_kinds_are_refused_clearly() {
        let k = SigningKey::generate(Algorithm::EcdsaP256Sha256);
        let private = k.to_pkcs8_pem().unwrap();
        let e = PublicKey::from_pem(&private).unwrap_err().to_string();
        assert!(e.contains("private key"), "{e}");
        let e = SigningKey::from_pem(&k.public_key().to_pem()).unwrap_err().to_string();
        assert!(e.contains("public key"), "{e}");
        let mut corrupt = private.to_string();
        corrupt.replace_range(40..44, "!!!!");
        let e = SigningKey::from_pem(&corrupt).unwrap_err().to_string();
        assert!(e.contains("corrupt PEM"), "{e}");
        assert!(PublicKey::from_pem("hello").unwrap_err().to_string().contains("not a PEM"));
        // Other algorithms are named (OpenSSL-generated SubjectPublicKeyInfos).
        let rsa = "-----BEGIN PUBLIC KEY-----\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBANeKyAQwfdNQlC6rsY7VPYmKHH269Tce\nR2sX71Y+btwRZ5KwwVehhS4tRuzDnV13dBOM0PXT3+ns2cuP53q02e8CAwEAAQ==\n-----END PUBLIC KEY-----\n";
        let e = PublicKey::from_pem(rsa).unwrap_err().to_string();
        assert!(e.contains("unsupported key type RSA"), "{e}");
        let p384 = "-----BEGIN PUBLIC KEY-----\nMHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEXue7sij21YtSZAO/vZxp7DMmQFg4SITY\nDyA9t7it7mR2+Cn/PQV9TpmBVxnsbkA6xN74vgSGZGLNJ/csdQap0FT934m2Wh9s\n3dtrQKRO6ZJJ6HyiWjOq63oVTPu0fkVn\n-----END PUBLIC KEY-----\n";
        let e = PublicKey::from_pem(p384).unwrap_err().to_string();
        assert!(e.contains("P-384"), "{e}");
    }
}
