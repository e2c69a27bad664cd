//! ONNX import (IR versions 3-10, default-domain opsets 7-21, and the older forms of the
//! supported operators back to opset 1): protobuf bytes are decoded with
//! onnx-protobuf (no protoc at build time), checked, and lowered into the [`Graph`] IR. Constant
//! subgraphs, such as the Shape -> Gather -> Unsqueeze -> Concat chains exporters emit for
//! reshapes, are folded into constants at import. Every unsupported operator is reported at
//! once, with its node and opset, next to the list of what is supported.

mod attrs;
mod lower;
pub mod tensor;

use crate::error::{Error, Result, UnsupportedOp};
use crate::ir::{Graph, Node, NodeId, ValueInfo};
use crate::ops::{self, Operator};
use onnx_protobuf::{Message, ModelProto, NodeProto};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::Path;
use tensor::{code, dtype_name, ConstTensor};

/// ONNX operator types the importer accepts (default domain).
pub const SUPPORTED_OPS: &[&str] = &[
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "Div",
    "Dropout",
    "Flatten",
    "Gather",
    "Gemm",
    "GlobalAveragePool",
    "Identity",
    "LeakyRelu",
    "MatMul",
    "MaxPool",
    "Mul",
    "Neg",
    "Pad",
    "Range",
    "ReduceMean",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Squeeze",
    "Sub",
    "Tanh",
    "Transpose",
    "Unsqueeze",
];

/// Lowest and highest default-domain opset we accept.
pub const OPSET_RANGE: (i64, i64) = (1, 21);

/// Largest model file we read (protobuf itself cannot exceed 2 GiB).
pub const MAX_MODEL_BYTES: u64 = 2 << 30;

/// Facts about the imported model that the graph itself does not carry.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub ir_version: i64,
    pub opset: i64,
    pub producer: String,
    /// Count of each ONNX op type in the model's graph (before lowering and folding).
    pub op_counts: BTreeMap<String, usize>,
    /// Graph outputs left out because inference does not compute them (e.g. Dropout masks).
    pub skipped_outputs: Vec<String>,
}

/// An imported model.
#[derive(Clone, Debug)]
pub struct Model {
    pub graph: Graph,
    pub info: ModelInfo,
}

/// Reads and imports an ONNX file.
pub fn load_file(path: impl AsRef<Path>) -> Result<Model> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > MAX_MODEL_BYTES {
        return Err(Error::TooLarge(format!(
            "{}: {} bytes is larger than any ONNX protobuf",
            path.display(),
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    load_bytes(&bytes)
}

/// Imports an ONNX model from its protobuf bytes.
pub fn load_bytes(bytes: &[u8]) -> Result<Model> {
    let model = ModelProto::parse_from_bytes(bytes).map_err(|e| Error::Protobuf(e.to_string()))?;
    import(&model)
}

/// A value in the ONNX graph during import.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    Const(ConstTensor),
    Var(NodeId),
    /// An output we do not compute (e.g. MaxPool's indices); using it is an error.
    Unavailable(String),
}

fn import(model: &ModelProto) -> Result<Model> {
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        // IR version 3+ requires an opset import; very old files without one were opset 1.
        .unwrap_or(1);
    if !(OPSET_RANGE.0..=OPSET_RANGE.1).contains(&opset) {
        return Err(Error::InvalidModel(format!(
            "default-domain opset {opset} is outside the supported range {}..={} \
             (convert it with onnx.version_converter)",
            OPSET_RANGE.0, OPSET_RANGE.1
        )));
    }
    let g = model.graph.as_ref().ok_or_else(|| Error::InvalidModel("the model has no graph".into()))?;
    let mut op_counts = BTreeMap::new();
    for n in &g.node {
        *op_counts.entry(n.op_type.clone()).or_insert(0) += 1;
    }
    if !g.sparse_initializer.is_empty() {
        return Err(Error::InvalidModel("sparse initializers are not supported".into()));
    }

    let mut values: HashMap<String, Value> = HashMap::new();
    for init in &g.initializer {
        values.insert(init.name.clone(), Value::Const(tensor::decode(init, &init.name)?));
    }

    // Model inputs: everything declared as input that is not an initializer.
    let mut nodes: Vec<Node> = Vec::new();
    let mut inputs = Vec::new();
    let mut input_info = Vec::new();
    for vi in &g.input {
        if values.contains_key(&vi.name) {
            continue;
        }
        let info = input_value_info(vi)?;
        let id = NodeId(nodes.len());
        nodes.push(Node {
            name: vi.name.clone(),
            op: ops::Input { index: inputs.len() }.into(),
            inputs: vec![],
            shape: info.shape.clone(),
        });
        values.insert(vi.name.clone(), Value::Var(id));
        inputs.push(id);
        input_info.push(info);
    }
    if inputs.is_empty() {
        return Err(Error::InvalidModel("the model has no (non-initializer) inputs".into()));
    }

    let order = needed_in_order(g, &values)?;
    check_supported(&order, opset)?;

    let mut ctx = lower::Ctx { nodes, values, opset };
    for node in &order {
        lower::lower(&mut ctx, node)?;
    }

    let mut outputs = Vec::new();
    let mut output_names = Vec::new();
    let mut skipped_outputs = Vec::new();
    for o in &g.output {
        let id = match ctx.values.get(&o.name) {
            Some(Value::Var(id)) => *id,
            Some(Value::Const(c)) => {
                let c = c.clone();
                ctx.constant_node(&o.name, &c)?
            }
            Some(Value::Unavailable(why)) => {
                // E.g. a Dropout mask exported as a second output: leave it out and say so.
                skipped_outputs.push(format!("{}: {why}", o.name));
                continue;
            }
            None => return Err(Error::InvalidModel(format!("graph output '{}' is never produced", o.name))),
        };
        outputs.push(id);
        output_names.push(o.name.clone());
    }
    let graph = Graph::new(ctx.nodes, inputs, input_info, outputs, output_names)?;
    Ok(Model {
        graph,
        info: ModelInfo {
            ir_version: model.ir_version,
            opset,
            producer: model.producer_name.clone(),
            op_counts,
            skipped_outputs,
        },
    })
}

fn input_value_info(vi: &onnx_protobuf::ValueInfoProto) -> Result<ValueInfo> {
    use onnx_protobuf::tensor_shape_proto::dimension::Value as Dim;
    use onnx_protobuf::type_proto::Value as Ty;
    let err = |m: String| Error::InvalidModel(format!("input '{}': {m}", vi.name));
    let tt = match vi.type_.as_ref().and_then(|t| t.value.as_ref()) {
        Some(Ty::TensorType(t)) => t,
        _ => return Err(err("not a tensor input".into())),
    };
    if !(tt.elem_type == code::FLOAT || tt.elem_type == code::DOUBLE) {
        return Err(err(format!(
            "element type {} is not supported (inputs must be float32 or float64)",
            dtype_name(tt.elem_type)
        )));
    }
    let dims = tt.shape.as_ref().ok_or_else(|| err("no declared shape".into()))?;
    let mut shape = Vec::new();
    let mut dynamic_batch = false;
    for (i, d) in dims.dim.iter().enumerate() {
        match &d.value {
            Some(Dim::DimValue(v)) if *v > 0 => {
                shape.push(usize::try_from(*v).map_err(|_| err(format!("dimension {v} too large")))?)
            }
            Some(Dim::DimValue(v)) if *v <= 0 && i > 0 => {
                return Err(err(format!("dimension {i} is {v}; static positive sizes are required")))
            }
            // Symbolic (or unknown) axis 0 is the batch: fixed to 1 for shape inference.
            _ if i == 0 => {
                shape.push(1);
                dynamic_batch = true;
            }
            other => {
                return Err(err(format!(
                    "dimension {i} is symbolic ({other:?}); robustcert needs static sizes except for the batch axis"
                )))
            }
        }
    }
    crate::ir::tensor::checked_numel(&shape)?;
    Ok(ValueInfo { name: vi.name.clone(), shape, dynamic_batch })
}

/// The nodes needed for the graph outputs, in a topological order (exporters usually emit one,
/// but it is not relied on).
fn needed_in_order<'a>(g: &'a onnx_protobuf::GraphProto, known: &HashMap<String, Value>) -> Result<Vec<&'a NodeProto>> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in g.node.iter().enumerate() {
        for o in &n.output {
            if o.is_empty() {
                continue;
            }
            if producer.insert(o.as_str(), i).is_some() || known.contains_key(o) {
                return Err(Error::InvalidModel(format!("value '{o}' is produced more than once")));
            }
        }
    }
    let mut needed = vec![false; g.node.len()];
    let mut stack: Vec<usize> = Vec::new();
    for o in &g.output {
        if let Some(&i) = producer.get(o.name.as_str()) {
            stack.push(i);
        }
    }
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut needed[i], true) {
            continue;
        }
        for inp in &g.node[i].input {
            if let Some(&p) = producer.get(inp.as_str()) {
                stack.push(p);
            }
        }
    }
    // Kahn's algorithm over the needed nodes.
    let mut indegree = vec![0usize; g.node.len()];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); g.node.len()];
    for (i, n) in g.node.iter().enumerate().filter(|(i, _)| needed[*i]) {
        let preds: HashSet<usize> = n.input.iter().filter_map(|x| producer.get(x.as_str()).copied()).collect();
        indegree[i] = preds.len();
        for p in preds {
            users[p].push(i);
        }
    }
    let mut queue: VecDeque<usize> = (0..g.node.len()).filter(|&i| needed[i] && indegree[i] == 0).collect();
    let mut order = Vec::new();
    while let Some(i) = queue.pop_front() {
        order.push(&g.node[i]);
        for &u in &users[i] {
            indegree[u] -= 1;
            if indegree[u] == 0 {
                queue.push_back(u);
            }
        }
    }
    if order.len() != needed.iter().filter(|&&b| b).count() {
        return Err(Error::InvalidModel("the graph has a cycle".into()));
    }
    Ok(order)
}

fn check_supported(order: &[&NodeProto], opset: i64) -> Result<()> {
    let bad: Vec<UnsupportedOp> = order
        .iter()
        .filter(|n| !(n.domain.is_empty() || n.domain == "ai.onnx") || !SUPPORTED_OPS.contains(&n.op_type.as_str()))
        .map(|n| UnsupportedOp {
            op_type: n.op_type.clone(),
            domain: n.domain.clone(),
            node: n.name.clone(),
            opset,
            reason: None,
        })
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Error::UnsupportedOps(bad))
    }
}

/// Shapes of the graph outputs, for display.
pub fn output_shapes(graph: &Graph) -> Vec<(String, Vec<usize>)> {
    graph
        .outputs
        .iter()
        .zip(&graph.output_names)
        .map(|(id, name)| (name.clone(), graph.node(*id).shape.clone()))
        .collect()
}

impl lower::Ctx {
    /// Adds a Constant node for a constant used where a variable is expected.
    pub(crate) fn constant_node(&mut self, name: &str, c: &ConstTensor) -> Result<NodeId> {
        let value = crate::ir::Param::new(c.value.clone(), name)?;
        let op: ops::Op = ops::Constant { value }.into();
        let shape = op.output_shape(&[])?;
        self.nodes.push(Node { name: name.to_string(), op, inputs: vec![], shape });
        Ok(NodeId(self.nodes.len() - 1))
    }
}
