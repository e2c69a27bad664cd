//! `robustcert bounds` and `robustcert radius`: sound output bounds over an Lp ball around one
//! input, and the certified radius of its label.

use super::{print_json, Outcome};
use crate::bounds::radius::{certified_radius, decision_node};
use crate::bounds::{bound_spec, Method as Engine};
use crate::ops::{Op, Operator, RelaxInput};
use crate::spec::{Norm, Region};
use crate::{data, onnx};
use anyhow::{bail, Context};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

/// Bound propagation method.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    Ibp,
    Crown,
    #[value(name = "alpha-crown")]
    AlphaCrown,
}

/// What the bounds guarantee, stated in every result.
pub const GUARANTEE: &str = "sound for the real-valued network: computed in f64 with every rounding error bounded \
     and charged outward; f32 execution on a device may differ from the real-valued network by its own rounding";

#[derive(Debug, clap::Args)]
pub struct BoundsArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// The centre input: one sample (.npy/.npz), shaped as the model input or [1, ...].
    #[arg(long)]
    pub input: PathBuf,
    /// Radius of the ball.
    #[arg(long)]
    pub eps: f64,
    /// Norm of the ball: inf, 2 or 1.
    #[arg(long, default_value = "inf")]
    pub norm: Norm,
    #[arg(long, value_enum, default_value = "crown")]
    pub method: MethodArg,
    /// Intersect the ball with the box [LO, HI] (the valid input range).
    #[arg(long, num_args = 2, value_names = ["LO", "HI"], allow_negative_numbers = true)]
    pub clip: Option<Vec<f64>>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RadiusArgs {
    pub model: PathBuf,
    #[arg(long)]
    pub input: PathBuf,
    /// The label whose top-1 position is certified.
    #[arg(long)]
    pub label: usize,
    #[arg(long, default_value = "2")]
    pub norm: Norm,
    #[arg(long, value_enum, default_value = "crown")]
    pub method: MethodArg,
    #[arg(long, num_args = 2, value_names = ["LO", "HI"], allow_negative_numbers = true)]
    pub clip: Option<Vec<f64>>,
    /// Largest radius searched.
    #[arg(long, default_value_t = 16.0)]
    pub max_radius: f64,
    #[arg(long)]
    pub json: bool,
}

fn engine(m: MethodArg) -> anyhow::Result<Engine> {
    match m {
        MethodArg::Ibp => Ok(Engine::Ibp),
        MethodArg::Crown => Ok(Engine::Crown),
        MethodArg::AlphaCrown => Ok(Engine::AlphaCrown),
    }
}

fn clip_pair(c: &Option<Vec<f64>>) -> Option<(f64, f64)> {
    c.as_ref().map(|v| (v[0], v[1]))
}

/// The model and one centre sample, flattened.
fn load(model: &PathBuf, input: &PathBuf) -> anyhow::Result<(onnx::Model, Vec<f64>)> {
    let m = onnx::load_file(model).with_context(|| format!("cannot import {}", model.display()))?;
    let x = data::read_array(input).with_context(|| format!("cannot read {}", input.display()))?;
    let s = m.graph.as_samples(x)?;
    if s.shape()[0] != 1 {
        bail!("{} holds {} samples; bounds are computed around one input", input.display(), s.shape()[0]);
    }
    let n: usize = m.graph.input_info[0].shape.iter().product();
    if s.len() != n {
        bail!("the model's declared input {:?} is not one sample", m.graph.input_info[0].shape);
    }
    Ok((m, s.into_data()))
}

pub fn run_bounds(a: BoundsArgs) -> anyhow::Result<Outcome> {
    let (m, center) = load(&a.model, &a.input)?;
    let g = &m.graph;
    let method = engine(a.method)?;
    let region = Region::ball(center, a.norm, a.eps, clip_pair(&a.clip))?;
    let start = Instant::now();
    let target = decision_node(g);
    let width: usize = g.node(target).shape.iter().product();
    let mut spec = vec![0.0; width * width];
    for i in 0..width {
        spec[i * width + i] = 1.0;
    }
    let b = bound_spec(g, &region, method, target, &spec, width)?;
    let (mut lower, mut upper) = (b.lower, b.upper);
    let out = g.outputs[0];
    if target != out {
        // The final Softmax, bounded by interval arithmetic on the logits' bounds.
        let node = g.node(out);
        let r = RelaxInput {
            in_shapes: vec![&g.node(target).shape],
            out_shape: &node.shape,
            lo: vec![&lower],
            hi: vec![&upper],
        };
        let (lo, hi) = match &node.op {
            Op::Softmax(s) => s.interval(&r)?,
            _ => unreachable!("decision_node only skips a Softmax"),
        };
        (lower, upper) = (lo, hi);
    }
    let secs = start.elapsed().as_secs_f64();
    if a.json {
        print_json(&json!({
            "lower": lower, "upper": upper,
            "method": format!("{:?}", a.method).to_lowercase(), "norm": a.norm.to_string(), "eps": a.eps,
            "clip": a.clip, "guarantee": GUARANTEE, "time_s": secs,
        }))?;
    } else {
        for (i, (l, u)) in lower.iter().zip(&upper).enumerate() {
            println!("output {i}: [{l:.6}, {u:.6}]");
        }
        println!("({GUARANTEE}; {secs:.3} s)");
    }
    Ok(Outcome::Ok)
}

pub fn run_radius(a: RadiusArgs) -> anyhow::Result<Outcome> {
    let (m, center) = load(&a.model, &a.input)?;
    let method = engine(a.method)?;
    if !(a.max_radius > 0.0 && a.max_radius.is_finite()) {
        bail!("--max-radius must be a positive number");
    }
    let start = Instant::now();
    let r = certified_radius(&m.graph, &center, a.label, a.norm, method, clip_pair(&a.clip), a.max_radius, 1e-3)?;
    let secs = start.elapsed().as_secs_f64();
    if a.json {
        print_json(&json!({
            "radius": r.radius, "first_failure": r.first_failure, "evaluations": r.evaluations,
            "label": a.label, "norm": a.norm.to_string(), "method": format!("{:?}", a.method).to_lowercase(),
            "clip": a.clip, "guarantee": GUARANTEE, "time_s": secs,
        }))?;
    } else {
        println!(
            "certified radius {} (L{} ball, {:?}); not provable at {:?}",
            r.radius, a.norm, a.method, r.first_failure
        );
    }
    Ok(Outcome::Ok)
}
