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

/// The first sample of a fixture's inputs, written as its own .npy.
fn one_sample(name: &str, dir: &std::path::Path) -> (std::path::PathBuf, Vec<f32>) {
    let x = robustcert::data::read_array(fixtures().join(format!("models/{name}.input.npy"))).unwrap();
    let row: usize = x.shape()[1..].iter().product();
    let mut shape = x.shape().to_vec();
    shape[0] = 1;
    let data: Vec<f32> = x.data()[..row].iter().map(|&v| v as f32).collect();
    let p = dir.join(format!("{name}.one.npy"));
    robustcert::data::write_npy(&p, &robustcert::ir::Tensor::new(shape, data.clone()).unwrap()).unwrap();
    (p, data)
}

#[test]
fn bounds_and_radius_json_contract() {
    let dir = std::env::temp_dir().join(format!("robustcert-cli-bounds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (x, data) = one_sample("mlp_relu", &dir);
    let m = robustcert::onnx::load_file(model_path("mlp_relu")).unwrap();
    let shape = m.graph.input_info[0].shape.clone();
    let y = m
        .graph
        .forward(&[&robustcert::ir::Tensor::new(shape.clone(), data.iter().map(|&v| v as f64).collect()).unwrap()])
        .unwrap();
    let y = y[0].data().to_vec();
    for method in ["ibp", "crown", "alpha-crown"] {
        let (code, out, err) = robustcert(&[
            "bounds",
            &model_path("mlp_relu"),
            "--input",
            x.to_str().unwrap(),
            "--eps",
            "0.01",
            "--norm",
            "inf",
            "--method",
            method,
            "--clip",
            "0",
            "1",
            "--json",
        ]);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let lo: Vec<f64> = v["lower"].as_array().unwrap().iter().map(|a| a.as_f64().unwrap()).collect();
        let hi: Vec<f64> = v["upper"].as_array().unwrap().iter().map(|a| a.as_f64().unwrap()).collect();
        assert_eq!(lo.len(), y.len());
        for j in 0..y.len() {
            assert!(lo[j] <= y[j] && y[j] <= hi[j], "{method}: output {j} {} outside [{}, {}]", y[j], lo[j], hi[j]);
        }
        assert!(v["guarantee"].as_str().unwrap().contains("real-valued"));
    }
    // radius: the label is the clean prediction; every sampled point inside the certified
    // L2 ball keeps it.
    let label = y.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
    let (code, out, err) = robustcert(&[
        "radius",
        &model_path("mlp_relu"),
        "--input",
        x.to_str().unwrap(),
        "--label",
        &label.to_string(),
        "--norm",
        "2",
        "--method",
        "crown",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let r = v["radius"].as_f64().unwrap();
    assert!(r > 0.0 && r < 16.0, "{r}");
    let mut s = 0x2545f4914f6cdd1du64;
    for _ in 0..300 {
        let dirn: Vec<f64> = (0..data.len())
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect();
        let n = dirn.iter().map(|d| d * d).sum::<f64>().sqrt();
        let p: Vec<f64> = data.iter().zip(&dirn).map(|(&c, d)| c as f64 + r * d / n).collect();
        let out = m.graph.forward(&[&robustcert::ir::Tensor::new(shape.clone(), p).unwrap()]).unwrap();
        let o = out[0].data();
        let top = o.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert_eq!(top, label, "a point at the certified radius changed the label");
    }
    // Bad arguments are errors with exit 2.
    let (code, _, err) =
        robustcert(&["radius", &model_path("mlp_relu"), "--input", x.to_str().unwrap(), "--label", "99"]);
    assert_eq!(code, 2);
    assert!(err.contains("label 99"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Radii beyond what a certificate's 1e-6 grid can hold are refused at once; `--eps 1e303`
/// used to search for a grid point forever.
#[test]
fn certify_refuses_radii_beyond_the_grid() {
    let dir = std::env::temp_dir().join(format!("robustcert-cli-radii-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key");
    let (code, _, err) = robustcert(&["keygen", "--out", key.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let key = key.join("robustcert.key.pem");
    let model = root().join("demo/dermacnn.onnx");
    let data = root().join("demo/synthetic_dermamnist.npz");
    let out = dir.join("out");
    let base = [
        "certify",
        model.to_str().unwrap(),
        "--dataset",
        data.to_str().unwrap(),
        "--method",
        "crown",
        "--limit",
        "1",
        "--key",
        key.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    for extra in [
        &["--eps", "1e303"][..],
        &["--eps", "1e12"],
        &["--eps", "0.01", "--radii", "0.01,1e303"],
        &["--eps", "0.01", "--criteria", "certified_accuracy@1e303>=0.5"],
    ] {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        let (code, _, err) = robustcert(&args);
        assert_eq!(code, 2, "{extra:?}: {err}");
        assert!(err.contains("beyond the largest radius a certificate records"), "{extra:?}: {err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `--threads` takes 1 to 1024: 100000 OS threads took minutes to start before any work.
#[test]
fn thread_counts_out_of_range_are_refused() {
    for cmd in [&["certify", "m.onnx", "--method", "crown", "--key", "k", "--out", "o"][..], &["demo"], &["check"]] {
        for bad in ["0", "100000", "many"] {
            let args: Vec<&str> = cmd.iter().copied().chain(["--threads", bad]).collect();
            let (code, _, err) = robustcert(&args);
            assert_eq!(code, 2, "{args:?}: {err}");
            assert!(err.contains("from 1 to 1024"), "{args:?}: {err}");
        }
    }
}

/// A reader that closes the pipe early (`robustcert predict ... | head`) ends the process
/// quietly, by SIGPIPE as for other Unix tools, never with a "Broken pipe" panic. The output
/// (3000 rows) is larger than a pipe's buffer, so the write that fails is certain to happen.
#[cfg(unix)]
#[test]
fn closed_stdout_pipe_ends_quietly() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let dir = std::env::temp_dir().join(format!("robustcert-cli-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let x = dir.join("many.npy");
    let rows = 3000;
    let data: Vec<f32> = (0..rows * 784).map(|i| (i % 255) as f32 / 255.0).collect();
    robustcert::data::write_npy(&x, &robustcert::ir::Tensor::new(vec![rows, 1, 28, 28], data).unwrap()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_robustcert"))
        .args(["predict", &model_path("mlp_relu"), "--input", x.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.signal(), Some(13), "{status:?} {err}");
    std::fs::remove_dir_all(&dir).ok();
}
