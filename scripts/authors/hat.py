#!/usr/bin/env python3
"""A HAT checkpoint and HAT's own scores of a small test split, made by HAT's own modules.

The upstream repository (LuminosityX/HAT, built on METER) is *not* part of this repository and
nothing of it is copied here: this script imports, from a checkout given with ``--upstream``,
``meter/modules/swin_transformer.py`` (its ``SwinTransformer``, HAT's ``vit_model``),
``meter/modules/bert.py`` (its ``BertModel``, HAT's ``text_transformer``) and
``meter/modules/objectives.py`` (its ``xattn_score_i2t``), and runs them. What
``METERTransformerSS.infer`` and ``compute_SCAN`` do around them is written here from a reading
of ``meter_module.py`` and ``objectives.py`` (our code, not theirs):

* image levels: the Swin's ``forward_features`` outputs 1, 2 and 3 (of 4), through
  ``cross_modal_image_transform_1``, ``_2`` and ``cross_modal_image_transform``;
* text levels: ``all_encoder_layers[3]``, ``[9]`` and ``[-1]`` of the BERT, through
  ``cross_modal_text_transform_1``, ``_2`` and ``cross_modal_text_transform``;
* the score: ``xattn_score_i2t`` (``lambda_softmax = 9``) of every level, summed, with the
  captions' lengths counted from the attention mask ([CLS] and [SEP] included).

Tiny sizes, random weights (no download): the Swin of ``hat_swin.py`` (64 px, 4×4 patches,
width 8, depths 2, 2, 2, 1; levels 16, 32, 64 wide with 64, 16, 4 patches), a 12-layer BERT of
width 32 (4 heads, feed-forward 37, the vocabulary of the tiny transformers BERT fixture, whose
``tokenizer.json`` it shares), joint width 24. HAT's ``cross_modal_image_transform_1`` /
``_2`` are ``Linear(256 / 512 → hidden)`` for Swin-B; here they take the tiny Swin's widths.
Layer norms and biases are perturbed after the modules' own initialisation, so that a swapped
or missing tensor shows.

Outputs (``--out DIR``, default ``crates/itm-train/tests/fixtures/authors/hat``):

* ``hat.ckpt``: a Lightning-shaped checkpoint, ``torch.save({"state_dict": {...},
  "hyper_parameters": {"config": {...}}, "epoch": 0})``, the state dict holding ``vit_model.*``,
  ``text_transformer.*`` and the six ``cross_modal_*_transform*`` layers under HAT's names
  (float32);
* ``bert/``: ``config.json`` (HAT's BERT sizes, in Hugging Face's keys) and ``tokenizer.json``
  (the tiny BERT fixture's), what ``itm import --bert`` reads;
* ``data/dataset.json`` and ``data/images/*.png``: a Karpathy-layout test split of 3 images
  (64 × 64, read without resizing) and 15 captions;
* ``sims.npy``: HAT's ``[3, 15]`` score matrix, computed in float64 from the saved float32
  weights and from the PNGs' pixels normalised with ImageNet's mean and standard deviation;
* ``SOURCE.txt``.

Compatibility shims (the upstream files are not modified), beside those of ``hat_swin.py``
(timm 0.4.12, a ``timm.data`` stub) and ``hat_score.py`` (``meter`` packages without their
``__init__``, an ``einops`` stub):

* a stub ``meter.modules.file_utils`` (``cached_path``, ``WEIGHTS_NAME``, ``CONFIG_NAME``):
  the real one imports boto3, requests and tqdm for downloads that ``BertModel(config)`` never
  makes;
* ``BertConfig`` is HAT's own class from ``bert.py``.

Usage:
  /work/venv-authors/bin/python scripts/authors/hat.py --upstream /work/upstream/HAT --commit <hash>
"""

import argparse
import importlib
import json
import os
import platform
import shutil
import sys
import types

sys.dont_write_bytecode = True  # do not write __pycache__ into the upstream checkout
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import hat_score  # noqa: E402  (its import_objectives)
import hat_swin  # noqa: E402  (its hat_swin_module and CONFIG)

torch.set_default_dtype(torch.float32)  # hat_score sets float64 on import

ROOT = os.path.join(HERE, "..", "..")
DEFAULT_OUT = os.path.join(ROOT, "crates", "itm-train", "tests", "fixtures", "authors", "hat")
TINY_BERT = os.path.join(ROOT, "crates", "itm-train", "tests", "fixtures", "tiny_bert")
SEED = 11
D_EMBED = 24
MAX_TEXT_LEN = 32  # HAT's config["max_text_len"]
LAMBDA_SOFTMAX = 9.0  # HAT's meter/config.py
BERT = dict(hidden_size=32, num_hidden_layers=12, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=40, type_vocab_size=2)
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])
CAPTIONS = [
    ["a red circle", "red circle on the left", "one circle", "a small red shape", "circle"],
    ["two blue squares", "blue squares side by side", "squares", "a pair of squares", "blue"],
    ["a green triangle at the top", "green triangle", "a triangle", "green shape on top", "top"],
]


def hat_bert_module(upstream):
    """HAT's meter/modules/bert.py with the file_utils stub."""
    stub = types.ModuleType("meter.modules.file_utils")
    stub.cached_path = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no downloads"))
    stub.WEIGHTS_NAME = "pytorch_model.bin"
    stub.CONFIG_NAME = "bert_config.json"
    sys.modules["meter.modules.file_utils"] = stub
    return importlib.import_module("meter.modules.bert")


def perturb(module, gen):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name.lower():
                p.add_(0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif "relative_position_bias_table" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))


def linear(d_in, gen):
    layer = torch.nn.Linear(d_in, D_EMBED)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(D_EMBED, d_in, generator=gen) / d_in ** 0.5)
        layer.bias.copy_(0.3 * torch.randn(D_EMBED, generator=gen))
    return layer


def write_png(path, array):
    """An 8-bit RGB PNG of ``array`` ``[h, w, 3]`` uint8 (no filter, zlib): lossless, so the
    pixels itm decodes are these."""
    import struct
    import zlib

    h, w, _ = array.shape
    raw = b"".join(b"\x00" + array[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def images(gen, size):
    """Three 64 × 64 RGB images: smooth random fields with a bright disc, as uint8."""
    out = []
    ys, xs = np.mgrid[0:size, 0:size]
    for i in range(3):
        base = torch.rand(3, 4, 4, generator=gen).numpy()
        field = np.stack([np.kron(base[c], np.ones((size // 4, size // 4))) for c in range(3)], -1)
        disc = ((ys - 16 - 12 * i) ** 2 + (xs - 20 - 8 * i) ** 2) < 100
        field[disc] = [1.0, 0.2 * i, 0.5]
        out.append((field * 255).round().astype(np.uint8))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True, help="a checkout of LuminosityX/HAT")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--commit", default="unknown", help="the checkout's commit, for SOURCE.txt")
    args = parser.parse_args()
    from tokenizers import Tokenizer

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(SEED)
    swin = hat_swin.hat_swin_module(args.upstream)
    objectives = hat_score.import_objectives(args.upstream)
    torch.set_default_dtype(torch.float32)
    bert_module = hat_bert_module(args.upstream)

    vit = swin.SwinTransformer(drop_path_rate=0.0, **hat_swin.CONFIG).eval()
    tiny = json.load(open(os.path.join(TINY_BERT, "config.json")))
    bert_config = bert_module.BertConfig(tiny["vocab_size"], hidden_act="gelu",
                                         hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                         **BERT)
    bert = bert_module.BertModel(bert_config).eval()
    perturb(vit, gen)
    perturb(bert, gen)
    widths = [hat_swin.CONFIG["embed_dim"] * 2 ** s for s in (1, 2, 3)]
    transforms = {
        "cross_modal_image_transform_1": linear(widths[0], gen),
        "cross_modal_image_transform_2": linear(widths[1], gen),
        "cross_modal_image_transform": linear(widths[2], gen),
        "cross_modal_text_transform_1": linear(BERT["hidden_size"], gen),
        "cross_modal_text_transform_2": linear(BERT["hidden_size"], gen),
        "cross_modal_text_transform": linear(BERT["hidden_size"], gen),
    }
    state = {}
    for prefix, module in [("vit_model.", vit), ("text_transformer.", bert)] + [
        (name + ".", layer) for name, layer in transforms.items()
    ]:
        for key, value in module.state_dict().items():
            state[prefix + key] = value.detach().float().clone().contiguous()

    # The test split: PNGs and captions; HAT's inputs read back from them.
    os.makedirs(os.path.join(args.out, "data", "images"), exist_ok=True)
    size = hat_swin.CONFIG["img_size"]
    dataset = {"images": []}
    pixels = []
    for i, array in enumerate(images(gen, size)):
        name = "image%d.png" % i
        write_png(os.path.join(args.out, "data", "images", name), array)
        pixels.append(((array / 255.0 - MEAN) / STD).transpose(2, 0, 1))
        dataset["images"].append({"filename": name, "split": "test", "imgid": i,
                                  "sentences": [{"raw": c} for c in CAPTIONS[i]]})
    with open(os.path.join(args.out, "data", "dataset.json"), "w") as f:
        json.dump(dataset, f)
    tokenizer = Tokenizer.from_file(os.path.join(TINY_BERT, "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TEXT_LEN)
    encoded = [tokenizer.encode(c).ids for caps in CAPTIONS for c in caps]
    lengths = [len(ids) for ids in encoded]
    longest = max(lengths)
    ids = torch.tensor([e + [0] * (longest - len(e)) for e in encoded])
    mask = (torch.arange(longest)[None, :] < torch.tensor(lengths)[:, None]).long()

    # HAT's forward, in float64 from the saved float32 weights.
    with torch.no_grad():
        vit = vit.double()
        bert = bert.double()
        for layer in transforms.values():
            layer.double()
        stages = vit(torch.tensor(np.stack(pixels)).double())
        image_levels = [transforms["cross_modal_image_transform_1"](stages[1]),
                        transforms["cross_modal_image_transform_2"](stages[2]),
                        transforms["cross_modal_image_transform"](stages[-1])]
        layers, _ = bert(ids, token_type_ids=torch.zeros_like(ids), attention_mask=mask)
        text_levels = [transforms["cross_modal_text_transform_1"](layers[3]),
                       transforms["cross_modal_text_transform_2"](layers[9]),
                       transforms["cross_modal_text_transform"](layers[-1])]
        sims = sum(objectives.xattn_score_i2t(im, cap, lengths, LAMBDA_SOFTMAX)
                   for im, cap in zip(image_levels, text_levels))

    config = {"image_size": size, "max_text_len": MAX_TEXT_LEN, "hidden_size": D_EMBED,
              "input_text_embed_size": BERT["hidden_size"], "input_image_embed_size": widths[2],
              "vit": "swin_base_patch4_window7_224_in22k", "tokenizer": "bert-base-uncased",
              "lambda_softmax": LAMBDA_SOFTMAX, "direction": "i2t"}
    torch.save({"state_dict": state, "hyper_parameters": {"config": config}, "epoch": 0,
                "global_step": 0}, os.path.join(args.out, "hat.ckpt"))
    np.save(os.path.join(args.out, "sims.npy"), sims.float().numpy())
    os.makedirs(os.path.join(args.out, "bert"), exist_ok=True)
    hf = dict(tiny, **BERT, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    with open(os.path.join(args.out, "bert", "config.json"), "w") as f:
        json.dump(hf, f, indent=1)
    shutil.copy(os.path.join(TINY_BERT, "tokenizer.json"), os.path.join(args.out, "bert"))
    import timm

    with open(os.path.join(args.out, "SOURCE.txt"), "w") as f:
        f.write(
            "Generated by scripts/authors/hat.py running the authors' code (not copied here).\n"
            "upstream: https://github.com/LuminosityX/HAT commit %s: meter/modules/"
            "swin_transformer.py, bert.py, objectives.py (run-time shims listed in the script)\n"
            "torch %s, timm %s, python %s; seed %d; Swin %s; BERT %s; D %d\n"
            "caption lengths %s\n"
            % (args.commit, torch.__version__, timm.__version__, platform.python_version(), SEED,
               hat_swin.CONFIG, BERT, D_EMBED, lengths)
        )
    for root, _, files in os.walk(args.out):
        for name in sorted(files):
            path = os.path.join(root, name)
            print("wrote", path, os.path.getsize(path), "bytes")
    print("sims[0]:", sims[0].tolist())


if __name__ == "__main__":
    main()
