#!/usr/bin/env python3
"""Reference values for itm's CLIP dual encoder, computed with Hugging Face transformers.

Writes crates/itm-train/tests/fixtures/tiny_clip/, a folder laid out like a Hugging Face CLIP checkpoint:

- config.json and model.safetensors of a tiny randomly initialised `transformers.CLIPModel`
  (fixed seed; text width 32, vision width 48, projection 24, 2 layers, 2 heads, 32×32 images in
  8×8 patches, quick_gelu), saved with `save_pretrained(safe_serialization=True)`;
- tokenizer.json (+ tokenizer_config.json) of a tiny CLIP tokenizer. The real CLIP vocabulary
  (49 408 tokens) is not available offline and would not fit the size budget, so the vocabulary
  is built here with the same layout: the 256 byte-level symbols, the same symbols with the
  end-of-word suffix `</w>`, BPE merges learned here (deterministically) on a small corpus of
  shape captions after CLIP's normaliser and pre-tokeniser (from the `tokenizers` library), then `<|startoftext|>` and
  `<|endoftext|>` as the two largest ids. `transformers.CLIPTokenizer` builds the pipeline
  (NFC, whitespace squeeze, lowercase, CLIP's split regex, byte level, BPE with `</w>`,
  start/end tokens) from that vocabulary and these merges;
- reference.json: the token ids of four captions (three padded to a batch, one truncated to
  the position limit), two images (pixels in [0, 1], normalised with transformers' OpenAI CLIP
  mean/std before the model), the l2-normalised image and text embeddings, the logit scale and
  `logits_per_image`, and the pooled positions of the text encoder.

The references are computed in double precision from the float32 weights that are saved. Run it
from the repository root:

    python3 -m venv .venv && .venv/bin/pip install torch numpy transformers safetensors tokenizers
    .venv/bin/python scripts/generate_clip_fixture.py

(generated with transformers 5.24.0, tokenizers 0.23.3, torch 2.15.0). Everything written stays
well under 1 MB; regenerate only when the reference changes.
"""

import json
import shutil
import tempfile
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import BPE
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

FOLDER = (
    Path(__file__).resolve().parent.parent / "crates" / "itm-train" / "tests" / "fixtures" / "tiny_clip"
)

START, END = "<|startoftext|>", "<|endoftext|>"
MERGES = 160
MAX_POSITIONS = 16

CORPUS = [
    "a red circle next to a blue square",
    "two small green triangles above the large yellow star",
    "the black circle is on the left of the white square",
    "three big blue stars and one tiny red triangle",
    "a yellow square in the top right corner of the picture",
    "shapes of many colours: circles, squares, triangles and stars",
    "the smallest shape is below the largest one",
    "a green star near a black triangle, with a white circle",
    "one red square left of two blue circles",
    "there are four shapes in the bottom left corner",
]

# Three captions of different lengths (padded to a batch), then one longer than the positions.
CAPTIONS = [
    "A red circle.",
    "Two  SMALL blue squares, left of the big triangle's corner!",
    "café 42 stars",
    "a red circle next to a blue square and two small green triangles above the large yellow star",
]
BATCH = 3


def tolist(t):
    # 9 significant digits: float32-exact, and the files stay small.
    return [float(f"{v:.9g}") for v in t.detach().cpu().double().numpy().reshape(-1)]


def clip_pipeline(tokenizer):
    """CLIP's normaliser and pre-tokeniser (the same as `CLIPTokenizer` sets up)."""
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(
                Regex(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
                behavior="removed",
                invert=True,
            ),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )


def learned_merges():
    """BPE merges learned on the corpus after CLIP's normalisation and pre-tokenisation, words
    ending in `</w>`: the most frequent adjacent pair first, ties broken by the pair's text (so
    that the vocabulary is the same on every run)."""
    pipeline = Tokenizer(BPE())
    clip_pipeline(pipeline)
    words = {}
    for line in CORPUS:
        normalised = pipeline.normalizer.normalize_str(line)
        for word, _ in pipeline.pre_tokenizer.pre_tokenize_str(normalised):
            symbols = tuple(word[:-1]) + (word[-1] + "</w>",)
            words[symbols] = words.get(symbols, 0) + 1
    merges = []
    while len(merges) < MERGES:
        pairs = {}
        for symbols, count in words.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] = pairs.get(pair, 0) + count
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        merged = {}
        for symbols, count in words.items():
            out, i = [], 0
            while i < len(symbols):
                if symbols[i : i + 2] == best:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + count
        words = merged
    return merges


def vocabulary(merges):
    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = symbols + [s + "</w>" for s in symbols]
    for a, b in merges:
        if a + b not in tokens:
            tokens.append(a + b)
    tokens += [START, END]
    return {token: i for i, token in enumerate(tokens)}


def tokenizer():
    merges = learned_merges()
    vocab = vocabulary(merges)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_POSITIONS)


def model(vocab_size, start_id, end_id):
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=MAX_POSITIONS,
            hidden_act="quick_gelu",
            bos_token_id=start_id,
            eos_token_id=end_id,
            pad_token_id=end_id,
        ),
        vision_config=dict(
            hidden_size=48,
            intermediate_size=60,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
            hidden_act="quick_gelu",
        ),
        projection_dim=24,
        logit_scale_init_value=3.1,
    )
    clip = CLIPModel(config).eval()
    with torch.no_grad():
        # Layer norms start at (1, 0), biases at 0 and embeddings near 0: perturb them so that
        # a swapped, transposed or missing tensor shows in the outputs.
        for name, p in clip.named_parameters():
            if "layer_norm" in name or "layrnorm" in name or "layernorm" in name:
                p.add_(0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif "embedding" in name:
                p.copy_(0.5 * torch.randn_like(p))
        # A trained temperature, unlike the config's initial value.
        clip.logit_scale.fill_(3.3)
    return clip


def main():
    tok = tokenizer()
    start_id, end_id = tok.convert_tokens_to_ids([START, END])
    clip = model(len(tok), start_id, end_id)

    with tempfile.TemporaryDirectory() as tmp:
        clip.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        if FOLDER.exists():
            shutil.rmtree(FOLDER)
        FOLDER.mkdir(parents=True)
        for name in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]:
            shutil.copy(Path(tmp) / name, FOLDER / name)
    # The saved tokenizer, read back, is what the references use.
    tok = CLIPTokenizer.from_pretrained(FOLDER)

    batch = tok(CAPTIONS[:BATCH], padding=True, return_tensors="pt")
    long = tok(CAPTIONS[BATCH:], truncation=True, max_length=MAX_POSITIONS)

    gen = torch.Generator().manual_seed(1)
    pixels = torch.rand(2, 3, 32, 32, generator=gen)
    mean = torch.tensor(OPENAI_CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_CLIP_STD).view(1, 3, 1, 1)

    reference = clip.double()
    with torch.no_grad():
        out = reference(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=((pixels - mean) / std).double(),
        )
        long_ids = torch.tensor(long["input_ids"])
        long_embeds = reference.get_text_features(input_ids=long_ids).pooler_output
        long_embeds = long_embeds / long_embeds.norm(dim=-1, keepdim=True)
        text_hidden = reference.text_model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state

    lengths = batch["attention_mask"].sum(1).tolist()
    fixture = {
        "captions": CAPTIONS[:BATCH],
        "ids": batch["input_ids"].tolist(),
        "lengths": lengths,
        "pad_id": tok.pad_token_id,
        "eos_id": end_id,
        "long_caption": CAPTIONS[BATCH],
        "long_ids": long["input_ids"][0],
        "long_embedding": tolist(long_embeds),
        "pixels": tolist(pixels),
        "pixel_mean": list(OPENAI_CLIP_MEAN),
        "pixel_std": list(OPENAI_CLIP_STD),
        "image_embeds": tolist(out.image_embeds),
        "text_embeds": tolist(out.text_embeds),
        "text_last_hidden": tolist(text_hidden),
        "logit_scale": float(clip.logit_scale.detach().exp()),
        "logits_per_image": tolist(out.logits_per_image),
    }
    (FOLDER / "reference.json").write_text(json.dumps(fixture))
    total = 0
    for written in sorted(FOLDER.iterdir()):
        total += written.stat().st_size
        print(f"wrote {written} ({written.stat().st_size} bytes)")
    print(f"{total} bytes in all")


if __name__ == "__main__":
    main()
