//! Batch runs of `robustcert certify` (issue 7): a run killed with SIGKILL and resumed from its
//! journal signs the same certificate as an uninterrupted run (byte-identical envelope with
//! SOURCE_DATE_EPOCH), a torn last journal line is tolerated, a journal of another run is refused,
//! three shards merged equal the single run, merge refuses missing / duplicate / foreign shards,
//! and --indices / --limit / --random are recorded in the certificate. The demo CNN on the
//! synthetic DermaMNIST test split, CROWN without attack, one thread: about 0.1 s per input.

use robustcert::cert::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const EPOCH: &str = "1700000000";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_robustcert"));
    c.env("SOURCE_DATE_EPOCH", EPOCH);
    c
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = bin().args(args).output().expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("robustcert-batch-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Setup {
    dir: PathBuf,
    key: PathBuf,
    pubkey: PathBuf,
    /// The uninterrupted single run's envelope (bytes) and its path.
    reference: Vec<u8>,
    reference_path: PathBuf,
}

const INPUTS: &str = "15";

/// `certify` on the demo: the same run for every test (the certificates go into `dir`).
fn certify_args(dir: &Path, key: &Path, out: &str) -> Vec<String> {
    let model = root().join("demo/dermacnn.onnx");
    let data = root().join("demo/synthetic_dermamnist.npz");
    [
        "certify",
        s(&model),
        "--dataset",
        s(&data),
        "--split",
        "test",
        "--limit",
        INPUTS,
        "--method",
        "crown",
        "--eps",
        "0.002",
        "--radii",
        "0.001,0.002,0.004",
        "--clip",
        "0",
        "1",
        "--attack",
        "none",
        "--threads",
        "1",
        "--key",
        s(key),
        "--out",
        s(&dir.join(out)),
        "--quiet",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tmpdir("shared");
        let kf = write_keypair(dir.join("keys"), Algorithm::EcdsaP256Sha256).unwrap();
        let mut args = certify_args(&dir, &kf.private_key, "reference.intoto.jsonl");
        // Progress (not part of the results): plain lines, stderr being a pipe here.
        args.retain(|a| a != "--quiet");
        args.extend(["--progress-every".into(), "0.3".into()]);
        let t = Instant::now();
        let (code, out, err) = run(&refs(&args));
        assert_eq!(code, 0, "reference run failed: {out} {err}");
        let progress: Vec<&str> = err.lines().filter(|l| l.starts_with("certify: ")).collect();
        assert!(
            progress.iter().any(|l| l.contains(" inputs, ") && l.contains("/s, ETA ")),
            "no periodic progress line: {err}"
        );
        assert!(progress.last().is_some_and(|l| l.starts_with("certify: 15/15 inputs in ")), "{err}");
        eprintln!("batch: reference run of {INPUTS} inputs in {:.1} s", t.elapsed().as_secs_f64());
        let reference_path = dir.join("reference.intoto.jsonl");
        assert!(!dir.join("reference.journal.jsonl").exists(), "the journal of a finished run is removed");
        Setup {
            reference: std::fs::read(&reference_path).unwrap(),
            reference_path,
            key: kf.private_key,
            pubkey: kf.public_key,
            dir,
        }
    })
}

fn statement_of(cert: &Path, pubkey: &Path) -> Statement {
    let key = PublicKey::read(pubkey).unwrap();
    verify(&std::fs::read(cert).unwrap(), &key, &Expected::default()).unwrap().statement
}

fn lines(p: &Path) -> usize {
    std::fs::read(p).map(|b| b.iter().filter(|&&c| c == b'\n').count()).unwrap_or(0)
}

#[test]
fn sigkill_then_resume_equals_uninterrupted_run() {
    let st = setup();
    let dir = tmpdir("kill");
    // Same directory name for the materialised data: the certificate names those files.
    let journal = dir.join("run.journal.jsonl");
    let mut args = certify_args(&st.dir, &st.key, "killed.intoto.jsonl");
    args.extend(["--journal".into(), s(&journal).into()]);
    let mut child = bin().args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Header, session and at least 3 results, then SIGKILL.
    let t = Instant::now();
    while lines(&journal) < 5 {
        assert!(t.elapsed() < Duration::from_secs(120), "no progress in the journal");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done_before = lines(&journal) - 2;
    assert!(done_before < 15, "killed part-way ({done_before} inputs done)");
    assert!(!st.dir.join("killed.intoto.jsonl").exists(), "no certificate from the killed run");

    args.push("--resume".into());
    let (code, out, err) = run(&refs(&args));
    assert_eq!(code, 0, "resume failed: {out} {err}");
    let resumed = std::fs::read(st.dir.join("killed.intoto.jsonl")).unwrap();
    let a = statement_of(&st.reference_path, &st.pubkey).predicate;
    let b = statement_of(&st.dir.join("killed.intoto.jsonl"), &st.pubkey).predicate;
    assert_eq!(b.results.per_input.len(), 15);
    assert_eq!(
        serde_json::to_string(&a.results.per_input).unwrap(),
        serde_json::to_string(&b.results.per_input).unwrap(),
        "per-input results differ after resume"
    );
    assert_eq!(resumed, st.reference, "the resumed run's envelope is not byte-identical to the uninterrupted one");
    eprintln!("batch: killed after {done_before} of 15 inputs; resumed envelope byte-identical");
    // Resuming again is refused once the journal is gone? No: a missing journal starts afresh;
    // an existing one without --resume is refused.
    std::fs::write(&journal, "").unwrap();
    args.pop();
    let (code, _, err) = run(&refs(&args));
    assert_eq!(code, 2);
    assert!(err.contains("exists") && err.contains("--resume") && err.contains("--force"), "{err}");
}

/// A finished run's journal (kept), for the tests that doctor journals.
fn kept_journal(tag: &str, extra: &[&str]) -> (PathBuf, Vec<String>) {
    let st = setup();
    let journal = tmpdir(tag).join("kept.journal.jsonl");
    let mut args = certify_args(&st.dir, &st.key, &format!("{tag}.intoto.jsonl"));
    args.extend(["--journal".into(), s(&journal).into(), "--keep-journal".into()]);
    args.extend(extra.iter().map(|a| a.to_string()));
    let (code, out, err) = run(&refs(&args));
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(lines(&journal), 2 + 15);
    (journal, args)
}

#[test]
fn torn_last_line_is_tolerated_and_bad_middle_lines_are_not() {
    let st = setup();
    let (journal, mut args) = kept_journal("torn", &[]);
    let text = std::fs::read_to_string(&journal).unwrap();
    let all: Vec<&str> = text.lines().collect();
    // Header, session, 10 results and half of the 11th (a crash mid-write).
    let half = &all[12][..all[12].len() / 2];
    let torn = format!("{}\n{half}", all[..12].join("\n"));
    std::fs::write(&journal, &torn).unwrap();
    let out_path = st.dir.join("torn.intoto.jsonl");
    std::fs::remove_file(&out_path).unwrap();
    args.push("--resume".into());
    let (code, out, err) = run(&refs(&args));
    assert_eq!(code, 0, "{out} {err}");
    assert!(err.contains("torn"), "{err}");
    assert_eq!(std::fs::read(&out_path).unwrap(), st.reference, "resumed from a torn journal: not identical");
    // The torn fragment was cut before appending: every line parses.
    for l in std::fs::read_to_string(&journal).unwrap().lines() {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("bad journal line {l}: {e}"));
    }
    // A damaged line in the middle is corruption, not a crash: refused, naming the line.
    let damaged = format!("{}\n{half}\n{}\n", all[..6].join("\n"), all[7..12].join("\n"));
    std::fs::write(&journal, damaged).unwrap();
    let (code, _, err) = run(&refs(&args));
    assert_eq!(code, 2);
    assert!(err.contains("journal line 7"), "{err}");
}

#[test]
fn journal_of_another_run_is_refused() {
    let st = setup();
    let (journal, args) = kept_journal("foreign", &[]);
    let with = |from: &str, to: &str| -> Vec<String> {
        let mut a = args.clone();
        let k = a.iter().position(|x| x == from).unwrap();
        a[k + 1] = to.to_string();
        a.push("--resume".into());
        a
    };
    // Another eps.
    let (code, _, err) = run(&refs(&with("--eps", "0.003")));
    assert_eq!(code, 2);
    assert!(err.contains("different model/data/method") && err.contains("eps"), "{err}");
    // Another selection.
    let (code, _, err) = run(&refs(&with("--limit", "23")));
    assert_eq!(code, 2);
    assert!(err.contains("different model/data/method") && err.contains("selection"), "{err}");
    // Another model: the same network with an unknown protobuf field appended (field 100,
    // varint 1), so only the file digest differs.
    let mut bytes = std::fs::read(root().join("demo/dermacnn.onnx")).unwrap();
    bytes.extend_from_slice(&[0xA0, 0x06, 0x01]);
    let other = st.dir.join("dermacnn-copy.onnx");
    std::fs::write(&other, bytes).unwrap();
    let mut a = args.clone();
    a[1] = s(&other).to_string();
    a.push("--resume".into());
    let (code, _, err) = run(&refs(&a));
    assert_eq!(code, 2);
    assert!(err.contains("different model/data/method") && err.contains("model sha256"), "{err}");
    // The journal is untouched by the refusals.
    assert_eq!(lines(&journal), 2 + 15);
}

#[test]
fn three_shards_merged_equal_the_single_run() {
    let st = setup();
    let dir = tmpdir("shards");
    let mut journals = Vec::new();
    for i in 0..3 {
        let j = dir.join(format!("shard{i}.journal.jsonl"));
        let mut args = certify_args(&st.dir, &st.key, "sharded.intoto.jsonl");
        // Shards do not sign: no key needed.
        let k = args.iter().position(|x| x == "--key").unwrap();
        args.drain(k..k + 2);
        args.extend(["--shard".into(), format!("{i}/3"), "--journal".into(), s(&j).into()]);
        let (code, out, err) = run(&refs(&args));
        assert_eq!(code, 0, "shard {i}: {out} {err}");
        assert!(out.contains(&format!("shard {i}/3")), "{out}");
        assert_eq!(lines(&j), 2 + 5, "shard {i} holds positions p = {i} mod 3");
        journals.push(j);
    }
    assert!(!st.dir.join("sharded.intoto.jsonl").exists(), "shards write no certificate");
    let merged = dir.join("merged.intoto.jsonl");
    let merge = |js: &[&PathBuf]| -> (i32, String, String) {
        let mut a: Vec<&str> = vec!["merge"];
        a.extend(js.iter().map(|p| s(p)));
        a.extend(["--key", s(&st.key), "--out", s(&merged)]);
        run(&a)
    };
    let (code, out, err) = merge(&[&journals[2], &journals[0], &journals[1]]);
    assert_eq!(code, 0, "merge: {out} {err}");
    assert_eq!(std::fs::read(&merged).unwrap(), st.reference, "merged certificate differs from the single run");
    let bundle = |p: &Path| std::fs::read(p.to_string_lossy().replace(".intoto.jsonl", ".sigstore.json")).unwrap();
    assert_eq!(bundle(&merged), bundle(&st.reference_path), "merged Sigstore bundle differs from the single run");

    let (code, _, err) = merge(&[&journals[0], &journals[1]]);
    assert_eq!(code, 2);
    assert!(err.contains("missing shard(s) 2/3"), "{err}");
    let (code, _, err) = merge(&[&journals[0], &journals[1], &journals[1], &journals[2]]);
    assert_eq!(code, 2);
    assert!(err.contains("shard 1/3 is given twice"), "{err}");
    // A shard of another run (another eps).
    let foreign = dir.join("foreign.journal.jsonl");
    let mut args = certify_args(&st.dir, &st.key, "foreign.intoto.jsonl");
    let k = args.iter().position(|x| x == "--eps").unwrap();
    args[k + 1] = "0.003".into();
    args.extend(["--shard".into(), "2/3".into(), "--journal".into(), s(&foreign).into()]);
    let (code, out, err) = run(&refs(&args));
    assert_eq!(code, 0, "{out} {err}");
    let (code, _, err) = merge(&[&journals[0], &journals[1], &foreign]);
    assert_eq!(code, 2);
    assert!(err.contains("different runs") && err.contains("eps"), "{err}");
    // An incomplete shard (its last result removed).
    let text = std::fs::read_to_string(&journals[1]).unwrap();
    let cut = text.trim_end().rsplit_once('\n').unwrap().0.to_string() + "\n";
    let partial = dir.join("partial.journal.jsonl");
    std::fs::write(&partial, cut).unwrap();
    let (code, _, err) = merge(&[&journals[0], &partial, &journals[2]]);
    assert_eq!(code, 2);
    assert!(err.contains("incomplete") && err.contains("4 of its 5"), "{err}");
}

#[test]
fn selections_are_recorded_in_the_certificate() {
    let st = setup();
    let dir = tmpdir("select");
    let model = root().join("demo/dermacnn.onnx");
    let npz = root().join("demo/synthetic_dermamnist.npz");
    // Arrays for --data/--labels: the first 40 test images, preprocessed as the model wants.
    let data = robustcert::data::dataset::Dataset::load(s(&npz), &Default::default())
        .unwrap()
        .select(&robustcert::data::dataset::Selection::first(40))
        .unwrap();
    let (x, y) = (dir.join("x.npy"), dir.join("y.npy"));
    data.write_npy(&x, &y).unwrap();
    let certify = |out: &str, extra: &[&str]| -> (i32, String, Option<RobustnessPredicate>) {
        let out = dir.join(out);
        let mut a = vec!["certify", s(&model), "--method", "ibp", "--eps", "0.001", "--attack", "none"];
        a.extend(["--key", s(&st.key), "--out", s(&out), "--quiet"]);
        a.extend_from_slice(extra);
        let (code, o, e) = run(&a);
        let p = (code == 0).then(|| statement_of(&out, &st.pubkey).predicate);
        (code, format!("{o} {e}"), p)
    };
    let files = ["--data", s(&x), "--labels", s(&y)];
    let indices = |p: &RobustnessPredicate| p.results.per_input.iter().map(|r| r.index).collect::<Vec<_>>();

    let (code, msg, p) = certify("indices.intoto.jsonl", &[&files[..], &["--indices", "12,3,5,20-22"]].concat());
    assert_eq!(code, 0, "{msg}");
    let p = p.unwrap();
    assert_eq!(indices(&p), vec![3, 5, 12, 20, 21, 22]);
    assert_eq!(p.dataset.selection.method, "indices");
    assert_eq!(p.dataset.selection.count, 6);
    assert!(p.dataset.selection.description.contains("12,3,5,20-22"), "{}", p.dataset.selection.description);
    // Slices only hold selected inputs.
    assert!(p.dataset.slices.iter().flat_map(|s| &s.indices).all(|i| [3, 5, 12, 20, 21, 22].contains(i)));

    let (code, msg, p) = certify("limit.intoto.jsonl", &[&files[..], &["--limit", "4"]].concat());
    assert_eq!(code, 0, "{msg}");
    let p = p.unwrap();
    assert_eq!(indices(&p), vec![0, 1, 2, 3]);
    assert_eq!(p.dataset.selection.method, "first-n");
    let (code, msg, p) = certify("first.intoto.jsonl", &[&files[..], &["--first", "4"]].concat());
    assert_eq!(code, 0, "{msg}");
    assert_eq!(p.unwrap().results.per_input, {
        let (_, _, q) = certify("limit.intoto.jsonl", &[&files[..], &["--limit", "4"]].concat());
        q.unwrap().results.per_input
    });

    let (code, msg, p) =
        certify("random.intoto.jsonl", &[&files[..], &["--random", "5", "--select-seed", "77"]].concat());
    assert_eq!(code, 0, "{msg}");
    let p = p.unwrap();
    assert_eq!(indices(&p), robustcert::data::dataset::random_subset(40, 5, 77));
    assert_eq!(p.dataset.selection.method, "random-subset");
    assert_eq!(p.dataset.selection.seed.as_deref(), Some("77"));

    // --dataset: the selection from the source is recorded with the manifest of the data written.
    let (code, msg, p) = certify(
        "ds-random.intoto.jsonl",
        &["--dataset", s(&npz), "--split", "test", "--random", "5", "--select-seed", "77", "--limit", "3"],
    );
    assert_eq!(code, 0, "{msg}");
    let p = p.unwrap();
    assert_eq!(p.dataset.selection.method, "random-subset+first-n");
    assert_eq!(p.dataset.selection.seed.as_deref(), Some("77"));
    assert_eq!(p.results.per_input.len(), 3);
    let d = &p.dataset.selection.description;
    assert!(d.contains("synthetic_dermamnist.npz") && d.contains("manifest.json"), "{d}");
    let mpath = dir.join(format!("{}.manifest.json", p.dataset.manifest.inputs.name.trim_end_matches(".inputs.npy")));
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    let all_test = robustcert::data::dataset::Dataset::load(s(&npz), &Default::default()).unwrap().len();
    let want: Vec<usize> = robustcert::data::dataset::random_subset(all_test, 5, 77)[..3].to_vec();
    assert_eq!(manifest["selection"]["indices"], serde_json::json!(want));
    // check-cert --recheck reruns it from the materialised files.
    let dsx = dir.join(&p.dataset.manifest.inputs.name);
    let dsy = dir.join(&p.dataset.manifest.labels.name);
    let cert = dir.join("ds-random.intoto.jsonl");
    let (code, o, e) = run(&[
        "check-cert",
        s(&cert),
        "--key",
        s(&st.pubkey),
        "--model",
        s(&model),
        "--data",
        s(&dsx),
        "--labels",
        s(&dsy),
        "--recheck",
    ]);
    assert_eq!(code, 0, "recheck of a --dataset certificate: {o} {e}");

    // Conflicting flags are refused with exit 2.
    for (extra, want) in [
        (vec!["--first", "3", "--limit", "3"], "alias"),
        (vec!["--select-seed", "3"], "--random"),
        (vec!["--dataset", s(&npz)], "--data"),
        (vec!["--indices", "3,3"], "listed twice"),
        (vec!["--indices", "99"], "out of range"),
        (vec!["--shard", "3/3"], "below N"),
    ] {
        let (code, msg, _) = certify("bad.intoto.jsonl", &[&files[..], &extra[..]].concat());
        assert_eq!(code, 2, "{extra:?}: {msg}");
        assert!(msg.contains(want), "{extra:?}: {msg}");
    }
}

#[test]
fn image_folders_and_preprocessing_flags() {
    let st = setup();
    let dir = tmpdir("images");
    let model = root().join("demo/dermacnn.onnx");
    let folder = root().join("demo/images");
    let certify = |out: &str, extra: &[&str]| -> (i32, String, Option<RobustnessPredicate>) {
        let out = dir.join(out);
        let mut a = vec!["certify", s(&model), "--dataset", s(&folder), "--method", "ibp", "--eps", "0.001"];
        a.extend(["--attack", "none", "--key", s(&st.key), "--out", s(&out), "--quiet", "--limit", "4"]);
        a.extend_from_slice(extra);
        let (code, o, e) = run(&a);
        let p = (code == 0).then(|| statement_of(&out, &st.pubkey).predicate);
        (code, format!("{o} {e}"), p)
    };
    let (code, msg, p) = certify("folder.intoto.jsonl", &[]);
    assert_eq!(code, 0, "{msg}");
    let p = p.unwrap();
    // Class names from the sub-folders (7, as many as the model's outputs); preprocessing recorded.
    assert_eq!(p.model.class_names, ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]);
    assert!(
        p.model.preprocessing.contains("x / 255") && p.model.preprocessing.contains("NCHW"),
        "{}",
        p.model.preprocessing
    );
    assert_eq!(p.results.per_input.len(), 4);
    assert!(p.dataset.selection.description.contains("image-folder"), "{}", p.dataset.selection.description);

    let (code, msg, p) = certify("norm.intoto.jsonl", &["--scale", "1/255", "--mean", "0.5", "--std", "0.25"]);
    assert_eq!(code, 0, "{msg}");
    let p = p.unwrap();
    assert!(p.model.preprocessing.contains("mean [0.5]") && p.model.preprocessing.contains("std [0.25]"));
    // Other data, so other data digests.
    let q = statement_of(&dir.join("folder.intoto.jsonl"), &st.pubkey).predicate;
    assert_ne!(p.dataset.manifest.inputs.sha256, q.dataset.manifest.inputs.sha256);

    // Channels-last inputs do not fit this NCHW model: a clear error, not a panic.
    let (code, msg, _) = certify("nhwc.intoto.jsonl", &["--layout", "nhwc"]);
    assert_eq!(code, 2, "{msg}");
    assert!(msg.contains("do not fit the model"), "{msg}");
    let (code, msg, _) = certify("bad.intoto.jsonl", &["--scale", "0"]);
    assert_eq!(code, 2, "{msg}");
    assert!(msg.contains("--scale"), "{msg}");
    let (code, msg, _) = certify("bad.intoto.jsonl", &["--std", "1,2"]);
    assert_eq!(code, 2, "{msg}");
    assert!(msg.contains("std"), "{msg}");
}
