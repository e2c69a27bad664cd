//! Bound propagation speed (IBP, CROWN, alpha-CROWN) on VNN-COMP models, at the centres and radii of the
//! auto_LiRPA reference cases in ../shared/reference/bounds.jsonl (whose `time_s` fields are
//! auto_LiRPA's own timings on this kind of machine, 2 threads). Skipped when ../shared is absent.

use criterion::{criterion_group, criterion_main, Criterion};
use robustcert::bounds::radius::decision_node;
use robustcert::bounds::{bound_spec, Method};
use robustcert::spec::{Norm, Region};
use std::path::PathBuf;

const CASES: &[&str] = &[
    "acasxu_1_1_inf_0.02",
    "mnist_256x2_inf_0.02",
    "mnist_256x6_inf_0.01",
    "oval21_base_inf_0.02",
    "mnist_256x2_l2_0.5",
];

fn bounds(c: &mut Criterion) {
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    let Ok(text) = std::fs::read_to_string(shared.join("reference/bounds.jsonl")) else {
        eprintln!("skipped: ../shared/reference/bounds.jsonl is absent");
        return;
    };
    for line in text.lines() {
        let case: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = case["id"].as_str().unwrap();
        if !CASES.contains(&id) {
            continue;
        }
        let m = robustcert::onnx::load_file(shared.join(case["model"].as_str().unwrap())).unwrap();
        let g = m.graph;
        let centre: Vec<f64> = case["centre"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let norm: Norm = case["norm"].as_str().unwrap().parse().unwrap();
        let region = Region::ball(centre, norm, case["eps"].as_f64().unwrap(), None).unwrap();
        let target = decision_node(&g);
        let w: usize = g.node(target).shape.iter().product();
        let mut spec = vec![0.0; w * w];
        for i in 0..w {
            spec[i * w + i] = 1.0;
        }
        let mut group = c.benchmark_group(format!("bounds/{id}"));
        group.sample_size(10);
        for (method, name) in [(Method::Ibp, "ibp"), (Method::Crown, "crown"), (Method::AlphaCrown, "alpha-crown")] {
            group.bench_function(name, |b| b.iter(|| bound_spec(&g, &region, method, target, &spec, w).unwrap()));
        }
        group.finish();
        for m in ["IBP", "CROWN", "alpha-CROWN"] {
            eprintln!("{id}: auto_LiRPA {m} {:.4} s", case["methods"][m]["time_s"].as_f64().unwrap_or(f64::NAN));
        }
    }
}

criterion_group!(benches, bounds);
criterion_main!(benches);
