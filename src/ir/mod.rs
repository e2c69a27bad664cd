//! The graph IR every engine shares: a flat list of nodes in topological order (children before
//! parents, as in egg's e-graph node lists), static shapes whose axis 0 is the batch, and
//! constants folded into operator parameters. Analysis results (bounds, gradients) live in side
//! tables indexed by [`NodeId`], never inside nodes.

mod exec;
pub mod tensor;

pub use tensor::{Param, Scalar, Tensor};

use crate::error::{Error, Result};
use crate::ops::{Op, Operator};

/// Index of a node in [`Graph::nodes`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// One operation applied to the outputs of earlier nodes.
#[derive(Clone, Debug)]
pub struct Node {
    /// The ONNX node name (or output name when the node had none), for messages.
    pub name: String,
    pub op: Op,
    /// Variable inputs; each refers to an earlier node.
    pub inputs: Vec<NodeId>,
    /// Output shape for the model's declared batch (axis 0; 1 when the model left it symbolic).
    pub shape: Vec<usize>,
}

/// A model input as declared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueInfo {
    pub name: String,
    /// Static shape; symbolic batch dimensions are fixed to 1.
    pub shape: Vec<usize>,
    /// Whether axis 0 was symbolic in the model (a dynamic batch).
    pub dynamic_batch: bool,
}

/// The graph: nodes in topological order with designated inputs and outputs.
#[derive(Clone, Debug)]
pub struct Graph {
    pub nodes: Vec<Node>,
    /// Nodes holding [`Op::Input`], in the model's input order.
    pub inputs: Vec<NodeId>,
    pub input_info: Vec<ValueInfo>,
    /// Output nodes, in the model's output order, with their ONNX names.
    pub outputs: Vec<NodeId>,
    pub output_names: Vec<String>,
    /// True when axis 0 is a batch axis through the whole graph, so one pass can evaluate many
    /// samples; otherwise samples are evaluated one at a time at the declared shape.
    pub batchable: bool,
}

impl Graph {
    /// Builds a graph and checks it: topological order, arity, shapes, and whether axis 0
    /// batches through every node.
    pub fn new(
        nodes: Vec<Node>,
        inputs: Vec<NodeId>,
        input_info: Vec<ValueInfo>,
        outputs: Vec<NodeId>,
        output_names: Vec<String>,
    ) -> Result<Self> {
        let mut g = Graph { nodes, inputs, input_info, outputs, output_names, batchable: false };
        g.validate()?;
        g.batchable = g.batch_analysis();
        Ok(g)
    }

    fn validate(&self) -> Result<()> {
        if self.inputs.len() != self.input_info.len() {
            return Err(Error::InvalidModel("input list and input info disagree".into()));
        }
        if self.outputs.is_empty() {
            return Err(Error::InvalidModel("the graph has no outputs".into()));
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(bad) = node.inputs.iter().find(|p| p.0 >= i) {
                return Err(Error::InvalidModel(format!(
                    "node '{}' uses node {} which does not come before it",
                    node.name, bad.0
                )));
            }
            let ins: Vec<&[usize]> = node.inputs.iter().map(|p| self.nodes[p.0].shape.as_slice()).collect();
            let shape = match &node.op {
                Op::Input(inp) => {
                    let info = self
                        .input_info
                        .get(inp.index)
                        .ok_or_else(|| Error::InvalidModel(format!("input node '{}' has no input info", node.name)))?;
                    info.shape.clone()
                }
                op => op.output_shape(&ins).map_err(|e| Error::node(&node.name, op.name(), e.to_string()))?,
            };
            if shape != node.shape {
                return Err(Error::Shape(format!(
                    "node '{}' ({}) declares shape {:?} but computes {:?}",
                    node.name,
                    node.op.name(),
                    node.shape,
                    shape
                )));
            }
        }
        for o in self.outputs.iter().chain(&self.inputs) {
            if o.0 >= self.nodes.len() {
                return Err(Error::InvalidModel(format!("graph endpoint {} is not a node", o.0)));
            }
        }
        Ok(())
    }

    /// Re-infers every shape with the batch axis doubled; the graph batches when every node's
    /// shape only changes in axis 0 (by the same factor).
    fn batch_analysis(&self) -> bool {
        let mut shapes: Vec<Vec<usize>> = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let s = match &node.op {
                Op::Input(_) => {
                    if node.shape.is_empty() || node.shape[0] != 1 {
                        return false;
                    }
                    let mut s = node.shape.clone();
                    s[0] = 2;
                    s
                }
                op => {
                    let ins: Vec<&[usize]> = node.inputs.iter().map(|p| shapes[p.0].as_slice()).collect();
                    match op.output_shape(&ins) {
                        Ok(s) => s,
                        Err(_) => return false,
                    }
                }
            };
            let batched =
                !s.is_empty() && !node.shape.is_empty() && node.shape[0] == 1 && s[0] == 2 && s[1..] == node.shape[1..];
            if !batched {
                return false;
            }
            shapes.push(s);
        }
        true
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }

    /// Total number of constant parameter values (weights, biases, statistics).
    pub fn parameter_count(&self) -> usize {
        self.nodes.iter().map(|n| n.op.parameter_count()).sum()
    }
}
