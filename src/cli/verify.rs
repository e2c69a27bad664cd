//! `robustcert verify MODEL.onnx SPEC.vnnlib --timeout SECONDS [--counterexample FILE]`:
//! decides a VNN-LIB property. The first line of stdout is the verdict (`sat`, `unsat`,
//! `timeout` or `unknown`); details follow on lines starting with `#`. Exit code 0 for every
//! verdict (2 for errors: unreadable files, a property that does not fit the model).

use super::Outcome;
use crate::onnx;
use crate::spec::vnnlib;
use crate::verify::{self, Options, Verdict};
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ONNX model (one input; Y_j are the elements of its first output).
    pub model: PathBuf,
    /// The VNN-LIB property (it states the violation: sat = a counterexample exists).
    pub spec: PathBuf,
    /// Wall-clock limit in seconds, loading included; the answer is `timeout` when it passes.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// On `sat`, write the counterexample here in the VNN-COMP format `((X_0 v) ... (Y_0 v) ...)`.
    #[arg(long)]
    pub counterexample: Option<PathBuf>,
    /// Seed of the attacks' random restarts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

fn answer(v: Verdict, detail: &str, elapsed: f64, extra: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}\n# {detail}\n# time {elapsed:.3} s{extra}");
    let _ = out.flush();
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let t0 = Instant::now();
    if !(a.timeout > 0.0 && a.timeout.is_finite()) {
        anyhow::bail!("--timeout must be a positive number of seconds, got {}", a.timeout);
    }
    let limit = Duration::from_secs_f64(a.timeout.min(1e7));
    let text = std::fs::read_to_string(&a.spec).with_context(|| format!("cannot read {}", a.spec.display()))?;
    let prop = vnnlib::parse(&text).with_context(|| format!("{}: invalid VNN-LIB", a.spec.display()))?;
    let m = onnx::load_file(&a.model).with_context(|| format!("cannot import {}", a.model.display()))?;
    verify::check_sizes(&m.graph, &prop)
        .with_context(|| format!("{} does not fit {}", a.spec.display(), a.model.display()))?;
    // The engines check the deadline between steps; a single step (one CROWN pass on a large
    // model) cannot be interrupted, so the search runs on a worker and this thread answers
    // `timeout` itself when the limit passes.
    let hard = t0 + limit;
    let mut opts = Options::with_timeout(Duration::ZERO);
    // The search stops a little early (5% of the limit, at most 1 s) so its own `timeout` is
    // the usual answer and this thread's is the backstop.
    let margin = (limit / 20).min(Duration::from_secs(1));
    opts.deadline = hard.checked_sub(margin).unwrap_or(hard).max(t0);
    opts.seed = a.seed;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = verify::verify(&m.graph, &prop, &opts);
        let _ = tx.send(r);
    });
    let result = rx.recv_timeout(hard.saturating_duration_since(Instant::now()));
    let elapsed = t0.elapsed().as_secs_f64();
    match result {
        Err(_) => {
            answer(Verdict::Timeout, "time ran out", elapsed, "");
            // The worker may still be inside a bound computation: end the process now.
            std::process::exit(0);
        }
        Ok(r) => {
            let o = r.context("verification failed")?;
            let mut extra = format!("\n# subdomains {} (max open {})", o.stats.domains, o.stats.max_open);
            if o.stats.refine_subdomains > 0 {
                extra += &format!("\n# subdomains refining intermediate bounds {}", o.stats.refine_subdomains);
            }
            if let (Verdict::Sat, Some(cex), Some(path)) = (o.verdict, &o.counterexample, &a.counterexample) {
                std::fs::write(path, cex.to_vnncomp()).with_context(|| format!("cannot write {}", path.display()))?;
            }
            answer(o.verdict, &o.detail, elapsed, &extra);
        }
    }
    Ok(Outcome::Ok)
}
