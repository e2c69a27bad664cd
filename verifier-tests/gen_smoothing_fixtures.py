#!/usr/bin/env python3
"""Reference values for the randomized-smoothing tests (verifier-tests/smoothing.rs).

    python3 verifier-tests/gen_smoothing_fixtures.py

Writes verifier-tests/fixtures/smoothing/:
  reference.json  scipy values: one-sided Clopper-Pearson bounds (beta.ppf), the normal
                  quantile (norm.ppf), rounded-Gaussian probabilities
                  P(round(255 N(0, s^2)) = k) (norm.sf differences), two-sided binomial test
                  p-values at 1/2 (binomtest).
  mlp_grid.npy    two mlp_relu inputs quantised to the 1/255 grid in [0, 1] (float32).
Needs numpy and scipy only.
"""
import json
import os

import numpy as np
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "smoothing")


def main():
    os.makedirs(OUT, exist_ok=True)
    cp = []
    cases = [(0, 10), (1, 10), (5, 10), (10, 10), (37, 50), (99, 100), (100, 100), (950, 1000),
             (1000, 1000), (9990, 10000), (99900, 100000), (99990, 100000), (99999, 100000),
             (100000, 100000), (50001, 100000), (700000, 1000000), (999999, 1000000)]
    for k, n in cases:
        for alpha in (0.05, 0.001, 0.000125, 1e-6):
            lo = 0.0 if k == 0 else float(stats.beta.ppf(alpha, k, n - k + 1))
            hi = 1.0 if k == n else float(stats.beta.ppf(1 - alpha, k + 1, n - k))
            cp.append({"k": k, "n": n, "alpha": alpha, "lower": lo, "upper": hi})
    phi = [{"p": p, "z": float(stats.norm.ppf(p))}
           for p in (0.5000001, 0.51, 0.6, 0.75, 0.9, 0.99, 0.999, 0.9999, 0.99999, 0.9999999,
                     1 - 1e-12, 0.3, 1e-5)]
    rg = []
    for sigma in (0.05, 0.12, 0.25, 0.5, 1.0):
        s = 255.0 * sigma
        for k in sorted({0, 1, 2, 5, int(s), int(3 * s), int(6 * s), -1, -int(2 * s)}):
            # P(K = k) = P((k - 1/2)/s <= Z < (k + 1/2)/s); sf differences keep tail precision.
            a, b = (k - 0.5) / s, (k + 0.5) / s
            p = float(stats.norm.sf(a) - stats.norm.sf(b)) if a >= 0 else float(stats.norm.cdf(b) - stats.norm.cdf(a))
            rg.append({"sigma": sigma, "k": k, "p": p})
    bt = []
    for a, b in ((60, 40), (55, 45), (100, 0), (7, 3), (520, 480), (5200, 4800), (1, 0), (30, 30)):
        bt.append({"n_a": a, "n_b": b, "p_value": float(stats.binomtest(a, a + b, 0.5).pvalue)})
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump({"generator": "verifier-tests/gen_smoothing_fixtures.py", "scipy": __import__("scipy").__version__,
                   "clopper_pearson": cp, "phi_inv": phi, "rounded_gaussian": rg, "binom_test": bt}, f, indent=1)
    x = np.load(os.path.join(HERE, "fixtures", "models", "mlp_relu.input.npy"))[:2]
    q = (np.round(np.clip(np.abs(x), 0, 1) * 255) / 255).astype(np.float32)
    np.save(os.path.join(OUT, "mlp_grid.npy"), q)


if __name__ == "__main__":
    main()
