#!/usr/bin/env python3
"""Reference values for itm's numerical tests, computed with PyTorch and NumPy.

Each function below re-implements one piece of METHODS.md directly in PyTorch (packed
sequences for the recurrent parts, as the published code does) and writes its inputs,
parameters, outputs and gradients to crates/itm-core/tests/fixtures/*.json. Run it from the repository root:

    python3 -m venv .venv && .venv/bin/pip install torch numpy
    .venv/bin/python scripts/generate_fixtures.py

The committed fixtures are small (a few KiB each); regenerate them only when a reference
changes.
"""

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

OUT = Path(__file__).resolve().parent.parent / "crates" / "itm-core" / "tests" / "fixtures"
torch.set_default_dtype(torch.float64)  # references in double precision


def tolist(t):
    # 9 significant digits: float32-exact, and the files stay small.
    return [float(f"{v:.9g}") for v in t.detach().cpu().double().numpy().reshape(-1)]


def gru_params(gru, suffix=""):
    return {
        "weight_ih": tolist(getattr(gru, "weight_ih_l0" + suffix)),
        "weight_hh": tolist(getattr(gru, "weight_hh_l0" + suffix)),
        "bias_ih": tolist(getattr(gru, "bias_ih_l0" + suffix)),
        "bias_hh": tolist(getattr(gru, "bias_hh_l0" + suffix)),
    }


def packed_bigru_mean(gru, x, lengths):
    """Bidirectional GRU over packed sequences, directions averaged; zeros at padding."""
    packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    out, _ = gru(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    half = out.shape[2] // 2
    return (out[:, :, :half] + out[:, :, half:]) / 2


def positional_encoding(length, d_pe):
    pe = torch.zeros(length, d_pe)
    position = torch.arange(0, length).unsqueeze(1).double()
    div_term = torch.exp(torch.arange(0, d_pe, 2).double() * -(math.log(10000.0) / d_pe))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


def gpo_reference(gru, linear, features, lengths, d_pe=32):
    batch, max_len, _ = features.shape
    pe = positional_encoding(max_len, d_pe).unsqueeze(0).repeat(batch, 1, 1)
    hidden = packed_bigru_mean(gru, pe, lengths)
    mask = torch.arange(max_len).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    scores = linear(hidden).squeeze(2).masked_fill(~mask, -10000)
    weights = torch.softmax(scores / 0.1, dim=1)
    masked = features.masked_fill(~mask.unsqueeze(2), -10000)
    sorted_features = masked.sort(dim=1, descending=True)[0].masked_fill(~mask.unsqueeze(2), 0)
    pooled = (sorted_features * weights.unsqueeze(2)).sum(1)
    return pooled / (pooled.norm(dim=1, keepdim=True) + 1e-8), weights


def gpo_fixture():
    torch.manual_seed(0)
    gru = torch.nn.GRU(32, 32, batch_first=True, bidirectional=True)
    linear = torch.nn.Linear(32, 1, bias=False)
    lengths = [6, 3, 1, 5]
    features = torch.randn(4, 6, 8, requires_grad=True)
    pooled, weights = gpo_reference(gru, linear, features, lengths)
    probe = torch.randn_like(pooled)
    (pooled * probe).sum().backward()
    return {
        "lengths": lengths,
        "features": tolist(features),
        "features_shape": list(features.shape),
        "gru_forward": gru_params(gru),
        "gru_backward": gru_params(gru, "_reverse"),
        "score_weight": tolist(linear.weight),
        "pooled": tolist(pooled),
        "weights": tolist(weights),
        "probe": tolist(probe),
        "features_grad": tolist(features.grad),
        "score_weight_grad": tolist(linear.weight.grad),
        "gru_backward_weight_ih_grad": tolist(gru.weight_ih_l0_reverse.grad),
    }


def text_gru_fixture():
    torch.manual_seed(1)
    vocab, d_word, hidden = 12, 5, 4
    embedding = torch.nn.Embedding(vocab, d_word)
    gru = torch.nn.GRU(d_word, hidden, batch_first=True, bidirectional=True)
    tokens = torch.tensor([[1, 5, 7, 9, 2], [1, 4, 2, 0, 0], [1, 3, 3, 8, 2]])
    lengths = [5, 3, 4]
    out = packed_bigru_mean(gru, embedding(tokens), lengths)
    probe = torch.randn_like(out)
    (out * probe).sum().backward()
    return {
        "tokens": tokens.reshape(-1).tolist(),
        "tokens_shape": list(tokens.shape),
        "lengths": lengths,
        "embedding": tolist(embedding.weight),
        "vocab": vocab,
        "d_word": d_word,
        "hidden": hidden,
        "gru_forward": gru_params(gru),
        "gru_backward": gru_params(gru, "_reverse"),
        "output": tolist(out),
        "probe": tolist(probe),
        "embedding_grad": tolist(embedding.weight.grad),
        "gru_backward_weight_hh_grad": tolist(gru.weight_hh_l0_reverse.grad),
    }


def hinge_reference(scores, margin, hardest, positive_mask):
    diagonal = scores.diag().view(-1, 1)
    cost_caption = (margin + scores - diagonal).clamp(min=0).masked_fill(positive_mask, 0)
    cost_image = (margin + scores - diagonal.t()).clamp(min=0).masked_fill(positive_mask, 0)
    if hardest:
        return cost_caption.max(1)[0].sum() + cost_image.max(0)[0].sum()
    return cost_caption.sum() + cost_image.sum()


def hinge_fixture():
    torch.manual_seed(2)
    size = 6
    scores = torch.rand(size, size) * 2 - 1
    image_ids = [0, 0, 1, 2, 2, 3]
    ids = torch.tensor(image_ids)
    cases = []
    for hardest in (False, True):
        for same_image in (False, True):
            s = scores.clone().requires_grad_(True)
            mask = (ids.view(-1, 1) == ids.view(1, -1)) if same_image else torch.eye(size, dtype=torch.bool)
            loss = hinge_reference(s, 0.2, hardest, mask)
            loss.backward()
            cases.append({
                "hardest": hardest,
                "same_image": same_image,
                "loss": loss.item(),
                "grad": tolist(s.grad),
            })
    return {"size": size, "scores": tolist(scores), "image_ids": image_ids, "margin": 0.2, "cases": cases}


def infonce_fixture():
    torch.manual_seed(3)
    size = 5
    scores = (torch.rand(size, size) * 2 - 1).requires_grad_(True)
    log_scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    logits = scores * log_scale.clamp(max=math.log(100)).exp()
    target = torch.arange(size)
    loss = (torch.nn.functional.cross_entropy(logits, target)
            + torch.nn.functional.cross_entropy(logits.t(), target)) / 2
    loss.backward()
    return {
        "size": size,
        "scores": tolist(scores),
        "loss": loss.item(),
        "scores_grad": tolist(scores.grad),
        "log_scale_grad": log_scale.grad.item(),
    }


def argsort_metrics(sims, captions_per_image):
    """The argsort formulation of the VSE++ evaluation, on a tie-free [n_img, n_cap] matrix."""
    n_img, n_cap = sims.shape
    owner = np.arange(n_cap) // captions_per_image
    i2t = np.zeros(n_img)
    for i in range(n_img):
        order = np.argsort(sims[i])[::-1]
        i2t[i] = min(np.where(order == c)[0][0] for c in np.where(owner == i)[0])
    t2i = np.zeros(n_cap)
    for j in range(n_cap):
        order = np.argsort(sims[:, j])[::-1]
        t2i[j] = np.where(order == owner[j])[0][0]

    def summary(ranks):
        recalls = [100.0 * np.mean(ranks < k) for k in (1, 5, 10)]
        return recalls, float(np.floor(np.median(ranks)) + 1), float(ranks.mean() + 1)

    (ir, imed, imean), (tr, tmed, tmean) = summary(i2t), summary(t2i)
    return {"i2t_recall": ir, "i2t_medr": imed, "i2t_meanr": imean,
            "t2i_recall": tr, "t2i_medr": tmed, "t2i_meanr": tmean, "rsum": sum(ir) + sum(tr)}


def eval_fixture():
    rng = np.random.default_rng(4)
    n_img = 40
    # A weak signal on the true pairs so that recalls are neither 0 nor 100.
    sims = rng.standard_normal((n_img, 5 * n_img)).astype(np.float32)
    sims[np.arange(5 * n_img) // 5, np.arange(5 * n_img)] += 1.5
    assert len(np.unique(sims)) == sims.size, "tie-free"
    full = argsort_metrics(sims, 5)
    fold = n_img // 5
    folds = [argsort_metrics(sims[f * fold:(f + 1) * fold, 5 * f * fold:5 * (f + 1) * fold], 5) for f in range(5)]
    keys = ["i2t_medr", "i2t_meanr", "t2i_medr", "t2i_meanr", "rsum"]
    mean = {k: float(np.mean([m[k] for m in folds])) for k in keys}
    mean["i2t_recall"] = np.mean([m["i2t_recall"] for m in folds], axis=0).tolist()
    mean["t2i_recall"] = np.mean([m["t2i_recall"] for m in folds], axis=0).tolist()
    return {"n_img": n_img, "scores": sims.reshape(-1).astype(float).tolist(), "full": full,
            "five_fold": mean}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, make in [("gpo", gpo_fixture), ("text_gru", text_gru_fixture), ("hinge", hinge_fixture),
                       ("infonce", infonce_fixture), ("eval", eval_fixture)]:
        path = OUT / f"{name}.json"
        path.write_text(json.dumps(make()))
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
