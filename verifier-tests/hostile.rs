//! Bad models are errors with a clear message, never panics, hangs or huge allocations.

use crate::common::*;
use proptest::prelude::*;
use robustcert::ir::Tensor;
use robustcert::onnx::load_bytes;
use robustcert::Error;

#[test]
fn valid_mlp_runs() {
    let m = load_bytes(&bytes(&small_mlp())).unwrap();
    assert!(m.graph.batchable);
    let x = Tensor::new(vec![2, 4], vec![1.0f32, 0.5, -0.5, 2.0, 0.0, 0.0, 0.0, 0.0]).unwrap();
    let y = m.graph.run_samples(&x).unwrap();
    assert_eq!(y.shape(), &[2, 3]);
}

#[test]
fn garbage_bytes_are_a_protobuf_error() {
    for junk in [&b"not an onnx model"[..], &[0xff; 64][..], &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f][..]] {
        match load_bytes(junk) {
            Err(Error::Protobuf(_)) | Err(Error::InvalidModel(_)) => {}
            other => panic!("expected an error, got {other:?}"),
        }
    }
    // Empty bytes decode as an empty model, which has no graph.
    assert!(load_bytes(&[]).unwrap_err().to_string().contains("no graph"));
}

#[test]
fn every_unsupported_op_listed_at_once() {
    let mut m = small_mlp();
    let g = m.graph.as_mut().unwrap();
    g.node.push(node("LSTM", "rnn_0", &["y"], &["z"]));
    g.node.push(node("Einsum", "mix", &["z"], &["out"]));
    let mut custom = node("FancyOp", "custom_1", &["out"], &["final"]);
    custom.domain = "com.example".into();
    g.node.push(custom);
    g.output[0].name = "final".into();
    let err = load_bytes(&bytes(&m)).unwrap_err();
    let msg = err.to_string();
    for want in [
        "LSTM",
        "rnn_0",
        "Einsum",
        "mix",
        "com.example::FancyOp",
        "custom_1",
        "opset 13",
        "supported operators:",
        "Conv",
    ] {
        assert!(msg.contains(want), "message lacks '{want}':\n{msg}");
    }
    assert!(msg.starts_with("3 unsupported"), "{msg}");
}

#[test]
fn nan_and_inf_weights_refused() {
    for bad in [f32::NAN, f32::INFINITY] {
        let mut m = small_mlp();
        let init = &mut m.graph.as_mut().unwrap().initializer[0];
        init.raw_data[4..8].copy_from_slice(&bad.to_le_bytes());
        let err = load_bytes(&bytes(&m)).unwrap_err();
        assert!(matches!(err, Error::NonFinite(_)), "{err}");
        assert!(err.to_string().contains("fc1"), "{err}");
    }
}

#[test]
fn absurd_tensor_sizes_refused_before_allocation() {
    let mut m = small_mlp();
    let init = &mut m.graph.as_mut().unwrap().initializer[0];
    init.dims = vec![1_000_000, 1_000_000];
    let err = load_bytes(&bytes(&m)).unwrap_err();
    assert!(err.to_string().contains("exceeds"), "{err}");
    // Declared size matches no data: refused, not zero-filled.
    let mut m = small_mlp();
    m.graph.as_mut().unwrap().initializer[0].dims = vec![50, 4];
    assert!(load_bytes(&bytes(&m)).unwrap_err().to_string().contains("bytes of raw data"));
    // An absurd input shape.
    let mut m = small_mlp();
    m.graph.as_mut().unwrap().input[0] = value_info("x", &[1, 1 << 40]);
    assert!(load_bytes(&bytes(&m)).is_err());
}

#[test]
fn shape_mismatch_is_an_error() {
    let mut m = small_mlp();
    m.graph.as_mut().unwrap().input[0] = value_info("x", &[1, 7]);
    let err = load_bytes(&bytes(&m)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("fc1") && msg.contains("Gemm"), "{msg}");
    // Wrong input shape at run time.
    let m = load_bytes(&bytes(&small_mlp())).unwrap();
    let x = Tensor::new(vec![2, 5], vec![0.0f32; 10]).unwrap();
    assert!(m.graph.run_samples(&x).is_err());
}

#[test]
fn external_data_refused_with_advice() {
    let mut m = small_mlp();
    let init = &mut m.graph.as_mut().unwrap().initializer[0];
    init.raw_data.clear();
    init.data_location = onnx_protobuf::tensor_proto::DataLocation::EXTERNAL.into();
    let mut kv = onnx_protobuf::StringStringEntryProto::new();
    kv.key = "location".into();
    kv.value = "weights.bin".into();
    init.external_data.push(kv);
    let msg = load_bytes(&bytes(&m)).unwrap_err().to_string();
    assert!(msg.contains("external file"), "{msg}");
}

#[test]
fn missing_inputs_cycles_and_opsets() {
    let mut m = small_mlp();
    m.graph.as_mut().unwrap().node[1].input[0] = "nowhere".into();
    assert!(load_bytes(&bytes(&m)).unwrap_err().to_string().contains("nowhere"));

    let mut m = small_mlp();
    {
        let g = m.graph.as_mut().unwrap();
        g.node[0].input[0] = "y".into(); // fc1 now depends on fc2's output
    }
    assert!(load_bytes(&bytes(&m)).is_err());

    let mut m = small_mlp();
    m.opset_import[0].version = 99;
    assert!(load_bytes(&bytes(&m)).unwrap_err().to_string().contains("opset 99"));
}

/// Feeds mutated model bytes to the importer and, when it accepts them, to the forward pass.
fn survive(data: &[u8]) {
    if let Ok(m) = load_bytes(data) {
        let g = &m.graph;
        if g.inputs.len() == 1 && g.input_info[0].shape.iter().product::<usize>() <= 1 << 16 {
            let shape = g.input_info[0].shape.clone();
            let n = shape.iter().product();
            let x = Tensor::new(shape, vec![0.5f32; n]).unwrap();
            let _ = g.forward(&[&x]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_bytes_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8)
    ) {
        let mut data = bytes(&small_mlp());
        for (at, byte, kind) in edits {
            if data.is_empty() { break; }
            let i = at.index(data.len());
            match kind {
                0 => data[i] = byte,
                1 => data.insert(i, byte),
                _ => { data.remove(i); }
            }
        }
        survive(&data);
    }

    #[test]
    fn truncated_bytes_never_panic(cut in any::<prop::sample::Index>()) {
        let data = bytes(&small_mlp());
        survive(&data[..cut.index(data.len())]);
    }
}

#[test]
fn mutated_fixture_models_never_panic() {
    // Heavier models: a fixed, seeded set of mutations over every committed fixture.
    let dir = fixtures().join("models");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut state = 0x9e3779b97f4a7c15u64;
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "onnx") {
            continue;
        }
        let orig = std::fs::read(&p).unwrap();
        for _ in 0..40 {
            let mut data = orig.clone();
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let i = (state as usize) % data.len();
                data[i] = (state >> 32) as u8;
            }
            survive(&data);
        }
    }
}
