//! VNN-LIB parsing and complete verification (`robustcert verify`): parser unit and property
//! tests (round trips, malformed input gives positioned errors and never a panic), tiny networks
//! whose answer is known, the ../shared/vnncomp `test` benchmark, and a sample of the other
//! VNN-COMP benchmarks checked against their reference verdicts (never a wrong answer). Larger
//! sweeps are `#[ignore]`d.

use crate::common::*;
use proptest::prelude::*;
use robustcert::bounds::lp::{milp_min, LpOptions};
use robustcert::bounds::{BoundTable, Method};
use robustcert::ir::{Graph, Tensor};
use robustcert::onnx::{load_bytes, load_file};
use robustcert::spec::vnnlib::{parse, Case, Constraint, OutputSpec, Property};
use robustcert::spec::Region;
use robustcert::verify::{confirm, verify, Options, Verdict};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

// ----------------------------------------------------------------------------- parser

#[test]
fn parses_every_form_of_the_benchmarks() {
    // Input disjunction (ACAS Xu prop 6), mixed input/output conjunction (test_tiny), comments,
    // sums, products, strict comparisons, chains, equality.
    let p = parse(
        "; header\n(declare-const X_0 Real) ; trailing\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n\
         (assert (or\n  (and (<= X_0 0.7) (>= X_0 -0.1) (<= X_1 0.5) (>= X_1 0.1))\n  (and (<= X_0 0.7) (>= X_0 -0.1) (<= X_1 -0.1) (>= X_1 -0.5))\n))\n\
         (assert (or (and (<= Y_1 Y_0)) (and (>= Y_0 0.2) (< (- Y_0 (* 0.5 Y_1)) 3))))\n",
    )
    .unwrap();
    assert_eq!(p.cases.len(), 2);
    assert_eq!(p.cases[0].lo, vec![-0.1, 0.1]);
    assert_eq!(p.cases[1].hi, vec![0.7, -0.1]);
    for c in &p.cases {
        assert_eq!(c.output.disjuncts.len(), 2);
        assert_eq!(
            c.output.disjuncts[0],
            vec![Constraint { coeffs: vec![(0, -1.0), (1, 1.0)], rhs: 0.0, strict: false }]
        );
        assert_eq!(c.output.disjuncts[1][1], Constraint { coeffs: vec![(0, 1.0), (1, -0.5)], rhs: 3.0, strict: true });
    }
    let p = parse(
        "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (or\n    (and (>= X_0 -1) (<= X_0 1) (>= Y_0 100))\n))",
    )
    .unwrap();
    assert_eq!(
        p.cases,
        vec![Case {
            lo: vec![-1.0],
            hi: vec![1.0],
            output: OutputSpec {
                disjuncts: vec![vec![Constraint { coeffs: vec![(0, -1.0)], rhs: -100.0, strict: false }]]
            },
        }]
    );
    // Equality, chains, a scaled input bound, a constant-false disjunct.
    let p = parse(
        "(declare-const X_0 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)\
         (assert (<= 0 (* 2 X_0) 1))(assert (or (= Y_0 Y_1) (and (<= 1 0) (<= Y_0 5))))",
    )
    .unwrap();
    assert_eq!((p.cases[0].lo[0], p.cases[0].hi[0]), (0.0, 0.5));
    assert_eq!(p.cases[0].output.disjuncts.len(), 1);
    assert_eq!(p.cases[0].output.disjuncts[0].len(), 2);
}

#[test]
fn malformed_input_gives_positioned_errors() {
    let decl = "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n";
    let cases: &[(&str, usize, usize, &str)] = &[
        ("(assert (<= X_0 1)", 3, 1, "unclosed"),
        ("(assert (<= X_0 1)))", 3, 20, "unbalanced"),
        ("(assert (<= X_0 abc))", 3, 17, "expected a number"),
        ("(assert (<= X_7 1))", 3, 13, "before it is declared"),
        ("(assert (not (<= Y_0 1)))", 3, 9, "not supported"),
        ("(assert (<= (* Y_0 Y_0) 1))", 3, 13, "not linear"),
        ("(assert (<= (+ X_0 Y_0) 1))", 3, 9, "mix"),
        ("(assert (<= (+ X_0 X_0 X_0) 1)) (assert (<= (- X_0 X_0) 1))", 3, 0, ""),
        ("(declare-const Z Real)", 3, 16, "unsupported variable"),
        ("(declare-const X_1 Int)", 3, 20, "unsupported sort"),
        ("(frobnicate)", 3, 1, "unsupported command"),
        ("(assert (<= X_0 1))", 3, 1, "no finite lower bound"),
    ];
    for (body, line, col, what) in cases {
        let text = format!("{decl}{body}");
        match parse(&text) {
            Err(e) => {
                assert!(e.message.contains(what), "{body}: {e}");
                if *col > 0 {
                    assert_eq!((e.line, e.col), (*line, *col), "{body}: {e}");
                }
                assert!(e.to_string().starts_with(&format!("line {}, column", e.line)));
            }
            Ok(p) => assert!(what.is_empty(), "{body} parsed: {p:?}"),
        }
    }
    // Deep nesting is refused, not a stack overflow.
    let deep = format!("{decl}(assert {}{})", "(and ".repeat(100_000), ")".repeat(100_000));
    assert!(parse(&deep).unwrap_err().message.contains("nested"));
    // An exploding normal form is refused (checked before it is built).
    let wide = format!("(assert (or {}))\n", "(<= Y_0 1) ".repeat(1100));
    let big = format!("{decl}{wide}{wide}(assert (<= X_0 1))(assert (>= X_0 0))");
    assert!(parse(&big).unwrap_err().message.contains("disjuncts"));
}

fn arb_property() -> impl Strategy<Value = Property> {
    (1usize..4, 1usize..4, 1usize..4).prop_flat_map(|(n_in, n_out, n_cases)| {
        let case = (
            prop::collection::vec((-100.0f64..100.0, 0.0f64..10.0), n_in),
            prop::collection::vec(
                prop::collection::vec(
                    (
                        prop::collection::btree_map(0..n_out, prop_oneof![-5.0f64..-0.01, 0.01f64..5.0], 1..=n_out),
                        -50.0f64..50.0,
                        any::<bool>(),
                    ),
                    1..4,
                ),
                1..4,
            ),
        );
        prop::collection::vec(case, n_cases).prop_map(move |cases| {
            let mut out: Vec<Case> = Vec::new();
            for (k, (bounds, disj)) in cases.into_iter().enumerate() {
                // Distinct boxes (equal boxes are merged by the parser).
                let lo: Vec<f64> = bounds.iter().map(|b| b.0 + 1000.0 * k as f64).collect();
                let hi: Vec<f64> = bounds.iter().zip(&lo).map(|(b, l)| l + b.1).collect();
                let disjuncts = disj
                    .into_iter()
                    .map(|conj| {
                        conj.into_iter()
                            .map(|(m, rhs, strict)| Constraint { coeffs: m.into_iter().collect(), rhs, strict })
                            .collect()
                    })
                    .collect();
                out.push(Case { lo, hi, output: OutputSpec { disjuncts } });
            }
            Property { n_inputs: n_in, n_outputs: n_out, cases: out }
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn round_trip_of_generated_properties(p in arb_property()) {
        let text = p.to_vnnlib();
        let q = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(q, p);
    }

    #[test]
    fn mutated_text_never_panics(p in arb_property(), pos in any::<prop::sample::Index>(),
                                 op in 0usize..4, ch in prop::sample::select(vec!['(', ')', ';', '\n', 'X', '_', '-', 'e', ' ', '9', '.'])) {
        let mut text = p.to_vnnlib();
        let mut i = pos.index(text.len().max(1)).min(text.len());
        while !text.is_char_boundary(i) { i -= 1; }
        match op {
            0 => text.truncate(i),
            1 => { text.remove(i.min(text.len().saturating_sub(1))); }
            2 => text.insert(i, ch),
            _ => text.insert_str(i, "(assert (or"),
        }
        if let Err(e) = parse(&text) {
            prop_assert!(e.line >= 1 && e.col >= 1);
            prop_assert!(e.line <= text.lines().count() + 1);
        }
    }
}

/// A large input box asserted once, then thousands of output disjuncts: one case holding every
/// disjunct (the box is not copied into each: 20,000 disjuncts over 784 inputs took 19 s).
/// Boxes equal up to the sign of zero are one case; a false top-level atom leaves no case.
#[test]
fn many_disjuncts_over_one_box_are_one_case() {
    let n = 784;
    let k = 50_000;
    let mut text = String::new();
    for i in 0..n {
        text += &format!("(declare-const X_{i} Real)\n");
    }
    text += "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n";
    for i in 0..n {
        text += &format!("(assert (>= X_{i} {}))\n(assert (<= X_{i} 0.5))\n", if i % 2 == 0 { "-0" } else { "0" });
    }
    text += "(assert (or";
    for j in 0..k {
        text += &format!(" (and (>= Y_0 (* {j} Y_1)))");
    }
    text += "))\n";
    let p = parse(&text).unwrap();
    assert_eq!(p.cases.len(), 1);
    assert_eq!(p.cases[0].output.disjuncts.len(), k);
    assert!(p.cases[0].lo.iter().all(|&l| l == 0.0) && p.cases[0].hi.iter().all(|&h| h == 0.5));
    let d = &p.cases[0].output.disjuncts[7];
    assert_eq!(d, &vec![Constraint { coeffs: vec![(0, -1.0), (1, 7.0)], rhs: 0.0, strict: false }]);

    let two = "(declare-const X_0 Real)(declare-const Y_0 Real)(assert (<= X_0 1))\
               (assert (or (and (>= X_0 -0) (<= Y_0 1)) (and (>= X_0 0) (<= Y_0 2))))";
    let p = parse(two).unwrap();
    assert_eq!(p.cases.len(), 1);
    assert_eq!(p.cases[0].output.disjuncts.len(), 2);
    let none = "(declare-const X_0 Real)(declare-const Y_0 Real)(assert (<= X_0 1))(assert (>= X_0 0))\
                (assert (<= 1 0))(assert (or (<= Y_0 1) (<= Y_0 2)))";
    assert!(parse(none).unwrap().cases.is_empty());
}

#[test]
fn every_vnncomp_vnnlib_parses() {
    let Some(root) = vnncomp() else {
        eprintln!("skipped: ../shared/vnncomp is absent");
        return;
    };
    let mut n = 0;
    for b in std::fs::read_dir(&root).unwrap().flatten() {
        let Ok(files) = std::fs::read_dir(b.path().join("vnnlib")) else { continue };
        for f in files.flatten() {
            let path = f.path();
            if path.extension().is_none_or(|e| e != "vnnlib") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let p = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!p.cases.is_empty(), "{}", path.display());
            // Written back and read again, the real files give the same property (the writer puts
            // one box at the top level and several inside the disjuncts: both parser paths).
            assert_eq!(parse(&p.to_vnnlib()).unwrap(), p, "{}", path.display());
            n += 1;
        }
    }
    assert!(n > 100, "only {n} files");
}

// ----------------------------------------------------------------------------- tiny networks

fn opts(secs: f64) -> Options {
    Options::with_timeout(Duration::from_secs_f64(secs))
}

/// small_mlp (4 -> 5 ReLU -> 3): the minimum of y_j over [-1, 1]^4 on a grid, and a Lipschitz
/// constant (Linf -> |.|) of y_j, so that the true minimum lies in [grid - L h / 2, grid].
fn grid_min_and_lipschitz(g: &Graph, j: usize) -> (f64, f64) {
    let w1: Vec<f64> = (0..20).map(|i| ((i * 7 % 11) as f64 - 5.0) / 5.0).collect();
    let w2: Vec<f64> = (0..15).map(|i| ((i * 5 % 7) as f64 - 3.0) / 3.0).collect();
    let lip: f64 = (0..5).map(|k| w2[k * 3 + j].abs() * (0..4).map(|i| w1[k * 4 + i].abs()).sum::<f64>()).sum();
    let steps = 8;
    let mut best = f64::INFINITY;
    let mut idx = [0usize; 4];
    loop {
        let x: Vec<f64> = idx.iter().map(|&k| -1.0 + 2.0 * k as f64 / steps as f64).collect();
        let t = Tensor::new(vec![1, 4], x).unwrap();
        let y = g.forward(&[&t]).unwrap().swap_remove(0);
        best = best.min(y.data()[j]);
        let mut d = 0;
        loop {
            if d == 4 {
                return (best, lip);
            }
            idx[d] += 1;
            if idx[d] <= steps {
                break;
            }
            idx[d] = 0;
            d += 1;
        }
    }
}

fn small_property(threshold: f64, j: usize, two_boxes: bool) -> Property {
    let c = Constraint { coeffs: vec![(j, 1.0)], rhs: threshold, strict: false };
    let spec = OutputSpec { disjuncts: vec![vec![c]] };
    let cases = if two_boxes {
        vec![
            Case { lo: vec![-1.0, -1.0, -1.0, -1.0], hi: vec![0.0, 1.0, 1.0, 1.0], output: spec.clone() },
            Case { lo: vec![0.0, -1.0, -1.0, -1.0], hi: vec![1.0, 1.0, 1.0, 1.0], output: spec },
        ]
    } else {
        vec![Case { lo: vec![-1.0; 4], hi: vec![1.0; 4], output: spec }]
    };
    Property { n_inputs: 4, n_outputs: 3, cases }
}

#[test]
fn tiny_network_known_answers() {
    let m = load_bytes(&bytes(&small_mlp())).unwrap();
    let g = &m.graph;
    for j in 0..3 {
        let (grid, lip) = grid_min_and_lipschitz(g, j);
        let h = 2.0 / 8.0;
        for two in [false, true] {
            // Below every reachable value: unsat, and provable by input splitting.
            let p = small_property(grid - lip * h / 2.0 - 0.05, j, two);
            let o = verify(g, &p, &opts(20.0)).unwrap();
            assert_eq!(o.verdict, Verdict::Unsat, "y{j} unsat case: {}", o.detail);
            // Above a value the grid reaches: sat, with a checked counterexample.
            let p = small_property(grid + 0.05, j, two);
            let o = verify(g, &p, &opts(20.0)).unwrap();
            assert_eq!(o.verdict, Verdict::Sat, "y{j} sat case: {}", o.detail);
            let cex = o.counterexample.unwrap();
            assert!(confirm(g, &p, &cex.x).unwrap().is_some());
            let x64: Vec<f64> = cex.x.iter().map(|&v| v as f64).collect();
            let y64: Vec<f64> = cex.y.iter().map(|&v| v as f64).collect();
            assert!(p.violated_by(&x64, &y64));
        }
    }
}

#[test]
fn relu_splitting_proves_what_input_splitting_proves() {
    // The same known answers with input splitting switched off: the high-dimensional path
    // (alpha-CROWN, then ReLU-splitting branch and bound, then the attack) must agree.
    let m = load_bytes(&bytes(&small_mlp())).unwrap();
    let g = &m.graph;
    let relu_only = |secs: f64| Options { max_split_inputs: 0, extra_attack: Duration::from_secs(2), ..opts(secs) };
    let mut proved_by_splitting = 0;
    let region = Region::from_box(vec![-1.0; 4], vec![1.0; 4]).unwrap();
    let out = g.outputs[0];
    let table = BoundTable::new(g, &region, Method::Crown, out).unwrap();
    for j in 0..3 {
        // The exact minimum by MILP (a solver value: used only to place the thresholds).
        let mut c = vec![0.0; 3];
        c[j] = 1.0;
        let exact = milp_min(g, &region, &table, &c, &LpOptions::default()).unwrap().unsound_value.unwrap();
        let (grid, _) = grid_min_and_lipschitz(g, j);
        assert!(exact <= grid + 1e-9, "MILP {exact} above a grid value {grid}");
        for two in [false, true] {
            let p = small_property(exact - 1e-3, j, two);
            let o = verify(g, &p, &relu_only(20.0)).unwrap();
            assert_eq!(o.verdict, Verdict::Unsat, "y{j} unsat case: {}", o.detail);
            proved_by_splitting += o.detail.contains("ReLU-splitting") as usize;
            let p = small_property(exact + 1e-3, j, two);
            let o = verify(g, &p, &relu_only(20.0)).unwrap();
            assert_eq!(o.verdict, Verdict::Sat, "y{j} sat case: {}", o.detail);
            assert!(confirm(g, &p, &o.counterexample.unwrap().x).unwrap().is_some());
        }
    }
    eprintln!("{proved_by_splitting} of 6 unsat cases needed ReLU splitting");
    assert!(proved_by_splitting > 0, "the thresholds no longer exercise ReLU splitting");
}

#[test]
fn relu_splitting_with_no_memory_for_open_subdomains_stops_honestly() {
    // With no memory for open subdomains, a search that must keep one ends open (the small
    // MLP has one hidden layer: nothing to refine instead), never in a wrong verdict.
    let m = load_bytes(&bytes(&small_mlp())).unwrap();
    let g = &m.graph;
    let region = Region::from_box(vec![-1.0; 4], vec![1.0; 4]).unwrap();
    let table = BoundTable::new(g, &region, Method::Crown, g.outputs[0]).unwrap();
    let mut left_open = 0;
    for j in 0..3 {
        let mut c = vec![0.0; 3];
        c[j] = 1.0;
        let exact = milp_min(g, &region, &table, &c, &LpOptions::default()).unwrap().unsound_value.unwrap();
        for two in [false, true] {
            let o =
                Options { max_split_inputs: 0, extra_attack: Duration::from_millis(200), open_memory: 0, ..opts(10.0) };
            let v = verify(g, &small_property(exact - 1e-3, j, two), &o).unwrap();
            assert_ne!(v.verdict, Verdict::Sat, "y{j}: {}", v.detail);
            left_open += (v.verdict != Verdict::Unsat) as usize;
        }
    }
    assert!(left_open > 0, "every case closed before branch and bound: the budget is not exercised");
}

#[test]
fn relu_splitting_never_proves_a_reachable_value() {
    // Thresholds just above the grid minimum are reachable: whatever the time, never unsat.
    let m = load_bytes(&bytes(&small_mlp())).unwrap();
    let g = &m.graph;
    for j in 0..3 {
        let (grid, _) = grid_min_and_lipschitz(g, j);
        for delta in [1e-6, 1e-3] {
            let p = small_property(grid + delta, j, false);
            let o = Options { max_split_inputs: 0, extra_attack: Duration::from_millis(200), ..opts(3.0) };
            let v = verify(g, &p, &o).unwrap();
            assert_ne!(v.verdict, Verdict::Unsat, "y{j} + {delta}: {}", v.detail);
        }
    }
}

#[test]
fn empty_and_trivial_properties() {
    let m = load_bytes(&bytes(&small_mlp())).unwrap();
    let g = &m.graph;
    // No input at all (contradictory bounds): unsat.
    let p = parse(&format!(
        "{}(declare-const Y_0 Real)(declare-const Y_1 Real)(declare-const Y_2 Real)\
         (assert (<= X_0 0))(assert (>= X_0 1))(assert (<= X_1 1))(assert (>= X_1 0))(assert (<= X_2 1))(assert (>= X_2 0))\
         (assert (<= X_3 1))(assert (>= X_3 0))(assert (<= Y_0 Y_1))",
        (0..4).map(|i| format!("(declare-const X_{i} Real)")).collect::<String>()
    ))
    .unwrap();
    assert!(p.cases.is_empty());
    assert_eq!(verify(g, &p, &opts(5.0)).unwrap().verdict, Verdict::Unsat);
    // A property that does not fit the model is an error, not a verdict.
    let wrong = Property { n_inputs: 3, n_outputs: 3, cases: vec![] };
    assert!(verify(g, &wrong, &opts(5.0)).is_err());
}

// ----------------------------------------------------------------------------- VNN-COMP

struct Instance {
    bench: String,
    onnx: String,
    vnnlib: String,
    reference: String,
}

fn instances(root: &Path, bench: &str) -> Vec<Instance> {
    let Ok(text) = std::fs::read_to_string(root.join(bench).join("results/summary.csv")) else { return vec![] };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.len() > 3).then(|| Instance {
                bench: bench.into(),
                onnx: f[0].into(),
                vnnlib: f[1].into(),
                reference: f[3].split('(').next().unwrap_or("").into(),
            })
        })
        .collect()
}

/// Runs instances; panics on any wrong answer; returns how many were solved.
fn run_instances(root: &Path, list: &[Instance], secs: f64) -> usize {
    let mut solved = 0;
    for i in list {
        let base = root.join(&i.bench);
        let m = load_file(base.join(&i.onnx)).unwrap();
        let p = parse(&std::fs::read_to_string(base.join(&i.vnnlib)).unwrap()).unwrap();
        let t = std::time::Instant::now();
        let o = verify(&m.graph, &p, &opts(secs)).unwrap_or_else(|e| panic!("{} {}: {e}", i.onnx, i.vnnlib));
        eprintln!(
            "{} {} {}: {} ({:.1} s, reference {})",
            i.bench,
            i.onnx,
            i.vnnlib,
            o.verdict,
            t.elapsed().as_secs_f64(),
            i.reference
        );
        match o.verdict {
            Verdict::Sat | Verdict::Unsat => {
                let said = o.verdict.to_string();
                assert!(
                    !(i.reference == "sat" || i.reference == "unsat") || said == i.reference,
                    "WRONG: {} {} {}: said {said}, reference {}",
                    i.bench,
                    i.onnx,
                    i.vnnlib,
                    i.reference
                );
                if o.verdict == Verdict::Sat {
                    let cex = o.counterexample.as_ref().expect("sat carries a counterexample");
                    assert!(confirm(&m.graph, &p, &cex.x).unwrap().is_some());
                }
                solved += 1;
            }
            _ => {}
        }
    }
    solved
}

#[test]
fn vnncomp_test_benchmark_exact() {
    let Some(root) = vnncomp() else {
        eprintln!("skipped: ../shared/vnncomp is absent");
        return;
    };
    let list = instances(&root, "test");
    assert_eq!(run_instances(&root, &list, 20.0), list.len(), "every test instance is solved");
}

#[test]
fn vnncomp_sample_never_wrong() {
    let Some(root) = vnncomp() else {
        eprintln!("skipped: ../shared/vnncomp is absent");
        return;
    };
    // ACAS Xu: quick instances of several properties, sat and unsat.
    let acas: Vec<Instance> = instances(&root, "acasxu")
        .into_iter()
        .filter(|i| {
            [("1_1_", "prop_1."), ("2_1_", "prop_2."), ("1_1_", "prop_3."), ("3_3_", "prop_2."), ("1_2_", "prop_4.")]
                .iter()
                .any(|(n, p)| i.onnx.contains(n) && i.vnnlib.contains(p))
        })
        .collect();
    let solved = run_instances(&root, &acas, 15.0);
    assert!(solved >= 3, "only {solved} of {} ACAS Xu instances solved", acas.len());
    // One instance of every other benchmark, short timeout: never wrong.
    for b in ["mnist_fc", "eran", "oval21", "verivital", "marabou-cifar10", "tllverifybench"] {
        let list: Vec<Instance> = instances(&root, b).into_iter().take(1).collect();
        run_instances(&root, &list, 4.0);
    }
}

#[test]
#[ignore = "long: every ACAS Xu and test instance at 30 s"]
fn vnncomp_acasxu_sweep() {
    let Some(root) = vnncomp() else { return };
    let list = instances(&root, "acasxu");
    let solved = run_instances(&root, &list, 30.0);
    eprintln!("acasxu: {solved}/{} solved", list.len());
}

// ----------------------------------------------------------------------------- CLI

fn run_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_robustcert")).args(args).output().expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn cli_verify_bundled_specs() {
    let model = root().join("verifier-tests/fixtures/models/mlp_relu.onnx");
    let model = model.to_str().unwrap();
    let spec = |f: &str| root().join("specs").join(f).to_string_lossy().into_owned();
    let (code, out, err) = run_cli(&["verify", model, &spec("mlp_relu_robust_eps0.002.vnnlib"), "--timeout", "30"]);
    assert_eq!((code, out.lines().next()), (0, Some("unsat")), "{out}{err}");
    let dir = std::env::temp_dir().join(format!("robustcert-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cex = dir.join("cex.txt");
    let (code, out, err) = run_cli(&[
        "verify",
        model,
        &spec("mlp_relu_robust_eps0.05.vnnlib"),
        "--timeout",
        "30",
        "--counterexample",
        cex.to_str().unwrap(),
    ]);
    assert_eq!((code, out.lines().next()), (0, Some("sat")), "{out}{err}");
    // The witness parses back, lies in the box and violates the property under our f32 pass.
    let text = std::fs::read_to_string(&cex).unwrap();
    assert!(text.starts_with("((X_0 ") && text.trim_end().ends_with("))"));
    let mut xs = vec![];
    for tok in text.split('(').filter(|t| t.starts_with("X_")) {
        let v: f32 = tok.split_whitespace().nth(1).unwrap().trim_end_matches(')').parse().unwrap();
        xs.push(v);
    }
    assert_eq!(xs.len(), 784);
    let m = load_file(model).unwrap();
    let p = parse(&std::fs::read_to_string(spec("mlp_relu_robust_eps0.05.vnnlib")).unwrap()).unwrap();
    assert!(confirm(&m.graph, &p, &xs).unwrap().is_some());
    // Errors exit 2 with a positioned message.
    let bad = dir.join("bad.vnnlib");
    std::fs::write(&bad, "(declare-const X_0 Real)\n(assert (<= X_0 1)").unwrap();
    let (code, _, err) = run_cli(&["verify", model, bad.to_str().unwrap(), "--timeout", "5"]);
    assert_eq!(code, 2);
    assert!(err.contains("line 2, column 1"), "{err}");
    // A property of the wrong size for the model.
    std::fs::write(&bad, "(declare-const X_0 Real)(declare-const Y_0 Real)(assert (<= X_0 1))(assert (>= X_0 0))")
        .unwrap();
    let (code, _, err) = run_cli(&["verify", model, bad.to_str().unwrap(), "--timeout", "5"]);
    assert_eq!(code, 2, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
