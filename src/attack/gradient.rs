//! Reverse-mode gradients through the graph IR, with no autodiff machinery of its own: a
//! forward pass keeps every node's value, then a backward loop applies each node's Jacobian,
//! transposed. The Jacobian of an operator at a point is the lower map of its linear relaxation
//! on the point interval (lo = hi = the input's value): affine operators are their own map,
//! ReLU has slope 1 or 0, MaxPool selects the argmax. Sigmoid and Tanh are differentiated here
//! directly (their relaxation at a point uses the chord, slope 0).
//!
//! These gradients serve attacks (they need only be useful, not sound); the values are exact
//! f64 (or f32) evaluations of the network.

use crate::bounds::AffineCache;
use crate::error::{Error, Result};
use crate::ir::{Graph, NodeId, Scalar, Tensor};
use crate::ops::{Op, Operator, RelaxInput};

/// Every node's value, from the input up to a target node (later nodes are not evaluated).
pub struct Tape<T: Scalar> {
    pub values: Vec<Tensor<T>>,
}

impl<T: Scalar> Tape<T> {
    /// The value of a node (flattened).
    pub fn value(&self, id: NodeId) -> &[T] {
        self.values[id.0].data()
    }
}

/// Evaluates the graph on one input `x` (flattened, the declared input shape), keeping every
/// node's value up to and including `upto`.
pub fn forward_tape<T: Scalar>(graph: &Graph, x: &[T], upto: NodeId) -> Result<Tape<T>> {
    if graph.inputs.len() != 1 {
        return Err(Error::InvalidArgument("attacks need a single-input model".into()));
    }
    let shape = graph.input_info[0].shape.clone();
    let n: usize = shape.iter().product();
    if x.len() != n {
        return Err(Error::Shape(format!("input of {} values for a model input {:?}", x.len(), shape)));
    }
    let mut values: Vec<Tensor<T>> = Vec::with_capacity(upto.0 + 1);
    for node in &graph.nodes[..=upto.0] {
        let v = match &node.op {
            Op::Input(_) => Tensor::new(shape.clone(), x.to_vec())?,
            op => {
                let args: Vec<&Tensor<T>> = node.inputs.iter().map(|p| &values[p.0]).collect();
                op.forward(&args).map_err(|e| Error::node(&node.name, op.name(), e.to_string()))?
            }
        };
        values.push(v);
    }
    Ok(Tape { values })
}

/// Vector-Jacobian products: for `rows` row vectors `adj` (row-major, numel(target) wide),
/// returns `adj · d target / d x` (rows x numel(input)), given a tape reaching `target`.
/// `cache`: the affine maps of earlier calls on the same graph (rebuilding a convolution's
/// matrix at every step would cost more than the product).
pub fn vjp(
    graph: &Graph,
    tape: &Tape<f64>,
    target: NodeId,
    adj: &[f64],
    rows: usize,
    cache: &AffineCache,
) -> Result<Vec<f64>> {
    let width = tape.values[target.0].len();
    if adj.len() != rows * width {
        return Err(Error::Shape(format!("{} adjoint values for {rows} rows of {width}", adj.len())));
    }
    let mut state: Vec<Option<Vec<f64>>> = vec![None; target.0 + 1];
    state[target.0] = Some(adj.to_vec());
    let n_in: usize = graph.input_info[0].shape.iter().product();
    let mut grad = vec![0.0; rows * n_in];
    for id in (0..=target.0).rev() {
        let Some(a) = state[id].take() else { continue };
        let node = &graph.nodes[id];
        if let Op::Input(_) = node.op {
            for (g, v) in grad.iter_mut().zip(&a) {
                *g += v;
            }
            continue;
        }
        if node.inputs.is_empty() {
            continue;
        }
        let out = tape.value(NodeId(id));
        let mut push = |p: NodeId, contrib: Vec<f64>| match &mut state[p.0] {
            Some(acc) => acc.iter_mut().zip(&contrib).for_each(|(x, y)| *x += y),
            slot @ None => *slot = Some(contrib),
        };
        match &node.op {
            Op::Sigmoid(_) | Op::Tanh(_) => {
                let sig = matches!(node.op, Op::Sigmoid(_));
                let d: Vec<f64> = out.iter().map(|&s| if sig { s * (1.0 - s) } else { 1.0 - s * s }).collect();
                let n = d.len();
                let contrib: Vec<f64> = a.iter().enumerate().map(|(k, v)| v * d[k % n]).collect();
                push(node.inputs[0], contrib);
            }
            op => {
                let vals: Vec<&[f64]> = node.inputs.iter().map(|p| tape.value(*p)).collect();
                let r = RelaxInput {
                    in_shapes: node.inputs.iter().map(|p| graph.nodes[p.0].shape.as_slice()).collect(),
                    out_shape: &node.shape,
                    lo: vals.clone(),
                    hi: vals,
                };
                let compute = || op.relaxation(&r).map_err(|e| Error::node(&node.name, op.name(), e.to_string()));
                let rel = cache.relaxation(op, NodeId(id), &compute)?;
                let map = rel.lower();
                for (k, p) in node.inputs.iter().enumerate() {
                    let cols = map.parts[k].cols;
                    let mut contrib = vec![0.0; rows * cols];
                    map.parts[k].transpose_apply_add(&a, rows, &mut contrib, None);
                    push(*p, contrib);
                }
            }
        }
    }
    Ok(grad)
}

/// The values `c_r · y` of `rows` linear functions of the target node at `x`, and their
/// gradients with respect to the input (rows x numel(input)).
pub fn value_and_grad(
    graph: &Graph,
    x: &[f64],
    target: NodeId,
    c: &[f64],
    rows: usize,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let tape = forward_tape(graph, x, target)?;
    let y = tape.value(target);
    let width = y.len();
    if c.len() != rows * width {
        return Err(Error::Shape(format!("{} coefficients for {rows} rows of {width}", c.len())));
    }
    let vals = (0..rows).map(|r| c[r * width..(r + 1) * width].iter().zip(y).map(|(a, b)| a * b).sum()).collect();
    let g = vjp(graph, &tape, target, c, rows, &AffineCache::new(graph))?;
    Ok((vals, g))
}
