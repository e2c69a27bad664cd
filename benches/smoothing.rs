//! Randomized-smoothing throughput (noisy samples per second: noise + forward + argmax counting)
//! on the MobileNetV2 and MLP fixtures, and the samples the sequential test uses on a high-p_A
//! input against the fixed N = 100000. Compare with `python3 benches/ort_smoothing.py` (same
//! model, batch and thread count; set RAYON_NUM_THREADS=2).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use robustcert::smoothing::{self, Config, Noise, Sampler, Stream};
use std::path::PathBuf;

fn fixture(name: &str) -> robustcert::onnx::Model {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("verifier-tests/fixtures/models/{name}.onnx"));
    robustcert::onnx::load_file(&p).expect("fixture model")
}

/// A deterministic input on the 1/255 grid.
fn grid_input(len: usize) -> Vec<f64> {
    (0..len).map(|i| ((i as u64 * 2654435761) % 256) as f64 / 255.0).collect()
}

fn throughput(c: &mut Criterion) {
    for (name, samples) in [("mobilenetv2_035", 512u64), ("mlp_relu", 8192)] {
        let m = fixture(name);
        let sampler = Sampler::new(&m.graph).unwrap();
        let x = grid_input(sampler.sample_len());
        let mut group = c.benchmark_group(format!("smoothing/{name}"));
        group.sample_size(10);
        group.throughput(Throughput::Elements(samples));
        for batch in [64usize, 256] {
            for (mode, noise) in [("sound", Noise::sound(0.25).unwrap()), ("gaussian", Noise::gaussian(0.25).unwrap())]
            {
                let base = noise.base(&x).unwrap();
                group.bench_with_input(BenchmarkId::new(mode, batch), &batch, |b, &batch| {
                    b.iter(|| sampler.counts(&noise, &base, 0, 0, Stream::Estimation, 0, samples, batch).unwrap())
                });
            }
        }
        group.finish();
    }
}

/// Not a timing: prints the samples the sequential test needs to decide "radius >= R" on a
/// high-p_A MLP input, against the fixed N = 100000.
fn sequential_samples(_c: &mut Criterion) {
    let m = fixture("mlp_relu");
    let sampler = Sampler::new(&m.graph).unwrap();
    let x = robustcert::data::read_array(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("verifier-tests/fixtures/smoothing/mlp_grid.npy"),
    )
    .unwrap();
    let row = &x.data()[..sampler.sample_len()];
    let cfg = Config::new(0.25, true, 100, 100_000, 0.001, 0, 256).unwrap();
    let t = std::time::Instant::now();
    let fixed = smoothing::certify(&sampler, &cfg, row, 0, None).unwrap();
    let t_fixed = t.elapsed();
    for r in [0.3, 0.5, 0.7] {
        let t = std::time::Instant::now();
        let s = smoothing::certify(&sampler, &cfg, row, 0, Some(r)).unwrap();
        println!(
            "sequential/mlp_relu sigma 0.25 target {r}: {} after {} samples ({:.1}% of fixed {}; {:?} vs {:?}), fixed-N radius {:.4}, p_A >= {:.6}",
            s.sequential.as_ref().unwrap().decision,
            s.samples_used,
            100.0 * s.samples_used as f64 / fixed.samples_used as f64,
            fixed.samples_used,
            t.elapsed(),
            t_fixed,
            fixed.radius,
            fixed.p_a_lower
        );
    }
}

criterion_group!(benches, sequential_samples, throughput);
criterion_main!(benches);
