//! Attack versus proof, and the HTML report.
//!
//! - The smallest adversarial radius ([`robustcert::attack::radius`]) on a linear classifier
//!   whose robust radius is known in closed form (L-inf, L2, L1): never below the truth (the
//!   witness is real) and close to it.
//! - On the demo network: the attack radius is >= the CROWN certified radius for every input,
//!   in L-inf and L2 (a cross-check that fails on an unsound bound or an unchecked witness);
//!   every witness misclassifies in a fresh f32 and f64 forward pass at the recorded distance;
//!   results are identical with 1 and 2 threads.
//! - `certify --attack-radius --report`: the report is well-formed XHTML-compatible HTML5 (parsed
//!   by quick-xml), self-contained, has both curves and thumbnails, no NaN/inf in SVG
//!   coordinates; the witness files match the certificate's digests.

use robustcert::attack::radius::{distance, smallest_adversarial_radius, RadiusSearch};
use robustcert::attack::{check_point, Goal};
use robustcert::bounds::Method as BoundMethod;
use robustcert::cert::certify::{attack_radii, certify_all, samples, Engine, RADIUS_REL_TOL};
use robustcert::cert::{DatasetSubject, InputResult, Outcome};
use robustcert::data::dataset::{Dataset, LoadOptions, Selection};
use robustcert::ir::Graph;
use robustcert::spec::Norm;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::common;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("robustcert-report-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// y = W x with W = I (2 classes, 2 inputs): for label 0 at (a, b), a > b, the robust radius is
/// (a - b) / 2 in L-inf, (a - b) / sqrt 2 in L2 and (a - b) in L1.
fn identity_classifier() -> Graph {
    let g = common::node("Gemm", "fc", &["x", "w"], &["y"]);
    let m = common::model(
        13,
        vec![g],
        vec![common::float_tensor("w", &[2, 2], &[1.0, 0.0, 0.0, 1.0])],
        common::value_info("x", &[-1, 2]),
        "y",
    );
    robustcert::onnx::load_bytes(&common::bytes(&m)).unwrap().graph
}

#[test]
fn linear_classifier_radius_is_close_to_the_truth_and_never_below() {
    let g = identity_classifier();
    let x = [0.625, 0.375];
    let gap = 0.25;
    for (norm, truth) in [(Norm::Inf, gap / 2.0), (Norm::L2, gap / 2f64.sqrt()), (Norm::L1, gap)] {
        let s = RadiusSearch::new(norm, Some((0.0, 1.0)), 0.01, 1.0);
        let r = smallest_adversarial_radius(&g, &x, 0, &s).unwrap();
        let w = r.witness.unwrap_or_else(|| panic!("{norm}: no witness"));
        // Real: both forward passes misclassify, and the distance is what is recorded.
        let out = robustcert::bounds::radius::decision_node(&g);
        assert!(check_point(&g, out, &Goal::misclassification(2, 0), &w.x).unwrap().is_some());
        let w64: Vec<f64> = w.x.iter().map(|&v| v as f64).collect();
        assert_eq!(distance(norm, &w64, &x), w.radius);
        // An upper bound on the truth (up to f32 rounding of the witness) and within 3% of it.
        assert!(w.radius >= truth * (1.0 - 1e-6), "{norm}: {} below the true radius {truth}", w.radius);
        assert!(w.radius <= truth * 1.03, "{norm}: {} far above the true radius {truth}", w.radius);
        assert!(r.pgd_runs <= s.brackets + s.bisections + 1);
    }
    // Already misclassified: radius 0, the input itself.
    let r = smallest_adversarial_radius(&g, &x, 1, &RadiusSearch::new(Norm::Inf, None, 0.01, 1.0)).unwrap();
    assert_eq!(r.witness.unwrap().radius, 0.0);
    // Out of reach: nothing found up to the maximum.
    let s = RadiusSearch::new(Norm::Inf, None, 0.01, 0.1);
    let r = smallest_adversarial_radius(&g, &x, 0, &s).unwrap();
    assert!(r.witness.is_none() && r.largest_failed == 0.1, "{r:?}");
    // Bad requests are errors, not panics.
    assert!(smallest_adversarial_radius(&g, &x, 5, &s).is_err());
    assert!(smallest_adversarial_radius(&g, &x, 0, &RadiusSearch { start: f64::NAN, ..s }).is_err());
}

struct Demo {
    graph: Graph,
    rows: Vec<Vec<f64>>,
    labels: Vec<usize>,
    x: PathBuf,
    y: PathBuf,
}

const DEMO_N: usize = 8;

fn demo() -> &'static Demo {
    static D: OnceLock<Demo> = OnceLock::new();
    D.get_or_init(|| {
        let root = common::root().join("demo");
        let all =
            Dataset::load(&root.join("synthetic_dermamnist.npz").to_string_lossy(), &LoadOptions::default()).unwrap();
        let data = all.select(&Selection::first(DEMO_N)).unwrap();
        let dir = tmpdir("demo-data");
        let (x, y) = (dir.join("x.npy"), dir.join("y.npy"));
        data.write_npy(&x, &y).unwrap();
        let subject = DatasetSubject::from_files(&x, &y).unwrap();
        let graph = robustcert::onnx::load_file(root.join("dermacnn.onnx")).unwrap().graph;
        let rows = samples(&graph, subject.inputs()).unwrap();
        Demo { graph, rows, labels: subject.labels().to_vec(), x, y }
    })
}

fn crown(norm: Norm, eps: f64, max_radius: f64) -> Engine {
    Engine::Bounds {
        method: BoundMethod::Crown,
        norm,
        eps,
        max_radius,
        rel_tol: RADIUS_REL_TOL,
        clip: Some((0.0, 1.0)),
        attack: None,
    }
}

fn run_attacks(d: &Demo, s: &RadiusSearch, results: &mut [InputResult], threads: usize) -> Vec<(usize, Vec<f32>)> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| attack_radii(&d.graph, s, &d.rows, &d.labels, results)).unwrap()
}

#[test]
fn attack_radius_is_never_below_the_crown_radius_on_the_demo() {
    let d = demo();
    let idx: Vec<usize> = (0..DEMO_N).collect();
    // Radii searched well past eps so that most certified radii are the real CROWN radius.
    for (norm, eps, max_radius) in [(Norm::Inf, 1.0 / 255.0, 0.03), (Norm::L2, 0.05, 0.5)] {
        let engine = crown(norm, eps, max_radius);
        let mut results = certify_all(&d.graph, &engine, &d.rows, &d.labels, &idx, false).unwrap();
        let s = RadiusSearch::new(norm, Some((0.0, 1.0)), eps, if norm == Norm::Inf { 1.0 } else { 64.0 });
        let witnesses = run_attacks(d, &s, &mut results, 2);
        let out = robustcert::bounds::radius::decision_node(&d.graph);
        let mut compared = 0;
        for r in &results {
            let a = r.attack_radius.as_ref().expect("every input searched");
            let Some(radius) = a.radius else { continue };
            if r.outcome == Outcome::Proved {
                compared += 1;
                assert!(
                    radius >= r.certified_radius,
                    "{norm} input {}: attack radius {radius} < certified radius {} (soundness bug)",
                    r.index,
                    r.certified_radius
                );
            }
            // The witness is real: a fresh forward pass (f32 and f64) misclassifies it, at the
            // recorded distance, inside the clip box, with the recorded digest.
            let (_, w) = witnesses.iter().find(|(i, _)| *i == r.index).expect("witness returned");
            let label = d.labels[r.index];
            assert!(check_point(&d.graph, out, &Goal::misclassification(7, label), w).unwrap().is_some());
            let w64: Vec<f64> = w.iter().map(|&v| v as f64).collect();
            if radius == 0.0 {
                // Misclassified as it is: the witness is the input as the device sees it (f32).
                let x32: Vec<f32> = d.rows[r.index].iter().map(|&v| v as f32).collect();
                assert_eq!(w, &x32);
            } else {
                assert_eq!(distance(norm, &w64, &d.rows[r.index]), radius);
            }
            assert!(w64.iter().all(|v| (0.0..=1.0).contains(v)));
            assert_eq!(a.witness_digest.as_deref(), Some(robustcert::cert::sample_digest(&w64).as_str()));
        }
        assert!(compared >= DEMO_N / 2, "{norm}: only {compared} proved inputs had an attack radius");
    }
}

#[test]
fn attack_radii_do_not_depend_on_the_thread_count() {
    let d = demo();
    let idx: Vec<usize> = (0..DEMO_N).collect();
    let engine = crown(Norm::Inf, 1.0 / 255.0, 2.0 / 255.0);
    let base = certify_all(&d.graph, &engine, &d.rows, &d.labels, &idx, false).unwrap();
    let s = RadiusSearch { seed: 7, ..RadiusSearch::new(Norm::Inf, Some((0.0, 1.0)), 1.0 / 255.0, 1.0) };
    let (mut one, mut two) = (base.clone(), base);
    let w1 = run_attacks(d, &s, &mut one, 1);
    let w2 = run_attacks(d, &s, &mut two, 2);
    assert_eq!(one, two);
    assert_eq!(w1, w2);
}

/// Parses the report as XML (the HTML is written XHTML-compatible: void elements closed, only
/// the XML entities): unbalanced or mismatched tags fail here.
fn assert_well_formed(html: &str) {
    use quick_xml::events::Event;
    let body = html.strip_prefix("<!DOCTYPE html>").expect("starts with the HTML5 doctype");
    let mut r = quick_xml::Reader::from_str(body);
    let mut depth: i64 = 0;
    let mut elements = 0;
    loop {
        match r.read_event() {
            Ok(Event::Start(_)) => {
                depth += 1;
                elements += 1;
            }
            Ok(Event::End(_)) => depth -= 1,
            Ok(Event::Empty(_)) => elements += 1,
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("report is not well-formed at byte {}: {e}", r.buffer_position()),
        }
        assert!(depth >= 0, "more closing than opening tags");
    }
    assert_eq!(depth, 0, "unclosed elements");
    assert!(elements > 50, "suspiciously small report ({elements} elements)");
}

/// Every SVG coordinate (x, y, x1, y1, x2, y2, cx, cy, r, width, height, points) is a finite
/// number: no NaN or infinity leaks into a plot.
fn assert_finite_svg(html: &str) {
    use quick_xml::events::Event;
    let body = html.strip_prefix("<!DOCTYPE html>").unwrap();
    let mut r = quick_xml::Reader::from_str(body);
    let mut numbers = 0;
    loop {
        let e = match r.read_event().unwrap() {
            Event::Start(e) | Event::Empty(e) => e,
            Event::Eof => break,
            _ => continue,
        };
        let name = e.name().as_ref().to_string();
        if !["svg", "line", "polyline", "circle", "rect", "text"].contains(&name.as_str()) {
            continue;
        }
        for a in e.attributes() {
            let a = a.unwrap();
            let key = a.key.as_ref().to_string();
            if !["x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "width", "height", "points"].contains(&key.as_str())
            {
                continue;
            }
            let v = a.value.to_string();
            for tok in v.split([' ', ',']).filter(|s| !s.is_empty()) {
                let n: f64 = tok.parse().unwrap_or_else(|_| panic!("<{name} {key}=\"{v}\">: '{tok}' is not a number"));
                assert!(n.is_finite(), "<{name} {key}=\"{v}\">: not finite");
                numbers += 1;
            }
        }
    }
    assert!(numbers > 20, "only {numbers} SVG coordinates");
}

fn robustcert_bin(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_robustcert"))
        .args(args)
        .current_dir(common::root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn certify_report_has_both_curves_thumbnails_and_checked_witnesses() {
    let d = demo();
    let dir = tmpdir("cli");
    let (code, _, err) = robustcert_bin(&["keygen", "--out", s(&dir)]);
    assert_eq!(code, 0, "{err}");
    let key = dir.join("robustcert.key.pem");
    let cert = dir.join("crown.intoto.jsonl");
    let report = dir.join("report.html");
    let model = common::root().join("demo/dermacnn.onnx");
    // eps 8/255 is beyond most inputs' certified radius: the eps attack finds counterexamples.
    let (code, out, err) = robustcert_bin(&[
        "certify",
        s(&model),
        "--data",
        s(&d.x),
        "--labels",
        s(&d.y),
        "--method",
        "crown",
        "--eps",
        "0.0313726",
        "--radii",
        "0.0019608,0.0039216",
        "--clip",
        "0",
        "1",
        "--attack-radius",
        "--record-times",
        "--key",
        s(&key),
        "--out",
        s(&cert),
        "--report",
        s(&report),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("report      {}", report.display())), "{out}");
    let html = std::fs::read_to_string(&report).unwrap();
    assert_well_formed(&html);
    assert_finite_svg(&html);
    assert!(html.contains(r#"class="certified""#) && html.contains(r#"class="attack""#), "both curves");
    assert!(html.contains("Gap between attack and certified radius"));
    assert!(html.contains("Per class") && html.contains("Per slice") && html.contains("Slowest inputs"));
    assert!(!html.contains("SOUNDNESS ERROR"), "the report claims a soundness error");
    let thumbs = html.matches("src=\"data:image/png;base64,").count();
    assert!(thumbs >= 3 && thumbs % 3 == 0, "{thumbs} thumbnails");
    assert!(html.contains("counterexample at eps"), "no eps counterexample shown");
    for bad in ["http://", "https://", "src=\"/", "src=\"file:"] {
        assert!(!html.contains(bad), "external resource: {bad}");
    }

    // The witness files beside the certificate match the signed digests.
    let pubkey = robustcert::cert::PublicKey::read(dir.join("robustcert.pub.pem")).unwrap();
    let v = robustcert::cert::verify(&std::fs::read(&cert).unwrap(), &pubkey, &Default::default()).unwrap();
    let wdir = robustcert::report::witnesses::dir_for(&cert);
    let mut checked = 0;
    for r in &v.statement.predicate.results.per_input {
        let a = r.attack_radius.as_ref().expect("attackRadius recorded");
        assert_eq!(a.norm, "linf");
        for (kind, digest) in
            [("counterexample", r.counterexample_digest.as_deref()), ("attack", a.witness_digest.as_deref())]
        {
            let Some(digest) = digest else { continue };
            let f = wdir.join(format!("input-{:06}.{kind}.npy", r.index));
            let t = robustcert::data::read_array(&f).unwrap();
            assert_eq!(t.shape(), &[1, 3, 28, 28]);
            assert_eq!(robustcert::cert::sample_digest(t.data()), digest, "{}", f.display());
            checked += 1;
        }
    }
    assert!(checked >= DEMO_N, "only {checked} witness files checked");
    // attackRadius as written matches the JSON Schema (keys known, required keys present).
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::root().join("certificates/schema/robustness-certificate-v1.schema.json"))
            .unwrap(),
    )
    .unwrap();
    let ar = schema.pointer("/$defs/inputResult/properties/attackRadius").expect("attackRadius in the schema");
    let known = ar["properties"].as_object().unwrap();
    for r in &v.statement.predicate.results.per_input {
        let j = serde_json::to_value(r.attack_radius.as_ref().unwrap()).unwrap();
        let j = j.as_object().unwrap();
        for k in j.keys() {
            assert!(known.contains_key(k), "attackRadius.{k} is not in the schema");
        }
        for k in ar["required"].as_array().unwrap() {
            assert!(j.contains_key(k.as_str().unwrap()), "attackRadius lacks {k}");
        }
    }
    assert!(v.statement.predicate.method.parameters.contains_key("attackRadius"));

    // A tampered witness file is reported loudly, not shown.
    let victim = std::fs::read_dir(&wdir).unwrap().next().unwrap().unwrap().path();
    let mut t = robustcert::data::read_array(&victim).unwrap().map(|v| v as f32);
    t.data_mut()[0] += 0.25;
    robustcert::data::write_npy(&victim, &t).unwrap();
    let ws = robustcert::report::witnesses::load(&v.statement, &wdir, Some(&d.x)).unwrap();
    assert_eq!(ws.problems.len(), 1, "{:?}", ws.problems);
    let html = robustcert::report::render_html(
        "t",
        &[],
        &[robustcert::report::ReportRun {
            witnesses: Some(ws),
            ..robustcert::report::ReportRun::new("crown", &v.statement, "c")
        }],
    );
    assert!(html.contains("Witness file problem"));
    assert_well_formed(&html);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_soundness_violation_is_shown_at_the_top() {
    let d = demo();
    let idx: Vec<usize> = (0..2).collect();
    let engine = crown(Norm::Inf, 1.0 / 255.0, 2.0 / 255.0);
    let mut results = certify_all(&d.graph, &engine, &d.rows, &d.labels, &idx, false).unwrap();
    let s = RadiusSearch::new(Norm::Inf, Some((0.0, 1.0)), 1.0 / 255.0, 1.0);
    run_attacks(d, &s, &mut results, 1);
    let proved = results.iter().position(|r| r.outcome == Outcome::Proved).expect("a proved input");
    // Forge an attack radius below the certified one, as an unsound verifier would produce.
    let cr = results[proved].certified_radius;
    results[proved].attack_radius.as_mut().unwrap().radius = Some(cr / 2.0);
    let st = statement(d, &engine, results);
    let html = robustcert::report::render_html("t", &[], &[robustcert::report::ReportRun::new("crown", &st, "c")]);
    let err = html.find("SOUNDNESS ERROR").expect("soundness error shown");
    assert!(err < html.find("<h2>Summary</h2>").unwrap(), "the error must come before the results");
    assert_eq!(robustcert::report::soundness_violations(&st).len(), 1);
    assert!(robustcert::report::fail_on_soundness_violations(&st).is_err());
    assert_well_formed(&html);
}

fn statement(d: &Demo, engine: &Engine, results: Vec<InputResult>) -> robustcert::cert::Statement {
    use robustcert::cert::{CertificateBuilder, ModelSubject, ThreatModel};
    let model = ModelSubject::from_file(common::root().join("demo/dermacnn.onnx")).unwrap();
    let data = DatasetSubject::from_files(&d.x, &d.y).unwrap();
    let threat = ThreatModel::evasion(engine.norm_name(), vec![1.0 / 255.0], Some([0.0, 1.0]));
    CertificateBuilder::new(model, data, threat, engine.method(), results).build().unwrap()
}
