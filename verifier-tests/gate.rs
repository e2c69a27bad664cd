//! `robustcert check`, the CI gate: exit codes (0 pass, 1 a threshold fails, 2 errors with a
//! message naming the problem), JUnit XML read back by an independent parser (quick-xml) with the
//! right test and failure counts, the JSON summary, the confidence option (a point estimate that
//! passes while its lower Clopper-Pearson bound fails), paths relative to the configuration file,
//! signing (configured key, $ROBUSTCERT_KEY as PEM text, none), and the bundled robustcert.toml.
//! Runs use the bundled SYNTHETIC demo model on 8 test images with CROWN and no attack (about a
//! second each).

use quick_xml::events::Event;
use quick_xml::XmlVersion;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_robustcert"));
    c.current_dir(root()).env_remove("ROBUSTCERT_KEY");
    c
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("robustcert-gate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A configuration for the demo model (copied into `dir/models`, so `model` is relative) on the
/// first 8 synthetic test images, CROWN at eps 1/255 without attack, with `thresholds` appended.
fn write_config(dir: &Path, thresholds: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("models")).unwrap();
    std::fs::copy(root().join("demo/dermacnn.onnx"), dir.join("models/dermacnn.onnx")).unwrap();
    let npz = root().join("demo/synthetic_dermamnist.npz");
    let cfg = format!(
        r#"model = "models/dermacnn.onnx"
threads = 2

[data]
source = "{}"
split = "test"
limit = 8

[method]
name = "crown"
eps = "1/255"
clip = [0.0, 1.0]
attack = "none"

[output]
certificate = "out/dermacnn.intoto.jsonl"
sign = false
junit = "out/junit.xml"
json = "out/summary.json"
{thresholds}"#,
        npz.display().to_string().replace('\\', "/")
    );
    let path = dir.join("robustcert.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

fn check(config: &Path, extra: &[&str]) -> Output {
    bin().arg("check").arg("--config").arg(config).args(extra).output().unwrap()
}

/// Test-case count, failure-element count, error-element count and the `tests`/`failures`
/// attributes of the testsuite, read with quick-xml (which rejects malformed XML).
struct Junit {
    testcases: usize,
    failures: usize,
    errors: usize,
    suites: usize,
    attr_tests: usize,
    attr_failures: usize,
    failure_messages: Vec<String>,
    names: Vec<String>,
}

fn read_junit(path: &Path) -> Junit {
    let xml = std::fs::read_to_string(path).unwrap();
    let mut r = quick_xml::Reader::from_str(&xml);
    r.config_mut().check_end_names = true;
    let mut j = Junit {
        testcases: 0,
        failures: 0,
        errors: 0,
        suites: 0,
        attr_tests: 0,
        attr_failures: 0,
        failure_messages: vec![],
        names: vec![],
    };
    let mut depth = 0i32;
    loop {
        let ev = r.read_event().unwrap_or_else(|e| panic!("malformed JUnit XML: {e}\n{xml}"));
        let (start, empty) = match &ev {
            Event::Start(s) => (Some(s.clone()), false),
            Event::Empty(s) => (Some(s.clone()), true),
            Event::End(_) => {
                depth -= 1;
                (None, false)
            }
            Event::Eof => break,
            _ => (None, false),
        };
        if let Some(s) = start {
            if !empty {
                depth += 1;
            }
            let attr = |k: &str| -> Option<String> {
                s.attributes()
                    .map(|a| a.unwrap())
                    .find(|a| a.key.as_ref() == k)
                    .map(|a| a.normalized_value(XmlVersion::Implicit1_0).unwrap().into_owned())
            };
            match s.name().as_ref() {
                "testsuite" => {
                    j.suites += 1;
                    j.attr_tests = attr("tests").unwrap().parse().unwrap();
                    j.attr_failures = attr("failures").unwrap().parse().unwrap();
                    let t: f64 = attr("time").unwrap().parse().unwrap();
                    assert!(t >= 0.0);
                }
                "testcase" => {
                    j.testcases += 1;
                    assert!(attr("time").unwrap().parse::<f64>().is_ok());
                    j.names.push(attr("name").unwrap());
                }
                "failure" => {
                    j.failures += 1;
                    j.failure_messages.push(attr("message").unwrap());
                }
                "error" => j.errors += 1,
                _ => {}
            }
        }
    }
    assert_eq!(depth, 0, "unbalanced JUnit XML:\n{xml}");
    j
}

fn summary(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn passing_thresholds_exit_0_with_paths_relative_to_the_config() {
    let dir = scratch("pass");
    let cfg = write_config(
        &dir,
        r#"
[[threshold]]
metric = "clean_accuracy"
at_least = 0.5

[[threshold]]
name = "certified at 1/255"
metric = "certified_accuracy"
radius = "1/255"
at_least = 0.25
"#,
    );
    // Run from the repository root: every relative path must resolve against dir.
    let o = check(&cfg, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("PASS (2 of 2 thresholds pass)"), "{stdout}");
    assert!(stdout.contains("NOT SIGNED"), "{stdout}");
    assert!(dir.join("out/dermacnn.intoto.jsonl").is_file() && dir.join("out/dermacnn.sigstore.json").is_file());
    assert!(!root().join("out").exists(), "wrote relative to the working directory");
    let j = read_junit(&dir.join("out/junit.xml"));
    assert_eq!((j.suites, j.testcases, j.failures, j.errors, j.attr_tests, j.attr_failures), (1, 2, 0, 0, 2, 0));
    let s = summary(&dir.join("out/summary.json"));
    assert_eq!(s["verdict"], "PASS");
    assert_eq!(s["n"], 8);
    assert_eq!(s["certificate"]["signed"], false);
    let digest = robustcert::cert::sha256_hex(&std::fs::read(dir.join("out/dermacnn.intoto.jsonl")).unwrap());
    assert_eq!(s["certificate"]["sha256"], digest.as_str());
    assert_eq!(s["thresholds"][1]["name"], "certified at 1/255");
    // The certificate's own verdict agrees (thresholds are its acceptance criteria).
    assert_eq!(s["certificate"]["verdict"], "PASS");
    let p = predicate(&dir.join("out/dermacnn.intoto.jsonl"));
    assert_eq!(p["dataset"]["selection"]["method"], "first-n", "{}", p["dataset"]["selection"]);
    assert_eq!(p["acceptance"]["criteria"].as_array().unwrap().len(), 2);
}

/// The predicate of a certificate envelope.
fn predicate(envelope: &Path) -> serde_json::Value {
    use base64::Engine as _;
    let e: serde_json::Value = serde_json::from_slice(&std::fs::read(envelope).unwrap()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD.decode(e["payload"].as_str().unwrap()).unwrap();
    let statement: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    statement["predicate"].clone()
}

#[test]
fn npy_arrays_with_a_random_selection_are_certified_as_they_are() {
    use robustcert::data::dataset::{Dataset, LoadOptions, Selection};
    let dir = scratch("npy");
    let demo = Dataset::load(&root().join("demo/synthetic_dermamnist.npz").to_string_lossy(), &LoadOptions::default())
        .unwrap()
        .select(&Selection::first(40))
        .unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    demo.write_npy(dir.join("data/x.npy"), dir.join("data/y.npy")).unwrap();
    let cfg = write_config(
        &dir,
        r#"
[[threshold]]
metric = "clean_accuracy"
at_least = 0.1
"#,
    );
    let text_cfg = std::fs::read_to_string(&cfg).unwrap();
    let start = text_cfg.find("[data]").unwrap();
    let end = text_cfg.find("[method]").unwrap();
    let data = "[data]\nsource = \"data/x.npy\"\nlabels = \"data/y.npy\"\nrandom = 5\nrandom_seed = 11\n\n";
    std::fs::write(&cfg, format!("{}{data}{}", &text_cfg[..start], &text_cfg[end..])).unwrap();
    let o = check(&cfg, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let p = predicate(&dir.join("out/dermacnn.intoto.jsonl"));
    let sel = &p["dataset"]["selection"];
    assert_eq!(
        (sel["method"].as_str(), sel["seed"].as_str(), sel["count"].as_u64()),
        (Some("random-subset"), Some("11"), Some(5)),
        "{sel}"
    );
    // The user's own files are the certificate's data subjects.
    assert_eq!(p["dataset"]["manifest"]["inputs"]["name"], "x.npy");
    assert_eq!(p["results"]["perInput"].as_array().unwrap().len(), 5);
}

#[test]
fn a_failing_threshold_exits_1_and_junit_counts_it() {
    let dir = scratch("fail");
    let cfg = write_config(
        &dir,
        r#"
[[threshold]]
metric = "clean_accuracy"
at_least = 0.5

[[threshold]]
name = "markup <b> & \"quotes\" 'too' \u0001 ok"
metric = "certified_accuracy"
radius = "1/255"
at_least = 0.95

[[threshold]]
metric = "certified_accuracy"
radius = "1/255"
at_least = 0.9
confidence = 0.9
slice = "class:mel"
"#,
    );
    let junit = dir.join("elsewhere/report.xml");
    let o = check(&cfg, &["--junit", junit.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("FAIL (1 of 3 thresholds pass)"), "{stdout}");
    // --junit overrides output.junit.
    assert!(!dir.join("out/junit.xml").exists());
    let j = read_junit(&junit);
    assert_eq!((j.testcases, j.failures, j.errors, j.attr_tests, j.attr_failures), (3, 2, 0, 3, 2));
    assert!(j.failure_messages.iter().all(|m| m.contains("< 0.9")), "{:?}", j.failure_messages);
    // Markup in a name is escaped; a control character XML cannot carry is replaced.
    assert_eq!(j.names[1], "markup <b> & \"quotes\" 'too' \u{FFFD} ok");
    let s = summary(&dir.join("out/summary.json"));
    assert_eq!((s["verdict"].as_str(), s["failed"].as_u64(), s["passed"].as_u64()), (Some("FAIL"), Some(2), Some(1)));
    assert_eq!(s["thresholds"][2]["slice"], "class 4 (mel)");
}

#[test]
fn confidence_tests_the_lower_bound_not_the_point_estimate() {
    let dir = scratch("confidence");
    let cfg = write_config(
        &dir,
        r#"
[[threshold]]
metric = "certified_accuracy"
radius = "1/255"
at_least = 0.2

[[threshold]]
metric = "certified_accuracy"
radius = "1/255"
at_least = 0.2
confidence = 0.99
"#,
    );
    let o = check(&cfg, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let s = summary(&dir.join("out/summary.json"));
    let (plain, conf) = (&s["thresholds"][0], &s["thresholds"][1]);
    let estimate = plain["observed"].as_f64().unwrap();
    assert!(estimate >= 0.2 && plain["pass"] == true, "{plain}");
    assert!(plain["lowerBound"].is_null());
    assert_eq!(conf["pointEstimate"].as_f64(), Some(estimate));
    let lower = conf["lowerBound"].as_f64().unwrap();
    assert_eq!(conf["observed"].as_f64(), Some(lower));
    assert!(lower < 0.2 && conf["pass"] == false, "{conf}");
    // The one-sided 99% bound: P(Binomial(8, lower) >= k) = 0.01.
    let k = (estimate * 8.0).round() as u64;
    let tail = robustcert::cert::stats::upper_tail(k, 8, lower);
    assert!(tail <= 0.01 && tail > 0.0099, "{tail}");
    assert_eq!(read_junit(&dir.join("out/junit.xml")).failures, 1);
}

#[test]
fn bad_configurations_exit_2_naming_the_problem() {
    let dir = scratch("bad");
    let good = r#"
[[threshold]]
metric = "certified_accuracy"
radius = 0.004
at_least = 0.5
"#;
    let cfg = write_config(&dir, good);
    let base = std::fs::read_to_string(&cfg).unwrap();
    let cases: Vec<(String, Vec<&str>)> = vec![
        (base.replace("at_least", "at_lest"), vec!["at_lest", "line"]),
        (
            base.replace("\"certified_accuracy\"", "\"certified_acuracy\""),
            vec!["certified_acuracy", "certified_accuracy"],
        ),
        (base.replace("models/dermacnn.onnx", "models/missing.onnx"), vec!["missing.onnx", "model"]),
        (base.replace("limit = 8", "limit = 8\nlabels_typo = 1"), vec!["labels_typo"]),
        (base.replace("at_least = 0.5", "at_least = 0.5\nconfidence = 1.5"), vec!["confidence"]),
        (base.replace("at_least = 0.5", "at_least = 0.5\nslice = \"class:melanomaa\""), vec!["melanomaa", "mel"]),
        (base.replace("eps = \"1/255\"", "eps = \"1/x\""), vec!["method.eps"]),
        (base.replace("[data]", "[data]\n[data]"), vec!["data"]),
        (base.replace("sign = false", "sign = true"), vec!["ROBUSTCERT_KEY", "sign = false"]),
    ];
    for (i, (cfg_text, needles)) in cases.iter().enumerate() {
        let path = dir.join(format!("bad{i}.toml"));
        std::fs::write(&path, cfg_text).unwrap();
        let junit = dir.join(format!("bad{i}.xml"));
        let json = dir.join(format!("bad{i}.json"));
        let o = check(&path, &["--junit", junit.to_str().unwrap(), "--json", json.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "case {i}: {}", text(&o));
        let stderr = String::from_utf8_lossy(&o.stderr);
        for n in needles {
            assert!(stderr.contains(n), "case {i}: '{n}' not in the message:\n{stderr}");
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
        // CI still gets a report: one errored test case.
        let j = read_junit(&junit);
        assert_eq!((j.testcases, j.errors, j.failures), (1, 1, 0), "case {i}");
        let s = summary(&json);
        assert_eq!(s["verdict"], "ERROR");
        assert!(s["error"].as_str().unwrap().contains(needles[0]), "case {i}: {s}");
    }
    let o = check(&dir.join("no-such.toml"), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such.toml"), "{}", text(&o));
}

#[test]
fn signs_with_a_configured_key_or_the_env_pem() {
    let dir = scratch("sign");
    let keys = dir.join("keys");
    let o = bin().args(["keygen", "--out"]).arg(&keys).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let cfg = write_config(
        &dir,
        r#"
[[threshold]]
metric = "clean_accuracy"
at_least = 0.5
"#,
    );
    let with_key = std::fs::read_to_string(&cfg).unwrap().replace("sign = false", "key = \"keys/robustcert.key.pem\"");
    std::fs::write(&cfg, with_key).unwrap();
    let verify = |dir: &Path| {
        let o = bin()
            .arg("check-cert")
            .arg(dir.join("out/dermacnn.intoto.jsonl"))
            .arg("--key")
            .arg(dir.join("keys/robustcert.pub.pem"))
            .arg("--model")
            .arg(root().join("demo/dermacnn.onnx"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    };
    let o = check(&cfg, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("signed with output.key"), "{}", text(&o));
    assert_eq!(summary(&dir.join("out/summary.json"))["certificate"]["signed"], true);
    verify(&dir);

    // $ROBUSTCERT_KEY as the PEM text (a CI secret) wins over output.key.
    let other = dir.join("other");
    let o = bin().args(["keygen", "--out"]).arg(&other).output().unwrap();
    assert!(o.status.success());
    let pem = std::fs::read_to_string(other.join("robustcert.key.pem")).unwrap();
    let o = bin().arg("check").arg("--config").arg(&cfg).env("ROBUSTCERT_KEY", &pem).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = summary(&dir.join("out/summary.json"));
    assert_eq!(s["certificate"]["signed"], true);
    assert!(s["certificate"]["key"].as_str().unwrap().contains("ROBUSTCERT_KEY"), "{s}");
    let other_id = robustcert::cert::PublicKey::read(other.join("robustcert.pub.pem")).unwrap().keyid().to_string();
    assert_eq!(s["certificate"]["keyid"], other_id.as_str());
    // A key that is not a key is an error, not an unsigned pass.
    let o = bin()
        .arg("check")
        .arg("--config")
        .arg(&cfg)
        .env("ROBUSTCERT_KEY", dir.join("robustcert.toml"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ROBUSTCERT_KEY"), "{}", text(&o));
}

#[test]
fn the_bundled_demo_config_passes() {
    // The repository's robustcert.toml, with its outputs redirected to a scratch directory.
    let dir = scratch("bundled");
    let text_cfg = std::fs::read_to_string(root().join("robustcert.toml")).unwrap();
    let outputs = [
        "certificates/gate/dermacnn-crown-linf.intoto.jsonl",
        "certificates/gate/junit.xml",
        "certificates/gate/summary.json",
    ];
    let mut cfg = text_cfg.clone();
    for o in outputs {
        assert!(cfg.contains(o), "robustcert.toml no longer writes {o}");
        cfg = cfg.replace(o, &dir.join(Path::new(o).file_name().unwrap()).display().to_string().replace('\\', "/"));
    }
    // The attack only turns "inconclusive" into "counterexample": no threshold depends on it, and
    // the test stays in seconds without it.
    assert!(cfg.contains("attack = \"pgd\""));
    let cfg = cfg.replace("attack = \"pgd\"", "attack = \"none\"");
    let path = root().join(format!("robustcert-gate-test-{}.toml", std::process::id()));
    std::fs::write(&path, &cfg).unwrap();
    let o = check(&path, &[]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let j = read_junit(&dir.join("junit.xml"));
    assert!(j.testcases >= 3 && j.failures == 0);
    let s = summary(&dir.join("summary.json"));
    assert!(s["thresholds"].as_array().unwrap().iter().any(|t| !t["confidence"].is_null()), "{s}");
}

#[test]
fn smoothing_parameters_reach_the_certificate() {
    let dir = scratch("smoothing");
    let cfg = write_config(
        &dir,
        r#"
[[threshold]]
metric = "clean_accuracy"
at_least = 0.1
"#,
    );
    let text_cfg = std::fs::read_to_string(&cfg).unwrap();
    let start = text_cfg.find("[method]").unwrap();
    let end = text_cfg.find("[output]").unwrap();
    let method = "[method]\nname = \"smoothing\"\nsigma = 0.12\nn0 = 50\nn = 400\nalpha = 0.01\nseed = 5\n\n";
    std::fs::write(&cfg, format!("{}{method}{}", &text_cfg[..start], &text_cfg[end..])).unwrap();
    let o = check(&cfg, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("smoothed-classifier"), "{}", text(&o));
    let p = predicate(&dir.join("out/dermacnn.intoto.jsonl"));
    let par = &p["method"]["parameters"];
    assert_eq!(
        (par["sigma"].as_f64(), par["n0"].as_u64(), par["n"].as_u64()),
        (Some(0.12), Some(50), Some(400)),
        "{par}"
    );
    assert_eq!((par["alpha"].as_f64(), par["seed"].as_str()), (Some(0.01), Some("5")), "{par}");
    assert_eq!(p["threatModel"]["norm"], "l2");
    // certify's default radius curve is kept: 0, sigma / 2, sigma, 2 sigma.
    let radii: Vec<f64> = p["threatModel"]["radii"].as_array().unwrap().iter().map(|r| r.as_f64().unwrap()).collect();
    assert_eq!(radii, [0.0, 0.06, 0.12, 0.24]);
    // A smoothing parameter under a bound method is refused, naming the key.
    let bad = std::fs::read_to_string(&cfg).unwrap().replace("name = \"smoothing\"", "name = \"crown\"\neps = 0.01");
    std::fs::write(&cfg, bad).unwrap();
    let o = check(&cfg, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("method.sigma"), "{}", text(&o));
}
