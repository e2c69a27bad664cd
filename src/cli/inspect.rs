//! `robustcert inspect MODEL.onnx [--json]`.

use super::{print_json, Outcome};
use crate::onnx;
use anyhow::Context;
use serde_json::json;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ONNX model.
    pub model: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let m = onnx::load_file(&a.model).with_context(|| format!("cannot import {}", a.model.display()))?;
    let g = &m.graph;
    let inputs: Vec<_> = g
        .input_info
        .iter()
        .map(|i| json!({"name": i.name, "shape": i.shape, "dynamic_batch": i.dynamic_batch}))
        .collect();
    let outputs: Vec<_> = onnx::output_shapes(g).into_iter().map(|(n, s)| json!({"name": n, "shape": s})).collect();
    if a.json {
        print_json(&json!({
            "inputs": inputs,
            "outputs": outputs,
            "ops": m.info.op_counts,
            "parameters": g.parameter_count(),
            "opset": m.info.opset,
            "ir_version": m.info.ir_version,
            "producer": m.info.producer,
            "ir_nodes": g.nodes.len(),
            "batchable": g.batchable,
            "skipped_outputs": m.info.skipped_outputs,
        }))?;
        return Ok(Outcome::Ok);
    }
    println!("model      {}", a.model.display());
    println!("producer   {} (IR version {}, opset {})", m.info.producer, m.info.ir_version, m.info.opset);
    for i in &g.input_info {
        let batch = if i.dynamic_batch { " (dynamic batch)" } else { "" };
        println!("input      {} {:?}{batch}", i.name, i.shape);
    }
    for (n, s) in onnx::output_shapes(g) {
        println!("output     {n} {s:?}");
    }
    for s in &m.info.skipped_outputs {
        println!("output     {s} (left out)");
    }
    println!("parameters {}", g.parameter_count());
    let ops: Vec<String> = m.info.op_counts.iter().map(|(k, v)| format!("{k} x{v}")).collect();
    println!("operators  {}", ops.join(", "));
    println!(
        "IR         {} nodes after folding; {}",
        g.nodes.len(),
        if g.batchable { "batches along axis 0" } else { "evaluated one sample at a time" }
    );
    Ok(Outcome::Ok)
}
