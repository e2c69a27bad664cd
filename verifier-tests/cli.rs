//! The command-line contract: `inspect` and `predict` output, exit codes, error messages.

use crate::common::*;
use std::process::Command;

fn robustcert(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_robustcert")).args(args).output().expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn model_path(name: &str) -> String {
    fixtures().join(format!("models/{name}.onnx")).to_string_lossy().into_owned()
}

#[test]
fn inspect_json_contract() {
    let (code, out, err) = robustcert(&["inspect", &model_path("mobilenetv2_035"), "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["inputs"][0]["shape"], serde_json::json!([1, 3, 64, 64]));
    assert!(v["inputs"][0]["name"].is_string());
    assert_eq!(v["outputs"][0]["shape"], serde_json::json!([1, 7]));
    assert!(v["ops"]["Conv"].as_u64().unwrap() > 30);
    assert!(v["parameters"].as_u64().unwrap() > 100_000);
}

#[test]
fn predict_json_contract() {
    let input = fixtures().join("models/mlp_relu.input.npy");
    let (code, out, err) =
        robustcert(&["predict", &model_path("mlp_relu"), "--input", input.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v["outputs"].as_array().unwrap();
    let want = robustcert::data::read_array(fixtures().join("models/mlp_relu.output.npy")).unwrap();
    assert_eq!(rows.len(), want.shape()[0]);
    for (r, w) in rows.iter().zip(want.data().chunks(want.shape()[1])) {
        for (a, b) in r.as_array().unwrap().iter().zip(w) {
            assert!(close(a.as_f64().unwrap(), *b, 1e-4, 1e-5));
        }
    }
}

#[test]
fn errors_exit_2_with_cause() {
    let dir = std::env::temp_dir().join(format!("robustcert-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.onnx");
    std::fs::write(&bad, b"\x08\x07garbage").unwrap();
    let (code, _, err) = robustcert(&["inspect", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot import") && err.contains("caused by"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let (code, _, err) = robustcert(&["inspect", dir.join("missing.onnx").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.onnx"), "{err}");

    // An input of the wrong shape.
    let x = dir.join("x.npy");
    robustcert::data::write_npy(&x, &robustcert::ir::Tensor::new(vec![2, 5], vec![0.0f32; 10]).unwrap()).unwrap();
    let (code, _, err) = robustcert(&["predict", &model_path("mlp_relu"), "--input", x.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("does not fit"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
