//! Randomized smoothing (Cohen, Rosenfeld & Kolter 2019; sound mode of Voracek & Hein 2023):
//! closed-form truth on linear models, scipy reference values, determinism across threads and
//! batch sizes, the sequential test, replay, the CLI contract and property tests.

use crate::common::*;
use proptest::prelude::*;
use robustcert::smoothing::{self, noise, stats, Config, Noise, Sampler, Stream};
use serde_json::Value;
use std::process::Command;

fn reference() -> Value {
    let p = fixtures().join("smoothing/reference.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// A 2-class linear model on [batch, d]: logits (w.x + b, 0).
fn linear_model(w: &[f32], b: f32) -> robustcert::onnx::Model {
    let d = w.len();
    let mut wt = vec![0f32; d * 2];
    for (i, &v) in w.iter().enumerate() {
        wt[i * 2] = v;
    }
    let g = node("Gemm", "fc", &["x", "w", "b"], &["y"]);
    let m = model(
        13,
        vec![g],
        vec![float_tensor("w", &[d as i64, 2], &wt), float_tensor("b", &[2], &[b, 0.0])],
        value_info("x", &[-1, d as i64]),
        "y",
    );
    robustcert::onnx::load_bytes(&bytes(&m)).unwrap()
}

fn run_cli(args: &[&str], threads: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_robustcert"))
        .args(args)
        .env("RAYON_NUM_THREADS", threads)
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path(p: std::path::PathBuf) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn clopper_pearson_matches_scipy_and_is_conservative() {
    for c in reference()["clopper_pearson"].as_array().unwrap() {
        let (k, n, alpha) = (c["k"].as_u64().unwrap(), c["n"].as_u64().unwrap(), c["alpha"].as_f64().unwrap());
        let (lo, hi) = (c["lower"].as_f64().unwrap(), c["upper"].as_f64().unwrap());
        let ours = stats::cp_lower(k, n, alpha);
        // Never above scipy's value (beyond scipy's own ~1e-15 error), and close to it (the
        // slack on alpha, 1e-8 + 1e-13 n relative, costs at most as much relative).
        assert!(ours <= lo + lo * 4e-15, "lower k={k} n={n} alpha={alpha}: {ours} > {lo}");
        assert!(ours >= lo - 1e-6 * lo, "lower k={k} n={n} alpha={alpha}: {ours} << {lo}");
        let up = stats::cp_upper(k, n, alpha);
        assert!(up >= hi - hi * 4e-15, "upper k={k} n={n} alpha={alpha}: {up} < {hi}");
        assert!(up <= hi + 1e-6 * hi.max(1e-3), "upper k={k} n={n} alpha={alpha}: {up} >> {hi}");
    }
}

#[test]
fn phi_inverse_and_radius_match_scipy() {
    for c in reference()["phi_inv"].as_array().unwrap() {
        let (p, z) = (c["p"].as_f64().unwrap(), c["z"].as_f64().unwrap());
        let ours = stats::phi_inv(p).unwrap();
        assert!(close(ours, z, 1e-13, 1e-15), "phi_inv({p}) = {ours}, scipy {z}");
        if p > 0.5 {
            let r = stats::radius_lower(0.25, p).unwrap();
            assert!(r <= 0.25 * z && r >= 0.25 * z * (1.0 - 1e-11), "radius {r} vs {}", 0.25 * z);
        }
    }
    assert!(stats::phi_inv(0.0).is_none() && stats::phi_inv(1.0).is_none() && stats::phi_inv(f64::NAN).is_none());
}

#[test]
fn rounded_gaussian_matches_scipy() {
    for c in reference()["rounded_gaussian"].as_array().unwrap() {
        let (sigma, k, p) = (c["sigma"].as_f64().unwrap(), c["k"].as_i64().unwrap(), c["p"].as_f64().unwrap());
        let rg = noise::RoundedGaussian::new(sigma).unwrap();
        let ours = rg.sampled_prob(k);
        assert!((ours - p).abs() <= 2e-15, "sigma {sigma} k {k}: sampler {ours}, scipy {p}");
        assert!((noise::rounded_gaussian_prob(sigma, k) - p).abs() <= 2e-15);
    }
}

#[test]
fn binomial_test_matches_scipy() {
    for c in reference()["binom_test"].as_array().unwrap() {
        let (a, b, p) = (c["n_a"].as_u64().unwrap(), c["n_b"].as_u64().unwrap(), c["p_value"].as_f64().unwrap());
        let ours = stats::binom_test_half(a, b);
        assert!(ours >= p * (1.0 - 1e-12) && ours <= p * (1.0 + 1e-3) + 1e-300, "{a} {b}: {ours} vs {p}");
    }
}

/// Linear f with margin m and weights w: p_A = Phi(|m| / (sigma ||w||)), true radius |m| / ||w||.
/// Over many seeds the certified radius stays below the truth in >= 1 - alpha of runs (plain
/// Gaussian mode: the closed form is for real Gaussian noise) and is near its expected value.
#[test]
fn linear_closed_form_coverage() {
    let w: Vec<f32> = (0..16).map(|i| ((i * 7 % 5) as f32 - 2.0) / 4.0).collect();
    let wn = w.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
    let x = vec![0.5f64; 16];
    let sigma = 0.25;
    let wx: f64 = w.iter().map(|&v| v as f64 * 0.5).sum();
    // Choose b so that p_A = Phi(1.5): margin = 1.5 sigma ||w||.
    let b = (1.5 * sigma * wn - wx) as f32;
    let m = linear_model(&w, b);
    let margin = wx + b as f64;
    let truth = margin.abs() / wn;
    let sampler = Sampler::new(&m.graph).unwrap();
    let (runs, alpha, n) = (200u64, 0.01, 1000u64);
    let mut above = 0;
    let mut sum = 0.0;
    for seed in 0..runs {
        let cfg = Config::new(sigma, false, 50, n, alpha, seed, 256).unwrap();
        let c = smoothing::certify(&sampler, &cfg, &x, 0, None).unwrap();
        assert!(c.prediction.is_none() || c.prediction == Some(0));
        above += (c.radius > truth) as u32;
        sum += c.radius;
    }
    // Expected failures <= alpha * runs = 2; P(Bin(200, 0.01) >= 7) < 0.001.
    assert!(above <= 6, "{above} of {runs} radii above the truth {truth}");
    let p_true = stats::phi(1.5);
    let expected = sigma * stats::phi_inv(stats::cp_lower((p_true * n as f64) as u64, n, alpha)).unwrap();
    let mean = sum / runs as f64;
    assert!((mean - expected).abs() < 0.1 * truth, "mean radius {mean}, expected ~{expected}, truth {truth}");
}

/// The same in the sound mode: the truth is for f o round, whose noise per coordinate is the
/// rounded Gaussian (variance sigma^2 + 1/(12 * 255^2) to first order; the CLT over 16 coordinates
/// with this tiny correction is far inside the tolerance).
#[test]
fn linear_closed_form_sound_mode() {
    let w: Vec<f32> = (0..16).map(|i| ((i * 3 % 7) as f32 - 3.0) / 4.0).collect();
    let wn = w.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
    let x: Vec<f64> = (0..16).map(|i| (i * 13 % 256) as f64 / 255.0).collect();
    let sigma = 0.12;
    let wx: f64 = w.iter().zip(&x).map(|(&v, &xi)| v as f64 * xi).sum();
    let b = (2.0 * sigma * wn - wx) as f32;
    let m = linear_model(&w, b);
    let sampler = Sampler::new(&m.graph).unwrap();
    let s_eff = (sigma * sigma + 1.0 / (12.0 * 255.0 * 255.0)).sqrt();
    let p_true = stats::phi((wx + b as f64) / (s_eff * wn));
    let cohen_truth = sigma * stats::phi_inv(p_true).unwrap();
    let mut above = 0;
    for seed in 0..40 {
        let cfg = Config::new(sigma, true, 50, 2000, 0.01, seed, 128).unwrap();
        let c = smoothing::certify(&sampler, &cfg, &x, 3, None).unwrap();
        above += (c.radius > cohen_truth) as u32;
        assert!(c.p_margin > 0.0 && c.p_margin < 1e-8);
    }
    assert!(above <= 3, "{above} of 40 above {cohen_truth}");
}

#[test]
fn identical_across_threads_and_batch_sizes() {
    let m = robustcert::onnx::load_file(fixtures().join("models/mlp_relu.onnx")).unwrap();
    let x = robustcert::data::read_array(fixtures().join("smoothing/mlp_grid.npy")).unwrap();
    let row: Vec<f64> = x.data()[..784].to_vec();
    let sampler = Sampler::new(&m.graph).unwrap();
    let mut results = Vec::new();
    for threads in [1, 2] {
        for batch in [1usize, 7, 64] {
            for sound in [true, false] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let cfg = Config::new(0.5, sound, 30, 600, 0.001, 42, batch).unwrap();
                let c = pool.install(|| smoothing::certify(&sampler, &cfg, &row, 1, None)).unwrap();
                let p = pool.install(|| smoothing::predict(&sampler, &cfg, &row, 1)).unwrap();
                results.push(((sound, threads, batch), c, p));
            }
        }
    }
    for r in &results {
        let first = results.iter().find(|q| q.0 .0 == r.0 .0).unwrap();
        assert_eq!(r.1, first.1, "{:?} vs {:?}", r.0, first.0);
        assert_eq!(r.2, first.2);
    }
    // Different seeds and input indices give different noise.
    let cfg = Config::new(0.5, true, 30, 600, 0.001, 43, 64).unwrap();
    let c = smoothing::certify(&sampler, &cfg, &row, 1, None).unwrap();
    assert_ne!(c.counts, results[0].1.counts);
}

#[test]
fn selection_and_estimation_streams_are_disjoint() {
    let rg = Noise::sound(0.25).unwrap();
    let base = rg.base(&[128.0 / 255.0; 8]).unwrap();
    let mut a = [0f32; 8];
    let mut b = [0f32; 8];
    rg.fill(&base, &mut noise::sample_rng(1, 0, Stream::Selection, 0), &mut a);
    rg.fill(&base, &mut noise::sample_rng(1, 0, Stream::Estimation, 0), &mut b);
    assert_ne!(a, b);
}

/// High p_A input: the sequential test decides "radius >= R" with at most 10% of N = 100000.
#[test]
fn sequential_decides_early_on_high_p_a() {
    let m = robustcert::onnx::load_file(fixtures().join("models/mlp_relu.onnx")).unwrap();
    let x = robustcert::data::read_array(fixtures().join("smoothing/mlp_grid.npy")).unwrap();
    let sampler = Sampler::new(&m.graph).unwrap();
    let cfg = Config::new(0.25, true, 100, 100_000, 0.001, 0, 64).unwrap();
    let c = smoothing::certify(&sampler, &cfg, &x.data()[..784], 0, Some(0.4)).unwrap();
    let s = c.sequential.as_ref().unwrap();
    assert_eq!(s.decision, "certified", "{c:?}");
    assert!(c.radius >= 0.4);
    assert!(c.samples_used <= 10_000, "{} samples", c.samples_used);
    // The looks are prefixes of the fixed-N estimation stream.
    let fixed = Config::new(0.25, true, 100, c.n_estimation, 0.001, 0, 64).unwrap();
    let f = smoothing::certify(&sampler, &fixed, &x.data()[..784], 0, None).unwrap();
    assert_eq!(f.counts, c.counts);
}

/// On a linear model whose true Cohen radius is known, the sequential test never certifies a
/// target above it and refutes a far larger one early.
#[test]
fn sequential_never_certifies_above_truth() {
    let w: Vec<f32> = (0..8).map(|i| (i as f32 - 3.5) / 4.0).collect();
    let wn = w.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
    let x = vec![0.25f64; 8];
    let sigma = 0.5;
    let wx: f64 = w.iter().map(|&v| v as f64 * 0.25).sum();
    let b = (2.0 * sigma * wn - wx) as f32;
    let m = linear_model(&w, b);
    let truth = (wx + b as f64) / wn;
    let sampler = Sampler::new(&m.graph).unwrap();
    for seed in 0..20 {
        let cfg = Config::new(sigma, false, 50, 20_000, 0.01, seed, 512).unwrap();
        let c = smoothing::certify(&sampler, &cfg, &x, 0, Some(truth * 1.02)).unwrap();
        assert_ne!(c.sequential.as_ref().unwrap().decision, "certified");
        let c = smoothing::certify(&sampler, &cfg, &x, 0, Some(truth * 2.0)).unwrap();
        assert_eq!(c.sequential.as_ref().unwrap().decision, "not_certified");
        assert!(c.samples_used <= 2_000 + 50, "{}", c.samples_used);
    }
}

#[test]
fn cli_contract_byte_identical_batch_and_replay() {
    let model = path(fixtures().join("models/mlp_relu.onnx"));
    let input = path(fixtures().join("smoothing/mlp_grid.npy"));
    let args = [
        "smooth", &model, "--input", &input, "--sigma", "0.25", "--n0", "50", "--n", "2000", "--alpha", "0.001",
        "--seed", "7", "--json",
    ];
    let (code, out1, err) = run_cli(&args, "1");
    assert_eq!(code, 0, "{err}");
    let (_, out2, _) = run_cli(&args, "2");
    let mut with_batch = args.to_vec();
    with_batch.extend(["--batch", "5"]);
    let (_, out3, _) = run_cli(&with_batch, "2");
    assert_eq!(out1, out2);
    assert_eq!(out1, out3);
    // A batch of two inputs: one JSON object per line.
    let lines: Vec<Value> = out1.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    for (i, v) in lines.iter().enumerate() {
        assert_eq!(v["index"], i);
        assert!(v["prediction"].is_u64() || v["prediction"].is_null());
        assert!(v["radius"].as_f64().unwrap() >= 0.0);
        assert_eq!(v["n"], 2000);
        assert_eq!(v["seed"], 7);
        assert_eq!(v["samples_used"], 2050);
        assert!(v["n_a"].as_u64().unwrap() <= 2000);
        assert_eq!(v["sigma"], 0.25);
        assert_eq!(v["noise"], "rounded_gaussian_1/255");
        assert!(v["certifies"].as_str().unwrap().contains("not the base network"));
    }
    // Replay: a faithful record matches, a tampered one is reported (exit 1).
    let dir = std::env::temp_dir().join(format!("rc_smooth_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rec = dir.join("rec.jsonl");
    std::fs::write(&rec, &out1).unwrap();
    let (code, out, err) =
        run_cli(&["smooth", &model, "--input", &input, "--replay", &path(rec.clone()), "--json"], "2");
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.lines().all(|l| l.contains("\"replay\":\"match\"")), "{out}");
    let mut v = lines[1].clone();
    v["n_a"] = Value::from(v["n_a"].as_u64().unwrap() + 1);
    std::fs::write(&rec, format!("{}\n{}\n", serde_json::to_string(&lines[0]).unwrap(), v)).unwrap();
    let (code, out, _) = run_cli(&["smooth", &model, "--input", &input, "--replay", &path(rec), "--json"], "2");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("mismatch") && out.contains("n_a"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cli_sequential_and_predict() {
    let model = path(fixtures().join("models/mlp_relu.onnx"));
    let input = path(fixtures().join("smoothing/mlp_grid.npy"));
    let (code, out, err) = run_cli(
        &["smooth", &model, "--input", &input, "--sigma", "0.25", "--seed", "1", "--target-radius", "0.3", "--json"],
        "2",
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(v["n"], 100000);
    assert!(v["decision"].is_string() && v["samples_used"].as_u64().unwrap() <= 100_100);
    let (code, out, err) =
        run_cli(&["smooth", &model, "--input", &input, "--sigma", "0.25", "--n", "500", "--predict", "--json"], "2");
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert!(v["p_value"].as_f64().unwrap() <= 1.0 && v["mode"] == "predict");
}

#[test]
fn cli_errors_are_clear() {
    let model = path(fixtures().join("models/mlp_relu.onnx"));
    let grid = path(fixtures().join("smoothing/mlp_grid.npy"));
    let raw = path(fixtures().join("models/mlp_relu.input.npy"));
    let cases: [(&[&str], &str); 6] = [
        (&["--input", &grid, "--sigma", "0"], "sigma"),
        (&["--input", &grid, "--sigma=-1"], "sigma"),
        (&["--input", &grid, "--sigma", "0.25", "--alpha", "1.5"], "alpha"),
        (&["--input", &grid, "--sigma", "0.25", "--n0", "0"], "n0"),
        (&["--input", &raw, "--sigma", "0.25"], "--noise gaussian"),
        (&["--input", &path(fixtures().join("models/mobilenetv2_035.input.npy")), "--sigma", "0.25"], "shape"),
    ];
    for (extra, want) in cases {
        let mut args = vec!["smooth", model.as_str()];
        args.extend_from_slice(extra);
        let (code, _, err) = run_cli(&args, "1");
        assert_eq!(code, 2, "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // The plain mode accepts off-grid inputs and says it is not floating-point sound.
    let (code, out, err) = run_cli(
        &["smooth", &model, "--input", &raw, "--sigma", "0.25", "--n", "200", "--noise", "gaussian", "--json"],
        "2",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"sound_in_floating_point\":false") && out.contains("gaussian_plain"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The sound sampler: thresholds monotone, probabilities equal to the exact rounded Gaussian
    /// within the error the TV margin assumes, empirical frequencies matching.
    #[test]
    fn rounded_gaussian_sampler(sigma in 0.01f64..1.5, seed in any::<u64>()) {
        let rg = noise::RoundedGaussian::new(sigma).unwrap();
        prop_assert!(rg.thresholds().windows(2).all(|w| w[0] <= w[1]));
        for k in -rg.kmax()..=rg.kmax() {
            let d = (rg.sampled_prob(k) - noise::rounded_gaussian_prob(sigma, k)).abs();
            prop_assert!(d <= 1e-14, "k {} diff {}", k, d);
        }
        use rand_chacha::rand_core::Rng;
        let mut rng = noise::sample_rng(seed, 0, Stream::Estimation, 0);
        let draws = 20_000usize;
        let mut hist = std::collections::BTreeMap::<i64, u64>::new();
        for _ in 0..draws {
            *hist.entry(rg.sample_u64(rng.next_u64())).or_default() += 1;
        }
        // Every bucket with p >= 1% is within 5 binomial standard deviations.
        for k in -rg.kmax()..=rg.kmax() {
            let p = rg.sampled_prob(k);
            if p < 0.01 { continue; }
            let got = *hist.get(&k).unwrap_or(&0) as f64;
            let sd = (draws as f64 * p * (1.0 - p)).sqrt();
            prop_assert!((got - draws as f64 * p).abs() <= 5.0 * sd + 1.0, "k {} got {} want {}", k, got, draws as f64 * p);
        }
    }

    /// Exact coverage: the probability (under Bin(n, p)) of the outcomes whose Clopper-Pearson
    /// lower bound exceeds p is at most alpha.
    #[test]
    fn clopper_pearson_coverage_exact(n in 1u64..250, p in 0.001f64..0.999, alpha in 0.001f64..0.3) {
        let mut miss = 0.0;
        for k in 0..=n {
            if stats::cp_lower(k, n, alpha) > p {
                miss += stats::upper_tail(n, k, p) - stats::upper_tail(n, k + 1, p);
            }
        }
        prop_assert!(miss <= alpha * (1.0 + 1e-9), "n {} p {} alpha {}: miss {}", n, p, alpha, miss);
    }

    /// Coverage simulation: the bound is never above the true p in more than alpha of runs
    /// (beyond binomial slack).
    #[test]
    fn clopper_pearson_coverage_simulated(p in 0.5f64..0.999, seed in any::<u64>()) {
        use rand_chacha::rand_core::Rng;
        let (n, alpha, runs) = (200u64, 0.05, 400u32);
        let mut rng = noise::sample_rng(seed, 1, Stream::Predict, 0);
        let thr = (p * 18446744073709551616.0) as u64;
        let mut above = 0u32;
        for _ in 0..runs {
            let k = (0..n).filter(|_| rng.next_u64() < thr).count() as u64;
            above += (stats::cp_lower(k, n, alpha) > p) as u32;
        }
        // alpha * runs = 20; P(Bin(400, 0.05) > 40) < 1e-5.
        prop_assert!(above <= 40, "{} of {}", above, runs);
    }
}
