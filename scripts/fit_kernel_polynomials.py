#!/usr/bin/env python3
"""Fits the two polynomials of the element-wise kernels (crates/itm-core/src/ops/lanes.rs).

- tanh on |x| < 0.625: tanh(x) = x + x^3 * P(x^2), P of degree 4;
- erfc on [0, inf): erfc(z) = t * Q(t) * exp(-z^2), t = 1 / (1 + z/2), Q of degree 10
  (the GELU's normal CDF: Phi(x) = erfc(-x/sqrt 2) / 2).

Both are weighted least-squares fits in float64 on Chebyshev nodes, iterated towards the
minimax relative error (Lawson's reweighting); the script prints the coefficients as f32
literals and the relative error each fit reaches in float64. Needs numpy only (the reference
erfc and tanh are Python's math module).

    python3 scripts/fit_kernel_polynomials.py
"""
import math

import numpy as np


def chebyshev_nodes(lo, hi, n):
    k = np.arange(n) + 0.5
    return lo + (hi - lo) * (0.5 - 0.5 * np.cos(np.pi * k / n))


def lawson(design, target, weight_of_row, iterations):
    """Minimises max |design @ c / target - 1| by reweighted least squares."""
    w = np.ones(len(target))
    best = (np.inf, None)
    for _ in range(iterations):
        scale = w * weight_of_row
        c, *_ = np.linalg.lstsq(design * scale[:, None], target * scale, rcond=None)
        r = design @ c / target - 1
        e = np.max(np.abs(r))
        if e < best[0]:
            best = (e, c)
        w = w * (np.abs(r) / e + 1e-3)
        w /= w.mean()
    return best


def scaled_erfc(z):
    """erfc(z) * exp(z^2), with its asymptotic series where exp(z^2) overflows."""
    if z < 26:
        return math.erfc(z) * math.exp(z * z)
    return (1 - 1 / (2 * z * z) + 3 / (4 * z**4) - 15 / (8 * z**6)) / (z * math.sqrt(math.pi))


def fit_tanh():
    x = chebyshev_nodes(0.0, 0.625, 4000)
    x = x[x > 1e-3]
    u = x * x
    design = np.vander(u, 5, increasing=True) * (x**3)[:, None]
    target = np.tanh(x) - x
    # Relative to tanh(x), not to the x^3 part.
    error, c = lawson(design, target, np.abs(target) / np.tanh(x), 300)
    achieved = np.max(np.abs((x + design @ c) / np.tanh(x) - 1))
    return c, achieved


def fit_erfc():
    t = chebyshev_nodes(0.0, 1.0, 3000)
    t = t[t > 1e-4]
    z = (1 / t - 1) / 0.5
    target = np.array([scaled_erfc(zi) / ti for zi, ti in zip(z, t)])
    design = np.vander(t, 11, increasing=True)
    error, c = lawson(design, target, np.ones(len(t)), 400)
    return c, error


def show(name, coefficients, error):
    print(f"{name}: max relative error {error:.3g} (float64)")
    for c in coefficients:
        print(f"    {np.float32(c)!r:>}".replace("np.float32(", "").replace(")", ","))


if __name__ == "__main__":
    show("TANH_POLY (P, degree 0 up)", *fit_tanh())
    show("ERFC_POLY (Q, degree 0 up)", *fit_erfc())
