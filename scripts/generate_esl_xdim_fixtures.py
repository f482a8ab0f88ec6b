#!/usr/bin/env python3
"""Reference values for the ESL and X-Dim similarities of METHODS.md §3.

A direct, pair-by-pair PyTorch implementation in double precision, written from METHODS §3 (and
the interpretation notes in the Rust doc comments of crates/itm-core/src/similarity/{esl,xdim}.rs
where METHODS is silent): for every image i and caption j it slices the valid regions
R = regions[i, :count] and words X = words[j, :length] (so padding cannot matter) and applies the
formulas literally, with torch's own conv1d, layer_norm, std and softmax. The learned parameters
are drawn at random (not at their initial constants), so that every gradient is informative.
Writes crates/itm-core/tests/fixtures/esl_xdim.json, checked by crates/itm-core/tests/esl_xdim_reference.rs. Run it from the
repository root:

    python3 -m venv .venv && .venv/bin/pip install torch
    .venv/bin/python scripts/generate_esl_xdim_fixtures.py

Conventions shared with itm: l2norm(x) = x / (||x|| + 1e-8).
"""

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

OUT = Path(__file__).resolve().parent.parent / "crates" / "itm-core" / "tests" / "fixtures"
torch.set_default_dtype(torch.float64)
EPS = 1e-8


def tolist(t):
    return [float(f"{v:.9g}") for v in t.detach().cpu().double().numpy().reshape(-1)]


def f32(t):
    """Rounds to float32 so that the Rust side reads exactly the same numbers."""
    return t.float().double()


def l2norm(x, dim):
    return x / (x.pow(2).sum(dim=dim, keepdim=True).sqrt() + EPS)


def padded_inputs(n_img, k, n_cap, l, d, counts, lengths, scale):
    regions = f32(scale * torch.randn(n_img, k, d))
    words = f32(scale * torch.randn(n_cap, l, d))
    # Large values in the padding: they must not matter (and get zero gradient).
    for i, c in enumerate(counts):
        regions[i, c:] = f32(100 * torch.randn(k - c, d))
    for j, c in enumerate(lengths):
        words[j, c:] = f32(100 * torch.randn(l - c, d))
    return regions, words


def score_matrix(pair_fn, regions, counts, words, lengths):
    rows = []
    for i, k in enumerate(counts):
        rows.append(torch.stack([pair_fn(regions[i, :k], words[j, :l]) for j, l in enumerate(lengths)]))
    return torch.stack(rows)


# ----------------------------------------------------------------------------------------- ESL


def esl_levels(x, p, mode):
    """Levels X_0 = x, X_j = l2norm(agg_j(X_{j-1})) of one set x [n, D] -> list of [n, d_j]."""
    levels = [x]
    for j in range(1, len(p["bilinear"])):
        prev = levels[-1]
        if mode == "adaptive":
            m = l2norm(p["aggregators"][j - 1], 1)  # rows l2-normalised, [d_j, d_{j-1}]
            keep = min(2, m.shape[1])
            kth = m.detach().sort(dim=1, descending=True).values[:, keep - 1 : keep]
            m = m * (m.detach() >= kth).to(m.dtype)  # top-2 entries per row, others zero
            nxt = prev @ m.t()
        else:
            # Conv1d 1 -> 4, kernel 2, stride 2, no bias, summed over its 4 outputs.
            nxt = F.conv1d(prev.unsqueeze(1), p["kernels"][j - 1], stride=2).sum(1)
        levels.append(l2norm(nxt, 1))
    return levels


def esl_level_weights(p, mode):
    c = p["level_weights"]
    if mode == "adaptive":
        return c
    mag = c.abs()
    t = mag.min() + p["threshold_position"][0] * (mag.max() - mag.min())
    return c * torch.exp((mag - t) * math.exp(3.0))


def esl_pair(R, X, p, mode):
    """ESL for one pair: R [k, D] valid regions, X [l, D] valid words -> scalar."""
    w = esl_level_weights(p, mode)
    xs, ys = esl_levels(X, p, mode), esl_levels(R, p, mode)
    A = 0
    for j, (e, gain, bias) in enumerate(zip(p["bilinear"], p["norm_gains"], p["norm_biases"])):
        G = F.layer_norm(e, e.shape, weight=gain, bias=bias, eps=1e-8) * w[j]
        A = A + xs[j] @ G @ ys[j].t()  # [l, k]
    tau = torch.exp(p["log_temperature"][0])
    h = F.leaky_relu(torch.tanh(A), 0.1)
    alpha = torch.softmax(tau * l2norm(h, 0), dim=1)  # norm over words, softmax over regions
    t2i = (A * alpha).sum(1).mean()
    beta = torch.softmax(tau * l2norm(h, 1), dim=0)  # norm over regions, softmax over words
    i2t = (A * beta).sum(0).mean()
    return t2i + i2t


def esl_fixture():
    n_img, k, n_cap, l, d, levels = 3, 5, 4, 6, 16, 3
    counts, lengths = [5, 3, 4], [6, 2, 4, 5]
    widths = [d >> j for j in range(levels)]
    regions, words = padded_inputs(n_img, k, n_cap, l, d, counts, lengths, 0.5)
    probe = f32(torch.randn(n_img, n_cap))
    shared = {
        "bilinear": [f32(torch.randn(w, w)) for w in widths],
        "norm_gains": [f32(1 + 0.3 * torch.randn(w, w)) for w in widths],
        "norm_biases": [f32(0.3 * torch.randn(w, w)) for w in widths],
        "level_weights": f32(0.1 + 0.05 * torch.randn(levels)),
        "log_temperature": f32(torch.tensor([math.log(5.0)]) + 0.1 * torch.randn(1)),
    }
    specific = {
        "adaptive": {"aggregators": [f32(torch.randn(widths[j], widths[j - 1])) for j in range(1, levels)]},
        "heuristic": {
            "kernels": [f32(torch.empty(4, 1, 2).uniform_(-0.7, 0.7)) for _ in range(1, levels)],
            "threshold_position": f32(torch.rand(1) * 0.4 + 0.2),
        },
    }
    fixture = {
        "n_img": n_img, "regions_per_image": k, "n_cap": n_cap, "words_per_caption": l, "dim": d,
        "levels": levels, "region_counts": counts, "word_lengths": lengths,
        "regions": tolist(regions), "words": tolist(words), "probe": tolist(probe),
        "params": {},
    }
    for name, v in shared.items():
        fixture["params"][name] = [tolist(t) for t in v] if isinstance(v, list) else tolist(v)
    for mode, extra in specific.items():
        for name, v in extra.items():
            fixture["params"][name] = [tolist(t) for t in v] if isinstance(v, list) else tolist(v)
        p = {}
        for name, v in {**shared, **extra}.items():
            p[name] = [t.clone().requires_grad_(True) for t in v] if isinstance(v, list) else v.clone().requires_grad_(True)
        r = regions.clone().requires_grad_(True)
        w = words.clone().requires_grad_(True)
        scores = score_matrix(lambda R, X: esl_pair(R, X, p, mode), r, counts, w, lengths)
        (scores * probe).sum().backward()
        grads = {"regions": tolist(r.grad), "words": tolist(w.grad)}
        for name, v in p.items():
            grads[name] = [tolist(t.grad) for t in v] if isinstance(v, list) else tolist(v.grad)
        fixture[mode] = {"scores": tolist(scores), "grads": grads}
    return fixture


# --------------------------------------------------------------------------------------- X-Dim


def xdim_dependency(p):
    """W' = l2norm_rows(M * W) and g = its column sums, from E, s, tau."""
    W = torch.sigmoid(p["dependency"])
    t = W.mean(1, keepdim=True) + p["threshold_scale"].unsqueeze(1) * W.std(1, keepdim=True)
    M = torch.tanh(torch.exp(torch.exp(p["log_sharpness"][0]) * (W - t)))
    Wp = l2norm(M * W, 1)
    return Wp, Wp.sum(0)


def xdim_pair(R, X, p):
    """X-Dim for one pair: R [k, D] valid regions, X [l, D] valid words -> scalar."""
    Wp, g = xdim_dependency(p)
    A = torch.tanh(X @ torch.diag(g) @ R.t())  # [l, k]
    temp = torch.exp(p["log_temperature"][0])
    alpha = torch.softmax(temp * l2norm(F.leaky_relu(A, 0.1), 0), dim=1)  # over regions
    c = l2norm(alpha @ R, 1)  # c_w = l2norm(sum_r alpha[w, r] R_r), [l, D]
    per_word = []
    for wi in range(X.shape[0]):
        z = (c[wi] * X[wi]) @ Wp.t()  # [D]
        per_word.append(l2norm(z, 0).sum())
    return torch.stack(per_word).mean()


def xdim_fixture():
    n_img, k, n_cap, l, d = 3, 5, 4, 6, 8
    counts, lengths = [5, 3, 4], [6, 2, 4, 5]
    regions, words = padded_inputs(n_img, k, n_cap, l, d, counts, lengths, 0.7)
    probe = f32(torch.randn(n_img, n_cap))
    params = {
        "dependency": f32(1.5 * torch.randn(d, d)),
        "threshold_scale": f32(0.5 + 0.3 * torch.randn(d)),
        "log_sharpness": f32(torch.tensor([1.5]) + 0.1 * torch.randn(1)),
        "log_temperature": f32(torch.tensor([math.log(5.0)]) + 0.1 * torch.randn(1)),
    }
    fixture = {
        "n_img": n_img, "regions_per_image": k, "n_cap": n_cap, "words_per_caption": l, "dim": d,
        "region_counts": counts, "word_lengths": lengths,
        "regions": tolist(regions), "words": tolist(words), "probe": tolist(probe),
        "params": {name: tolist(v) for name, v in params.items()},
    }
    p = {name: v.clone().requires_grad_(True) for name, v in params.items()}
    r = regions.clone().requires_grad_(True)
    w = words.clone().requires_grad_(True)
    scores = score_matrix(lambda R, X: xdim_pair(R, X, p), r, counts, w, lengths)
    (scores * probe).sum().backward()
    grads = {"regions": tolist(r.grad), "words": tolist(w.grad)}
    grads.update({name: tolist(v.grad) for name, v in p.items()})
    fixture["scores"] = tolist(scores)
    fixture["grads"] = grads
    return fixture


def main():
    torch.manual_seed(11)
    fixture = {"esl": esl_fixture(), "xdim": xdim_fixture()}
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "esl_xdim.json"
    path.write_text(json.dumps(fixture))
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    for name in ("adaptive", "heuristic"):
        s = fixture["esl"][name]["scores"]
        print(f"esl {name}: scores {min(s):.3f}..{max(s):.3f}")
        for g, v in fixture["esl"][name]["grads"].items():
            flat = [x for row in v for x in row] if v and isinstance(v[0], list) else v
            print(f"  d/d {g}: max |g| {max(abs(x) for x in flat):.3e}")
    s = fixture["xdim"]["scores"]
    print(f"xdim: scores {min(s):.3f}..{max(s):.3f}")
    for g, v in fixture["xdim"]["grads"].items():
        print(f"  d/d {g}: max |g| {max(abs(x) for x in v):.3e}")


if __name__ == "__main__":
    main()
