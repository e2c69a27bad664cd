//! Forward-pass throughput (samples/s) on the MobileNetV2 (width 0.35, 64x64, 7 classes) and MLP
//! fixtures at batch 1, 64 and 256, f32, on rayon's default pool (set RAYON_NUM_THREADS to
//! match onnxruntime's intra-op threads). Compare with `python3 benches/ort_forward.py`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use robustcert::ir::Tensor;
use std::path::PathBuf;

fn fixture(name: &str) -> robustcert::onnx::Model {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("verifier-tests/fixtures/models/{name}.onnx"));
    robustcert::onnx::load_file(&p).expect("fixture model")
}

fn inputs(shape: &[usize], batch: usize) -> Tensor<f32> {
    let mut s = vec![batch];
    s.extend_from_slice(shape);
    let n: usize = s.iter().product();
    // Deterministic values in [0, 1), like image pixels.
    let data = (0..n).map(|i| ((i as u64 * 2654435761) % 1000) as f32 / 1000.0).collect();
    Tensor::new(s, data).unwrap()
}

fn forward(c: &mut Criterion) {
    for name in ["mobilenetv2_035", "mlp_relu"] {
        let m = fixture(name);
        let mut group = c.benchmark_group(format!("forward/{name}"));
        group.sample_size(10);
        for batch in [1usize, 64, 256] {
            let x = inputs(m.graph.sample_shape(), batch);
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::from_parameter(batch), &x, |b, x| {
                b.iter(|| m.graph.run_samples(x).unwrap())
            });
        }
        group.finish();
    }
}

criterion_group!(benches, forward);
criterion_main!(benches);
