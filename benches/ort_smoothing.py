#!/usr/bin/env python3
"""onnxruntime baseline for benches/smoothing.rs: noisy samples per second doing the same work
(Gaussian noise with numpy + forward pass + argmax counting) on the same models and batches.

    python3 benches/ort_smoothing.py [--threads 2] [--seconds 3]

intra_op_num_threads=--threads, inter_op_num_threads=1, ORT_ENABLE_ALL; noise from
numpy's default_rng (PCG64) standard_normal in float32, sigma 0.25, on a fixed input.
stdout: one JSON object per config; stderr: a table.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS_DIR = os.path.join(ROOT, "verifier-tests", "fixtures", "models")


def bench(model, batch, threads, seconds, sigma):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(os.path.join(MODELS_DIR, model + ".onnx"), sess_options=so,
                                providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [int(d) for d in inp.shape[1:]]
    x = (np.arange(int(np.prod(shape)), dtype=np.uint64) * 2654435761 % 256).astype(np.float32) / 255.0
    x = x.reshape(shape)
    rng = np.random.default_rng(0)
    counts = None

    def step():
        nonlocal counts
        noisy = x[None] + sigma * rng.standard_normal((batch, *shape), dtype=np.float32)
        logits = sess.run(None, {inp.name: noisy})[0]
        c = np.bincount(logits.reshape(batch, -1).argmax(axis=1), minlength=logits.shape[-1])
        counts = c if counts is None else counts + c

    t0 = time.perf_counter()
    n = 0
    while n < 3 or time.perf_counter() - t0 < 0.3:
        step()
        n += 1
    iters = 0
    t0 = time.perf_counter()
    while True:
        step()
        iters += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and iters >= 3:
            break
    return iters, elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--sigma", type=float, default=0.25)
    ap.add_argument("--models", nargs="+", default=["mobilenetv2_035", "mlp_relu"])
    ap.add_argument("--batches", nargs="+", type=int, default=[64, 256])
    args = ap.parse_args()
    for model in args.models:
        for batch in args.batches:
            iters, elapsed = bench(model, batch, args.threads, args.seconds, args.sigma)
            sps = iters * batch / elapsed
            print(json.dumps({"model": model, "batch": batch, "threads": args.threads,
                              "samples_per_s": round(sps, 1), "iters": iters,
                              "elapsed_s": round(elapsed, 3), "ort": ort.__version__}))
            print(f"{model:18s} batch {batch:4d}  {sps:12.1f} samples/s", file=sys.stderr)


if __name__ == "__main__":
    main()
