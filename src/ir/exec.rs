//! The forward pass: one loop over the nodes in order, freeing each intermediate after its last
//! use, and data parallelism across the batch with rayon (each chunk of samples runs the whole
//! graph, so a sample's result does not depend on how the batch was split).

use super::{Graph, NodeId, Scalar, Tensor};
use crate::error::{Error, Result};
use crate::ops::{Op, Operator};
use rayon::prelude::*;

impl Graph {
    /// Evaluates the graph once. Each input's axis 0 may be any batch size when the graph is
    /// [`batchable`](Graph::batchable); otherwise inputs must have exactly the declared shapes.
    /// Returns the outputs in model order.
    pub fn forward<T: Scalar>(&self, inputs: &[&Tensor<T>]) -> Result<Vec<Tensor<T>>> {
        if inputs.len() != self.inputs.len() {
            return Err(Error::InvalidArgument(format!(
                "the model takes {} input(s), {} given",
                self.inputs.len(),
                inputs.len()
            )));
        }
        for (t, info) in inputs.iter().zip(&self.input_info) {
            let ok = if self.batchable {
                t.rank() == info.shape.len() && t.shape()[1..] == info.shape[1..] && t.shape()[0] > 0
            } else {
                t.shape() == info.shape.as_slice()
            };
            if !ok {
                return Err(Error::Shape(format!(
                    "input '{}' expects shape {:?}{}, got {:?}",
                    info.name,
                    info.shape,
                    if self.batchable { " (any batch size in axis 0)" } else { "" },
                    t.shape()
                )));
            }
        }
        let mut remaining_uses = vec![0usize; self.nodes.len()];
        for n in &self.nodes {
            for p in &n.inputs {
                remaining_uses[p.0] += 1;
            }
        }
        for o in &self.outputs {
            remaining_uses[o.0] += 1; // outputs are kept to the end
        }
        let mut values: Vec<Option<Tensor<T>>> = vec![None; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            let out = match &node.op {
                Op::Input(inp) => inputs[inp.index].clone(),
                // A pointwise op that is the last user of its input overwrites it.
                op if node.inputs.len() == 1 && remaining_uses[node.inputs[0].0] == 1 => {
                    let p = node.inputs[0].0;
                    let mut x = values[p].take().expect("inputs are evaluated before their users");
                    match op.forward_in_place(&mut x) {
                        Some(r) => {
                            r.map_err(|e| Error::node(&node.name, op.name(), e.to_string()))?;
                            x
                        }
                        None => op.forward(&[&x]).map_err(|e| Error::node(&node.name, op.name(), e.to_string()))?,
                    }
                }
                op => {
                    let args: Vec<&Tensor<T>> = node
                        .inputs
                        .iter()
                        .map(|p| values[p.0].as_ref().expect("inputs are evaluated before their users"))
                        .collect();
                    op.forward(&args).map_err(|e| Error::node(&node.name, op.name(), e.to_string()))?
                }
            };
            values[i] = Some(out);
            for p in &node.inputs {
                remaining_uses[p.0] -= 1;
                if remaining_uses[p.0] == 0 {
                    values[p.0] = None;
                }
            }
        }
        Ok(self.outputs.iter().map(|o| values[o.0].clone().expect("outputs are kept")).collect())
    }

    /// The shape of one sample of the first input: the declared shape without axis 0.
    pub fn sample_shape(&self) -> &[usize] {
        &self.input_info[0].shape[1..]
    }

    /// Interprets a user tensor as a batch of samples for the (single) model input. Accepted:
    /// exactly the declared shape; `[N, declared[1..]]`; or `[N, declared...]` (N whole inputs).
    /// Returns the samples as `[N, declared[1..]]` (axis 0 of the declared shape must be 1).
    pub fn as_samples<T: Scalar>(&self, x: Tensor<T>) -> Result<Tensor<T>> {
        if self.inputs.len() != 1 {
            return Err(Error::InvalidArgument(format!(
                "the model has {} inputs; only single-input models can be fed one array",
                self.inputs.len()
            )));
        }
        let decl = &self.input_info[0].shape;
        if decl.first() != Some(&1) {
            if x.shape() == decl.as_slice() {
                return x.reshape(std::iter::once(1).chain(decl.iter().copied()).collect());
            }
            if x.rank() == decl.len() + 1 && x.shape()[1..] == decl[..] {
                return Ok(x);
            }
            return Err(Error::Shape(format!(
                "input of shape {:?} does not fit the model input {:?} (give it as {:?} or [N, {:?}])",
                x.shape(),
                decl,
                decl,
                decl
            )));
        }
        if x.rank() == decl.len() && x.shape()[1..] == decl[1..] {
            return Ok(x);
        }
        if x.rank() == decl.len() + 1 && x.shape()[1..] == decl[..] {
            let mut s = x.shape().to_vec();
            s.remove(1);
            return x.reshape(s);
        }
        Err(Error::Shape(format!(
            "input of shape {:?} does not fit the model input {:?}: give it as {:?} or [N, {}]",
            x.shape(),
            decl,
            decl,
            decl[1..].iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
        )))
    }

    /// Runs a batch of samples `[N, sample_shape]` through the first output, in parallel across
    /// the batch, and returns `[N, ...]` (each row one sample's output, in the output's own
    /// per-sample shape when the graph batches, flattened otherwise).
    pub fn run_samples<T: Scalar>(&self, samples: &Tensor<T>) -> Result<Tensor<T>> {
        let n = samples.shape().first().copied().unwrap_or(0);
        if samples.shape().get(1..) != Some(self.sample_shape()) || n == 0 {
            return Err(Error::Shape(format!(
                "samples must be [N>0, {:?}], got {:?}",
                self.sample_shape(),
                samples.shape()
            )));
        }
        let threads = rayon::current_num_threads().max(1);
        if self.batchable {
            let chunk = n.div_ceil(threads).max(1);
            let parts: Result<Vec<Tensor<T>>> = (0..n)
                .step_by(chunk)
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(|start| {
                    let part = samples.slice_batch(start, (start + chunk).min(n));
                    Ok(self.forward(&[&part])?.swap_remove(0))
                })
                .collect();
            Tensor::concat_batch(parts?)
        } else {
            let decl = self.input_info[0].shape.clone();
            let parts: Result<Vec<Tensor<T>>> = (0..n)
                .into_par_iter()
                .map(|i| {
                    let one = samples.slice_batch(i, i + 1).reshape(decl.clone())?;
                    let out = self.forward(&[&one])?.swap_remove(0);
                    let len = out.len();
                    out.reshape(vec![1, len])
                })
                .collect();
            Tensor::concat_batch(parts?)
        }
    }

    /// Ids of the nodes that use each node, for engines that walk the graph backwards.
    pub fn users(&self) -> Vec<Vec<NodeId>> {
        let mut users = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for p in &n.inputs {
                users[p.0].push(NodeId(i));
            }
        }
        users
    }
}
