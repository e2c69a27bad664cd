//! The forward pass against onnxruntime on the committed fixture models
//! (verifier-tests/gen_fixtures.py), and opset-dependent semantics.

use crate::common::*;
use robustcert::data::read_array;
use robustcert::ir::Tensor;
use robustcert::onnx::load_file;

#[derive(serde::Deserialize)]
struct Entry {
    name: String,
    ops: Vec<String>,
}

fn manifest() -> Vec<Entry> {
    let p = fixtures().join("models/manifest.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("manifest.json parses")
}

/// Compares a result with onnxruntime's, numpy.allclose(rtol=1e-4, atol=1e-5).
fn assert_matches(name: &str, what: &str, got: &[f64], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{name} ({what}): output sizes differ");
    let mut worst = 0.0f64;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let w = w as f64;
        assert!(close(g, w, 1e-4, 1e-5), "{name} ({what}): output {i} is {g}, onnxruntime gives {w}");
        worst = worst.max((g - w).abs());
    }
    eprintln!("{name:28} {what}: max |ours - onnxruntime| = {worst:.2e}");
}

#[test]
fn forward_matches_onnxruntime() {
    let entries = manifest();
    assert!(entries.len() >= 8, "expected at least 8 fixture models");
    for e in &entries {
        let dir = fixtures().join("models");
        let m = load_file(dir.join(format!("{}.onnx", e.name))).unwrap_or_else(|err| panic!("{}: {err}", e.name));
        let x = read_array(dir.join(format!("{}.input.npy", e.name))).unwrap();
        let want = read_array(dir.join(format!("{}.output.npy", e.name))).unwrap().map(|v| v as f32);
        let xs = m.graph.as_samples(x.map(|v| v as f32)).unwrap();
        let y32 = m.graph.run_samples(&xs).unwrap();
        assert_matches(&e.name, "f32", &y32.map(|v| v as f64).into_data(), want.data());
        let y64 = m.graph.run_samples(&xs.map(|v| v as f64)).unwrap();
        assert_matches(&e.name, "f64", y64.data(), want.data());

        // A sample's result does not depend on the batch it runs in.
        let n = xs.shape()[0];
        let row = y32.len() / n;
        for i in 0..n {
            let one = m.graph.run_samples(&xs.slice_batch(i, i + 1)).unwrap();
            assert_eq!(one.data(), &y32.data()[i * row..(i + 1) * row], "{}: sample {i} alone differs", e.name);
        }
    }
}

#[test]
fn fixtures_cover_every_required_operator() {
    let required = [
        "Gemm",
        "MatMul",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Relu",
        "LeakyRelu",
        "Sigmoid",
        "Tanh",
        "Clip",
        "Conv",
        "BatchNormalization",
        "Flatten",
        "Reshape",
        "Transpose",
        "Squeeze",
        "Unsqueeze",
        "Concat",
        "Identity",
        "Dropout",
        "Pad",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "ReduceMean",
        "Softmax",
        "Constant",
        "Shape",
        "Gather",
    ];
    let covered: std::collections::BTreeSet<String> = manifest().into_iter().flat_map(|e| e.ops).collect();
    let missing: Vec<_> = required.iter().filter(|r| !covered.contains(**r)).collect();
    assert!(missing.is_empty(), "no fixture exercises {missing:?}");
}

#[test]
fn mobilenet_fixture_is_the_edge_model() {
    let m = load_file(fixtures().join("models/mobilenetv2_035.onnx")).unwrap();
    assert_eq!(m.graph.input_info[0].shape, vec![1, 3, 64, 64]);
    assert_eq!(m.graph.node(m.graph.outputs[0]).shape, vec![1, 7]);
    assert!(m.graph.batchable);
    assert!(m.info.op_counts.get("Conv").copied().unwrap_or(0) > 30);
}

/// Builds `x -> op -> y` for a hand-made opset case and runs it on `x`.
fn run_one(m: onnx_protobuf::ModelProto, x: Tensor<f32>) -> Result<Tensor<f32>, robustcert::Error> {
    let model = robustcert::onnx::load_bytes(&bytes(&m))?;
    Ok(model.graph.forward(&[&x])?.swap_remove(0))
}

#[test]
fn clip_attribute_and_input_forms() {
    let x = Tensor::new(vec![1, 4], vec![-2.0f32, -0.25, 0.25, 9.0]).unwrap();
    // opset 6 style (attributes) is read as such below opset 11.
    let mut n = node("Clip", "c", &["x"], &["y"]);
    attr_float(&mut n, "min", -0.5);
    attr_float(&mut n, "max", 6.0);
    let y = run_one(model(9, vec![n], vec![], value_info("x", &[1, 4]), "y"), x.clone()).unwrap();
    assert_eq!(y.data(), &[-0.5, -0.25, 0.25, 6.0]);
    // opset 11+: inputs, and an absent min.
    let n = node("Clip", "c", &["x", "", "hi"], &["y"]);
    let hi = float_tensor("hi", &[], &[0.0]);
    let y = run_one(model(13, vec![n], vec![hi], value_info("x", &[1, 4]), "y"), x).unwrap();
    assert_eq!(y.data(), &[-2.0, -0.25, 0.0, 0.0]);
}

#[test]
fn squeeze_axes_attribute_vs_input() {
    let x = Tensor::new(vec![1, 1, 3], vec![1.0f32, 2.0, 3.0]).unwrap();
    let mut n = node("Squeeze", "s", &["x"], &["y"]);
    attr_ints(&mut n, "axes", &[1]);
    let m = model(11, vec![n], vec![], value_info("x", &[1, 1, 3]), "y");
    let g = robustcert::onnx::load_bytes(&bytes(&m)).unwrap().graph;
    assert_eq!(g.node(g.outputs[0]).shape, vec![1, 3]);
    assert_eq!(g.forward(&[&x]).unwrap()[0].data(), &[1.0, 2.0, 3.0]);
    let n = node("Squeeze", "s", &["x", "axes"], &["y"]);
    let m = model(13, vec![n], vec![int_tensor("axes", &[-2])], value_info("x", &[1, 1, 3]), "y");
    let g = robustcert::onnx::load_bytes(&bytes(&m)).unwrap().graph;
    assert_eq!(g.node(g.outputs[0]).shape, vec![1, 3]);
    // At opset 13 the attribute form is gone: axes come from the input, none means all 1-dims.
    let mut n = node("Squeeze", "s", &["x"], &["y"]);
    attr_ints(&mut n, "axes", &[1]);
    let m = model(13, vec![n], vec![], value_info("x", &[1, 1, 3]), "y");
    let g = robustcert::onnx::load_bytes(&bytes(&m)).unwrap().graph;
    assert_eq!(g.node(g.outputs[0]).shape, vec![3]);
}

#[test]
fn flatten_axis_rules_by_opset() {
    let mut n = node("Flatten", "f", &["x"], &["y"]);
    attr_int(&mut n, "axis", -1);
    // Negative axes arrived with opset 11.
    let m = model(9, vec![n.clone()], vec![], value_info("x", &[1, 2, 3]), "y");
    assert!(robustcert::onnx::load_bytes(&bytes(&m)).is_err());
    let m = model(13, vec![n], vec![], value_info("x", &[1, 2, 3]), "y");
    let g = robustcert::onnx::load_bytes(&bytes(&m)).unwrap().graph;
    assert_eq!(g.node(g.outputs[0]).shape, vec![2, 3]);
    let mut n = node("Flatten", "f", &["x"], &["y"]);
    attr_int(&mut n, "axis", 0);
    let m = model(9, vec![n], vec![], value_info("x", &[1, 2, 3]), "y");
    let g = robustcert::onnx::load_bytes(&bytes(&m)).unwrap().graph;
    assert_eq!(g.node(g.outputs[0]).shape, vec![1, 6]);
}

#[test]
fn shape_subgraph_folds_and_batches() {
    // x.view(x.size(0), -1) as exporters write it.
    let nodes = vec![
        node("Shape", "shape", &["x"], &["s"]),
        {
            let mut g = node("Gather", "gather", &["s", "zero"], &["b"]);
            attr_int(&mut g, "axis", 0);
            g
        },
        {
            let mut u = node("Unsqueeze", "unsq", &["b"], &["b1"]);
            attr_ints(&mut u, "axes", &[0]);
            u
        },
        {
            let mut c = node("Concat", "cat", &["b1", "minus_one"], &["target"]);
            attr_int(&mut c, "axis", 0);
            c
        },
        node("Reshape", "reshape", &["x", "target"], &["y"]),
    ];
    let mut zero = int_tensor("zero", &[0]);
    zero.dims = vec![];
    let m = model(11, nodes, vec![zero, int_tensor("minus_one", &[-1])], value_info("x", &[-1, 2, 3]), "y");
    let model = robustcert::onnx::load_bytes(&bytes(&m)).unwrap();
    let g = &model.graph;
    assert_eq!(g.nodes.len(), 2, "the shape subgraph folds into one Reshape");
    assert!(g.batchable);
    let x = Tensor::new(vec![4, 2, 3], (0..24).map(|v| v as f32).collect()).unwrap();
    let y = g.run_samples(&x).unwrap();
    assert_eq!(y.shape(), &[4, 6]);
    assert_eq!(y.data(), x.data());
}
