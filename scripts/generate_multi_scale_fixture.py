#!/usr/bin/env python3
"""Reference values for the multi-scale region fusion of CHAN-ASDG (METHODS.md §4, itm's design).

Written from the design in `crates/itm-core/src/fusion/multi_scale.rs`'s module documentation
(not from its code), image by image and region by region in double precision:

- scale k: region r becomes the mean of itself and the k - 1 valid regions with the highest
  cosine to it (k capped by the image's region count); the global scale is the mean of all
  valid regions; which regions are chosen does not carry gradients;
- sum: softmax(a)-weighted sum of the scales; concat: Linear over the concatenated scales.

Padded region slots are never used as neighbours; their own outputs are not compared. The
fixture holds the inputs, the parameters, the outputs and the gradients of
loss = sum(outputs[valid] * upstream[valid]) with respect to the regions and the parameters.
Writes crates/itm-core/tests/fixtures/multi_scale.json, checked by crates/itm-core/tests/multi_scale_reference.rs. Run from the
repository root:

    python3 -m venv .venv && .venv/bin/pip install torch
    .venv/bin/python scripts/generate_multi_scale_fixture.py
"""

import json
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent.parent / "crates" / "itm-core" / "tests" / "fixtures"
torch.set_default_dtype(torch.float64)
EPS = 1e-8


def tolist(t):
    return [float(f"{v:.9g}") for v in t.detach().reshape(-1).tolist()]


def neighbours(valid, k):
    """Indices of the k regions nearest each valid region (itself first), by cosine."""
    unit = valid / (valid.norm(dim=1, keepdim=True) + EPS)
    cos = (unit @ unit.t()).detach()
    out = []
    for r in range(valid.shape[0]):
        others = [j for j in range(valid.shape[0]) if j != r]
        others.sort(key=lambda j: -cos[r, j].item())
        out.append([r] + others[: min(k, valid.shape[0]) - 1])
    return out


def fuse(regions, counts, sizes, use_global, logits=None, linear=None):
    n, K, D = regions.shape
    rows = []
    for b in range(n):
        valid = regions[b, : counts[b]]
        scales = []
        for k in sizes:
            picks = neighbours(valid, k)
            scales.append(torch.stack([valid[p].mean(0) for p in picks]))
        if use_global:
            scales.append(valid.mean(0, keepdim=True).expand(counts[b], D))
        if logits is not None:
            w = torch.softmax(logits, 0)
            rows.append(sum(w[s] * scales[s] for s in range(len(scales))))
        else:
            rows.append(torch.cat(scales, 1) @ linear[0].t() + linear[1])
    return rows


def main():
    torch.manual_seed(11)
    n, K, D = 3, 5, 6
    counts = [5, 2, 4]
    sizes = [1, 2, 3]
    regions = torch.randn(n, K, D)
    upstream = torch.randn(n, K, D)
    S = len(sizes) + 1
    logits = torch.randn(S) * 0.5
    weight = torch.randn(D, S * D) * 0.2
    bias = torch.randn(D) * 0.1
    fixture = {
        "counts": counts,
        "neighbourhoods": sizes,
        "regions": tolist(regions),
        "upstream": tolist(upstream),
        "scale_logits": tolist(logits),
        "linear_weight": tolist(weight),
        "linear_bias": tolist(bias),
    }
    for mode in ["sum", "concat"]:
        x = regions.clone().requires_grad_(True)
        a = logits.clone().requires_grad_(True)
        w = weight.clone().requires_grad_(True)
        c = bias.clone().requires_grad_(True)
        if mode == "sum":
            rows = fuse(x, counts, sizes, True, logits=a)
        else:
            rows = fuse(x, counts, sizes, True, linear=(w, c))
        output = torch.zeros(n, K, D)
        loss = 0.0
        for b, row in enumerate(rows):
            output[b, : counts[b]] = row.detach()
            loss = loss + (row * upstream[b, : counts[b]]).sum()
        loss.backward()
        entry = {"output": tolist(output), "grad_regions": tolist(x.grad)}
        if mode == "sum":
            entry["grad_scale_logits"] = tolist(a.grad)
        else:
            entry["grad_linear_weight"] = tolist(w.grad)
            entry["grad_linear_bias"] = tolist(c.grad)
        fixture[mode] = entry
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "multi_scale.json").write_text(json.dumps(fixture, indent=1) + "\n")
    print("wrote", OUT / "multi_scale.json")


if __name__ == "__main__":
    main()
