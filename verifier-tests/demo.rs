//! `robustcert demo`: runs the bundled synthetic demo on 8 images into a temporary directory;
//! both certificates must verify with `check-cert`, and the report must be one self-contained
//! HTML file with an SVG plot that says the data is synthetic.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_robustcert"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

#[test]
fn demo_runs_signs_and_reports() {
    let dir = std::env::temp_dir().join(format!("robustcert-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let started = Instant::now();
    let out = bin().args(["demo", "--count", "8", "--out"]).arg(&dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("throw-away key"), "{stdout}");
    assert!(stdout.contains("robustcert keygen"), "{stdout}");
    assert!(stdout.contains("certified accuracy"), "{stdout}");

    let public = dir.join("robustcert.pub.pem");
    assert!(public.exists());
    for name in ["dermacnn-crown-linf.intoto.jsonl", "dermacnn-smoothing-l2.intoto.jsonl"] {
        let cert = dir.join(name);
        assert!(stdout.contains(&cert.display().to_string()), "{stdout}");
        let check = bin()
            .arg("check-cert")
            .arg(&cert)
            .arg("--key")
            .arg(&public)
            .arg("--model")
            .arg(Path::new("demo").join("dermacnn.onnx"))
            .arg("--data")
            .arg(dir.join("demo_inputs.npy"))
            .arg("--labels")
            .arg(dir.join("demo_labels.npy"))
            .output()
            .unwrap();
        assert_eq!(
            check.status.code(),
            Some(0),
            "{name}: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    }

    let report = dir.join("report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg"));
    assert!(html.to_lowercase().contains("synthetic"));
    assert!(html.contains("smoothed classifier g"));
    let lower = html.to_lowercase();
    for attr in ["src=", "href=", "url("] {
        for (i, _) in lower.match_indices(attr) {
            let rest = lower[i + attr.len()..].trim_start_matches(['"', '\'', ' ']);
            assert!(
                !rest.starts_with("http://") && !rest.starts_with("https://") && !rest.starts_with("//"),
                "remote resource in the report: {}",
                &html[i..(i + 80).min(html.len())]
            );
        }
    }
    assert!(!lower.contains("http://") && !lower.contains("https://"), "the report names a remote address");
    // One file: nothing else was written for the report.
    assert!(!dir.join("report_files").exists());
    let secs = started.elapsed().as_secs_f64();
    assert!(secs < 30.0, "the demo on 8 images took {secs:.1} s");
    let _ = std::fs::remove_dir_all(&dir);
}
