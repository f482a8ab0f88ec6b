#!/usr/bin/env python3
"""Reference values for itm's multi-level similarity, computed by HAT's own scoring function.

The upstream repository (LuminosityX/HAT) is *not* part of this repository and nothing of it is
copied here: this script imports ``meter/modules/objectives.py`` from a checkout given with
``--upstream`` and calls its ``xattn_score_i2t`` (the image-to-text cross attention that HAT
scores every level with, ``direction = 'i2t'``, ``lambda_softmax = 9`` in ``meter/config.py``).
What HAT's ``METERTransformerSS.infer`` does around it is written here from a reading of
``meter_module.py`` (our code, not theirs): each level of each tower goes through its own
``nn.Linear(width -> hidden_size)`` (``cross_modal_image_transform{_1,_2,}`` and
``cross_modal_text_transform{_1,_2,}``), with no normalisation, and ``compute_SCAN`` sums the
three levels' score matrices.

For small random inputs -- three levels of image patch sets (full grids: Swin patches have no
padding; a different patch count and width per level, as Swin's stages) and three levels of
caption token sets sharing one length per caption, their padding filled with large noise -- it
records, in double precision from float32-representable values:

* the projection weights and biases (random, biases non-zero: HAT initialises them from
  N(0, 0.02^2) with zero biases, ``objectives.init_weights``, which would hide a missing bias);
* the projected levels, the per-level score matrices and their sum;
* the gradients of ``sum(total * probe)`` (a random probe ``[n_img, n_cap]``) with respect to
  every input level and every projection weight and bias; padded token rows get zero gradient
  because HAT slices them off (``captions[i, :n_word]``).

Writes crates/itm-core/tests/fixtures/multi_level.json (checked by
crates/itm-core/tests/multi_level_reference.rs). Run it from the repository root:

    git clone https://github.com/LuminosityX/HAT /tmp/HAT   # any checkout
    /work/venv-authors/bin/python scripts/authors/hat_score.py --upstream /tmp/HAT

Compatibility shims (nothing upstream is modified):

* ``meter`` and ``meter.modules`` are registered as empty packages whose ``__path__`` is the
  checkout's folder, so that ``objectives.py`` is imported without running
  ``meter/modules/__init__.py`` (which imports the whole Lightning module: pytorch_lightning,
  timm's Swin, their BERT), none of it on the path of ``xattn_score_i2t``;
* a stub ``einops`` module (``rearrange`` only), imported by ``objectives.py`` at the top and
  unused by ``xattn_score_i2t``, when einops is not installed;
* the checkout's root is put on ``sys.path`` for ``from evaluation import i2t_SCAN, t2i_SCAN``
  (its ``evaluation.py`` imports numpy only).

Quirk of the upstream function, respected by the sizes here: ``cosine_similarity`` ends with
``.squeeze()``, so a block with one image or a level with one patch loses an axis and
``row_sim.mean(dim=1)`` fails; every level has two patches or more and there are three images.
"""

import argparse
import importlib
import json
import sys
import types
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parents[2] / "crates" / "itm-core" / "tests" / "fixtures" / "multi_level.json"
torch.set_default_dtype(torch.float64)

LAMBDA_SOFTMAX = 9.0  # HAT's meter/config.py
N_IMG = 3
IMAGE_REGIONS = [8, 4, 2]  # patches per level, low -> high (Swin: 4x fewer per stage)
IMAGE_WIDTHS = [4, 6, 10]  # widths per level (Swin-B: 256, 512, 1024)
CAPTION_LENGTHS = [6, 2, 4, 5]  # tokens per caption, [CLS] and [SEP] included, as HAT counts
MAX_TOKENS = 6
TEXT_WIDTHS = [7, 7, 7]  # BERT hidden states: one width at every level (bert-base: 768)
D_EMBED = 5


def tolist(t):
    return [float(f"{v:.9g}") for v in t.detach().cpu().double().numpy().reshape(-1)]


def import_objectives(checkout):
    """HAT's meter/modules/objectives.py, imported without meter/modules/__init__.py."""
    checkout = Path(checkout).resolve()
    modules = checkout / "meter" / "modules"
    if not (modules / "objectives.py").is_file():
        sys.exit(f"{modules / 'objectives.py'} not found: is {checkout} a checkout of LuminosityX/HAT?")
    sys.path.insert(0, str(checkout))
    for name, path in (("meter", checkout / "meter"), ("meter.modules", modules)):
        package = types.ModuleType(name)
        package.__path__ = [str(path)]
        sys.modules[name] = package
    try:
        import einops  # noqa: F401
    except ImportError:
        stub = types.ModuleType("einops")

        def rearrange(*_args, **_kwargs):
            raise NotImplementedError("einops stub: not on the path of xattn_score_i2t")

        stub.rearrange = rearrange
        sys.modules["einops"] = stub
    return importlib.import_module("meter.modules.objectives")


def f32(t):
    """float32-representable values, kept in double."""
    return t.float().double()


def linear(d_in, d_out, gen):
    layer = torch.nn.Linear(d_in, d_out)
    with torch.no_grad():
        layer.weight.copy_(f32(torch.randn(d_out, d_in, generator=gen) / d_in ** 0.5))
        layer.bias.copy_(f32(0.3 * torch.randn(d_out, generator=gen)))
    return layer


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="a checkout of LuminosityX/HAT")
    parser.add_argument("--out", default=str(OUT), help="the JSON fixture to write")
    args = parser.parse_args()
    objectives = import_objectives(args.upstream)

    gen = torch.Generator().manual_seed(16)
    images = [f32(torch.randn(N_IMG, k, w, generator=gen)).requires_grad_()
              for k, w in zip(IMAGE_REGIONS, IMAGE_WIDTHS)]
    n_cap = len(CAPTION_LENGTHS)
    valid = (torch.arange(MAX_TOKENS)[None, :] < torch.tensor(CAPTION_LENGTHS)[:, None])[..., None]
    captions = []
    for w in TEXT_WIDTHS:
        real = torch.randn(n_cap, MAX_TOKENS, w, generator=gen)
        noise = 100.0 * torch.randn(n_cap, MAX_TOKENS, w, generator=gen)
        captions.append(f32(torch.where(valid, real, noise)).requires_grad_())
    image_projections = [linear(w, D_EMBED, gen) for w in IMAGE_WIDTHS]
    text_projections = [linear(w, D_EMBED, gen) for w in TEXT_WIDTHS]
    probe = f32(torch.randn(N_IMG, n_cap, generator=gen))

    projected_images = [p(x) for p, x in zip(image_projections, images)]
    projected_captions = [p(x) for p, x in zip(text_projections, captions)]
    levels = [objectives.xattn_score_i2t(im, cap, CAPTION_LENGTHS, LAMBDA_SOFTMAX)
              for im, cap in zip(projected_images, projected_captions)]
    total = sum(levels)
    (total * probe).sum().backward()

    for cap in captions:
        assert torch.all(cap.grad[~valid.expand_as(cap)] == 0), "padding must get no gradient"

    def projection(layer):
        return {
            "weight": tolist(layer.weight),  # PyTorch layout [out, in]
            "bias": tolist(layer.bias),
            "grad_weight": tolist(layer.weight.grad),
            "grad_bias": tolist(layer.bias.grad),
        }

    fixture = {
        "source": "LuminosityX/HAT meter/modules/objectives.py xattn_score_i2t, summed over levels",
        "lambda_softmax": LAMBDA_SOFTMAX,
        "n_img": N_IMG,
        "image_regions": IMAGE_REGIONS,
        "image_widths": IMAGE_WIDTHS,
        "caption_lengths": CAPTION_LENGTHS,
        "max_tokens": MAX_TOKENS,
        "text_widths": TEXT_WIDTHS,
        "d_embed": D_EMBED,
        "images": [tolist(x) for x in images],
        "captions": [tolist(x) for x in captions],
        "probe": tolist(probe),
        "image_projections": [projection(p) for p in image_projections],
        "text_projections": [projection(p) for p in text_projections],
        "projected_images": [tolist(x) for x in projected_images],
        "projected_captions": [tolist(x) for x in projected_captions],
        "levels": [tolist(s) for s in levels],
        "total": tolist(total),
        "grad_images": [tolist(x.grad) for x in images],
        "grad_captions": [tolist(x.grad) for x in captions],
    }
    out = Path(args.out)
    out.write_text(json.dumps(fixture))
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    print("levels:", [tolist(s)[:3] for s in levels])


if __name__ == "__main__":
    main()
