//! `robustcert smooth MODEL.onnx --input X.npy --sigma S [--n0 N0] [--n N] [--alpha A] [--seed K]
//! [--target-radius R] [--predict] [--noise sound|gaussian] [--batch B] [--replay REC] [--json]`:
//! randomized smoothing (Cohen, Rosenfeld & Kolter 2019; sound in floating point by default as in
//! Voracek & Hein 2023). One JSON line per input; the same arguments give byte-identical output.

use super::{print_json, Outcome};
use crate::smoothing::{self, Config, Sampler};
use crate::{data, onnx};
use anyhow::{bail, Context};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NoiseArg {
    /// Rounded Gaussian on the 1/255 grid (Voracek & Hein 2023): sound for f o round.
    Sound,
    /// Plain Gaussian in f32: Cohen et al.'s certificate, valid only in exact arithmetic.
    Gaussian,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ONNX model (a classifier with one input).
    pub model: PathBuf,
    /// Inputs: one input (the model's input shape, or [1, ...]) or a batch [B, ...]; each input
    /// gets its own result line and its own noise (keyed by its index).
    #[arg(long)]
    pub input: PathBuf,
    /// Noise standard deviation, in the units of the model input as supplied.
    #[arg(long, required_unless_present = "replay")]
    pub sigma: Option<f64>,
    /// Selection samples choosing the top class.
    #[arg(long, default_value_t = smoothing::DEFAULT_N0)]
    pub n0: u64,
    /// Estimation samples (fresh, never the selection samples); the cap of the sequential test.
    #[arg(long, default_value_t = smoothing::DEFAULT_N)]
    pub n: u64,
    /// Failure probability per input.
    #[arg(long, default_value_t = smoothing::DEFAULT_ALPHA)]
    pub alpha: f64,
    /// Seed of the ChaCha20 noise streams (recorded in the output).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Decide "certified radius >= R" sequentially, stopping as soon as the answer is known.
    #[arg(long)]
    pub target_radius: Option<f64>,
    /// Run PREDICT (two-sided binomial test, no radius) instead of CERTIFY.
    #[arg(long, conflicts_with = "target_radius")]
    pub predict: bool,
    /// Noise mode; `gaussian` is the plain (floating-point unsound) mode.
    #[arg(long, value_enum, default_value_t = NoiseArg::Sound)]
    pub noise: NoiseArg,
    /// Noisy samples per forward pass (does not change results).
    #[arg(long, default_value_t = smoothing::DEFAULT_BATCH)]
    pub batch: usize,
    /// Recompute the results recorded in this file (JSON lines printed by `smooth --json`) and
    /// report any difference (exit 1 on a difference).
    #[arg(long)]
    pub replay: Option<PathBuf>,
    /// Print JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
}

const NOISE_SPACE: &str = "model input as supplied (pixel space when normalisation is inside the graph)";
const RNG: &str = "ChaCha20, key = (\"rcsmooth\", seed, input index), nonce = stream << 56 | sample index; \
                   streams 0 selection, 1 estimation, 2 predict";

/// What a run computes, as recorded in its output.
#[derive(Debug, Clone)]
struct Params {
    sigma: f64,
    sound: bool,
    n0: u64,
    n: u64,
    alpha: f64,
    seed: u64,
    target_radius: Option<f64>,
    predict: bool,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let bytes = std::fs::read(&a.model).with_context(|| format!("cannot read {}", a.model.display()))?;
    let model_sha = hex(&Sha256::digest(&bytes));
    let m = onnx::load_file(&a.model).with_context(|| format!("cannot import {}", a.model.display()))?;
    let x = data::read_array(&a.input).with_context(|| format!("cannot read {}", a.input.display()))?;
    let samples = m.graph.as_samples(x).context("the input does not fit the model")?;
    let sampler = Sampler::new(&m.graph)?;
    let count = samples.shape()[0];
    let len = sampler.sample_len();
    let rows: Vec<&[f64]> = samples.data().chunks(len).collect();

    if let Some(rec) = &a.replay {
        let text = std::fs::read_to_string(rec).with_context(|| format!("cannot read {}", rec.display()))?;
        let mut all_match = true;
        for (line_no, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let record: Value = serde_json::from_str(line)
                .with_context(|| format!("{} line {}: not JSON", rec.display(), line_no + 1))?;
            let (index, p) = params_from_record(&record)
                .with_context(|| format!("{} line {}: not a smoothing record", rec.display(), line_no + 1))?;
            let Some(row) = rows.get(index as usize) else {
                bail!("record line {} is for input {index}, but the input file holds {count}", line_no + 1);
            };
            let now = compute(&sampler, &p, row, index, a.batch, &model_sha)?;
            let diffs = differences(&record, &now);
            all_match &= diffs.is_empty();
            let v = json!({
                "replay": if diffs.is_empty() { "match" } else { "mismatch" },
                "index": index,
                "differences": diffs,
            });
            if a.json {
                print_json(&v)?;
            } else {
                println!("input {index}: {} {}", v["replay"].as_str().unwrap_or(""), v["differences"]);
            }
        }
        return Ok(if all_match { Outcome::Ok } else { Outcome::Failed });
    }

    let p = Params {
        sigma: a.sigma.context("--sigma is required")?,
        sound: a.noise == NoiseArg::Sound,
        n0: a.n0,
        n: a.n,
        alpha: a.alpha,
        seed: a.seed,
        target_radius: a.target_radius,
        predict: a.predict,
    };
    for (i, row) in rows.iter().enumerate() {
        let v = compute(&sampler, &p, row, i as u64, a.batch, &model_sha).with_context(|| format!("input {i}"))?;
        if a.json {
            print_json(&v)?;
        } else {
            print_text(&v);
        }
    }
    Ok(Outcome::Ok)
}

fn compute(
    sampler: &Sampler,
    p: &Params,
    row: &[f64],
    index: u64,
    batch: usize,
    model_sha: &str,
) -> anyhow::Result<Value> {
    let cfg = Config::new(p.sigma, p.sound, p.n0, p.n, p.alpha, p.seed, batch)?;
    let mut h = Sha256::new();
    for v in row {
        h.update(v.to_le_bytes());
    }
    let input_sha = hex(&h.finalize());
    let sound = cfg.noise.sound_in_floating_point();
    let certifies = if sound {
        "the smoothed classifier g(x) = argmax_c P(f(round(x + delta)) = c), delta ~ N(0, sigma^2 I), \
         round to the 1/255 grid then f32; not the base network f"
    } else {
        "the smoothed classifier g(x) = argmax_c P(f(x + delta) = c), delta ~ N(0, sigma^2 I), in exact real \
         arithmetic only (plain Gaussian mode: not sound for f as it runs in floating point); not the base network f"
    };
    let mut v = json!({
        "index": index,
        "seed": p.seed,
        "sigma": p.sigma,
        "n0": p.n0,
        "n": p.n,
        "alpha": p.alpha,
        "noise": cfg.noise.name(),
        "sound_in_floating_point": sound,
        "noise_space": NOISE_SPACE,
        "certifies": certifies,
        "norm": "L2",
        "rng": RNG,
        "input_sha256": input_sha,
        "model_sha256": model_sha,
    });
    let o = v.as_object_mut().expect("object");
    if p.predict {
        let r = smoothing::predict(sampler, &cfg, row, index)?;
        o.insert("mode".into(), json!("predict"));
        o.insert("prediction".into(), json!(r.prediction));
        o.insert("radius".into(), Value::Null);
        o.insert("n_a".into(), json!(r.n_a));
        o.insert("n_b".into(), json!(r.n_b));
        o.insert("p_value".into(), json!(r.p_value));
        o.insert("counts".into(), json!(r.counts));
        o.insert("samples_used".into(), json!(r.samples_used));
        return Ok(v);
    }
    let c = smoothing::certify(sampler, &cfg, row, index, p.target_radius)?;
    let mode = if c.sequential.is_some() { "certify_sequential" } else { "certify" };
    o.insert("mode".into(), json!(mode));
    o.insert("prediction".into(), json!(c.prediction));
    o.insert("radius".into(), json!(c.radius));
    o.insert("abstain".into(), json!(c.prediction.is_none()));
    o.insert("class".into(), json!(c.class));
    o.insert("base_class".into(), json!(c.base_class));
    o.insert("n_a".into(), json!(c.n_a));
    o.insert("n_estimation".into(), json!(c.n_estimation));
    o.insert("samples_used".into(), json!(c.samples_used));
    o.insert("p_a_lower".into(), json!(c.p_a_lower));
    o.insert("p_margin".into(), json!(c.p_margin));
    o.insert("counts_selection".into(), json!(c.counts_selection));
    o.insert("counts".into(), json!(c.counts));
    if let Some(s) = &c.sequential {
        o.insert("target_radius".into(), json!(s.target_radius));
        o.insert("decision".into(), json!(s.decision));
        o.insert("looks".into(), json!(s.looks));
        o.insert("schedule".into(), json!(s.schedule));
        o.insert("alpha_per_look".into(), json!(s.alpha_per_look));
    }
    Ok(v)
}

fn params_from_record(r: &Value) -> anyhow::Result<(u64, Params)> {
    let f = |k: &str| r[k].as_f64().with_context(|| format!("missing number '{k}'"));
    let u = |k: &str| r[k].as_u64().with_context(|| format!("missing integer '{k}'"));
    let noise = r["noise"].as_str().context("missing 'noise'")?;
    let mode = r["mode"].as_str().context("missing 'mode'")?;
    let sound = match noise {
        "rounded_gaussian_1/255" => true,
        "gaussian_plain" => false,
        other => bail!("unknown noise '{other}'"),
    };
    let target_radius = match mode {
        "certify_sequential" => Some(f("target_radius")?),
        "certify" | "predict" => None,
        other => bail!("unknown mode '{other}'"),
    };
    let p = Params {
        sigma: f("sigma")?,
        sound,
        n0: u("n0")?,
        n: u("n")?,
        alpha: f("alpha")?,
        seed: u("seed")?,
        target_radius,
        predict: mode == "predict",
    };
    Ok((u("index")?, p))
}

fn differences(record: &Value, now: &Value) -> Vec<Value> {
    let (Some(a), Some(b)) = (record.as_object(), now.as_object()) else {
        return vec![json!({"field": "", "record": record, "recomputed": now})];
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| json!({"field": k, "record": a.get(k), "recomputed": b.get(k)}))
        .collect()
}

fn print_text(v: &Value) {
    let idx = &v["index"];
    match v["mode"].as_str() {
        Some("predict") => println!(
            "input {idx}: predict {} (n_a {}, n_b {}, p-value {})",
            v["prediction"], v["n_a"], v["n_b"], v["p_value"]
        ),
        _ => {
            println!(
                "input {idx}: prediction {} radius {} (class {}, n_a {}/{}, p_A >= {}, {} samples, sigma {}, noise {})",
                v["prediction"],
                v["radius"],
                v["class"],
                v["n_a"],
                v["n_estimation"],
                v["p_a_lower"],
                v["samples_used"],
                v["sigma"],
                v["noise"]
            );
            if let Some(d) = v["decision"].as_str() {
                println!("  target radius {}: {d} after {} looks", v["target_radius"], v["looks"]);
            }
            println!("  certifies {}", v["certifies"].as_str().unwrap_or(""));
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
