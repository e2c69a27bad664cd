//! `robustcert predict MODEL.onnx --input X.npy [--json]`.

use super::{print_json, Outcome};
use crate::{data, onnx};
use anyhow::Context;
use serde_json::json;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ONNX model.
    pub model: PathBuf,
    /// Inputs: a float32 .npy (or one-array .npz) shaped as the model input, or [batch, ...input
    /// dims without the batch axis].
    #[arg(long)]
    pub input: PathBuf,
    /// Compute in f64 instead of f32 (f32 is what devices run).
    #[arg(long)]
    pub f64: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let m = onnx::load_file(&a.model).with_context(|| format!("cannot import {}", a.model.display()))?;
    let x = data::read_array(&a.input).with_context(|| format!("cannot read {}", a.input.display()))?;
    let rows: Vec<Vec<f64>> = if a.f64 {
        let s = m.graph.as_samples(x)?;
        to_rows(m.graph.run_samples(&s)?.map(|v| v))
    } else {
        let s = m.graph.as_samples(x.map(|v| v as f32))?;
        to_rows(m.graph.run_samples(&s)?.map(|v| v as f64))
    };
    if a.json {
        // f32 results are printed from their f64 widening, which is exact.
        print_json(&json!({ "outputs": rows, "output_name": m.graph.output_names[0] }))?;
        return Ok(Outcome::Ok);
    }
    for (i, r) in rows.iter().enumerate() {
        let top = r
            .iter()
            .enumerate()
            .fold(None, |b: Option<(usize, f64)>, (j, &v)| match b {
                Some((_, bv)) if bv >= v => b,
                _ => Some((j, v)),
            })
            .map_or(String::from("-"), |(j, _)| j.to_string());
        let vals: Vec<String> = r.iter().map(|v| format!("{v:.6}")).collect();
        println!("{i}: top {top}  [{}]", vals.join(", "));
    }
    Ok(Outcome::Ok)
}

fn to_rows(t: crate::ir::Tensor<f64>) -> Vec<Vec<f64>> {
    let n = t.shape()[0];
    let len = t.len().checked_div(n).unwrap_or(0);
    t.data().chunks(len.max(1)).map(|c| c.to_vec()).collect()
}
