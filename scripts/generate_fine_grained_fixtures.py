#!/usr/bin/env python3
"""Reference values for the fine-grained similarities (SCAN, CHAN) of METHODS.md §3.

A direct, pair-by-pair PyTorch implementation in double precision, written from METHODS §3
without looking at the Rust code: for every image i and caption j it slices the valid regions
R = regions[i, :count] and words W = words[j, :length] (so padding cannot matter) and applies
the formulas literally, with the attended vectors computed explicitly. Writes
crates/itm-core/tests/fixtures/fine_grained.json, checked by crates/itm-core/tests/fine_grained_reference.rs. Run it from the
repository root:

    python3 -m venv .venv && .venv/bin/pip install torch
    .venv/bin/python scripts/generate_fine_grained_fixtures.py

Conventions shared with itm: l2norm(x) = x / (||x|| + 1e-8); cos(x, y) = l2norm(x) . l2norm(y).
"""

import json
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent.parent / "crates" / "itm-core" / "tests" / "fixtures"
torch.set_default_dtype(torch.float64)
EPS = 1e-8


def tolist(t):
    return [float(f"{v:.9g}") for v in t.detach().cpu().double().numpy().reshape(-1)]


def l2norm(x, dim):
    return x / (x.pow(2).sum(dim=dim, keepdim=True).sqrt() + EPS)


def cosine(x, y):
    """Row-wise cosine of [n, D] against [n, D] -> [n]."""
    return (l2norm(x, -1) * l2norm(y, -1)).sum(-1)


def lse(r, lam):
    return torch.log(torch.exp(lam * r).sum()) / lam


def scan_pair(R, W, direction, aggregation, lam1, lam2):
    """SCAN for one pair: R [k, D] valid regions, W [l, D] valid words -> scalar."""
    A = R @ W.t()  # [k, l]
    A = torch.nn.functional.leaky_relu(A, 0.1)
    if direction == "t2i":
        A = l2norm(A, 1)  # over words
        alpha = torch.softmax(lam1 * A, dim=0)  # over regions, [k, l]
        attended = alpha.t() @ R  # a_w = sum_r alpha[r, w] R_r, [l, D]
        r = cosine(W, attended)  # [l]
    else:
        A = l2norm(A, 0)  # over regions
        alpha = torch.softmax(lam1 * A, dim=1)  # over words, [k, l]
        attended = alpha @ W  # a_r = sum_w alpha[r, w] W_w, [k, D]
        r = cosine(R, attended)  # [k]
    return lse(r, lam2) if aggregation == "lse" else r.mean()


def chan_pair(R, W, aggregation, temperature=0.1):
    """CHAN hard alignment for one pair: cosines of l2-normalised vectors, max over regions."""
    F = l2norm(R, 1) @ l2norm(W, 1).t()  # [k, l]
    H = F.max(dim=0).values  # [l]
    return H.mean() if aggregation == "mean" else torch.logsumexp(H / temperature, dim=0)


def score_matrix(pair_fn, regions, counts, words, lengths):
    rows = []
    for i, k in enumerate(counts):
        rows.append(torch.stack([pair_fn(regions[i, :k], words[j, :l]) for j, l in enumerate(lengths)]))
    return torch.stack(rows)


VARIANTS = {
    "scan_t2i_lse": lambda R, W: scan_pair(R, W, "t2i", "lse", 9.0, 6.0),
    "scan_t2i_avg": lambda R, W: scan_pair(R, W, "t2i", "avg", 9.0, 6.0),
    "scan_i2t_lse": lambda R, W: scan_pair(R, W, "i2t", "lse", 4.0, 5.0),
    "scan_i2t_avg": lambda R, W: scan_pair(R, W, "i2t", "avg", 4.0, 5.0),
    "chan_mean": lambda R, W: chan_pair(R, W, "mean"),
    "chan_lse": lambda R, W: chan_pair(R, W, "lse"),
}


def main():
    torch.manual_seed(7)
    n_img, k, n_cap, l, d = 3, 5, 4, 6, 8
    counts = [5, 3, 4]
    lengths = [6, 2, 4, 5]
    # float32-representable inputs, so that the Rust side reads exactly the same numbers.
    regions = torch.randn(n_img, k, d).float().double()
    words = torch.randn(n_cap, l, d).float().double()
    # Large values in the padding: they must not matter (and get zero gradient).
    for i, c in enumerate(counts):
        regions[i, c:] = (100 * torch.randn(k - c, d)).float().double()
    for j, c in enumerate(lengths):
        words[j, c:] = (100 * torch.randn(l - c, d)).float().double()
    probe = torch.randn(n_img, n_cap).float().double()

    fixture = {
        "n_img": n_img, "regions_per_image": k, "n_cap": n_cap, "words_per_caption": l, "dim": d,
        "region_counts": counts, "word_lengths": lengths,
        "regions": tolist(regions), "words": tolist(words), "probe": tolist(probe),
        "scores": {}, "regions_grad": {}, "words_grad": {},
    }
    for name, pair_fn in VARIANTS.items():
        r = regions.clone().requires_grad_(True)
        w = words.clone().requires_grad_(True)
        scores = score_matrix(pair_fn, r, counts, w, lengths)
        (scores * probe).sum().backward()
        fixture["scores"][name] = tolist(scores)
        fixture["regions_grad"][name] = tolist(r.grad)
        fixture["words_grad"][name] = tolist(w.grad)

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "fine_grained.json"
    path.write_text(json.dumps(fixture))
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
