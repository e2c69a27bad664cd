//! Lowering of ONNX nodes into core operators, one function per ONNX op type, handling the
//! opset-dependent forms (attributes that became inputs, changed defaults). Whenever all of a
//! node's inputs are constants the node is evaluated at import (constant folding).

use super::attrs::Attrs;
use super::tensor::{code, dtype_of, ConstTensor, DType};
use super::Value;
use crate::error::{Error, Result};
use crate::ir::tensor::checked_numel;
use crate::ir::{Node, NodeId, Param, Tensor};
use crate::ops::{self, Op, Operator};
use onnx_protobuf::NodeProto;
use std::collections::HashMap;

/// Import state: the IR nodes built so far and the value of every ONNX name.
pub(crate) struct Ctx {
    pub nodes: Vec<Node>,
    pub values: HashMap<String, Value>,
    pub opset: i64,
}

fn node_err(n: &NodeProto, msg: impl Into<String>) -> Error {
    Error::node(&n.name, &n.op_type, msg)
}

fn unsupported(n: &NodeProto, opset: i64, reason: impl Into<String>) -> Error {
    Error::UnsupportedOps(vec![crate::error::UnsupportedOp {
        op_type: n.op_type.clone(),
        domain: n.domain.clone(),
        node: n.name.clone(),
        opset,
        reason: Some(reason.into()),
    }])
}

/// Resolves a possibly negative axis against a rank.
fn axis(n: &NodeProto, a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    if a < -r || a >= r {
        return Err(node_err(n, format!("axis {a} is out of range for rank {rank}")));
    }
    Ok(if a < 0 { (a + r) as usize } else { a as usize })
}

impl Ctx {
    /// Input `i` of a node; None when absent (missing or empty name).
    fn opt_input(&self, n: &NodeProto, i: usize) -> Result<Option<Value>> {
        match n.input.get(i) {
            None => Ok(None),
            Some(name) if name.is_empty() => Ok(None),
            Some(name) => match self.values.get(name) {
                Some(Value::Unavailable(why)) => Err(node_err(n, format!("input '{name}': {why}"))),
                Some(v) => Ok(Some(v.clone())),
                None => Err(node_err(n, format!("input '{name}' is not produced by any node, initializer or input"))),
            },
        }
    }

    fn input(&self, n: &NodeProto, i: usize) -> Result<Value> {
        self.opt_input(n, i)?.ok_or_else(|| node_err(n, format!("missing input {i}")))
    }

    /// Input `i`, which must be a constant (weights, shapes, axes).
    fn const_input(&self, n: &NodeProto, i: usize) -> Result<Option<ConstTensor>> {
        match self.opt_input(n, i)? {
            None => Ok(None),
            Some(Value::Const(c)) => Ok(Some(c)),
            Some(_) => Err(unsupported(
                n,
                self.opset,
                format!("input {i} ('{}') must be a constant, but it depends on the model input", n.input[i]),
            )),
        }
    }

    fn shape_of(&self, v: &Value) -> Vec<usize> {
        match v {
            Value::Const(c) => c.shape().to_vec(),
            Value::Var(id) => self.nodes[id.0].shape.clone(),
            Value::Unavailable(_) => vec![],
        }
    }

    fn param(&self, n: &NodeProto, c: &ConstTensor, what: &str) -> Result<Param> {
        Param::new(c.value.clone(), &format!("node '{}' {what}", n.name))
    }

    /// Adds `op` applied to `inputs`, or evaluates it when every input is constant.
    fn emit(&mut self, n: &NodeProto, op: Op, inputs: Vec<Value>) -> Result<Value> {
        let name = if n.name.is_empty() { n.output.first().cloned().unwrap_or_default() } else { n.name.clone() };
        if inputs.iter().all(|v| matches!(v, Value::Const(_))) {
            let consts: Vec<&ConstTensor> = inputs
                .iter()
                .map(|v| match v {
                    Value::Const(c) => c,
                    _ => unreachable!("checked above"),
                })
                .collect();
            let dtype = consts.first().map_or(DType::Float, |c| c.dtype);
            let args: Vec<&Tensor<f64>> = consts.iter().map(|c| &c.value).collect();
            let value = op.forward::<f64>(&args).map_err(|e| node_err(n, format!("constant folding: {e}")))?;
            return Ok(Value::Const(ConstTensor { dtype, value }));
        }
        let mut ids = Vec::with_capacity(inputs.len());
        for (i, v) in inputs.into_iter().enumerate() {
            ids.push(match v {
                Value::Var(id) => id,
                Value::Const(c) => self.constant_node(&format!("{name}/const{i}"), &c)?,
                Value::Unavailable(why) => return Err(node_err(n, why)),
            });
        }
        let in_shapes: Vec<&[usize]> = ids.iter().map(|id| self.nodes[id.0].shape.as_slice()).collect();
        let shape = op.output_shape(&in_shapes).map_err(|e| node_err(n, e.to_string()))?;
        self.nodes.push(Node { name, op, inputs: ids, shape });
        Ok(Value::Var(NodeId(self.nodes.len() - 1)))
    }

    fn set_output(&mut self, n: &NodeProto, i: usize, v: Value) {
        if let Some(name) = n.output.get(i) {
            if !name.is_empty() {
                self.values.insert(name.clone(), v);
            }
        }
    }

    fn mark_unavailable(&mut self, n: &NodeProto, from: usize, why: &str) {
        for i in from..n.output.len() {
            let w = format!("output {i} of {} node '{}' is {why}", n.op_type, n.name);
            self.set_output(n, i, Value::Unavailable(w));
        }
    }
}

/// Lowers one ONNX node, recording its outputs in `ctx.values`.
pub(crate) fn lower(ctx: &mut Ctx, n: &NodeProto) -> Result<()> {
    let a = Attrs::new(n);
    let opset = ctx.opset;
    let out = match n.op_type.as_str() {
        "Identity" => ctx.input(n, 0)?,
        "Dropout" => {
            if opset >= 12 {
                if let Some(t) = ctx.const_input(n, 2)? {
                    if t.value.data().first().is_some_and(|&v| v != 0.0) {
                        return Err(unsupported(n, opset, "Dropout in training mode"));
                    }
                }
            }
            ctx.mark_unavailable(n, 1, "the dropout mask, which inference does not compute");
            ctx.input(n, 0)?
        }
        "Constant" => Value::Const(constant(n, &a)?),
        "Relu" => unary(ctx, n, ops::Relu.into())?,
        "Sigmoid" => unary(ctx, n, ops::Sigmoid.into())?,
        "Tanh" => unary(ctx, n, ops::Tanh.into())?,
        "LeakyRelu" => unary(ctx, n, ops::LeakyRelu { alpha: a.float_or("alpha", 0.01)? as f64 }.into())?,
        "Clip" => clip(ctx, n, &a)?,
        "Add" | "Sub" | "Mul" | "Div" => binary(ctx, n, &a)?,
        "Neg" => {
            let x = ctx.input(n, 0)?;
            let dtype = if let Value::Const(c) = &x { c.dtype } else { DType::Float };
            let minus_one = ConstTensor { dtype, value: Tensor::scalar(-1.0) };
            let p = ctx.param(n, &minus_one, "-1")?;
            ctx.emit(n, ops::Mul { constant: Some(p), constant_first: false }.into(), vec![x])?
        }
        "Gemm" => gemm(ctx, n, &a)?,
        "MatMul" => matmul(ctx, n)?,
        "Conv" => conv(ctx, n, &a)?,
        "BatchNormalization" => batch_norm(ctx, n, &a)?,
        "MaxPool" | "AveragePool" => pool(ctx, n, &a)?,
        "GlobalAveragePool" => unary(ctx, n, ops::GlobalAveragePool.into())?,
        "ReduceMean" => reduce_mean(ctx, n, &a)?,
        "Softmax" => {
            let x = ctx.input(n, 0)?;
            let rank = ctx.shape_of(&x).len();
            let (default, coerce_2d) = if opset >= 13 { (-1, false) } else { (1, true) };
            let ax = axis(n, a.int_or("axis", default)?, rank)?;
            ctx.emit(n, ops::Softmax { axis: ax, coerce_2d }.into(), vec![x])?
        }
        "Flatten" => {
            let x = ctx.input(n, 0)?;
            let s = ctx.shape_of(&x);
            let r = s.len() as i64;
            let ax = a.int_or("axis", 1)?;
            if ax < -r || ax > r || (ax < 0 && opset < 11) {
                return Err(node_err(n, format!("axis {ax} is out of range for rank {r} at opset {opset}")));
            }
            let ax = if ax < 0 { (ax + r) as usize } else { ax as usize };
            let target = vec![s[..ax].iter().product(), s[ax..].iter().product()];
            reshape_to(ctx, n, x, target)?
        }
        "Reshape" => reshape(ctx, n, &a)?,
        "Squeeze" | "Unsqueeze" => squeeze(ctx, n, &a)?,
        "Transpose" => {
            let x = ctx.input(n, 0)?;
            let rank = ctx.shape_of(&x).len();
            let perm = match a.ints("perm")? {
                Some(p) => {
                    let perm: Vec<usize> = p.iter().map(|&v| axis(n, v, rank)).collect::<Result<_>>()?;
                    let mut seen = perm.clone();
                    seen.sort_unstable();
                    if seen != (0..rank).collect::<Vec<_>>() {
                        return Err(node_err(n, format!("perm {p:?} is not a permutation of 0..{rank}")));
                    }
                    perm
                }
                None => (0..rank).rev().collect(),
            };
            ctx.emit(n, ops::Transpose { perm }.into(), vec![x])?
        }
        "Concat" => {
            let mut inputs = Vec::new();
            for i in 0..n.input.len() {
                if let Some(v) = ctx.opt_input(n, i)? {
                    inputs.push(v);
                }
            }
            let rank = inputs.first().map(|v| ctx.shape_of(v).len()).ok_or_else(|| node_err(n, "no inputs"))?;
            // Concat-1 defaulted the axis to 1; from opset 4 it is required.
            let ax = match a.int("axis")? {
                Some(v) => v,
                None if ctx.opset < 4 => 1,
                None => return Err(node_err(n, "missing attribute 'axis'")),
            };
            let ax = axis(n, ax, rank)?;
            ctx.emit(n, ops::Concat { axis: ax }.into(), inputs)?
        }
        "Pad" => pad(ctx, n, &a)?,
        "Shape" => {
            let x = ctx.input(n, 0)?;
            let s: Vec<i64> = ctx.shape_of(&x).iter().map(|&d| d as i64).collect();
            let r = s.len() as i64;
            let clamp = |v: i64| if v < 0 { (v + r).max(0) } else { v.min(r) } as usize;
            let start = clamp(a.int_or("start", 0)?);
            let end = clamp(a.int_or("end", r)?).max(start);
            Value::Const(ConstTensor::ints(vec![end - start], s[start..end].to_vec())?)
        }
        "Gather" => gather(ctx, n, &a)?,
        "Cast" => cast(ctx, n, &a)?,
        "ConstantOfShape" => {
            let shape = ctx.const_input(n, 0)?.ok_or_else(|| node_err(n, "missing shape"))?;
            let dims = to_dims(n, &shape.to_ints())?;
            let fill = a.tensor("value")?.unwrap_or(ConstTensor { dtype: DType::Float, value: Tensor::scalar(0.0) });
            let v = *fill.value.data().first().ok_or_else(|| node_err(n, "empty value"))?;
            let len = checked_numel(&dims)?;
            Value::Const(ConstTensor { dtype: fill.dtype, value: Tensor::new(dims, vec![v; len])? })
        }
        "Range" => {
            let get = |i| -> Result<f64> {
                let c = ctx.const_input(n, i)?.ok_or_else(|| node_err(n, "missing input"))?;
                c.value.data().first().copied().ok_or_else(|| node_err(n, "empty input"))
            };
            let (start, limit, delta) = (get(0)?, get(1)?, get(2)?);
            if delta == 0.0 {
                return Err(node_err(n, "delta is 0"));
            }
            let count = ((limit - start) / delta).ceil().max(0.0);
            if count > crate::ir::tensor::MAX_ELEMENTS as f64 {
                return Err(Error::TooLarge(format!("Range of {count} elements")));
            }
            let v: Vec<f64> = (0..count as usize).map(|i| start + i as f64 * delta).collect();
            let dtype = ctx.const_input(n, 0)?.map_or(DType::Float, |c| c.dtype);
            Value::Const(ConstTensor { dtype, value: Tensor::new(vec![v.len()], v)? })
        }
        "Slice" => slice(ctx, n, &a)?,
        other => return Err(unsupported(n, opset, format!("no lowering for {other}"))),
    };
    ctx.set_output(n, 0, out);
    Ok(())
}

fn unary(ctx: &mut Ctx, n: &NodeProto, op: Op) -> Result<Value> {
    let x = ctx.input(n, 0)?;
    ctx.emit(n, op, vec![x])
}

fn constant(n: &NodeProto, a: &Attrs) -> Result<ConstTensor> {
    if let Some(t) = a.tensor("value")? {
        return Ok(t);
    }
    if let Some(f) = a.float("value_float")? {
        return Ok(ConstTensor { dtype: DType::Float, value: Tensor::scalar(f as f64) });
    }
    if let Some(f) = a.floats("value_floats")? {
        return Ok(ConstTensor {
            dtype: DType::Float,
            value: Tensor::new(vec![f.len()], f.iter().map(|&v| v as f64).collect())?,
        });
    }
    if let Some(i) = a.int("value_int")? {
        return ConstTensor::ints(vec![], vec![i]);
    }
    if let Some(i) = a.ints("value_ints")? {
        return ConstTensor::ints(vec![i.len()], i);
    }
    Err(node_err(n, "Constant without a supported value attribute (sparse and string values are not supported)"))
}

fn clip(ctx: &mut Ctx, n: &NodeProto, a: &Attrs) -> Result<Value> {
    let (min, max) = if ctx.opset < 11 {
        (a.float("min")?.map(|v| v as f64), a.float("max")?.map(|v| v as f64))
    } else {
        let scalar = |i: usize| -> Result<Option<f64>> {
            match ctx.const_input(n, i)? {
                None => Ok(None),
                Some(c) if c.value.len() == 1 => Ok(Some(c.value.data()[0])),
                Some(c) => Err(node_err(n, format!("bound {i} must be a scalar, got shape {:?}", c.shape()))),
            }
        };
        (scalar(1)?, scalar(2)?)
    };
    for v in [min, max].into_iter().flatten() {
        if v.is_nan() {
            return Err(Error::NonFinite(format!("node '{}': Clip bound is NaN", n.name)));
        }
    }
    // Infinite bounds (and float32's extremes, the opset-6 defaults) are simply no bound.
    let finite = |v: Option<f64>| v.filter(|b| b.is_finite() && b.abs() < f32::MAX as f64);
    unary(ctx, n, ops::Clip { min: finite(min), max: finite(max) }.into())
}

fn binary(ctx: &mut Ctx, n: &NodeProto, a: &Attrs) -> Result<Value> {
    let (x, mut y) = (ctx.input(n, 0)?, ctx.input(n, 1)?);
    // Before opset 7, broadcasting was opt-in (`broadcast=1`) and aligned B with A at `axis`
    // (default: trailing axes). Rewrite B's shape so numpy rules give the same result.
    if ctx.opset < 7 && a.int_or("broadcast", 0)? != 0 {
        let (ra, sb) = (ctx.shape_of(&x).len(), ctx.shape_of(&y));
        let ax = a.int_or("axis", (ra as i64) - (sb.len() as i64))?;
        let Value::Const(mut c) = y else {
            return Err(unsupported(n, ctx.opset, "legacy broadcast of a variable operand"));
        };
        if ax < 0 || ax as usize + sb.len() > ra {
            return Err(node_err(n, format!("legacy broadcast axis {ax} does not fit ranks {ra} and {}", sb.len())));
        }
        let mut shape = sb.clone();
        shape.extend(std::iter::repeat_n(1, ra - ax as usize - sb.len()));
        c.value = c.value.reshape(shape)?;
        y = Value::Const(c);
    }
    let (constant, constant_first, inputs) = match (&x, &y) {
        (Value::Var(_), Value::Const(c)) => (Some(ctx.param(n, c, "constant operand")?), false, vec![x.clone()]),
        (Value::Const(c), Value::Var(_)) => (Some(ctx.param(n, c, "constant operand")?), true, vec![y.clone()]),
        _ => (None, false, vec![x.clone(), y.clone()]),
    };
    let op: Op = match n.op_type.as_str() {
        "Add" => ops::Add { constant, constant_first }.into(),
        "Sub" => ops::Sub { constant, constant_first }.into(),
        "Mul" => ops::Mul { constant, constant_first }.into(),
        _ => ops::Div { constant, constant_first }.into(),
    };
    let out = ctx.emit(n, op, inputs)?;
    // Integer division truncates (shape arithmetic such as size // 2).
    Ok(match out {
        Value::Const(mut c) if c.dtype == DType::Int && n.op_type == "Div" => {
            c.value = c.value.map(|v| v.trunc());
            Value::Const(c)
        }
        v => v,
    })
}

fn gemm(ctx: &mut Ctx, n: &NodeProto, a: &Attrs) -> Result<Value> {
    let x = ctx.input(n, 0)?;
    let b = ctx.const_input(n, 1)?.ok_or_else(|| node_err(n, "missing B"))?;
    let c_in = ctx.opt_input(n, 2)?;
    let (c, add_var) = match c_in {
        Some(Value::Const(c)) => (Some(ctx.param(n, &c, "C")?), None),
        Some(v @ Value::Var(_)) => (None, Some(v)),
        _ => (None, None),
    };
    let beta = a.float_or("beta", 1.0)? as f64;
    let op = ops::Gemm {
        b: ctx.param(n, &b, "B")?,
        c,
        alpha: a.float_or("alpha", 1.0)? as f64,
        beta,
        trans_a: a.int_or("transA", 0)? != 0,
        trans_b: a.int_or("transB", 0)? != 0,
    };
    let y = ctx.emit(n, op.into(), vec![x])?;
    match add_var {
        None => Ok(y),
        Some(c) if beta == 1.0 => ctx.emit(n, ops::Add { constant: None, constant_first: false }.into(), vec![y, c]),
        Some(_) => Err(unsupported(n, ctx.opset, "Gemm with a non-constant C and beta != 1")),
    }
}

fn matmul(ctx: &mut Ctx, n: &NodeProto) -> Result<Value> {
    let (x, w) = (ctx.input(n, 0)?, ctx.input(n, 1)?);
    match (&x, &w) {
        (_, Value::Const(b)) => {
            let b = ctx.param(n, b, "B")?;
            ctx.emit(n, ops::MatMul { b, constant_first: false }.into(), vec![x])
        }
        (Value::Const(a), _) if a.shape().len() == 2 => {
            let b = ctx.param(n, a, "A")?;
            ctx.emit(n, ops::MatMul { b, constant_first: true }.into(), vec![w])
        }
        (Value::Const(_), _) => {
            Err(unsupported(n, ctx.opset, "MatMul with a constant left operand that is not a matrix"))
        }
        _ => Err(unsupported(n, ctx.opset, "MatMul of two variable tensors")),
    }
}

/// Explicit pads from auto_pad (SAME_UPPER / SAME_LOWER / VALID) or the `pads` attribute.
fn resolve_pads(
    n: &NodeProto,
    a: &Attrs,
    spatial: &[usize],
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
) -> Result<Vec<usize>> {
    let sp = spatial.len();
    let auto = a.string("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
    match auto.as_str() {
        "NOTSET" | "" => {
            let pads = a.usizes("pads")?.unwrap_or_else(|| vec![0; 2 * sp]);
            if pads.len() != 2 * sp {
                return Err(node_err(n, format!("pads {pads:?} must have {} entries", 2 * sp)));
            }
            Ok(pads)
        }
        "VALID" => Ok(vec![0; 2 * sp]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut pads = vec![0; 2 * sp];
            for i in 0..sp {
                let out = spatial[i].div_ceil(strides[i]);
                let span = (kernel[i] - 1) * dilations[i] + 1;
                let total = ((out - 1) * strides[i] + span).saturating_sub(spatial[i]);
                let small = total / 2;
                let (begin, end) = if auto == "SAME_UPPER" { (small, total - small) } else { (total - small, small) };
                pads[i] = begin;
                pads[i + sp] = end;
            }
            Ok(pads)
        }
        other => Err(node_err(n, format!("unknown auto_pad '{other}'"))),
    }
}

/// Per-axis attribute with a default of 1 (strides, dilations); all entries must be positive.
fn per_axis(n: &NodeProto, a: &Attrs, name: &str, sp: usize) -> Result<Vec<usize>> {
    let v = a.usizes(name)?.unwrap_or_else(|| vec![1; sp]);
    if v.len() != sp || v.contains(&0) {
        return Err(node_err(n, format!("{name} {v:?} must have {sp} positive entries")));
    }
    Ok(v)
}

fn conv(ctx: &mut Ctx, n: &NodeProto, a: &Attrs) -> Result<Value> {
    let x = ctx.input(n, 0)?;
    let w = ctx.const_input(n, 1)?.ok_or_else(|| node_err(n, "missing weight"))?;
    let bias = ctx.const_input(n, 2)?;
    let xs = ctx.shape_of(&x);
    let ws = w.shape().to_vec();
    if ws.len() < 3 || xs.len() != ws.len() {
        return Err(node_err(n, format!("weight {ws:?} does not fit input {xs:?}")));
    }
    let sp = ws.len() - 2;
    if sp > 2 {
        return Err(unsupported(n, ctx.opset, format!("{sp}-D convolution (1-D and 2-D are supported)")));
    }
    let kernel = ws[2..].to_vec();
    if let Some(k) = a.usizes("kernel_shape")? {
        if k != kernel {
            return Err(node_err(n, format!("kernel_shape {k:?} disagrees with the weight {ws:?}")));
        }
    }
    let strides = per_axis(n, a, "strides", sp)?;
    let dilations = per_axis(n, a, "dilations", sp)?;
    let pads = resolve_pads(n, a, &xs[2..], &kernel, &strides, &dilations)?;
    let group = usize::try_from(a.int_or("group", 1)?).map_err(|_| node_err(n, "negative group"))?;
    let op = ops::Conv {
        weight: ctx.param(n, &w, "weight")?,
        bias: bias.map(|b| ctx.param(n, &b, "bias")).transpose()?,
        strides,
        pads,
        dilations,
        group,
    };
    ctx.emit(n, op.into(), vec![x])
}

fn batch_norm(ctx: &mut Ctx, n: &NodeProto, a: &Attrs) -> Result<Value> {
    if a.int_or("training_mode", 0)? != 0 {
        return Err(unsupported(n, ctx.opset, "BatchNormalization in training mode"));
    }
    if ctx.opset < 9 && a.int_or("spatial", 1)? == 0 {
        return Err(unsupported(n, ctx.opset, "BatchNormalization with spatial=0"));
    }
    let x = ctx.input(n, 0)?;
    let mut p = Vec::new();
    for (i, what) in [(1, "scale"), (2, "bias"), (3, "mean"), (4, "var")] {
        let c = ctx.const_input(n, i)?.ok_or_else(|| node_err(n, format!("missing {what}")))?;
        p.push(ctx.param(n, &c, what)?);
    }
    let c = p[0].len();
    if p.iter().any(|t| t.shape() != [c]) {
        return Err(node_err(n, "scale, bias, mean and var must all be vectors of the channel count"));
    }
    if p[3].f64.data().iter().any(|&v| v < 0.0) {
        return Err(node_err(n, "negative running variance"));
    }
    ctx.mark_unavailable(n, 1, "a training-mode statistic");
    let mut p = p.into_iter();
    let (scale, bias, mean, var) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
    let op = ops::BatchNorm { scale, bias, mean, var, epsilon: a.float_or("epsilon", 1e-5)? as f64 };
    ctx.emit(n, op.into(), vec![x])
}

fn pool(ctx: &mut Ctx, n: &NodeProto, a: &Attrs) -> Result<Value> {
    let x = ctx.input(n, 0)?;
    let xs = ctx.shape_of(&x);
    let kernel = a.usizes("kernel_shape")?.ok_or_else(|| node_err(n, "missing kernel_shape"))?;
    let sp = kernel.len();
    if !(1..=2).contains(&sp) || xs.len() != sp + 2 {
        return Err(unsupported(n, ctx.opset, format!("{sp}-D pooling on {xs:?} (1-D and 2-D are supported)")));
    }
    if kernel.contains(&0) {
        return Err(node_err(n, "zero kernel size"));
    }
    let strides = per_axis(n, a, "strides", sp)?;
    let dilations = per_axis(n, a, "dilations", sp)?;
    let pads = resolve_pads(n, a, &xs[2..], &kernel, &strides, &dilations)?;
    let ceil_mode = a.int_or("ceil_mode", 0)? != 0;
    let op: Op = if n.op_type == "MaxPool" {
        if a.int_or("storage_order", 0)? != 0 && n.output.len() > 1 {
            return Err(unsupported(n, ctx.opset, "MaxPool indices in column-major order"));
        }
        ctx.mark_unavailable(n, 1, "MaxPool's indices, which robustcert does not compute");
        ops::MaxPool { kernel, strides, pads, dilations, ceil_mode }.into()
    } else {
        if dilations.iter().any(|&d| d != 1) {
            return Err(unsupported(n, ctx.opset, "AveragePool with dilations"));
        }
        let count_include_pad = a.int_or("count_include_pad", 0)? != 0;
        ops::AveragePool { kernel, strides, pads, ceil_mode, count_include_pad }.into()
    };
    ctx.emit(n, op, vec![x])
}

fn reduce_mean(ctx: &mut Ctx, n: &NodeProto, a: &Attrs) -> Result<Value> {
    let x = ctx.input(n, 0)?;
    let rank = ctx.shape_of(&x).len();
    let axes = if ctx.opset >= 18 { ctx.const_input(n, 1)?.map(|c| c.to_ints()) } else { a.ints("axes")? };
    let keepdims = a.int_or("keepdims", 1)? != 0;
    let axes = match axes {
        Some(v) if !v.is_empty() => v,
        _ if a.int_or("noop_with_empty_axes", 0)? != 0 => return Ok(x),
        _ => (0..rank as i64).collect(),
    };
    let mut axes: Vec<usize> = axes.iter().map(|&v| axis(n, v, rank)).collect::<Result<_>>()?;
    axes.sort_unstable();
    axes.dedup();
    ctx.emit(n, ops::ReduceMean { axes, keepdims }.into(), vec![x])
}

fn to_dims(n: &NodeProto, v: &[i64]) -> Result<Vec<usize>> {
    v.iter().map(|&d| usize::try_from(d).map_err(|_| node_err(n, format!("invalid dimension {d} in {v:?}")))).collect()
}

/// Reshape to a fully resolved `target` (keeping axis 0 as the batch when it is one).
fn reshape_to(ctx: &mut Ctx, n: &NodeProto, x: Value, target: Vec<usize>) -> Result<Value> {
    let s = ctx.shape_of(&x);
    if checked_numel(&s)? != checked_numel(&target)? {
        return Err(Error::Shape(format!("node '{}': cannot reshape {s:?} into {target:?}", n.name)));
    }
    let keep_batch = !s.is_empty() && !target.is_empty() && s[0] == target[0];
    ctx.emit(n, ops::Reshape { shape: target, keep_batch }.into(), vec![x])
}

fn reshape(ctx: &mut Ctx, n: &NodeProto, a: &Attrs) -> Result<Value> {
    let x = ctx.input(n, 0)?;
    let s = ctx.shape_of(&x);
    let spec = if ctx.opset < 5 {
        a.ints("shape")?.ok_or_else(|| node_err(n, "missing attribute 'shape'"))?
    } else {
        ctx.const_input(n, 1)?.ok_or_else(|| node_err(n, "missing shape"))?.to_ints()
    };
    let allowzero = a.int_or("allowzero", 0)? != 0;
    let mut target = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                target.push(1);
            }
            0 if !allowzero => {
                target.push(*s.get(i).ok_or_else(|| node_err(n, format!("shape {spec:?} copies a missing axis {i}")))?)
            }
            d if d >= 0 => target.push(d as usize),
            _ => return Err(node_err(n, format!("invalid shape {spec:?}"))),
        }
    }
    let total = checked_numel(&s)?;
    if let Some(i) = infer {
        let rest = checked_numel(&target)?;
        if rest == 0 || total % rest != 0 {
            return Err(Error::Shape(format!("node '{}': cannot reshape {s:?} into {spec:?}", n.name)));
        }
        target[i] = total / rest;
    }
    reshape_to(ctx, n, x, target)
}

fn squeeze(ctx: &mut Ctx, n: &NodeProto, a: &Attrs) -> Result<Value> {
    let x = ctx.input(n, 0)?;
    let s = ctx.shape_of(&x);
    let axes = if ctx.opset >= 13 { ctx.const_input(n, 1)?.map(|c| c.to_ints()) } else { a.ints("axes")? };
    let target = if n.op_type == "Squeeze" {
        match axes {
            None => s.iter().copied().filter(|&d| d != 1).collect(),
            Some(ax) => {
                let ax: Vec<usize> = ax.iter().map(|&v| axis(n, v, s.len())).collect::<Result<_>>()?;
                if let Some(&bad) = ax.iter().find(|&&i| s[i] != 1) {
                    return Err(node_err(n, format!("cannot squeeze axis {bad} of size {} in {s:?}", s[bad])));
                }
                s.iter().enumerate().filter(|(i, _)| !ax.contains(i)).map(|(_, &d)| d).collect()
            }
        }
    } else {
        let ax = axes.ok_or_else(|| node_err(n, "missing axes"))?;
        let r = s.len() + ax.len();
        let mut ax: Vec<usize> = ax.iter().map(|&v| axis(n, v, r)).collect::<Result<_>>()?;
        ax.sort_unstable();
        if ax.windows(2).any(|w| w[0] == w[1]) {
            return Err(node_err(n, "repeated axes"));
        }
        let mut it = s.iter();
        (0..r).map(|i| if ax.contains(&i) { 1 } else { *it.next().expect("rank counted") }).collect()
    };
    reshape_to(ctx, n, x, target)
}

fn pad(ctx: &mut Ctx, n: &NodeProto, a: &Attrs) -> Result<Value> {
    let x = ctx.input(n, 0)?;
    let rank = ctx.shape_of(&x).len();
    let mode = a.string("mode")?.unwrap_or_else(|| "constant".into());
    if mode != "constant" {
        return Err(unsupported(n, ctx.opset, format!("Pad mode '{mode}' (only 'constant' is supported)")));
    }
    let (raw, value, axes) = if ctx.opset < 11 {
        let p = a.ints("pads")?.or(a.ints("paddings")?).ok_or_else(|| node_err(n, "missing pads"))?;
        (p, a.float_or("value", 0.0)? as f64, None)
    } else {
        let p = ctx.const_input(n, 1)?.ok_or_else(|| node_err(n, "missing pads"))?.to_ints();
        let v = ctx.const_input(n, 2)?.and_then(|c| c.value.data().first().copied()).unwrap_or(0.0);
        let axes = ctx.const_input(n, 3)?.map(|c| c.to_ints());
        (p, v, axes)
    };
    if !value.is_finite() {
        return Err(Error::NonFinite(format!("node '{}': pad value {value}", n.name)));
    }
    let axes: Vec<usize> = match axes {
        Some(ax) => ax.iter().map(|&v| axis(n, v, rank)).collect::<Result<_>>()?,
        None => (0..rank).collect(),
    };
    if raw.len() != 2 * axes.len() {
        return Err(node_err(n, format!("pads {raw:?} must have {} entries", 2 * axes.len())));
    }
    if raw.iter().any(|&p| p < 0) {
        return Err(unsupported(n, ctx.opset, "negative pads (cropping)"));
    }
    let k = axes.len();
    let mut pads = vec![0usize; 2 * rank];
    for (j, &ax) in axes.iter().enumerate() {
        pads[ax] = raw[j] as usize;
        pads[ax + rank] = raw[j + k] as usize;
    }
    ctx.emit(n, ops::Pad { pads, value }.into(), vec![x])
}

fn gather(ctx: &mut Ctx, n: &NodeProto, a: &Attrs) -> Result<Value> {
    let data = ctx.const_input(n, 0)?.ok_or_else(|| node_err(n, "missing data"))?;
    let idx = ctx.const_input(n, 1)?.ok_or_else(|| node_err(n, "missing indices"))?;
    let ds = data.shape().to_vec();
    let ax = axis(n, a.int_or("axis", 0)?, ds.len())?;
    let outer: usize = ds[..ax].iter().product();
    let inner: usize = ds[ax + 1..].iter().product();
    let dim = ds[ax] as i64;
    let mut out_shape = ds[..ax].to_vec();
    out_shape.extend_from_slice(idx.shape());
    out_shape.extend_from_slice(&ds[ax + 1..]);
    let mut out = Vec::with_capacity(checked_numel(&out_shape)?);
    let src = data.value.data();
    for o in 0..outer {
        for &i in &idx.to_ints() {
            let j = if i < 0 { i + dim } else { i };
            if j < 0 || j >= dim {
                return Err(node_err(n, format!("index {i} out of range for axis of size {dim}")));
            }
            let base = (o * ds[ax] + j as usize) * inner;
            out.extend_from_slice(&src[base..base + inner]);
        }
    }
    Ok(Value::Const(ConstTensor { dtype: data.dtype, value: Tensor::new(out_shape, out)? }))
}

fn cast(ctx: &mut Ctx, n: &NodeProto, a: &Attrs) -> Result<Value> {
    let to = a.int("to")?.ok_or_else(|| node_err(n, "missing 'to'"))? as i32;
    let target =
        dtype_of(to).ok_or_else(|| unsupported(n, ctx.opset, format!("Cast to {}", super::tensor::dtype_name(to))))?;
    match ctx.input(n, 0)? {
        Value::Const(mut c) => {
            c.value = match target {
                DType::Float if to == code::FLOAT => c.value.map(|v| v as f32 as f64),
                DType::Float => c.value,
                DType::Int => c.value.map(|v| v.trunc()),
                DType::Bool => c.value.map(|v| (v != 0.0) as u8 as f64),
            };
            c.dtype = target;
            Ok(Value::Const(c))
        }
        // Model inputs are float already; a float cast of a variable is the identity here.
        v @ Value::Var(_) if target == DType::Float => Ok(v),
        _ => Err(unsupported(n, ctx.opset, "Cast of a variable tensor to a non-float type")),
    }
}

fn slice(ctx: &mut Ctx, n: &NodeProto, a: &Attrs) -> Result<Value> {
    let data = ctx.const_input(n, 0)?.ok_or_else(|| node_err(n, "missing data"))?;
    let ds = data.shape().to_vec();
    let (starts, ends, axes, steps) = if ctx.opset < 10 {
        (
            a.ints("starts")?.ok_or_else(|| node_err(n, "missing starts"))?,
            a.ints("ends")?.ok_or_else(|| node_err(n, "missing ends"))?,
            a.ints("axes")?,
            None,
        )
    } else {
        let get = |i| -> Result<Option<Vec<i64>>> { Ok(ctx.const_input(n, i)?.map(|c| c.to_ints())) };
        (
            get(1)?.ok_or_else(|| node_err(n, "missing starts"))?,
            get(2)?.ok_or_else(|| node_err(n, "missing ends"))?,
            get(3)?,
            get(4)?,
        )
    };
    let k = starts.len();
    let axes = axes.unwrap_or_else(|| (0..k as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; k]);
    if ends.len() != k || axes.len() != k || steps.len() != k {
        return Err(node_err(n, "starts, ends, axes and steps differ in length"));
    }
    // Per axis: the selected indices.
    let mut sel: Vec<Vec<usize>> = ds.iter().map(|&d| (0..d).collect()).collect();
    for j in 0..k {
        let ax = axis(n, axes[j], ds.len())?;
        let d = ds[ax] as i64;
        let st = steps[j];
        if st == 0 {
            return Err(node_err(n, "step 0"));
        }
        let norm = |v: i64| if v < 0 { v + d } else { v };
        let (lo, hi) = if st > 0 { (0, d) } else { (-1, d - 1) };
        let s = norm(starts[j]).clamp(lo, hi);
        let e = norm(ends[j]).clamp(lo, hi);
        let mut v = Vec::new();
        let mut i = s;
        while (st > 0 && i < e) || (st < 0 && i > e) {
            v.push(i as usize);
            i += st;
        }
        sel[ax] = v;
    }
    let out_shape: Vec<usize> = sel.iter().map(|v| v.len()).collect();
    let total = checked_numel(&out_shape)?;
    let strides = crate::ir::tensor::strides(&ds);
    let mut out = Vec::with_capacity(total);
    let mut idx = vec![0usize; ds.len()];
    for _ in 0..total {
        let off: usize = (0..ds.len()).map(|i| sel[i][idx[i]] * strides[i]).sum();
        out.push(data.value.data()[off]);
        for i in (0..ds.len()).rev() {
            idx[i] += 1;
            if idx[i] < out_shape[i] {
                break;
            }
            idx[i] = 0;
        }
    }
    Ok(Value::Const(ConstTensor { dtype: data.dtype, value: Tensor::new(out_shape, out)? }))
}
