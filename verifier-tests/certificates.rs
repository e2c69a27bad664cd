//! Signed certificates (issue 5): the DSSE v1 PAE vector, sign/verify round trips with ECDSA
//! P-256 and Ed25519, rejection of every single-byte change of the envelope and of the payload,
//! of another key, model or data; RFC 8785 stability; the JSON Schema's required fields; the
//! `keygen` and `check-cert` commands; and verification with openssl alone.

use crate::common::*;
use proptest::prelude::*;
use robustcert::cert::*;
use robustcert::Error;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

fn robustcert(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_robustcert")).args(args).output().expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh directory under the system temp dir.
fn tmpdir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("robustcert-cert-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Files {
    dir: PathBuf,
    model: PathBuf,
    x: PathBuf,
    y: PathBuf,
}

/// mlp_relu (10 classes) with its 4 fixture inputs and labels [2, 2, 2, 5] written beside.
fn files(tag: &str) -> Files {
    let dir = tmpdir(tag);
    let y = dir.join("labels.npy");
    let labels = robustcert::ir::Tensor::new(vec![4], vec![2.0f32, 2.0, 2.0, 5.0]).unwrap();
    robustcert::data::write_npy(&y, &labels).unwrap();
    Files { model: fixtures().join("models/mlp_relu.onnx"), x: fixtures().join("models/mlp_relu.input.npy"), y, dir }
}

/// A synthetic statement (any results), built through the builder with fixed times.
fn statement(f: &Files) -> Statement {
    let model = ModelSubject::from_file(&f.model)
        .unwrap()
        .with_value_range(0.0, 1.0)
        .with_class_names((0..10).map(|i| format!("digit {i}")).collect());
    let data =
        DatasetSubject::from_files(&f.x, &f.y).unwrap().with_class_slices().with_subgroup("first two", vec![0, 1]);
    let threat = ThreatModel::evasion("linf", vec![0.02, 0.01, 0.05], Some([0.0, 1.0]));
    let results = vec![
        InputResult::new(0, Some(2), Outcome::Proved, 0.0234567),
        InputResult::new(1, Some(2), Outcome::Proved, 0.01),
        InputResult::new(2, Some(2), Outcome::Counterexample, 0.0).with_counterexample(&[0.5; 784]),
        InputResult::new(3, Some(2), Outcome::Incorrect, 0.0),
    ];
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    CertificateBuilder::new(model, data, threat, Method::exact("crown", false), results)
        .criteria(vec![
            Criterion::parse("certified_accuracy@0.01>=0.5").unwrap(),
            Criterion::parse("clean_accuracy>=0.75").unwrap(),
        ])
        .run_info(RunInfo { seed: Some(7), rng: None, threads: 1, started: t0, finished: t0 + Duration::from_secs(5) })
        .host("test-host")
        .build()
        .unwrap()
}

/// One signed certificate shared by the tamper tests.
struct Signed {
    files: Files,
    key: SigningKey,
    envelope_line: Vec<u8>,
}

fn signed() -> &'static Signed {
    static S: OnceLock<Signed> = OnceLock::new();
    S.get_or_init(|| {
        let files = files("shared");
        let key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
        let env = sign(&statement(&files), &key).unwrap();
        Signed { files, key, envelope_line: (env.to_json() + "\n").into_bytes() }
    })
}

#[test]
fn pae_spec_vector() {
    assert_eq!(
        pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    );
}

#[test]
fn sign_verify_round_trip_both_algorithms() {
    let f = files("roundtrip");
    let st = statement(&f);
    let model = std::fs::read(&f.model).unwrap();
    let (x, y) = (std::fs::read(&f.x).unwrap(), std::fs::read(&f.y).unwrap());
    for alg in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
        let key = SigningKey::generate(alg);
        let env = sign(&st, &key).unwrap();
        let paths = write(&env, f.dir.join(format!("cert-{alg}"))).unwrap();
        assert!(paths.envelope.to_string_lossy().ends_with(".intoto.jsonl"));
        let line = std::fs::read(&paths.envelope).unwrap();
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1, "one JSON line");
        let expected = Expected { model: Some(&model), data: Some((&x, &y)) };
        let v = verify(&line, &key.public_key(), &expected).unwrap();
        assert_eq!(v.statement, st);
        assert!(v.model_checked && v.data_checked);
        assert_eq!(v.algorithm, alg);
        // The Sigstore bundle carries the same envelope and the keyid as hint.
        let bundle = std::fs::read(&paths.bundle).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
        assert_eq!(b["mediaType"], "application/vnd.dev.sigstore.bundle.v0.3+json");
        assert_eq!(b["verificationMaterial"]["publicKey"]["hint"], key.public_key().keyid());
        assert_eq!(b["dsseEnvelope"]["payload"], serde_json::to_value(&env).unwrap()["payload"]);
        verify(&bundle, &key.public_key(), &expected).unwrap();
    }
    // Aggregates: certified at 0.01 = inputs 0 and 1; at 0.02 = input 0; clean 3/4.
    let o = &st.predicate.results.aggregates.overall;
    let counts: Vec<usize> = o.certified_accuracy.iter().map(|c| c.value.count).collect();
    assert_eq!(st.predicate.threat_model.radii, vec![0.01, 0.02, 0.05]);
    assert_eq!(counts, vec![2, 1, 0]);
    assert_eq!(o.clean_accuracy.count, 3);
    assert_eq!(o.outcomes["proved"], 2);
    assert_eq!(st.predicate.acceptance.verdict, "PASS");
    assert_eq!(st.predicate.results.per_input[0].certified_radius, 0.023456);
    assert_eq!(st.predicate.results.per_input[3].label, 5);
    assert_eq!(st.subject[0].name, "mlp_relu.onnx");
    assert_eq!(st.predicate.execution.started_at, "2023-11-14T22:13:20Z");
    let class2 = st.predicate.results.aggregates.slices.iter().find(|s| s.slice.starts_with("class 2")).unwrap();
    assert_eq!((class2.slice.as_str(), class2.n), ("class 2 (digit 2)", 3));
}

fn is_verification_error(r: Result<VerifiedCertificate, Error>) -> bool {
    matches!(r, Err(Error::Verification(_)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any single-byte change anywhere in the `.intoto.jsonl` file is rejected.
    #[test]
    fn any_envelope_byte_change_is_rejected(pos in any::<prop::sample::Index>(), delta in 1u8..=255) {
        let s = signed();
        let mut bytes = s.envelope_line.clone();
        let i = pos.index(bytes.len());
        bytes[i] ^= delta;
        prop_assert!(is_verification_error(verify(&bytes, &s.key.public_key(), &Expected::default())), "byte {} ^ {}", i, delta);
    }

    /// Any single-byte change of the signed payload (re-encoded, signature kept) is rejected.
    #[test]
    fn any_payload_byte_change_is_rejected(pos in any::<prop::sample::Index>(), delta in 1u8..=255) {
        use base64::Engine as _;
        let s = signed();
        let mut env = Envelope::from_json(&s.envelope_line).unwrap();
        let mut payload = env.payload_bytes().unwrap();
        let i = pos.index(payload.len());
        payload[i] ^= delta;
        env.payload = base64::engine::general_purpose::STANDARD.encode(&payload);
        prop_assert!(is_verification_error(verify(env.to_json().as_bytes(), &s.key.public_key(), &Expected::default())));
    }
}

#[test]
fn every_single_bit_flip_of_the_envelope_is_rejected() {
    let s = signed();
    let key = s.key.public_key();
    assert!(verify(&s.envelope_line, &key, &Expected::default()).is_ok());
    for i in 0..s.envelope_line.len() {
        let mut bytes = s.envelope_line.clone();
        bytes[i] ^= 1 << (i % 8);
        assert!(is_verification_error(verify(&bytes, &key, &Expected::default())), "byte {i}");
    }
}

#[test]
fn wrong_key_other_model_other_data_are_rejected() {
    let s = signed();
    let f = &s.files;
    let line = &s.envelope_line;
    let msg = |r: Result<VerifiedCertificate, Error>| match r {
        Err(Error::Verification(m)) => m,
        other => panic!("expected a verification failure, got {other:?}"),
    };
    for alg in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
        let other = SigningKey::generate(alg);
        assert!(msg(verify(line, &other.public_key(), &Expected::default())).contains("wrong public key"));
    }
    let key = s.key.public_key();
    let other_model = std::fs::read(fixtures().join("models/cnn_bn.onnx")).unwrap();
    let m = msg(verify(line, &key, &Expected { model: Some(&other_model), data: None }));
    assert!(m.contains("model"), "{m}");
    let (mut x, y) = (std::fs::read(&f.x).unwrap(), std::fs::read(&f.y).unwrap());
    let last = x.len() - 1;
    x[last] ^= 0x40;
    let m = msg(verify(line, &key, &Expected { model: None, data: Some((&x, &y)) }));
    assert!(m.contains("inputs file"), "{m}");
    x[last] ^= 0x40;
    let mut y2 = y.clone();
    y2.push(0);
    let m = msg(verify(line, &key, &Expected { model: None, data: Some((&x, &y2)) }));
    assert!(m.contains("labels file"), "{m}");
    assert!(verify(line, &key, &Expected { model: None, data: Some((&x, &y)) }).is_ok());
    // A statement re-signed after editing the verdict is inconsistent with its own results.
    let mut st = Statement::from_payload(&Envelope::from_json(line).unwrap().payload_bytes().unwrap()).unwrap();
    st.predicate.acceptance.verdict = "FAIL".into();
    let forged = sign(&st, &s.key).unwrap();
    assert!(msg(verify(forged.to_json().as_bytes(), &key, &Expected::default())).contains("inconsistent"));
}

#[test]
fn jcs_payload_is_stable_and_canonical() {
    let f = files("jcs");
    let (a, b) = (statement(&f), statement(&f));
    let (ja, jb) = (a.to_jcs().unwrap(), b.to_jcs().unwrap());
    assert_eq!(ja, jb, "same inputs, same bytes");
    // The signed payload is exactly the JCS bytes, and canonicalising it again changes nothing.
    let env = sign(&a, &SigningKey::generate(Algorithm::Ed25519)).unwrap();
    assert_eq!(env.payload_bytes().unwrap(), ja);
    let v: serde_json::Value = serde_json::from_slice(&ja).unwrap();
    assert_eq!(serde_json_canonicalizer::to_vec(&v).unwrap(), ja);
    let text = String::from_utf8(ja).unwrap();
    assert!(
        text.starts_with(r#"{"_type":"https://in-toto.io/Statement/v1","predicate":{"acceptance":"#),
        "{}",
        &text[..80]
    );
    assert!(!text.contains('\n') && !text.contains("\": ") && !text.contains(", \""), "no whitespace between tokens");
    // ECDSA (RFC 6979) and Ed25519 signatures are deterministic too.
    let k = SigningKey::generate(Algorithm::EcdsaP256Sha256);
    assert_eq!(sign(&a, &k).unwrap(), sign(&b, &k).unwrap());
}

/// Checks `value` has every key the schema requires, following $ref, properties and items.
fn check_required(schema: &serde_json::Value, root: &serde_json::Value, value: &serde_json::Value, path: &str) {
    let schema = match schema.get("$ref").and_then(|r| r.as_str()) {
        Some(r) => root.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("bad $ref {r}")),
        None => schema,
    };
    if let Some(alts) = schema.get("oneOf").and_then(|a| a.as_array()) {
        if !value.is_null() {
            for alt in alts.iter().filter(|a| a["type"] != "null") {
                check_required(alt, root, value, path);
            }
        }
        return;
    }
    if let Some(c) = schema.get("const") {
        assert_eq!(value, c, "{path}");
    }
    if let Some(e) = schema.get("enum").and_then(|e| e.as_array()) {
        assert!(e.contains(value), "{path}: {value} not in {e:?}");
    }
    if let Some(obj) = value.as_object() {
        for k in schema.get("required").and_then(|r| r.as_array()).into_iter().flatten() {
            let k = k.as_str().unwrap();
            assert!(obj.contains_key(k), "{path}: missing required '{k}'");
        }
        if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
            for (k, v) in obj {
                let sub = props.get(k).unwrap_or_else(|| panic!("{path}.{k} is not in the schema"));
                check_required(sub, root, v, &format!("{path}.{k}"));
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            check_required(items, root, v, &format!("{path}[{i}]"));
        }
    }
}

#[test]
fn statement_has_the_schema_required_fields() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("certificates/schema/robustness-certificate-v1.schema.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    let st = serde_json::to_value(statement(&files("schema"))).unwrap();
    check_required(&schema, &schema, &st, "$");
}

#[test]
fn builder_refuses_inconsistent_results() {
    let f = files("refuse");
    let build = |results: Vec<InputResult>| {
        let model = ModelSubject::from_file(&f.model).unwrap();
        let data = DatasetSubject::from_files(&f.x, &f.y).unwrap();
        CertificateBuilder::new(
            model,
            data,
            ThreatModel::evasion("l2", vec![0.1], None),
            Method::exact("ibp", false),
            results,
        )
        .build()
    };
    let cases = [
        (vec![InputResult::new(9, Some(2), Outcome::Proved, 0.1)], "data has 4 inputs"),
        (vec![InputResult::new(3, Some(2), Outcome::Proved, 0.1)], "differs from label"),
        (vec![InputResult::new(0, Some(2), Outcome::Inconclusive, 0.1)], "only 'proved'"),
        (vec![InputResult::new(0, Some(2), Outcome::Proved, f64::NAN)], "not finite"),
        (vec![InputResult::new(0, Some(42), Outcome::Proved, 0.1)], "10 classes"),
        (
            vec![
                InputResult::new(0, Some(2), Outcome::Proved, 0.1),
                InputResult::new(0, Some(2), Outcome::Proved, 0.1),
            ],
            "two results",
        ),
    ];
    for (results, want) in cases {
        let e = build(results).unwrap_err().to_string();
        assert!(e.contains(want), "{e} (wanted '{want}')");
    }
    assert!(build(vec![]).is_ok());
}

fn write_signed_cert(dir: &Path, alg: &str) -> (PathBuf, PathBuf, Files) {
    let keys = dir.join(format!("keys-{alg}"));
    let (code, out, err) = robustcert(&["keygen", "--out", keys.to_str().unwrap(), "--algorithm", alg]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("PRIVATE KEY"), "keygen must never print the private key");
    let key = SigningKey::read(keys.join("robustcert.key.pem")).unwrap();
    let f = files(&format!("cli-{alg}"));
    let paths = write(&sign(&statement(&f), &key).unwrap(), f.dir.join("mlp")).unwrap();
    (paths.envelope, keys.join("robustcert.pub.pem"), f)
}

#[test]
fn keygen_and_check_cert_cli() {
    let dir = tmpdir("cli");
    let (cert, pubkey, f) = write_signed_cert(&dir, "ecdsa-p256");
    let keys = pubkey.parent().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(keys.join("robustcert.key.pem")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (c, k, m, x, y) = (s(&cert), s(&pubkey), s(&f.model), s(&f.x), s(&f.y));
    let (code, out, err) = robustcert(&["check-cert", &c, "--key", &k, "--model", &m, "--data", &x, "--labels", &y]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("VERIFIED") && out.contains("PASS"), "{out}");
    let (code, out, _) = robustcert(&["check-cert", &c, "--key", &k, "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verified"], true);
    // The bundle verifies as well.
    let bundle = c.replace(".intoto.jsonl", ".sigstore.json");
    assert_eq!(robustcert(&["check-cert", &bundle, "--key", &k]).0, 0);
    // Failures: exit 1 with a reason.
    let other = s(&fixtures().join("models/cnn_bn.onnx"));
    let (code, _, err) = robustcert(&["check-cert", &c, "--key", &k, "--model", &other]);
    assert_eq!(code, 1);
    assert!(err.contains("FAILED") && err.contains("model"), "{err}");
    let (_, other_pub, _) = write_signed_cert(&dir, "ed25519");
    let (code, _, err) = robustcert(&["check-cert", &c, "--key", &s(&other_pub)]);
    assert_eq!(code, 1, "{err}");
    let mut bytes = std::fs::read(&cert).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x02;
    let tampered = dir.join("tampered.intoto.jsonl");
    std::fs::write(&tampered, &bytes).unwrap();
    assert_eq!(robustcert(&["check-cert", &s(&tampered), "--key", &k]).0, 1);
    let (code, _, err) = robustcert(&["check-cert", &c, "--key", &k, "--data", &x, "--labels", &m]);
    assert_eq!(code, 1, "{err}");
    // Errors: exit 2.
    let (code, _, err) = robustcert(&["check-cert", &s(&dir.join("missing.jsonl")), "--key", &k]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read the certificate"), "{err}");
    let private = s(&keys.join("robustcert.key.pem"));
    let (code, _, err) = robustcert(&["check-cert", &c, "--key", &private]);
    assert_eq!(code, 2);
    assert!(err.contains("private key"), "{err}");
    // keygen refuses to overwrite.
    let (code, _, err) = robustcert(&["keygen", "--out", &s(keys)]);
    assert_eq!(code, 2);
    assert!(err.contains("refusing to overwrite"), "{err}");
}

fn on_path(cmd: &str) -> bool {
    Command::new(cmd).arg("version").output().is_ok_and(|o| o.status.success())
        || Command::new(cmd).arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn openssl_alone_verifies_certificates() {
    if !on_path("openssl") || !on_path("python3") {
        eprintln!("SKIPPED openssl_alone_verifies_certificates: openssl or python3 is not on PATH");
        return;
    }
    let script = root().join("verifier-tests/verify_with_openssl.sh");
    let dir = tmpdir("openssl");
    for alg in ["ecdsa-p256", "ed25519"] {
        let (cert, pubkey, _) = write_signed_cert(&dir, alg);
        let run = |c: &Path, k: &Path| Command::new("bash").arg(&script).arg(c).arg(k).output().unwrap();
        let out = run(&cert, &pubkey);
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.contains("Verified OK"), "{alg}: {text}");
        assert!(text.contains("mlp_relu.onnx sha256:"), "{text}");
        let bundle = PathBuf::from(cert.to_string_lossy().replace(".intoto.jsonl", ".sigstore.json"));
        assert!(run(&bundle, &pubkey).status.success(), "{alg} bundle");
        // A changed payload fails under openssl too.
        let mut env = Envelope::from_json(&std::fs::read(&cert).unwrap()).unwrap();
        let mut payload = env.payload_bytes().unwrap();
        let i = payload.len() / 3;
        payload[i] ^= 0x01;
        use base64::Engine as _;
        env.payload = base64::engine::general_purpose::STANDARD.encode(&payload);
        let tampered = dir.join(format!("tampered-{alg}.intoto.jsonl"));
        std::fs::write(&tampered, env.to_json() + "\n").unwrap();
        assert!(!run(&tampered, &pubkey).status.success(), "{alg}: tampered certificate accepted by openssl");
    }
}
