#!/usr/bin/env python3
"""Reference values for the fusion layers (METHODS §4) and the DAIM / AAHR losses (METHODS §5).

Written from METHODS.md and the rules stated in the Rust doc comments of
crates/itm-core/src/fusion/instance_relation.rs and
crates/itm-core/src/loss/{adaptive_margin,distinguishability,ambiguity}.rs (the losses are "our
design" there), in double precision with torch's own modules where they exist:

- instance relation: nn.TransformerEncoderLayer (post-norm, GELU, no dropout) with a boolean
  attention mask built by an explicit per-row, per-block top-k loop; forward and gradients;
- adaptive margin: three steps of EMA statistics, margin, hinge loss and its gradient;
- distinguishability and ambiguity-aware losses: values, weights and gradients, with and without
  image ids.

Every parameter is drawn at random (LayerNorm gains and biases too) and every number is first
rounded to float32, so that the Rust side reads exactly the same inputs. Writes
crates/itm-core/tests/fixtures/fusion_loss.json, checked by crates/itm-core/tests/fusion_loss_reference.rs. Run it from the
repository root:

    python3 -m venv .venv && .venv/bin/pip install torch
    .venv/bin/python scripts/generate_fusion_loss_fixtures.py

Conventions shared with itm: l2norm(x) = x / (||x|| + 1e-8); cos(x, y) = l2norm(x) . l2norm(y).
PyTorch linear weights are [out, in]; the Rust test transposes them for burn.
"""

import json
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = Path(__file__).resolve().parent.parent / "crates" / "itm-core" / "tests" / "fixtures"
torch.set_default_dtype(torch.float64)
EPS = 1e-8


def tolist(t):
    return [float(f"{v:.9g}") for v in t.detach().cpu().double().numpy().reshape(-1)]


def f32(t):
    """Rounds to float32 so that the Rust side reads exactly the same numbers."""
    return t.float().double()


def l2norm(x, dim=-1):
    return x / (x.pow(2).sum(dim=dim, keepdim=True).sqrt() + EPS)


def randomise(module, scale=0.3):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(f32(scale * torch.randn_like(p)))
        for m in module.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.copy_(f32(1.0 + 0.2 * torch.randn_like(m.weight)))


def mha_params(mha):
    d = mha.embed_dim
    w, b = mha.in_proj_weight, mha.in_proj_bias
    return {
        "query": {"weight": tolist(w[:d]), "bias": tolist(b[:d])},
        "key": {"weight": tolist(w[d : 2 * d]), "bias": tolist(b[d : 2 * d])},
        "value": {"weight": tolist(w[2 * d :]), "bias": tolist(b[2 * d :])},
        "output": {"weight": tolist(mha.out_proj.weight), "bias": tolist(mha.out_proj.bias)},
    }


def norm_params(norm):
    return {"gamma": tolist(norm.weight), "beta": tolist(norm.bias)}


def linear_params(linear):
    return {"weight": tolist(linear.weight), "bias": tolist(linear.bias)}


# -------------------------------------------------------------------------- instance relation


def relation_mask(items, keep_ratio):
    """True where row a may NOT attend to column b: per row and per modality block of B columns,
    keep the k = max(1, ceil(keep_ratio * B)) most similar items, and the item itself."""
    n = items.shape[0]
    b = n // 2
    k = max(1, math.ceil(keep_ratio * b))
    unit = l2norm(items.detach())
    sim = unit @ unit.t()
    allowed = torch.zeros(n, n, dtype=torch.bool)
    for a in range(n):
        allowed[a, a] = True
        for block in range(2):
            values = sim[a, block * b : (block + 1) * b]
            ordered = values.sort(descending=True).values
            assert ordered[k - 1] - ordered[k] > 1e-4, "a near tie at the threshold"
            for j in torch.topk(values, k).indices.tolist():
                allowed[a, block * b + j] = True
    return ~allowed


def instance_relation_case():
    d, heads, d_ff, b, keep_ratio = 8, 2, 16, 5, 0.5
    layer = nn.TransformerEncoderLayer(
        d, heads, d_ff, dropout=0.0, activation="gelu", batch_first=True, norm_first=False
    )
    randomise(layer)
    images = f32(torch.randn(b, d)).requires_grad_()
    captions = f32(torch.randn(b, d)).requires_grad_()
    items = torch.cat([images, captions])
    mask = relation_mask(items, keep_ratio)
    out = layer(items.unsqueeze(0), src_mask=mask).squeeze(0)
    probe = f32(torch.randn(2 * b, d))
    (out * probe).sum().backward()
    return {
        "d_model": d,
        "heads": heads,
        "d_ff": d_ff,
        "batch": b,
        "keep_ratio": keep_ratio,
        "attention": mha_params(layer.self_attn),
        "linear_inner": linear_params(layer.linear1),
        "linear_outer": linear_params(layer.linear2),
        "norm_1": norm_params(layer.norm1),
        "norm_2": norm_params(layer.norm2),
        "images": tolist(images),
        "captions": tolist(captions),
        "mask": [bool(v) for v in mask.reshape(-1).tolist()],
        "output": tolist(out),
        "probe": tolist(probe),
        "images_grad": tolist(images.grad),
        "captions_grad": tolist(captions.grad),
    }


# --------------------------------------------------------------------------------------- losses


def negatives_mask(b, ids):
    """True where caption j is a negative of image i."""
    if ids is None:
        return ~torch.eye(b, dtype=torch.bool)
    ids = torch.tensor(ids)
    return ids.unsqueeze(1) != ids.unsqueeze(0)


def hinge(scores, margin, negatives, hardest):
    pos = scores.diagonal()
    cost_s = (margin + scores - pos.unsqueeze(1)).clamp(min=0) * negatives
    cost_im = (margin + scores - pos.unsqueeze(0)).clamp(min=0) * negatives
    if hardest:
        return cost_s.max(dim=1).values.sum() + cost_im.max(dim=0).values.sum()
    return cost_s.sum() + cost_im.sum()


def adaptive_margin_case():
    """Three batches: fairly separated, well separated, then overlapping (margins inside
    (α_min, α_max), so that the clamp does not hide the statistics)."""
    b, momentum, kappa, lo, hi = 6, 0.9, 0.5, 0.05, 0.4
    stats, steps = None, []
    for positive in [0.8, 1.3, 0.2]:
        off = 0.2 * torch.randn(b, b) * (1 - torch.eye(b))
        scores = f32(off + torch.eye(b) * (positive + 0.05 * torch.randn(b)))
        scores.requires_grad_()
        s = scores.detach()
        negatives = negatives_mask(b, None)
        pos = s.diagonal()
        masked = s.masked_fill(~negatives, -math.inf)
        hard = torch.cat([masked.max(dim=1).values, masked.max(dim=0).values])
        batch = [pos.mean(), pos.std(unbiased=False), hard.mean(), hard.std(unbiased=False)]
        stats = batch if stats is None else [momentum * o + (1 - momentum) * n for o, n in zip(stats, batch)]
        separation = (stats[0] - stats[2]) - (stats[1] + stats[3])
        margin = float(min(max(hi - kappa * separation, lo), hi))
        loss = hinge(scores, margin, negatives, hardest=True)
        loss.backward()
        steps.append(
            {
                "scores": tolist(s),
                "statistics": [float(v) for v in stats],
                "margin": margin,
                "loss": loss.item(),
                "scores_grad": tolist(scores.grad),
            }
        )
    return {"batch": b, "steps": steps}


def near_copies(b, d, base_scale, noise):
    """Embeddings around a shared direction, so that several cosines exceed δ = 0.5."""
    base = torch.randn(1, d) * base_scale
    return f32(base + noise * torch.randn(b, d))


def distinguishability_case():
    b, d, delta, epsilon, weight = 5, 6, 0.5, 0.05, 0.1
    images = near_copies(b, d, 1.0, 0.5)
    captions = f32(images + 0.15 * torch.randn(b, d))  # some positives above 1 − ε
    cases = []
    for ids in [None, [0, 0, 1, 2, 2]]:
        v = images.clone().requires_grad_()
        c = captions.clone().requires_grad_()
        different = negatives_mask(b, ids)
        vn, cn = l2norm(v), l2norm(c)
        intra = lambda x: (((x @ x.t()) - delta).clamp(min=0) * different).pow(2).sum()
        positives = ((vn * cn).sum(-1) - (1 - epsilon)).clamp(min=0).pow(2).sum()
        loss = weight * (intra(vn) + intra(cn) + positives)
        loss.backward()
        cases.append(
            {
                "image_ids": ids,
                "loss": loss.item(),
                "images_grad": tolist(v.grad),
                "captions_grad": tolist(c.grad),
            }
        )
    return {"batch": b, "dim": d, "images": tolist(images), "captions": tolist(captions), "cases": cases}


def ambiguity_case():
    b, d, margin, temperature = 5, 6, 0.2, 0.1
    images = near_copies(b, d, 0.8, 0.7)
    captions = near_copies(b, d, 0.8, 0.7)
    captions[1] = f32(captions[0] + 0.1 * torch.randn(d))  # an ambiguous near copy
    base = f32(0.4 * torch.randn(b, b) + 0.3 * torch.eye(b))
    cases = []
    for ids, hardest in [(None, True), ([0, 0, 1, 2, 3], False), ([0, 0, 1, 2, 3], True)]:
        scores = base.clone().requires_grad_()
        negatives = negatives_mask(b, ids)
        # Ambiguities, detached: caption-caption cosines for rows, image-image for columns.
        cc = l2norm(captions) @ l2norm(captions).t()
        vv = l2norm(images) @ l2norm(images).t()
        p = torch.softmax((cc / temperature).masked_fill(~negatives, -math.inf), dim=1)
        q = torch.softmax((vv / temperature).masked_fill(~negatives, -math.inf), dim=0)
        w = (1 - p) * negatives
        u = (1 - q) * negatives
        pos = scores.diagonal()
        cost_s = (margin + scores - pos.unsqueeze(1)).clamp(min=0) * w
        cost_im = (margin + scores - pos.unsqueeze(0)).clamp(min=0) * u
        if hardest:
            loss = cost_s.max(dim=1).values.sum() + cost_im.max(dim=0).values.sum()
        else:
            loss = cost_s.sum() + cost_im.sum()
        loss.backward()
        cases.append(
            {
                "image_ids": ids,
                "hardest": hardest,
                "loss": loss.item(),
                "caption_weights": tolist(w),
                "image_weights": tolist(u),
                "scores_grad": tolist(scores.grad),
            }
        )
    return {
        "batch": b,
        "dim": d,
        "temperature": temperature,
        "images": tolist(images),
        "captions": tolist(captions),
        "scores": tolist(base),
        "cases": cases,
    }


def main():
    torch.manual_seed(23)
    fixture = {
        "instance_relation": instance_relation_case(),
        "adaptive_margin": adaptive_margin_case(),
        "distinguishability": distinguishability_case(),
        "ambiguity": ambiguity_case(),
    }
    path = OUT / "fusion_loss.json"
    path.write_text(json.dumps(fixture))
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
