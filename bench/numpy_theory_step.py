"""Reference for `eigenssl bench`: one toy-network step (paper Sec. 2) in NumPy, as the authors' notebook
computes it, but with the exact ReLU gradient eigenssl uses. Prints one JSON line with seconds per step.

Usage: python3 bench/numpy_theory_step.py --n-in 15 --n-out 10 --batch 50000 --loss simsiam --relu 0 --steps 20
"""
import argparse
import json
import time

import numpy as np


def step(W, rng, batch, sigma, lr, alpha, loss, relu):
    D, U = np.linalg.eigh(W @ W.T)
    Wp = (U * np.abs(D) ** alpha) @ U.T
    X1 = rng.standard_normal((W.shape[1], batch))
    X2 = X1 + sigma * rng.standard_normal((W.shape[1], batch))
    H1, H2 = W @ X1, W @ X2
    if relu:
        Z1, Z2 = np.maximum(H1, 0), np.maximum(H2, 0)
        d1, d2 = (H1 > 0).astype(W.dtype), (H2 > 0).astype(W.dtype)
    else:
        Z1, Z2, d1, d2 = H1, H2, 1.0, 1.0
    E = Wp @ Z1 - Z2
    if loss == "simsiam":
        G = (d1 * (Wp.T @ E)) @ X1.T
    elif loss == "isoloss":
        G = (d1 * E) @ X1.T
    elif loss == "no_stop_grad":
        G = (d1 * (Wp.T @ E)) @ X1.T - (d2 * E) @ X2.T
    elif loss == "wrong_side_stop_grad":
        G = -(d2 * E) @ X2.T
    else:
        raise SystemExit(f"unknown loss {loss}")
    return W - lr * G / batch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n-in", type=int, default=15)
    p.add_argument("--n-out", type=int, default=10)
    p.add_argument("--batch", type=int, default=50000)
    p.add_argument("--loss", default="simsiam")
    p.add_argument("--relu", type=int, default=0)
    p.add_argument("--steps", type=int, default=20)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    W = rng.standard_normal((a.n_out, a.n_in)) / 4
    W = step(W, rng, a.batch, 0.1, 0.01, 1.0, a.loss, a.relu)  # warm-up
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        W = step(W, rng, a.batch, 0.1, 0.01, 1.0, a.loss, a.relu)
        times.append(time.perf_counter() - t)
    times.sort()
    print(json.dumps({"median_s": times[len(times) // 2], "min_s": times[0], "numpy": np.__version__}))


if __name__ == "__main__":
    main()
