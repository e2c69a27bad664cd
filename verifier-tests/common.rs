//! Shared helpers: fixture paths, tolerance checks, and a small builder for hand-made ONNX
//! models (hostile and edge cases).

#![allow(dead_code)]

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::type_proto::{self, Value as TypeValue};
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};
use std::path::PathBuf;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures() -> PathBuf {
    root().join("verifier-tests/fixtures")
}

/// `../shared/vnncomp` beside the project, when present.
pub fn vnncomp() -> Option<PathBuf> {
    let p = root().join("../shared/vnncomp");
    p.is_dir().then_some(p)
}

/// numpy.allclose-style comparison: |a - b| <= atol + rtol * |b|.
pub fn close(a: f64, b: f64, rtol: f64, atol: f64) -> bool {
    (a - b).abs() <= atol + rtol * b.abs()
}

pub fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    for &d in dims {
        let mut dim = Dimension::new();
        dim.value =
            Some(if d < 0 { dimension::Value::DimParam("batch".into()) } else { dimension::Value::DimValue(d) });
        shape.dim.push(dim);
    }
    let mut tt = type_proto::Tensor::new();
    tt.elem_type = 1;
    tt.shape = Some(shape).into();
    let mut ty = TypeProto::new();
    ty.value = Some(TypeValue::TensorType(tt));
    let mut vi = ValueInfoProto::new();
    vi.name = name.into();
    vi.type_ = Some(ty).into();
    vi
}

pub fn float_tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = 1;
    t.raw_data = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    t
}

pub fn int_tensor(name: &str, data: &[i64]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = vec![data.len() as i64];
    t.data_type = 7;
    t.int64_data = data.to_vec();
    t
}

pub fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.name = name.into();
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = outputs.iter().map(|s| s.to_string()).collect();
    n
}

pub fn attr_int(n: &mut NodeProto, name: &str, v: i64) {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INT.into();
    a.i = v;
    n.attribute.push(a);
}

pub fn attr_ints(n: &mut NodeProto, name: &str, v: &[i64]) {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INTS.into();
    a.ints = v.to_vec();
    n.attribute.push(a);
}

pub fn attr_float(n: &mut NodeProto, name: &str, v: f32) {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::FLOAT.into();
    a.f = v;
    n.attribute.push(a);
}

/// A model from nodes, initializers, one input and one output.
pub fn model(
    opset: i64,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    input: ValueInfoProto,
    output: &str,
) -> ModelProto {
    let mut g = GraphProto::new();
    g.name = "test".into();
    g.node = nodes;
    g.initializer = inits;
    g.input = vec![input];
    g.output = vec![value_info(output, &[])];
    let mut m = ModelProto::new();
    m.ir_version = 8;
    let mut os = OperatorSetIdProto::new();
    os.version = opset;
    m.opset_import = vec![os];
    m.graph = Some(g).into();
    m
}

pub fn bytes(m: &ModelProto) -> Vec<u8> {
    m.write_to_bytes().expect("serialisable")
}

/// A valid 2-layer MLP [batch, 4] -> 3, for mutations.
pub fn small_mlp() -> ModelProto {
    let w1: Vec<f32> = (0..20).map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0).collect();
    let w2: Vec<f32> = (0..15).map(|i| ((i * 5 % 7) as f32 - 3.0) / 3.0).collect();
    let mut g1 = node("Gemm", "fc1", &["x", "w1", "b1"], &["h"]);
    attr_int(&mut g1, "transB", 1);
    let relu = node("Relu", "relu", &["h"], &["r"]);
    let g2 = node("Gemm", "fc2", &["r", "w2"], &["y"]);
    model(
        13,
        vec![g1, relu, g2],
        vec![
            float_tensor("w1", &[5, 4], &w1),
            float_tensor("b1", &[5], &[0.1, -0.2, 0.3, 0.0, 0.5]),
            float_tensor("w2", &[5, 3], &w2),
        ],
        value_info("x", &[-1, 4]),
        "y",
    )
}
