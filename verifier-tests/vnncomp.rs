//! Every model under ../shared/vnncomp imports, and reproduces the outputs of the official
//! counterexamples that onnxruntime reproduced (counterexample_check.csv marks them `valid`).
//! Skipped, with a message, when ../shared is absent.

use crate::common::*;
use robustcert::ir::Tensor;
use robustcert::onnx::load_file;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn models(bench: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(bench.join("onnx"))
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "onnx")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn benches(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(root).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    v.sort();
    v
}

#[test]
fn every_vnncomp_model_imports() {
    let Some(root) = vnncomp() else {
        eprintln!("skipped: ../shared/vnncomp is absent");
        return;
    };
    let mut count = 0;
    for b in benches(&root) {
        for p in models(&b) {
            let m = load_file(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let shape = m.graph.input_info[0].shape.clone();
            let n: usize = shape.iter().product();
            let x = Tensor::new(shape, vec![0.1f32; n]).unwrap();
            m.graph.forward(&[&x]).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            count += 1;
        }
    }
    assert!(count > 50, "only {count} models found");
}

/// Parses `((X_0 v) ... (Y_0 v) ...)` into the X and Y vectors.
fn parse_counterexample(text: &str) -> Option<(Vec<f64>, Vec<f64>)> {
    let mut xs: HashMap<usize, f64> = HashMap::new();
    let mut ys: HashMap<usize, f64> = HashMap::new();
    for tok in text.split('(').map(|t| t.trim().trim_end_matches(')').trim()) {
        let mut it = tok.split_whitespace();
        let (Some(name), Some(val)) = (it.next(), it.next()) else {
            continue;
        };
        let v: f64 = val.trim_end_matches(')').parse().ok()?;
        if let Some(i) = name.strip_prefix("X_") {
            xs.insert(i.parse().ok()?, v);
        } else if let Some(i) = name.strip_prefix("Y_") {
            ys.insert(i.parse().ok()?, v);
        }
    }
    let dense = |m: HashMap<usize, f64>| -> Option<Vec<f64>> { (0..m.len()).map(|i| m.get(&i).copied()).collect() };
    Some((dense(xs)?, dense(ys)?))
}

#[test]
fn official_counterexamples_reproduce() {
    let Some(root) = vnncomp() else {
        eprintln!("skipped: ../shared/vnncomp is absent");
        return;
    };
    let mut checked = 0;
    for b in benches(&root) {
        let Ok(csv) = std::fs::read_to_string(b.join("results/counterexample_check.csv")) else {
            continue;
        };
        let stems: Vec<(String, PathBuf)> =
            models(&b).into_iter().map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p)).collect();
        let mut cache: HashMap<PathBuf, robustcert::onnx::Model> = HashMap::new();
        for line in csv.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            // `valid` with a measured |Y_ort - Y_file| (a few entries are marked valid with no
            // measurement, and their Y values are not onnxruntime's).
            let measured = f.get(3).and_then(|d| d.parse::<f64>().ok()).is_some_and(|d| d <= 1e-4);
            if f.len() < 4 || f[2] != "valid" || !measured {
                continue;
            }
            let (tool, instance) = (f[0], f[1]);
            // The model whose name is the longest prefix of the instance name.
            let Some((_, model_path)) =
                stems.iter().filter(|(s, _)| instance.starts_with(&format!("{s}_"))).max_by_key(|(s, _)| s.len())
            else {
                continue;
            };
            let ce = b.join(format!("results/counterexamples/{tool}/{instance}.counterexample"));
            let Ok(text) = std::fs::read_to_string(&ce) else {
                continue;
            };
            let (x, y) = parse_counterexample(&text).unwrap_or_else(|| panic!("cannot parse {}", ce.display()));
            let m = cache.entry(model_path.clone()).or_insert_with(|| load_file(model_path).unwrap());
            let shape = m.graph.input_info[0].shape.clone();
            assert_eq!(x.len(), shape.iter().product::<usize>(), "{}", ce.display());
            let xt = Tensor::new(shape, x.iter().map(|&v| v as f32).collect()).unwrap();
            let out = m.graph.forward(&[&xt]).unwrap().swap_remove(0);
            // A few official files list fewer outputs than the model has; compare those given.
            assert!(!y.is_empty() && out.len() >= y.len(), "{}", ce.display());
            for (j, (&o, &w)) in out.data().iter().zip(&y).enumerate() {
                assert!(
                    close(o as f64, w, 1e-4, 2e-4),
                    "{}: Y_{j} = {o}, the counterexample file says {w}",
                    ce.display()
                );
            }
            checked += 1;
        }
    }
    eprintln!("{checked} official counterexamples reproduced");
    assert!(checked > 100, "only {checked} counterexamples checked");
}
