#!/usr/bin/env python3
"""Reference fixture for itm's Swin tower in HAT's naming, made by HAT's own Swin module.

The upstream repository (LuminosityX/HAT, built on METER) is *not* part of this repository and
nothing of it is copied here: this script imports ``meter/modules/swin_transformer.py`` from an
upstream checkout given with ``--upstream`` and records what its ``SwinTransformer`` computes.

HAT builds its image tower as ``swin.swin_base_patch4_window7_224_in22k(pretrained=True,
config=...)`` in ``METERTransformerSS.__init__`` (attribute ``vit_model``); that function builds
the same ``SwinTransformer`` class with Swin-B's sizes and the pretrained weights. Here the class
is built directly with tiny sizes and random weights (no download):

    SwinTransformer(img_size=64, patch_size=4, embed_dim=8, depths=(2, 2, 2, 1),
                    num_heads=(1, 2, 2, 4), mlp_ratio=2.0, drop_path_rate=0.0)

HAT's class overrides the window with ``int(img_size / 32)`` (2 here, 7 at 224 px), so stage
resolutions 16, 8, 4 use shifted windows with the attention mask, and the last (2 × 2) is as
small as the window: one unshifted window, as Swin-B's last stage at 224 px. Its
``forward_features`` returns every stage's output *before* patch merging, normed by the norms
HAT adds (``norm_0``, ``norm_1``, ``norm_2``) and by ``norm`` for the last; HAT's
``METERTransformerSS.infer`` uses entries 1, 2 and 3 (the 256-, 512- and 1024-wide ones of
Swin-B) as its low, middle and high levels.

Layer norms (``norm_*`` included), biases and the relative position bias tables are perturbed
after timm's initialisation, so that a swapped or missing tensor shows.

Outputs (``--out DIR``, default the itm-train fixtures): ``hat_swin/``:

* ``hat_swin.safetensors``: the module's ``state_dict()`` (buffers ``relative_position_index``
  int64 and ``attn_mask`` included) with every key under ``vit_model.``, the prefix of HAT's
  Lightning checkpoints, plus one tensor of HAT's model outside the tower
  (``cross_modal_image_transform_1.weight``), which a loader of the tower must leave alone;
* ``reference.json``: the config, one 64×64 image, the four stage outputs
  (``[1, H_s·W_s, C_s]``, flattened), computed in double precision from the saved float32
  weights;
* ``SOURCE.txt``.

Compatibility shims (the upstream files are not modified):

* ``timm==0.4.12`` (HAT's ``requirements.txt``) must be installed:
  ``pip install --no-deps timm==0.4.12`` (its dependencies torch/torchvision are not needed here);
* a stub ``timm.data`` module holding only the ImageNet mean/std constants: timm 0.4.12's real
  ``timm.data`` imports PIL and torchvision (augmentations), which this path never uses;
* ``swin_transformer.py`` is loaded as a module of a stub package, so that
  ``meter/modules/__init__.py`` (which imports pytorch_lightning and the whole METER model) is
  not executed; its relative import ``.swin_helpers`` is HAT's own file.

Usage:
  python scripts/authors/hat_swin.py --upstream /work/upstream/HAT --commit <hash>
"""

import argparse
import importlib.util
import json
import os
import platform
import sys
import types

sys.dont_write_bytecode = True  # do not write __pycache__ into the upstream checkout

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "..", "crates", "itm-train", "tests", "fixtures", "authors")
PREFIX = "vit_model."
CONFIG = dict(
    img_size=64, patch_size=4, embed_dim=8, depths=(2, 2, 2, 1), num_heads=(1, 2, 2, 4), mlp_ratio=2.0
)
SEED = 5


def tolist(t):
    return [float(f"{v:.9g}") for v in t.detach().cpu().double().numpy().reshape(-1)]


def hat_swin_module(upstream):
    """HAT's ``meter/modules/swin_transformer.py`` with the shims of the docstring."""
    data = types.ModuleType("timm.data")
    data.IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
    data.IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)
    data.IMAGENET_INCEPTION_MEAN = (0.5, 0.5, 0.5)
    data.IMAGENET_INCEPTION_STD = (0.5, 0.5, 0.5)
    data.IMAGENET_DPN_MEAN = (124 / 255, 117 / 255, 104 / 255)
    data.IMAGENET_DPN_STD = tuple([1 / (0.0167 * 255)] * 3)
    sys.modules["timm.data"] = data
    import timm  # noqa: F401  (after the stub)

    if timm.__version__ != "0.4.12":
        sys.exit("timm %s found; HAT pins 0.4.12 (pip install --no-deps timm==0.4.12)" % timm.__version__)
    root = os.path.join(upstream, "meter", "modules")
    package = types.ModuleType("hat_modules")
    package.__path__ = [root]
    sys.modules["hat_modules"] = package
    spec = importlib.util.spec_from_file_location(
        "hat_modules.swin_transformer", os.path.join(root, "swin_transformer.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True, help="a checkout of LuminosityX/HAT")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--commit", default="unknown", help="the checkout's commit, for SOURCE.txt")
    args = parser.parse_args()

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    swin = hat_swin_module(args.upstream)
    net = swin.SwinTransformer(drop_path_rate=0.0, **CONFIG).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "norm" in name:
                p.add_(0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif "relative_position_bias_table" in name:
                p.copy_(0.5 * torch.randn_like(p))
    window = int(CONFIG["img_size"] / 32)
    assert net.layers[0].blocks[1].shift_size == window // 2
    assert net.layers[3].blocks[0].window_size == 2 and net.layers[3].blocks[0].shift_size == 0

    state = {PREFIX + k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    outside = torch.randn(24, 2 * CONFIG["embed_dim"])
    state["cross_modal_image_transform_1.weight"] = outside

    gen = torch.Generator().manual_seed(SEED + 1)
    pixels = torch.randn(1, 3, CONFIG["img_size"], CONFIG["img_size"], generator=gen)
    with torch.no_grad():
        stages = net.double()(pixels.double())

    folder = os.path.join(args.out, "hat_swin")
    os.makedirs(folder, exist_ok=True)
    save_file(state, os.path.join(folder, "hat_swin.safetensors"))
    reference = {
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in CONFIG.items()},
        "window_size": window,
        "prefix": PREFIX,
        "pixels_shape": list(pixels.shape),
        "pixels": tolist(pixels),
        "stage_shapes": [list(s.shape) for s in stages],
        "stages": [tolist(s) for s in stages],
    }
    with open(os.path.join(folder, "reference.json"), "w") as f:
        json.dump(reference, f)
    import timm

    with open(os.path.join(folder, "SOURCE.txt"), "w") as f:
        f.write(
            "Generated by scripts/authors/hat_swin.py running the authors' code (not copied here).\n"
            "upstream: https://github.com/LuminosityX/HAT commit %s, meter/modules/swin_transformer.py "
            "(run-time shims listed in the script)\n"
            "torch %s, timm %s, python %s\n"
            "module: SwinTransformer(%s, drop_path_rate=0.0), seed %d, window int(img_size/32) = %d\n"
            % (
                args.commit,
                torch.__version__,
                timm.__version__,
                platform.python_version(),
                ", ".join("%s=%s" % kv for kv in CONFIG.items()),
                SEED,
                window,
            )
        )
    for name in sorted(os.listdir(folder)):
        print("wrote", os.path.join(folder, name), os.path.getsize(os.path.join(folder, name)), "bytes")


if __name__ == "__main__":
    main()
