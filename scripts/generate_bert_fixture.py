#!/usr/bin/env python3
"""Reference values for itm's BERT encoder, computed with Hugging Face transformers.

Builds a tiny randomly initialised `transformers.BertModel` (fixed seed) and writes

- crates/itm-train/tests/fixtures/tiny_bert/: config.json, model.safetensors (keys as `BertModel.save_pretrained`
  writes them, plus the `embeddings.position_ids` buffer that older checkpoints carry) and a
  WordPiece tokenizer.json whose vocabulary is the model's;
- crates/itm-train/tests/fixtures/tiny_bert_legacy/: the same weights in the other common layout: keys prefixed
  with `bert.` (as in `BertForPreTraining` checkpoints), layer norms named `gamma`/`beta`, a
  `cls.` pre-training head, and no pooler;
- crates/itm-train/tests/fixtures/bert.json: padded input ids with their lengths, the token features, the pooler
  output, the mean-pooled l2-normalised sentence embeddings, the hidden states after the
  embeddings and after the first layer (`hidden_states[0]` and `[1]` of
  `output_hidden_states=True`, for `BertModel::forward_layers`), and captions tokenized by the
  tokenizer with their sentence embeddings.

The references are computed in double precision from the float32 weights that are saved. Run it
from the repository root:

    python3 -m venv .venv && .venv/bin/pip install torch numpy transformers safetensors tokenizers
    .venv/bin/python scripts/generate_bert_fixture.py

Everything written stays well under 200 KB; regenerate only when the reference changes.
"""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece
from transformers import BertConfig, BertModel

ROOT = Path(__file__).resolve().parent.parent / "crates" / "itm-train" / "tests" / "fixtures"

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "a an the one two three small large big tiny red green blue yellow black white circle "
    "square triangle star shape shapes is are on of left right above below next to and with "
    "in near top bottom corner cafe naive"
).split()
PIECES = ["##s", "##er", "##est", "##ly", "##ed", ",", ".", "!", "?", "-"]
VOCAB = SPECIAL + WORDS + PIECES

CAPTIONS = [
    "A red circle",
    "Two small blue squares, left of a large green triangle.",
    "STAR",
    "A café naïve shape in the top-left corner!",
    "the smallest yellow star is above one black circle and below two white squares",
    "purple hexagon",
]


def tolist(t):
    # 9 significant digits: float32-exact, and the files stay small.
    return [float(f"{v:.9g}") for v in t.detach().cpu().double().numpy().reshape(-1)]


def tokenizer():
    tok = Tokenizer(WordPiece({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=None)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(SPECIAL)
    return tok


def model():
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=40,
        type_vocab_size=2,
        initializer_range=0.2,
        hidden_act="gelu",
        layer_norm_eps=1e-12,
    )
    bert = BertModel(config).eval()
    with torch.no_grad():
        # Layer norms start at (1, 0) and biases at 0: perturb them so that a swapped or
        # missing tensor shows in the outputs.
        for name, p in bert.named_parameters():
            if "LayerNorm.weight" in name:
                p.add_(0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
    return config, bert


def mean_pool_l2(features, mask):
    mask = mask.unsqueeze(-1).to(features.dtype)
    mean = (features * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(mean, p=2, dim=1)


def encode(bert, ids, lengths):
    mask = torch.arange(ids.shape[1]).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    with torch.no_grad():
        out = bert(input_ids=ids, attention_mask=mask.long(), output_hidden_states=True)
    return out.last_hidden_state, out.pooler_output, mean_pool_l2(out.last_hidden_state, mask), out.hidden_states


def write_folder(folder, config, tensors):
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    (folder / "config.json").write_text(config.to_json_string())


def main():
    config, bert = model()
    state = {k: v.float() for k, v in bert.state_dict().items() if k != "embeddings.position_ids"}

    plain = dict(state)
    plain["embeddings.position_ids"] = torch.arange(config.max_position_embeddings).unsqueeze(0)
    write_folder(ROOT / "tiny_bert", config, plain)
    tok = tokenizer()
    tok.save(str(ROOT / "tiny_bert" / "tokenizer.json"))

    legacy = {}
    for key, value in state.items():
        if key.startswith("pooler."):
            continue
        key = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        legacy["bert." + key] = value
    legacy["cls.predictions.bias"] = torch.zeros(config.vocab_size)
    write_folder(ROOT / "tiny_bert_legacy", config, legacy)

    reference = bert.double()
    lengths = [9, 5, 1]
    width = max(lengths)
    gen = torch.Generator().manual_seed(1)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, length in enumerate(lengths):
        body = torch.randint(len(SPECIAL), len(VOCAB), (length,), generator=gen)
        body[0] = 2  # [CLS]
        if length > 1:
            body[-1] = 3  # [SEP]
        ids[row, :length] = body
    features, pooled, sentences, hidden_states = encode(reference, ids, lengths)
    assert torch.equal(hidden_states[-1], features)

    encodings = tok.encode_batch(CAPTIONS)
    cap_lengths = [len(e.ids) for e in encodings]
    cap_width = max(cap_lengths)
    cap_ids = torch.zeros(len(CAPTIONS), cap_width, dtype=torch.long)
    for row, e in enumerate(encodings):
        cap_ids[row, :len(e.ids)] = torch.tensor(e.ids)
    _, _, cap_embeddings, _ = encode(reference, cap_ids, cap_lengths)

    fixture = {
        "hidden": config.hidden_size,
        "ids": ids.reshape(-1).tolist(),
        "lengths": lengths,
        "width": width,
        "features": tolist(features),
        "pooled": tolist(pooled),
        "hidden_states": {str(n): tolist(hidden_states[n]) for n in range(config.num_hidden_layers)},
        "sentence_embeddings": tolist(sentences),
        "captions": CAPTIONS,
        "caption_ids": [e.ids for e in encodings],
        "caption_embeddings": tolist(cap_embeddings),
    }
    path = ROOT / "bert.json"
    path.write_text(json.dumps(fixture))
    total = 0
    for written in [path, *sorted((ROOT / "tiny_bert").iterdir()), *sorted((ROOT / "tiny_bert_legacy").iterdir())]:
        total += written.stat().st_size
        print(f"wrote {written} ({written.stat().st_size} bytes)")
    print(f"{total} bytes in all")


if __name__ == "__main__":
    main()
