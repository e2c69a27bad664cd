#!/usr/bin/env python3
"""onnxruntime CPU inference throughput baseline for the Rust forward bench.

    python3 benches/ort_forward.py [--threads 2] [--seconds 3]

For each model (mobilenetv2_035, mlp_relu from verifier-tests/fixtures/models)
and batch size (1, 64, 256): intra_op_num_threads=--threads,
inter_op_num_threads=1, ORT_ENABLE_ALL, a few warm-up runs, then a timed
loop of ~--seconds on random float32 inputs uniform in [0,1].

stdout: one JSON object per config (JSON lines); stderr: a human table.
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS_DIR = os.path.join(ROOT, "verifier-tests", "fixtures", "models")


def bench(model, batch, threads, seconds, rng):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(os.path.join(MODELS_DIR, model + ".onnx"), sess_options=so,
                                providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [batch] + [int(d) for d in inp.shape[1:]]
    x = rng.uniform(0.0, 1.0, size=shape).astype(np.float32)
    feed = {inp.name: x}

    # warm-up: at least 3 runs and at least ~0.3 s
    t0 = time.perf_counter()
    n = 0
    while n < 3 or time.perf_counter() - t0 < 0.3:
        sess.run(None, feed)
        n += 1

    iters = 0
    t0 = time.perf_counter()
    while True:
        sess.run(None, feed)
        iters += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and iters >= 3:
            break
    return iters, elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="intra_op_num_threads (default 2)")
    ap.add_argument("--seconds", type=float, default=3.0, help="timed duration per config (default 3)")
    ap.add_argument("--models", nargs="+", default=["mobilenetv2_035", "mlp_relu"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 64, 256])
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    rows = []
    for model in args.models:
        for batch in args.batches:
            iters, elapsed = bench(model, batch, args.threads, args.seconds, rng)
            sps = iters * batch / elapsed
            rec = {
                "model": model,
                "batch": batch,
                "threads": args.threads,
                "samples_per_s": round(sps, 2),
                "iters": iters,
                "elapsed_s": round(elapsed, 4),
                "ms_per_batch": round(1000.0 * elapsed / iters, 4),
                "onnxruntime": ort.__version__,
                "nproc": os.cpu_count(),
                "machine": platform.machine(),
            }
            print(json.dumps(rec), flush=True)
            rows.append(rec)

    print(f"onnxruntime {ort.__version__}, threads={args.threads}, nproc={os.cpu_count()}", file=sys.stderr)
    print(f"{'model':<18} {'batch':>5} {'threads':>7} {'samples/s':>12} {'ms/batch':>10} {'iters':>7}",
          file=sys.stderr)
    for r in rows:
        print(f"{r['model']:<18} {r['batch']:>5} {r['threads']:>7} {r['samples_per_s']:>12.1f} "
              f"{r['ms_per_batch']:>10.3f} {r['iters']:>7}", file=sys.stderr)


if __name__ == "__main__":
    main()
