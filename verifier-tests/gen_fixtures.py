#!/usr/bin/env python3
"""Generate the ONNX import fixtures used by the Rust verifier tests.

Run from the repository root:

    python3 verifier-tests/gen_fixtures.py

Everything is deterministic (fixed seeds). For every model NAME this writes
into verifier-tests/fixtures/models/:

    NAME.onnx          self-contained ONNX model (no external data)
    NAME.input.npy     float32 [B, ...] batch of test inputs (B = 3 or 4)
    NAME.output.npy    float32 onnxruntime (CPU) output for that batch,
                       first graph output

plus manifest.json describing every model.

If the model's input has a fixed batch dimension of 1, onnxruntime is run
once per sample (input[i:i+1]) and the per-sample outputs are concatenated
along axis 0, so output.npy is still [B, ...].

Reference outputs are computed with graph optimisations disabled
(ORT_DISABLE_ALL, one thread), i.e. the most literal execution of the graph;
the script also checks them against ORT_ENABLE_ALL and, for the torch models,
against torch itself.
"""

import json
import os
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

warnings.filterwarnings("ignore")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "verifier-tests", "fixtures", "models")

MANIFEST = []
SUMMARY = []


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def make_inputs(seed, shape, batch=4, n_unit=None):
    """B samples: the first n_unit uniform in [0,1] (image-like), the rest
    uniform in [-1,1]."""
    rng = np.random.default_rng(seed)
    if n_unit is None:
        n_unit = batch - batch // 2 if batch > 3 else batch - 1
    a = rng.uniform(0.0, 1.0, size=(n_unit,) + tuple(shape)).astype(np.float32)
    b = rng.uniform(-1.0, 1.0, size=(batch - n_unit,) + tuple(shape)).astype(np.float32)
    return np.concatenate([a, b], axis=0)


def ort_session(path_or_bytes, level):
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # silence the "opset < 7" warnings
    return ort.InferenceSession(path_or_bytes, sess_options=so,
                                providers=["CPUExecutionProvider"])


def real_inputs(model):
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def input_dims(model):
    vi = real_inputs(model)[0]
    dims = []
    for d in vi.type.tensor_type.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else None)
    return dims


def run_ort(sess, x, fixed_batch1):
    name = sess.get_inputs()[0].name
    if fixed_batch1:
        outs = [sess.run(None, {name: x[i:i + 1]})[0] for i in range(x.shape[0])]
        return np.concatenate(outs, axis=0)
    return sess.run(None, {name: x})[0]


def check_self_contained(path, model):
    for t in model.graph.initializer:
        assert t.data_location != TensorProto.EXTERNAL, (path, t.name)
        assert len(t.external_data) == 0, (path, t.name)
    for n in model.graph.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                assert a.t.data_location != TensorProto.EXTERNAL
    d = os.path.dirname(path)
    stray = [f for f in os.listdir(d) if f.endswith(".data") or f.endswith(".onnx.data")]
    assert not stray, stray


def finish(name, x, notes, torch_ref=None, hand_built=False):
    """Load NAME.onnx, run ORT on x, write npy files and manifest entry."""
    path = os.path.join(OUT_DIR, name + ".onnx")
    model = onnx.load(path)
    check_self_contained(path, model)
    if hand_built:
        onnx.checker.check_model(model, full_check=True)
    else:
        onnx.checker.check_model(model)
    opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")][0]
    dims = input_dims(model)
    fixed_batch1 = dims[0] == 1
    assert list(x.shape[1:]) == [d for d in dims[1:]], (name, x.shape, dims)
    x = np.ascontiguousarray(x.astype(np.float32))

    sess = ort_session(path, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    y = run_ort(sess, x, fixed_batch1).astype(np.float32)
    sess_opt = ort_session(path, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    y_opt = run_ort(sess_opt, x, fixed_batch1)
    scale = max(1e-6, float(np.abs(y).max()))
    d_opt = float(np.abs(y - y_opt).max()) / scale
    assert d_opt < 1e-5, (name, d_opt)
    d_torch = None
    if torch_ref is not None:
        d_torch = float(np.abs(y - torch_ref).max()) / scale
        assert y.shape == torch_ref.shape, (name, y.shape, torch_ref.shape)
        assert d_torch < 1e-4, (name, d_torch)
    assert np.isfinite(y).all(), name
    # Not degenerate: outputs must vary across samples and not be all zero.
    assert np.abs(y).max() > 1e-3, (name, "all ~zero")
    assert np.ptp(y.reshape(y.shape[0], -1), axis=0).max() > 1e-4, (name, "no variation")

    np.save(os.path.join(OUT_DIR, name + ".input.npy"), x)
    np.save(os.path.join(OUT_DIR, name + ".output.npy"), y)

    ops = sorted({n.op_type for n in model.graph.node})
    MANIFEST.append({
        "name": name,
        "opset": opset,
        "input_shape": dims,
        "batch": int(x.shape[0]),
        "ops": ops,
        "notes": notes,
    })
    SUMMARY.append((name, opset, model.ir_version, dims, x.shape[0], tuple(y.shape),
                    os.path.getsize(path), float(y.min()), float(y.max()),
                    float((y == 0).mean()), d_opt, d_torch, ops))


def torch_export(name, module, x, opset, dynamic=True, **kw):
    module.eval()
    path = os.path.join(OUT_DIR, name + ".onnx")
    dummy = torch.from_numpy(x[:1].copy())
    dyn = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic else None
    torch.onnx.export(module, (dummy,), path, dynamo=False, opset_version=opset,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes=dyn, **kw)
    with torch.no_grad():
        if dynamic:
            ref = module(torch.from_numpy(x)).numpy()
        else:
            ref = torch.cat([module(torch.from_numpy(x[i:i + 1])) for i in range(x.shape[0])]).numpy()
    return ref


def fold_node_input(path, op_type, input_index, init_name):
    """Replace input `input_index` of the (single) `op_type` node by an
    initializer holding its value (computed with onnxruntime), then drop the
    nodes that became dead. Used to fold the pads subgraph torch emits for
    ConstantPad2d, which the legacy exporter's constant folding leaves alone."""
    model = onnx.load(path)
    node = [n for n in model.graph.node if n.op_type == op_type]
    assert len(node) == 1, (op_type, len(node))
    node = node[0]
    tname = node.input[input_index]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(helper.make_empty_tensor_value_info(tname))
    sess = ort_session(probe.SerializeToString(), ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    feed = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        feed[i.name] = np.zeros(shape, np.float32)
    value = sess.run([tname], feed)[0]
    model.graph.initializer.append(numpy_helper.from_array(value, init_name))
    node.input[input_index] = init_name
    while True:
        used = {o.name for o in model.graph.output}
        for n in model.graph.node:
            used.update(n.input)
        dead = [n for n in model.graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            model.graph.node.remove(n)
    onnx.save(model, path)
    return value


def randomize_bn(module, gen):
    """Non-trivial random BN affine params (weight in [0.5,1.5], bias ~ N(0,0.2))."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0.0, 0.2, generator=gen)


def calibrate_bn(module, shape, gen, n_batches=4, batch=32):
    """Running stats from random data (so activations stay O(1) however deep the
    net is), then perturbed so they are not exactly the batch statistics."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    module.train()
    with torch.no_grad():
        for _ in range(n_batches):
            module(torch.rand((batch,) + tuple(shape), generator=gen) * 2 - 0.5)
    module.eval()
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.add_(torch.randn(m.running_mean.shape, generator=gen) * 0.05)
                m.running_var.mul_(torch.empty(m.running_var.shape).uniform_(0.8, 1.25, generator=gen))
            m.momentum = 0.1


# --------------------------------------------------------------------------
# torch models
# --------------------------------------------------------------------------

def gen_mlp_relu():
    torch.manual_seed(1)

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(),
                                     nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))

        def forward(self, x):
            return self.net(x)

    m = MLP()
    x = make_inputs(101, (1, 28, 28), batch=4)
    ref = torch_export("mlp_relu", m, x, 13)
    finish("mlp_relu", x, "MLP 784-256-256-10 with ReLU; Flatten of [B,1,28,28] inside the graph; "
           "dynamic batch ('batch'); torch legacy exporter, constant folding on -> Flatten/Gemm/Relu.",
           torch_ref=ref)


def gen_mlp_act():
    torch.manual_seed(2)

    class MLPAct(nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(2)
            self.register_buffer("mean", torch.rand(20, generator=g) * 0.4 + 0.3)
            self.register_buffer("std", torch.rand(20, generator=g) * 0.3 + 0.2)
            self.fc1 = nn.Linear(20, 32)
            self.fc2 = nn.Linear(32, 32)
            self.fc3 = nn.Linear(32, 32)
            self.fc4 = nn.Linear(32, 32)
            self.fc5 = nn.Linear(32, 32)
            self.fc6 = nn.Linear(32, 6)
            self.lrelu = nn.LeakyReLU(0.1)
            self.relu6 = nn.ReLU6()

        def forward(self, x):
            x = (x - self.mean) / self.std
            x = self.lrelu(self.fc1(x))
            x = torch.sigmoid(self.fc2(x) * 3.0)
            x = torch.tanh(self.fc3(x) * 4.0)
            x = self.relu6(self.fc4(x) * 6.0)
            x = torch.clamp(self.fc5(x), min=-0.5, max=0.7)
            return torch.softmax(self.fc6(x) * 4.0, dim=-1)

    m = MLPAct()
    x = make_inputs(102, (20,), batch=4)
    ref = torch_export("mlp_act", m, x, 13)
    finish("mlp_act", x, "Small MLP on [B,20]: in-graph normalisation (x-mean)/std (Sub/Div by "
           "initializers), LeakyRelu(alpha=0.1), Sigmoid, Tanh, Clip from ReLU6 (min 0, max 6) and from "
           "clamp(-0.5,0.7) (opset-13 Clip with min/max as inputs), Mul by scalar constants, "
           "final Softmax(axis=-1). Dynamic batch.", torch_ref=ref)


def gen_cnn_bn():
    torch.manual_seed(3)
    gen = torch.Generator().manual_seed(3)

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(8)
            self.pool1 = nn.MaxPool2d(3, stride=2, padding=1)           # 32 -> 16
            self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)       # 16 -> 8
            self.bn2 = nn.BatchNorm2d(16)
            self.conv3 = nn.Conv2d(16, 16, 3, padding=2, dilation=2)    # 8 -> 8
            self.bn3 = nn.BatchNorm2d(16)
            self.pool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)      # 8 -> 4 (floor would give 3)
            self.pool3 = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=True)  # 4 -> 4
            self.conv4 = nn.Conv2d(16, 32, 1)
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(32, 10)

        def forward(self, x):
            x = self.pool1(F.relu(self.bn1(self.conv1(x))))
            x = F.relu(self.bn2(self.conv2(x)))
            x = F.relu(self.bn3(self.conv3(x)))
            x = self.pool3(self.pool2(x))
            x = F.relu(self.conv4(x))
            x = torch.flatten(self.gap(x), 1)
            return self.fc(x)

    m = CNN()
    randomize_bn(m, gen)
    calibrate_bn(m, (3, 32, 32), gen)
    x = make_inputs(103, (3, 32, 32), batch=4)
    ref = torch_export("cnn_bn", m, x, 13, training=torch.onnx.TrainingMode.PRESERVE,
                       do_constant_folding=False)
    model = onnx.load(os.path.join(OUT_DIR, "cnn_bn.onnx"))
    n_bn = sum(n.op_type == "BatchNormalization" for n in model.graph.node)
    assert n_bn == 3, n_bn
    finish("cnn_bn", x, "CNN on [B,3,32,32]: Conv pad 1; Conv stride 2; Conv dilation 2 pad 2; 3 UNFUSED "
           "BatchNormalization (inference, eps 1e-5, random affine + calibrated running stats); MaxPool "
           "k3 s2 pad 1; MaxPool k3 s2 ceil_mode=1 (8->4, floor would be 3); AveragePool k3 s1 pad 1 "
           "count_include_pad=1; GlobalAveragePool; Flatten; Gemm. Dynamic batch.", torch_ref=ref)


def _make_divisible(v, divisor=8, min_value=None):
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNReLU6(nn.Sequential):
    def __init__(self, inp, oup, k=3, stride=1, groups=1):
        super().__init__(nn.Conv2d(inp, oup, k, stride, (k - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(oup), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(inp, hidden, k=1))
        layers += [ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision.models.MobileNetV2 re-implemented (torchvision is not a dependency)."""

    def __init__(self, num_classes=7, width_mult=0.35, round_nearest=8, dropout=0.2):
        super().__init__()
        input_channel = _make_divisible(32 * width_mult, round_nearest)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult), round_nearest)
        setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2],
                   [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]
        features = [ConvBNReLU6(3, input_channel, stride=2)]
        for t, c, n, s in setting:
            out = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(input_channel, out, s if i == 0 else 1, t))
                input_channel = out
        features.append(ConvBNReLU6(input_channel, self.last_channel, k=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.last_channel, num_classes))

    def forward(self, x):
        x = self.features(x)
        x = x.mean([2, 3], keepdim=True)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def gen_mobilenetv2():
    torch.manual_seed(4)
    gen = torch.Generator().manual_seed(4)
    m = MobileNetV2()
    randomize_bn(m, gen)
    calibrate_bn(m, (3, 64, 64), gen)
    with torch.no_grad():  # make the logits spread a bit more than the default Linear init gives
        m.classifier[1].weight.mul_(4.0)
    x = make_inputs(104, (3, 64, 64), batch=4)
    ref = torch_export("mobilenetv2_035", m, x, 13)
    finish("mobilenetv2_035", x, "torchvision-style MobileNetV2, width 0.35 (first conv 16 ch, last 1x1 conv "
           "to 1280), 7 classes, [B,3,64,64]. Inverted residuals (expansion 6), depthwise 3x3 Conv "
           "(group=channels), ReLU6 as Clip(0,6), residual Add, BN folded into Conv by constant folding, "
           "ReduceMean over [2,3] keepdims=1, Flatten, Dropout removed in eval, Gemm. Dynamic batch.",
           torch_ref=ref)


def gen_resnet_small():
    torch.manual_seed(5)

    class ResNetSmall(nn.Module):
        def __init__(self):
            super().__init__()
            self.pad = nn.ConstantPad2d((1, 2, 1, 0), 0.5)
            self.stem = nn.Conv2d(3, 8, 3)
            self.a1 = nn.Conv2d(8, 8, 3, padding=1, groups=2)
            self.a2 = nn.Conv2d(8, 8, 3, padding=1)
            self.b1 = nn.Conv2d(8, 4, 1)
            self.b2 = nn.Conv2d(8, 6, 3, padding=1)
            self.down = nn.Conv2d(10, 8, 3, stride=2, padding=1)
            g = torch.Generator().manual_seed(55)
            self.W = nn.Parameter(torch.randn(8 * 9 * 8, 10, generator=g) * (2.0 / np.sqrt(8 * 9 * 8)))
            self.b = nn.Parameter(torch.randn(10, generator=g) * 0.1)

        def forward(self, x):
            x = F.relu(self.stem(self.pad(x)))          # [1,3,17,19] -> [1,8,15,17]
            x = F.relu(x + self.a2(F.relu(self.a1(x))))  # residual Add of two branches
            x = F.relu(torch.cat([self.b1(x), self.b2(x)], dim=1))  # [1,10,15,17]
            x = F.relu(self.down(x))                    # [1,8,8,9]
            x = x.permute(0, 2, 3, 1)                   # Transpose -> [1,8,9,8]
            x = x.reshape(1, 8 * 9 * 8)                 # Reshape with constant shape
            return torch.matmul(x, self.W) + self.b

    m = ResNetSmall()
    x = make_inputs(105, (3, 16, 16), batch=4)
    ref = torch_export("resnet_small", m, x, 13, dynamic=False)
    pads = fold_node_input(os.path.join(OUT_DIR, "resnet_small.onnx"), "Pad", 1, "pad.pads")
    assert pads.tolist() == [0, 0, 1, 1, 0, 0, 0, 2], pads
    finish("resnet_small", x, "Tiny ResNet on a FIXED-batch-1 input [1,3,16,16] (run once per sample, outputs "
           "concatenated on axis 0). ConstantPad2d((1,2,1,0), value 0.5) -> Pad(constant, opset-13 inputs) "
           "with asymmetric pads [0,0,1,1,0,0,0,2] (the pads subgraph torch emits was folded into an "
           "initializer by this script; see constpad_torch for the raw form); Conv; grouped Conv (groups=2, not depthwise); residual Add of two branches; Concat of two "
           "conv branches along channels; Conv stride 2; Transpose (NCHW->NHWC); Reshape to [1,576]; "
           "MatMul with a parameter + Add bias.", torch_ref=ref)


def gen_reshape_dyn():
    torch.manual_seed(6)

    class ReshapeDyn(nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(66)
            self.register_buffer("scale", torch.rand(8, 1, 1, generator=g) + 0.5)
            self.register_buffer("shift", torch.randn(1, 8, 1, 1, generator=g) * 0.3)
            self.register_buffer("two", torch.tensor(2.0))  # tensor so torch emits Div, not Reciprocal
            self.fc = nn.Linear(8 * 4 * 4, 10)

        def forward(self, x):
            x = x * self.scale + self.shift          # Mul/Add with broadcasting
            x = x * 1.5 + 0.25                       # Mul/Add by scalar constants
            y = 1.0 - x                              # constant on the LEFT of Sub
            z = self.two / (1.0 + F.relu(y))         # Div with constant numerator
            z = z.double().float()                   # Cast to double and back
            u = z.unsqueeze(1) - 0.5                 # Unsqueeze
            u = u.squeeze(1)                         # Squeeze
            v = u.view(u.size(0), -1)                # Shape->Gather->Unsqueeze->Concat->Reshape
            return self.fc(v) * 3.0

    m = ReshapeDyn()
    x = make_inputs(106, (8, 4, 4), batch=4)
    ref = torch_export("reshape_dyn", m, x, 11, do_constant_folding=False)
    model = onnx.load(os.path.join(OUT_DIR, "reshape_dyn.onnx"))
    ops = {n.op_type for n in model.graph.node}
    for need in ["Shape", "Gather", "Unsqueeze", "Concat", "Reshape", "Squeeze", "Cast", "Sub", "Div"]:
        assert need in ops, need
    finish("reshape_dyn", x, "Opset 11, dynamic batch, constant folding OFF: x.view(x.size(0),-1) leaves the "
           "Shape->Gather->Unsqueeze->Concat->Reshape subgraph; Unsqueeze/Squeeze with axes attributes; "
           "Cast float->double->float; Mul/Add with broadcast initializers and scalar Constants; "
           "Sub with the constant on the LEFT (1-x); Div with a constant (scalar initializer) numerator "
           "(2/(1+relu(x))); "
           "Constant nodes; Gemm.", torch_ref=ref)


def gen_constpad_torch():
    torch.manual_seed(26)

    class ConstPad(nn.Module):
        def __init__(self):
            super().__init__()
            self.pad = nn.ConstantPad2d((2, 0, 1, 3), -0.5)
            self.conv = nn.Conv2d(3, 4, 3, stride=2)

        def forward(self, x):
            return self.conv(self.pad(x))

    m = ConstPad()
    x = make_inputs(126, (3, 8, 8), batch=3)
    ref = torch_export("constpad_torch", m, x, 13)
    finish("constpad_torch", x, "Raw torch (legacy exporter, opset 13, constant folding ON) export of "
           "nn.ConstantPad2d((2,0,1,3), -0.5) + Conv k3 s2, dynamic batch: the Pad 'pads' input is NOT an "
           "initializer but the subgraph Constant->ConstantOfShape->Concat->Reshape->Slice(step -1)->"
           "Transpose->Reshape->Cast that a real exported model contains (ONNX pads "
           "[0,0,1,2,0,0,3,0]); the importer has to constant-fold it.", torch_ref=ref)


# --------------------------------------------------------------------------
# hand-built models (onnx.helper)
# --------------------------------------------------------------------------

def rnd(rng, *shape, scale=None):
    if scale is None:
        scale = 1.0 / np.sqrt(shape[0]) if len(shape) > 0 else 1.0
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def build(name, nodes, inits, in_shape, out_shape, opset, ir_version=None, extra_outputs=()):
    """in_shape: list with 'N' for the symbolic batch dim (or an int)."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)
    inputs = [x]
    if ir_version is None:
        # IR version of the ONNX release that introduced this opset (IR 3 for opset <= 8).
        ir_version = 3 if opset <= 8 else helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    if ir_version < 4:
        # IR < 4: every initializer must also be declared as a graph input.
        inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits]
    g = helper.make_graph(nodes, name, inputs, [y] + list(extra_outputs), initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="robustcert-gen_fixtures")
    m.ir_version = ir_version
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, os.path.join(OUT_DIR, name + ".onnx"))
    return m


def gen_flatten():
    rng = np.random.default_rng(7)
    # opset 9: Flatten axis=2 on [N,3,4,5] -> [N*3, 20] (batch folded into rows)
    build("flatten_opset9",
          [helper.make_node("Flatten", ["input"], ["f"], axis=2),
           helper.make_node("Gemm", ["f", "W", "C"], ["output"])],
          [init("W", rnd(rng, 20, 6)), init("C", rnd(rng, 6, scale=0.2))],
          ["N", 3, 4, 5], ["N3", 6], 9)
    finish("flatten_opset9", make_inputs(107, (3, 4, 5), batch=3),
           "Opset 9 (IR 4): Flatten axis=2 on [N,3,4,5] gives [3N,20] (batch folded into rows), then Gemm "
           "with [6] bias (opset 7+ unidirectional broadcast). output.npy is therefore [3B,6].",
           hand_built=True)

    rng = np.random.default_rng(8)
    build("flatten_opset13",
          [helper.make_node("Flatten", ["input"], ["f"], axis=-3),
           helper.make_node("Gemm", ["f", "W", "C"], ["output"])],
          [init("W", rnd(rng, 60, 6)), init("C", rnd(rng, 6, scale=0.2))],
          ["N", 3, 4, 5], ["N", 6], 13)
    finish("flatten_opset13", make_inputs(108, (3, 4, 5), batch=3),
           "Opset 13: Flatten with NEGATIVE axis=-3 on [N,3,4,5] (== axis 1 -> [N,60]; negative axis valid "
           "from opset 11), then Gemm.", hand_built=True)


def gen_clip():
    rng = np.random.default_rng(9)
    # Gemm-6 has no onnxruntime kernel, so the opset-6 model uses MatMul.
    build("clip_opset6",
          [helper.make_node("MatMul", ["input", "W1"], ["h"]),
           helper.make_node("Clip", ["h"], ["c"], min=-0.3, max=0.4),
           helper.make_node("MatMul", ["c", "W2"], ["h2"]),
           helper.make_node("Clip", ["h2"], ["output"], max=0.1)],
          [init("W1", rnd(rng, 10, 8)), init("W2", rnd(rng, 8, 5, scale=1.0))],
          ["N", 10], ["N", 5], 6)
    finish("clip_opset6", make_inputs(109, (10,), batch=3),
           "Opset 6 (IR 3, so the initializers are ALSO listed as graph inputs): Clip-6 with min/max as "
           "ATTRIBUTES (min=-0.3,max=0.4), then a Clip with only the max attribute (min defaults to "
           "-FLT_MAX). onnxruntime has no Gemm-6 kernel, so MatMul is used (see clip_opset7 for Gemm).",
           hand_built=True)

    rng = np.random.default_rng(10)
    build("clip_opset7",
          [helper.make_node("Gemm", ["input", "W1", "C1"], ["h"]),
           helper.make_node("Clip", ["h"], ["output"], min=-0.3, max=0.4)],
          [init("W1", rnd(rng, 10, 8)), init("C1", rnd(rng, 8, scale=0.2))],
          ["N", 10], ["N", 8], 7)
    finish("clip_opset7", make_inputs(110, (10,), batch=3),
           "Opset 7 (IR 3, initializers also listed as graph inputs): Clip with min/max ATTRIBUTES "
           "(-0.3, 0.4) applied on a Gemm output (lowest opset where onnxruntime runs Gemm).",
           hand_built=True)

    rng = np.random.default_rng(11)
    build("clip_opset11",
          [helper.make_node("Gemm", ["input", "W1", "C1"], ["h"]),
           helper.make_node("Clip", ["h", "lo", "hi"], ["c"]),
           helper.make_node("Gemm", ["c", "W2", "C2"], ["h2"]),
           helper.make_node("Clip", ["h2", "", "hi2"], ["output"])],
          [init("W1", rnd(rng, 10, 8)), init("C1", rnd(rng, 8, scale=0.2)),
           init("lo", np.array(-0.3, np.float32)), init("hi", np.array(0.4, np.float32)),
           init("W2", rnd(rng, 8, 5, scale=1.0)), init("C2", rnd(rng, 5, scale=0.2)),
           init("hi2", np.array(0.2, np.float32))],
          ["N", 10], ["N", 5], 11)
    finish("clip_opset11", make_inputs(111, (10,), batch=3),
           "Opset 11: Clip with min/max as scalar INPUTS (initializers -0.3, 0.4); second Clip with only "
           "max given (min input is the empty string ''). Gemm before each.", hand_built=True)


def gen_squeeze():
    rng = np.random.default_rng(12)
    W = rnd(rng, 6, 5)
    build("squeeze_opset11",
          [helper.make_node("Unsqueeze", ["input"], ["u1"], axes=[1]),           # [N,1,4,6]
           helper.make_node("Unsqueeze", ["u1"], ["u2"], axes=[-1]),            # [N,1,4,6,1]
           helper.make_node("Mul", ["u2", "s"], ["m"]),                         # broadcast [4,1,1]
           helper.make_node("Squeeze", ["m"], ["q"], axes=[1, -1]),             # [N,4,6]
           helper.make_node("MatMul", ["q", "W"], ["output"])],                 # [N,4,5]
          [init("s", rnd(rng, 4, 1, 1, scale=1.0)), init("W", W)],
          ["N", 4, 6], ["N", 4, 5], 11)
    finish("squeeze_opset11", make_inputs(112, (4, 6), batch=3),
           "Opset 11: Unsqueeze axes=[1] and axes=[-1] (negative), broadcast Mul, Squeeze axes=[1,-1] as "
           "ATTRIBUTES, then rank-3 x rank-2 MatMul.", hand_built=True)

    rng = np.random.default_rng(13)
    build("squeeze_opset13",
          [helper.make_node("Unsqueeze", ["input", "ax1"], ["u1"]),
           helper.make_node("Unsqueeze", ["u1", "axm1"], ["u2"]),
           helper.make_node("Mul", ["u2", "s"], ["m"]),
           helper.make_node("Squeeze", ["m", "ax_sq"], ["q"]),
           helper.make_node("MatMul", ["q", "W"], ["output"])],
          [init("ax1", np.array([1], np.int64)), init("axm1", np.array([-1], np.int64)),
           init("s", rnd(rng, 4, 1, 1, scale=1.0)),
           init("ax_sq", np.array([1, -1], np.int64)), init("W", rnd(rng, 6, 5))],
          ["N", 4, 6], ["N", 4, 5], 13)
    finish("squeeze_opset13", make_inputs(113, (4, 6), batch=3),
           "Opset 13: same graph as squeeze_opset11 but Unsqueeze/Squeeze axes are int64 INPUT tensors "
           "(initializers).", hand_built=True)


def gen_reducemean():
    build("reducemean_opset13",
          [helper.make_node("ReduceMean", ["input"], ["a"], axes=[2, 3], keepdims=1),  # [N,3,1,1]
           helper.make_node("Sub", ["input", "a"], ["c"]),                             # centred
           helper.make_node("Relu", ["c"], ["r"]),
           helper.make_node("ReduceMean", ["r"], ["b"], axes=[-1], keepdims=0),         # [N,3,4]
           helper.make_node("ReduceMean", ["input"], ["d"], axes=[1]),                  # keepdims default 1 -> [N,1,4,5]
           helper.make_node("ReduceMean", ["d"], ["e"], axes=[1, 3], keepdims=0),       # [N,4]
           helper.make_node("Unsqueeze", ["e", "ax1"], ["e3"]),                         # [N,1,4]
           helper.make_node("Add", ["b", "e3"], ["output"])],                           # [N,3,4]
          [init("ax1", np.array([1], np.int64))], ["N", 3, 4, 5], ["N", 3, 4], 13)
    finish("reducemean_opset13", make_inputs(114, (3, 4, 5), batch=3),
           "Opset 13: ReduceMean with axes ATTRIBUTE: axes=[2,3] keepdims=1, axes=[-1] keepdims=0, "
           "axes=[1] keepdims defaulted (=1), axes=[1,3] keepdims=0; broadcast Sub/Add; Relu; Unsqueeze "
           "(axes input, opset 13).",
           hand_built=True)

    build("reducemean_opset18",
          [helper.make_node("ReduceMean", ["input", "ax23"], ["a"], keepdims=1),
           helper.make_node("Sub", ["input", "a"], ["c"]),
           helper.make_node("Relu", ["c"], ["r"]),
           helper.make_node("ReduceMean", ["r", "axm1"], ["b"], keepdims=0),
           helper.make_node("ReduceMean", ["input", "ax1"], ["d"]),
           helper.make_node("ReduceMean", ["d", "ax13"], ["e"], keepdims=0),
           helper.make_node("Unsqueeze", ["e", "ax1"], ["e3"]),
           helper.make_node("Add", ["b", "e3"], ["output"])],
          [init("ax23", np.array([2, 3], np.int64)), init("axm1", np.array([-1], np.int64)),
           init("ax1", np.array([1], np.int64)), init("ax13", np.array([1, 3], np.int64))],
          ["N", 3, 4, 5], ["N", 3, 4], 18)
    finish("reducemean_opset18", make_inputs(115, (3, 4, 5), batch=3),
           "Opset 18: same computation as reducemean_opset13 but ReduceMean axes are int64 INPUT tensors "
           "(keepdims 1 / 0 / default); Unsqueeze axes as input.", hand_built=True)


def gen_pad():
    rng = np.random.default_rng(16)
    build("pad_opset11",
          [helper.make_node("Pad", ["input", "pads", "cval"], ["p"], mode="constant"),  # [N,2,8,8]
           helper.make_node("Conv", ["p", "W"], ["c"], kernel_shape=[3, 3]),            # [N,3,6,6]
           helper.make_node("Pad", ["c", "pads2"], ["output"])],                        # value default 0 -> [N,3,7,8]
          [init("pads", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)),
           init("cval", np.array(0.25, np.float32)),
           init("W", rnd(rng, 3, 2, 3, 3, scale=1 / np.sqrt(18))),
           init("pads2", np.array([0, 0, 0, 1, 0, 0, 1, 1], np.int64))],
          ["N", 2, 5, 5], ["N", 3, 7, 8], 11)
    finish("pad_opset11", make_inputs(116, (2, 5, 5), batch=3),
           "Opset 11: Pad with pads as an int64 INPUT [0,0,1,2,0,0,2,1] (begin..., end...), constant mode, "
           "constant_value INPUT 0.25; Conv (no bias); second Pad with no constant_value (defaults to 0).",
           hand_built=True)

    rng = np.random.default_rng(17)
    build("pad_opset2",
          [helper.make_node("Pad", ["input"], ["output"], mode="constant",
                            pads=[0, 0, 1, 2, 0, 0, 2, 1], value=-0.75)],
          [], ["N", 2, 5, 5], ["N", 2, 8, 8], 2)
    finish("pad_opset2", make_inputs(117, (2, 5, 5), batch=3),
           "Opset 2 (IR 3; onnxruntime accepts it with a warning): Pad-2 with pads ATTRIBUTE "
           "[0,0,1,2,0,0,2,1], mode='constant', value ATTRIBUTE -0.75. Single-node graph.",
           hand_built=True)


def gen_conv_autopad():
    rng = np.random.default_rng(18)
    nodes = [
        # 9x9, k4, s2: output 5, total pad 3 -> UPPER (1,2) vs LOWER (2,1)
        helper.make_node("Conv", ["input", "Wa", "Ba"], ["a"], kernel_shape=[4, 4], strides=[2, 2],
                         auto_pad="SAME_UPPER"),
        helper.make_node("Conv", ["input", "Wb", "Bb"], ["b"], kernel_shape=[4, 4], strides=[2, 2],
                         auto_pad="SAME_LOWER"),
        helper.make_node("Conv", ["input", "Wc"], ["c"], kernel_shape=[3, 3], strides=[2, 2],
                         auto_pad="VALID"),                                        # [1,4,4,4]
        helper.make_node("Concat", ["a", "b"], ["ab"], axis=1),                   # [1,8,5,5]
        helper.make_node("Relu", ["ab"], ["abr"]),
        helper.make_node("Conv", ["abr", "Wd", "Bd"], ["d"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         group=8),                                                 # depthwise [1,8,5,5]
        helper.make_node("AveragePool", ["d"], ["p0"], kernel_shape=[3, 3], strides=[1, 1],
                         pads=[1, 1, 1, 1], count_include_pad=0),                  # [1,8,5,5]
        helper.make_node("AveragePool", ["p0"], ["p1"], kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1], count_include_pad=1),                  # [1,8,3,3]
        helper.make_node("Flatten", ["p1"], ["f1"], axis=1),                      # [1,72]
        helper.make_node("Flatten", ["c"], ["f2"], axis=1),                       # [1,64]
        helper.make_node("Concat", ["f1", "f2"], ["output"], axis=1),             # [1,136]
    ]
    inits = [init("Wa", rnd(rng, 4, 3, 4, 4, scale=1 / np.sqrt(48))), init("Ba", rnd(rng, 4, scale=0.1)),
             init("Wb", rnd(rng, 4, 3, 4, 4, scale=1 / np.sqrt(48))), init("Bb", rnd(rng, 4, scale=0.1)),
             init("Wc", rnd(rng, 4, 3, 3, 3, scale=1 / np.sqrt(27))),
             init("Wd", rnd(rng, 8, 1, 3, 3, scale=1 / 3)), init("Bd", rnd(rng, 8, scale=0.1))]
    build("conv_autopad", nodes, inits, [1, 3, 9, 9], [1, 136], 11)
    finish("conv_autopad", make_inputs(118, (3, 9, 9), batch=4),
           "Opset 11, FIXED batch 1 input [1,3,9,9] (run once per sample, outputs concatenated on axis 0). "
           "Conv k4 s2 auto_pad=SAME_UPPER (pads 1 before/2 after) and SAME_LOWER (2 before/1 after) on the "
           "odd 9x9 input, Conv k3 s2 auto_pad=VALID (no bias), Concat, depthwise Conv (group=8), "
           "AveragePool pads 1 count_include_pad=0 then s2 count_include_pad=1, Flatten, Concat.",
           hand_built=True)


def gen_gemm_attrs():
    rng = np.random.default_rng(19)
    nodes = [
        helper.make_node("Gemm", ["input", "B1", "C1"], ["g1"], alpha=0.5, beta=2.0, transA=0, transB=0),
        helper.make_node("Relu", ["g1"], ["r1"]),
        helper.make_node("Gemm", ["r1", "B2", "C2"], ["g2"], transB=1),           # B2 is [4,5]
        helper.make_node("Reshape", ["g2", "shp"], ["g3"]),                      # [N,2,2] via 0 = copy dim
        helper.make_node("MatMul", ["g3", "W3"], ["m"]),                         # [N,2,2]x[2,3]
        helper.make_node("Add", ["k", "m"], ["output"]),                         # constant on the LEFT
    ]
    inits = [init("B1", rnd(rng, 6, 5, scale=2 / np.sqrt(6))), init("C1", rnd(rng, 5, scale=0.2)),
             init("B2", rnd(rng, 4, 5)), init("C2", rnd(rng, 4, scale=0.2)),
             init("shp", np.array([0, 2, 2], np.int64)),
             init("W3", rnd(rng, 2, 3, scale=1.0)), init("k", rnd(rng, 3, scale=0.5))]
    build("gemm_attrs", nodes, inits, ["N", 6], ["N", 2, 3], 13)
    finish("gemm_attrs", make_inputs(119, (6,), batch=3),
           "Opset 13: Gemm alpha=0.5 beta=2.0 transA=0 transB=0 with bias C of shape [N] (broadcast); Gemm "
           "transB=1; Reshape with shape [0,2,2] (0 = copy input dim); MatMul rank-3 x rank-2; Add with the "
           "constant on the LEFT.", hand_built=True)


def gen_batchnorm():
    rng = np.random.default_rng(20)

    def bn_params(c, prefix):
        return [init(prefix + "_scale", rng.uniform(0.5, 1.5, c).astype(np.float32)),
                init(prefix + "_bias", (rng.standard_normal(c) * 0.2).astype(np.float32)),
                init(prefix + "_mean", (rng.standard_normal(c) * 0.3).astype(np.float32)),
                init(prefix + "_var", rng.uniform(0.05, 0.5, c).astype(np.float32))]

    def bn(x, y, prefix, **kw):
        return helper.make_node("BatchNormalization",
                                [x] + [prefix + s for s in ("_scale", "_bias", "_mean", "_var")], [y], **kw)

    inits = [init("W", rnd(rng, 4, 3, 3, 3, scale=1 / np.sqrt(27)))] + bn_params(4, "bn")
    build("batchnorm_opset7",
          [helper.make_node("Conv", ["input", "W"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
           bn("c", "b", "bn", epsilon=1e-3),
           helper.make_node("Relu", ["b"], ["output"])],
          inits, [1, 3, 5, 5], [1, 4, 5, 5], 7)
    finish("batchnorm_opset7", make_inputs(120, (3, 5, 5), batch=4),
           "Opset 7 (IR 3, initializers also listed as graph inputs), FIXED batch 1 [1,3,5,5] (run per "
           "sample, concatenated on axis 0): Conv without bias, BatchNormalization-7 inference "
           "(epsilon=1e-3, spatial default 1, small variances so eps matters), Relu.", hand_built=True)

    rng = np.random.default_rng(21)
    inits = bn_params(3, "bn1") + bn_params(3, "bn2")
    build("batchnorm_opset15",
          [bn("input", "b", "bn1", epsilon=1e-3),                        # [N,3,4,4]
           helper.make_node("GlobalAveragePool", ["b"], ["g"]),        # [N,3,1,1]
           helper.make_node("Flatten", ["g"], ["f"]),                  # [N,3]
           bn("f", "output", "bn2", epsilon=1e-3)],                    # rank-2 BN
          inits, ["N", 3, 4, 4], ["N", 3], 15)
    finish("batchnorm_opset15", make_inputs(121, (3, 4, 4), batch=3),
           "Opset 15: BatchNormalization-15 inference (training_mode default 0, epsilon=1e-3) on a rank-4 "
           "tensor, GlobalAveragePool, Flatten, then BatchNormalization on a RANK-2 [N,C] tensor.",
           hand_built=True)


def gen_raw_vs_typed():
    rng = np.random.default_rng(22)
    W1 = rnd(rng, 12, 8)
    b1 = rnd(rng, 8, scale=0.2)
    s = rng.uniform(0.5, 2.0, 4).astype(np.float32)
    W2 = rnd(rng, 8, 3)
    b2 = rng.standard_normal(3) * 0.3  # float64

    def typed(name, arr, dtype):
        return helper.make_tensor(name, dtype, list(arr.shape), arr.flatten().tolist(), raw=False)

    inits = [
        typed("W1", W1, TensorProto.FLOAT),                       # float_data
        init("b1", b1),                                           # raw_data
        typed("shape3", np.array([-1, 2, 4], np.int64), TensorProto.INT64),  # int64_data
        typed("s", s, TensorProto.FLOAT),                         # float_data
        init("shape2", np.array([-1, 8], np.int64)),              # raw_data int64
        init("W2", W2),                                           # raw_data
        typed("b2d", b2, TensorProto.DOUBLE),                     # double_data
    ]
    nodes = [
        helper.make_node("MatMul", ["input", "W1"], ["h"]),
        helper.make_node("Add", ["h", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["r"]),
        helper.make_node("Reshape", ["r", "shape3"], ["r3"]),   # [N,2,4]
        helper.make_node("Mul", ["r3", "s"], ["rs"]),
        helper.make_node("Reshape", ["rs", "shape2"], ["r2"]),  # [N,8]
        helper.make_node("MatMul", ["r2", "W2"], ["o"]),
        helper.make_node("Cast", ["b2d"], ["b2f"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["o", "b2f"], ["output"]),
    ]
    m = build("raw_vs_typed", nodes, inits, ["N", 12], ["N", 3], 13)
    f = {t.name: t for t in m.graph.initializer}
    assert len(f["W1"].float_data) == 96 and not f["W1"].raw_data
    assert len(f["s"].float_data) == 4 and not f["s"].raw_data
    assert list(f["shape3"].int64_data) == [-1, 2, 4] and not f["shape3"].raw_data
    assert len(f["b2d"].double_data) == 3 and f["b2d"].data_type == TensorProto.DOUBLE
    assert f["b1"].raw_data and f["W2"].raw_data and f["shape2"].raw_data
    finish("raw_vs_typed", make_inputs(122, (12,), batch=3),
           "Opset 13: initializer storage variants. W1 [12,8] and s [4] in typed float_data; b1, W2 in "
           "raw_data; Reshape shape [-1,2,4] in int64_data and [-1,8] in raw_data (int64); b2d is a DOUBLE "
           "initializer in double_data, Cast to FLOAT before the final Add.", hand_built=True)


def gen_leaky_softmax():
    rng = np.random.default_rng(23)
    nodes = [
        helper.make_node("Gemm", ["input", "W1", "C1"], ["g"]),                 # [N,12]
        helper.make_node("LeakyRelu", ["g"], ["l"]),                            # alpha default 0.01
        helper.make_node("Reshape", ["l", "shp"], ["l3"]),                      # [N,3,4]
        helper.make_node("Softmax", ["l3"], ["s3"], axis=1),                    # coerced: over 12 elements
        helper.make_node("Flatten", ["s3"], ["f"]),                             # [N,12]
        helper.make_node("Gemm", ["f", "W2", "C2"], ["g2"]),                    # [N,5]
        helper.make_node("Softmax", ["g2"], ["output"], axis=1),                # 2-D
    ]
    inits = [init("W1", rnd(rng, 10, 12, scale=1.5 / np.sqrt(10))), init("C1", rnd(rng, 12, scale=0.3)),
             init("shp", np.array([0, 3, 4], np.int64)),
             init("W2", rnd(rng, 12, 5, scale=6.0)), init("C2", rnd(rng, 5, scale=0.3))]
    build("leaky_softmax_opset11", nodes, inits, ["N", 10], ["N", 5], 11)
    finish("leaky_softmax_opset11", make_inputs(123, (10,), batch=3),
           "Opset 11: LeakyRelu with DEFAULT alpha (0.01); Softmax axis=1 on a 3-D [N,3,4] tensor, which "
           "under opset<13 semantics coerces to 2-D [N,12] and normalises over all 12 values (opset 13 would "
           "normalise over the 3 only); Flatten; Gemm; final Softmax axis=1 on a 2-D tensor.",
           hand_built=True)


def gen_identity_dropout():
    rng = np.random.default_rng(24)
    mask = helper.make_tensor_value_info("mask", TensorProto.BOOL, ["N", 8])
    nodes = [
        helper.make_node("Identity", ["input"], ["i0"]),
        helper.make_node("Gemm", ["i0", "W1", "C1"], ["g"]),
        helper.make_node("Dropout", ["g", "ratio"], ["d0"]),                    # ratio input, inference
        helper.make_node("Identity", ["d0"], ["i1"]),
        helper.make_node("Relu", ["i1"], ["r"]),
        helper.make_node("Dropout", ["r", "ratio"], ["d1", "mask"]),            # with mask output
        helper.make_node("Gemm", ["d1", "W2", "C2"], ["g2"]),
        helper.make_node("Identity", ["g2"], ["output"]),
    ]
    inits = [init("W1", rnd(rng, 8, 8)), init("C1", rnd(rng, 8, scale=0.2)),
             init("ratio", np.array(0.3, np.float32)),
             init("W2", rnd(rng, 8, 4)), init("C2", rnd(rng, 4, scale=0.2))]
    build("identity_dropout", nodes, inits, ["N", 8], ["N", 4], 12, extra_outputs=[mask])
    finish("identity_dropout", make_inputs(124, (8,), batch=3),
           "Opset 12: Identity nodes (including one feeding the graph output) and Dropout-12 in inference "
           "(ratio=0.3 as an INPUT, no training_mode -> identity); the second Dropout also produces the "
           "optional mask output, which is a second graph output (BOOL, all true). Gemm layers.",
           hand_built=True)


def gen_sigmoid_tanh():
    rng = np.random.default_rng(25)
    nodes = [
        helper.make_node("Gemm", ["input", "W1", "C1"], ["g"]),
        helper.make_node("Sigmoid", ["g"], ["s"]),
        helper.make_node("Gemm", ["s", "W2", "C2"], ["g2"]),
        helper.make_node("Tanh", ["g2"], ["output"]),
    ]
    inits = [init("W1", rnd(rng, 6, 8, scale=2.0 / np.sqrt(6))), init("C1", rnd(rng, 8, scale=0.3)),
             init("W2", rnd(rng, 8, 4, scale=0.7)), init("C2", rnd(rng, 4, scale=0.3))]
    build("sigmoid_tanh_opset7", nodes, inits, ["N", 6], ["N", 4], 7)
    finish("sigmoid_tanh_opset7", make_inputs(125, (6,), batch=3),
           "Opset 7 (IR 3, initializers also listed as graph inputs): Gemm-7 (bias [N] broadcast), Sigmoid, "
           "Gemm, Tanh.", hand_built=True)


# --------------------------------------------------------------------------

def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    for f in os.listdir(OUT_DIR):
        if f.endswith((".onnx", ".npy", ".data")) or f == "manifest.json":
            os.remove(os.path.join(OUT_DIR, f))
    torch.set_num_threads(1)

    gen_mlp_relu()
    gen_mlp_act()
    gen_cnn_bn()
    gen_mobilenetv2()
    gen_resnet_small()
    gen_reshape_dyn()
    gen_constpad_torch()
    gen_flatten()
    gen_clip()
    gen_squeeze()
    gen_reducemean()
    gen_pad()
    gen_conv_autopad()
    gen_gemm_attrs()
    gen_batchnorm()
    gen_raw_vs_typed()
    gen_leaky_softmax()
    gen_identity_dropout()
    gen_sigmoid_tanh()

    with open(os.path.join(OUT_DIR, "manifest.json"), "w") as fh:
        json.dump(MANIFEST, fh, indent=2)
        fh.write("\n")

    total = sum(os.path.getsize(os.path.join(OUT_DIR, f)) for f in os.listdir(OUT_DIR))
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, torch {torch.__version__}")
    hdr = (f"{'model':<22} {'opset':>5} {'ir':>3} {'input_shape':<18} {'B':>2} {'output':<14} "
           f"{'KiB':>7} {'out_min':>9} {'out_max':>9} {'zero%':>6} {'d_opt':>8} {'d_torch':>8}  ops")
    print(hdr)
    print("-" * len(hdr))
    for (name, opset, ir, dims, b, oshape, size, lo, hi, zf, d_opt, d_torch, ops) in SUMMARY:
        dt = f"{d_torch:8.1e}" if d_torch is not None else f"{'-':>8}"
        print(f"{name:<22} {opset:>5} {ir:>3} {str(dims).replace(' ', ''):<18} {b:>2} "
              f"{str(list(oshape)).replace(' ', ''):<14} {size / 1024:7.1f} {lo:9.4f} {hi:9.4f} "
              f"{100 * zf:5.1f}% {d_opt:8.1e} {dt}  {','.join(ops)}")
    print(f"{len(SUMMARY)} models, {total / 1024 / 1024:.2f} MiB in {os.path.relpath(OUT_DIR, ROOT)}")
    assert total < 8 * 1024 * 1024, total


if __name__ == "__main__":
    sys.exit(main())
