#!/usr/bin/env python3
"""Writes the example VNN-LIB properties for verifier-tests/fixtures/models/mlp_relu.onnx:
local robustness of sample 0 of mlp_relu.input.npy (top class 2) in Linf balls clipped to [0, 1].
The files state the violation (some other class scores at least as high as class 2)."""
import numpy as np

x = np.load("verifier-tests/fixtures/models/mlp_relu.input.npy")[0].reshape(-1).astype(np.float64)
label, classes = 2, 10
for eps in (0.002, 0.05):
    lines = [f"; mlp_relu.onnx, sample 0 of mlp_relu.input.npy, label {label}, Linf eps {eps} within [0, 1]", ""]
    lines += [f"(declare-const X_{i} Real)" for i in range(x.size)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(classes)]
    for i, v in enumerate(x):
        lines.append(f"(assert (<= X_{i} {float(min(1.0, v + eps))!r}))")
        lines.append(f"(assert (>= X_{i} {float(max(0.0, v - eps))!r}))")
    lines.append("(assert (or")
    lines += [f"    (and (>= Y_{j} Y_{label}))" for j in range(classes) if j != label]
    lines.append("))")
    open(f"specs/mlp_relu_robust_eps{eps}.vnnlib", "w").write("\n".join(lines) + "\n")
