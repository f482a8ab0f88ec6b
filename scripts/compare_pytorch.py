#!/usr/bin/env python3
"""Side-by-side timings of itm (criterion benchmarks) against NumPy and PyTorch on this machine.

The same operations at the same shapes, one after another on the same machine:

- cosine similarity matrix, D = 1024: Flickr30K test (1,000 x 5,000) and COCO 5K
  (5,000 x 25,000); itm `BlockedCosine` against NumPy (OpenBLAS) `images @ captions.T`, GFLOP/s;
- recall from a score matrix at both sizes: itm's counting ranks against the argsort
  formulation of the published evaluation code (per query, and vectorised over the matrix);
  the metrics of `itm evaluate --sims` must equal NumPy's exactly;
- one VSE-infinity training step (regions 36 x 2048 -> 1024, BiGRU over 12 words, GPO on both
  sides, hinge loss with hardest negatives, batch 128, AdamW with gradient clipping) against
  the same model in PyTorch (CPU); and the same step with a BERT-mini text tower (4 layers,
  256 wide, random weights, 14 tokens) against transformers' BertModel of that size;
- `itm encode-text` against transformers (all-MiniLM-L6-v2, 2,000 captions, batch 32, the
  whole job: scripts/compare_encode_text.py's measurement; needs the model folder: --minilm or
  $ITM_MINILM_DIR, else the row is skipped);
- exact top-10 search of 100,000 index rows (D = 1024, a .npy file in the page cache) for one
  query and for 1,000 queries: `EmbeddingMatrix::top_k` (what `itm search` runs) against NumPy
  brute force (memory-mapped matrix, `queries @ matrix.T`, argpartition + sort of the top 10);
- SCAN (both directions), CHAN, ESL (adaptive, nine levels, the authors' level encoders per
  modality) and X-Dim over the Flickr30K test shapes (1,000 images x 36 regions, 5,000
  captions x 12 words, D = 1024) against batched PyTorch written from METHODS and the authors'
  code (ESL's and X-Dim's learned tables random at their initial scales: the cost does not
  depend on their values), as time for the whole matrix (extrapolated from blocks: both sides
  score blocks one after another) and peak resident memory above the inputs.

Each PyTorch/NumPy measurement runs in a fresh interpreter, so that its peak memory is its own.
The itm numbers are criterion's (target/criterion/<group>/<bench>/new/estimates.json, mean)
and target/criterion/fine_grained_memory.json; `--run-benches` runs the benchmarks first
(`cargo bench --profile dev`, see README).

The measurements need torch and numpy. Without `--python` (or $ITM_COMPARE_PYTHON) the script
makes a virtual environment from PyPI first:

    python3 -m venv .venv-compare
    .venv-compare/bin/pip install numpy 'transformers<5'
    .venv-compare/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
    # or, where only PyPI is reachable: .venv-compare/bin/pip install torch

Usage:

    cargo build -p itm-cli                      # for the recall identity check
    python3 scripts/compare_pytorch.py --run-benches
    python3 scripts/compare_pytorch.py --python /path/to/venv/bin/python   # reuse a venv
    python3 scripts/compare_pytorch.py --run-benches --threads 1   # both sides on one thread
    python3 scripts/compare_pytorch.py --run-benches --threads 1,2 # one table per thread count
    python3 scripts/compare_pytorch.py --run-benches --only cosine,recall   # NumPy rows, no torch

`--threads N` pins both sides (RAYON_NUM_THREADS for the benchmarks and the itm binary,
OPENBLAS_NUM_THREADS/OMP_NUM_THREADS/MKL_NUM_THREADS and torch.set_num_threads for the
references); `--threads 1,2` runs everything once per count and prints one table each.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIM = 1024
SETS = {"flickr30k_1k": (1_000, 5_000, "f30k"), "coco_5k": (5_000, 25_000, "coco5k")}
# Flickr30K test shapes of the fine-grained comparison.
FG_IMAGES, FG_REGIONS, FG_CAPTIONS, FG_WORDS = 1_000, 36, 5_000, 12
# The VSE-infinity step.
BATCH, REGIONS, D_FEATURE, WORDS, VOCAB, D_WORD = 128, 36, 2048, 12, 10_000, 300
GIB = 1 << 30
# Images and captions of the timed fraction of benches/fine_grained.rs.
FRACTION = (10, 2_000)
# The index search: rows, results per query, query batches (benches/retrieval.rs `search`).
SEARCH_ROWS, SEARCH_K, SEARCH_QUERIES = 100_000, 10, (1, 1_000)
# The bert-base vocabulary of the BERT-mini step.
BERT_VOCAB = 30_522
# The fine-grained heads compared (the heads table's names, as the benchmarks call them).
FG_METHODS = ("scan_t2i", "scan_i2t", "chan", "esl", "xdim")


# ----------------------------------------------------------------------------------------------
# Measurements (run in a child interpreter that has torch and numpy)
# ----------------------------------------------------------------------------------------------

def memory():
    """(peak, current) resident bytes of this process (Linux)."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                fields[name] = int(value.split()[0]) * 1024
    return fields["VmHWM"], fields["VmRSS"]


def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def median_time(fn, repeats):
    """The reference's time per call by the benchmarks' protocol: calls back to back for at
    least `repeats` calls and at least SUSTAIN seconds (criterion measures 10-20 s of back-to-back
    calls and reports their mean), the mean of all of them. On a machine whose sustained speed
    drops within seconds (measured on 2026-12-07: docs/performance.md) a median of a few short
    calls would compare a cold reference with a hot benchmark. `--sustain 0` gives the median of
    `repeats` calls (the earlier protocol)."""
    times = []
    start_all = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start_all < SUSTAIN[0]:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    if SUSTAIN[0] <= 0:
        times.sort()
        return times[len(times) // 2]
    return sum(times) / len(times)


# Seconds of back-to-back calls behind each reference time (--sustain).
SUSTAIN = [10.0]


def unit_rows(rng, count, dim):
    import numpy as np
    x = rng.uniform(-1.0, 1.0, size=(count, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def measure_cosine(name):
    import numpy as np
    n_img, n_cap, _ = SETS[name]
    rng = np.random.default_rng(1)
    images, captions = unit_rows(rng, n_img, DIM), unit_rows(rng, n_cap, DIM)

    def run():
        a = images / np.linalg.norm(images, axis=1, keepdims=True)
        b = captions / np.linalg.norm(captions, axis=1, keepdims=True)
        return a @ b.T

    run()
    seconds = median_time(run, 5 if n_img <= 1000 else 2)
    return {"seconds": seconds, "gflops": 2 * n_img * n_cap * DIM / seconds / 1e9}


def recall_scores(n_img, n_cap):
    """Uniform noise with the true pairs lifted, as the Rust benchmark draws it, and no true
    pair's score tied with a competitor of its row or column.

    At 5,000 x 25,000 a few dozen float32 ties with a true pair occur by chance; argsort puts
    tied entries in an arbitrary order (its two formulations below disagree there) while itm
    counts ties against the ground truth, so the ranks would differ for reasons that are
    conventions, not bugs. Each tied true score is moved up to the next float32 until none is.
    """
    import numpy as np
    rng = np.random.default_rng(3)
    scores = rng.uniform(-1.0, 1.0, size=(n_img, n_cap)).astype(np.float32)
    caption_image = np.arange(n_cap) * n_img // n_cap
    captions = np.arange(n_cap)
    scores[caption_image, captions] += np.float32(0.99)
    per_image = n_cap // n_img
    while True:
        truth = scores[caption_image, captions]
        # Ties within a caption's column (t2i) ...
        tied = (scores == truth[None, :]).sum(axis=0) > 1
        # ... and with another image's caption in an image's row (i2t).
        for image in range(n_img):
            own = slice(image * per_image, (image + 1) * per_image)
            others = np.delete(scores[image], np.arange(own.start, own.stop))
            tied[own] |= np.isin(scores[image, own], others)
        if not tied.any():
            return scores, caption_image
        rows, cols = caption_image[tied], captions[tied]
        scores[rows, cols] = np.nextafter(scores[rows, cols], np.float32(np.inf))


def metrics(i2t, t2i):
    import numpy as np

    def summarise(ranks):
        r = [100.0 * float(np.mean(ranks < k)) for k in (1, 5, 10)]
        return r, float(np.floor(np.median(ranks)) + 1), float(ranks.mean() + 1)

    (i1, i5, i10), imed, imean = summarise(i2t)
    (t1, t5, t10), tmed, tmean = summarise(t2i)
    return {"i2t_r1": i1, "i2t_r5": i5, "i2t_r10": i10, "i2t_medr": imed, "i2t_meanr": imean,
            "t2i_r1": t1, "t2i_r5": t5, "t2i_r10": t10, "t2i_medr": tmed, "t2i_meanr": tmean}


def argsort_per_query(scores, per_image=5):
    """The published evaluation code: one argsort per image (i2t) and per caption (t2i)."""
    import numpy as np
    n_img = scores.shape[0]
    i2t = np.zeros(n_img, dtype=np.int64)
    for i in range(n_img):
        order = np.argsort(scores[i])[::-1]
        i2t[i] = min(np.where(order == j)[0][0] for j in range(per_image * i, per_image * i + per_image))
    columns = scores.T
    t2i = np.zeros(columns.shape[0], dtype=np.int64)
    for j in range(columns.shape[0]):
        order = np.argsort(columns[j])[::-1]
        t2i[j] = np.where(order == j // per_image)[0][0]
    return i2t, t2i


def argsort_vectorised(scores, per_image=5):
    """The same ranks from two whole-matrix argsorts."""
    import numpy as np
    n_img, n_cap = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable")
    positions = np.empty_like(order)
    np.put_along_axis(positions, order, np.arange(n_cap)[None, :].repeat(n_img, 0), axis=1)
    own = positions[np.arange(n_img)[:, None], np.arange(n_img)[:, None] * per_image + np.arange(per_image)]
    i2t = own.min(axis=1)
    order_t = np.argsort(-scores.T, axis=1, kind="stable")
    t2i = np.argmax(order_t == (np.arange(n_cap) // per_image)[:, None], axis=1)
    return i2t, t2i


def measure_recall(name, itm_binary):
    import numpy as np
    n_img, n_cap, protocol = SETS[name]
    scores, _ = recall_scores(n_img, n_cap)
    started = time.perf_counter()
    loop = argsort_per_query(scores)
    loop_seconds = time.perf_counter() - started
    started = time.perf_counter()
    vectorised = argsort_vectorised(scores)
    vectorised_seconds = time.perf_counter() - started
    assert all((a == b).all() for a, b in zip(loop, vectorised)), "the argsort variants disagree"
    reference = metrics(*vectorised)
    result = {"argsort_per_query_seconds": loop_seconds,
              "argsort_vectorised_seconds": vectorised_seconds, "metrics": reference}
    if itm_binary and Path(itm_binary).exists():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "sims.npy"
            np.save(path, scores)
            out = subprocess.run([itm_binary, "evaluate", "--sims", str(path), "--protocol", protocol,
                                  "--json"], check=True, capture_output=True, text=True).stdout
        ours = json.loads(out)
        result["identical"] = all(ours[k] == v for k, v in reference.items())
        result["itm_metrics"] = ours
    return result


def measure_vse_step(threads, text="bigru"):
    """One VSE-infinity step in PyTorch: the model of itm's `vse_infinity_bigru(2048, 10000)`, or
    (`text="bert_mini"`) of `vse_infinity_bert(2048, BERT-mini, 1024)` (benches/training_step.rs)."""
    import numpy as np
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    torch.manual_seed(0)

    def l2norm(x):
        return x / (x.pow(2).sum(-1, keepdim=True).sqrt() + 1e-8)

    class Gpo(nn.Module):
        def __init__(self, d_pe=32, d_hidden=32):
            super().__init__()
            self.d_pe = d_pe
            self.gru = nn.GRU(d_pe, d_hidden, batch_first=True, bidirectional=True)
            self.linear = nn.Linear(d_hidden, 1, bias=False)

        def positions(self, length):
            k = torch.arange(length, dtype=torch.float64)[:, None]
            pair = torch.arange(self.d_pe, dtype=torch.float64) // 2
            angle = k / 10000.0 ** (2 * pair / self.d_pe)
            codes = torch.where(torch.arange(self.d_pe) % 2 == 0, angle.sin(), angle.cos())
            return codes.float()

        def forward(self, x, lengths):
            batch, max_len, _ = x.shape
            codes = self.positions(max_len)[None].expand(batch, -1, -1)
            packed = pack_padded_sequence(codes, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.gru(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=max_len)
            half = out.shape[2] // 2
            out = (out[:, :, :half] + out[:, :, half:]) / 2
            mask = torch.arange(max_len)[None, :] < lengths[:, None]
            scores = self.linear(out).squeeze(-1).masked_fill(~mask, -10000)
            weights = torch.softmax(scores / 0.1, dim=1)
            features = x.masked_fill(~mask[:, :, None], -10000)
            features = features.sort(dim=1, descending=True)[0].masked_fill(~mask[:, :, None], 0)
            return l2norm((features * weights[:, :, None]).sum(1))

    class RegionEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(D_FEATURE, DIM)
            self.mlp = nn.Sequential(nn.Linear(D_FEATURE, DIM // 2), nn.BatchNorm1d(DIM // 2), nn.ReLU(),
                                     nn.Linear(DIM // 2, DIM))

        def forward(self, x):
            b, k, f = x.shape
            rows = x.reshape(b * k, f)
            return (self.fc(rows) + self.mlp(rows)).reshape(b, k, DIM)

    class TextEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCAB, D_WORD)
            self.gru = nn.GRU(D_WORD, DIM, batch_first=True, bidirectional=True)

        def forward(self, tokens, lengths):
            packed = pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True,
                                          enforce_sorted=False)
            out, _ = self.gru(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=tokens.shape[1])
            return (out[:, :, :DIM] + out[:, :, DIM:]) / 2

    class BertMiniText(nn.Module):
        """transformers' BertModel at BERT-mini's size (itm's BERT has hidden dropout 0.1 and no
        dropout on the attention probabilities), then Linear(256 -> D)."""
        def __init__(self):
            super().__init__()
            from transformers import BertConfig, BertModel
            config = BertConfig(vocab_size=BERT_VOCAB, hidden_size=256, num_hidden_layers=4,
                                num_attention_heads=4, intermediate_size=1024,
                                attention_probs_dropout_prob=0.0, hidden_dropout_prob=0.1)
            self.bert = BertModel(config, add_pooling_layer=False)
            self.linear = nn.Linear(256, DIM)

        def forward(self, tokens, lengths):
            mask = (torch.arange(tokens.shape[1])[None, :] < lengths[:, None]).long()
            return self.linear(self.bert(input_ids=tokens, attention_mask=mask)[0])

    class Vse(nn.Module):
        def __init__(self):
            super().__init__()
            self.image = RegionEncoder()
            self.text = BertMiniText() if text == "bert_mini" else TextEncoder()
            self.image_pool, self.text_pool = Gpo(), Gpo()

        def forward(self, regions, counts, tokens, lengths):
            images = self.image_pool(self.image(regions), counts)
            captions = self.text_pool(self.text(tokens, lengths), lengths)
            return images @ captions.t()

    def hinge_hardest(scores, margin=0.2):
        diagonal = scores.diag()
        eye = torch.eye(scores.shape[0], dtype=torch.bool)
        cost_s = (margin + scores - diagonal[:, None]).clamp(min=0).masked_fill(eye, 0)
        cost_im = (margin + scores - diagonal[None, :]).clamp(min=0).masked_fill(eye, 0)
        return cost_s.max(1)[0].sum() + cost_im.max(0)[0].sum()

    model = Vse().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=1e-4)
    rng = np.random.default_rng(6)
    regions = torch.from_numpy(rng.uniform(-1, 1, (BATCH, REGIONS, D_FEATURE)).astype(np.float32))
    counts = torch.full((BATCH,), REGIONS, dtype=torch.long)
    vocab, words = (BERT_VOCAB, WORDS + 2) if text == "bert_mini" else (VOCAB, WORDS)
    tokens = torch.from_numpy(rng.integers(1, vocab, (BATCH, words)))
    lengths = torch.full((BATCH,), words, dtype=torch.long)

    def step():
        scores = model(regions, counts, tokens, lengths)
        loss = hinge_hardest(scores)
        loss.item()
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        optimizer.step()

    for _ in range(2):
        step()
    return {"seconds": median_time(step, 5), "threads": threads}


def measure_search(queries):
    """Exact top-10 of 100,000 unit rows (D = 1024) for `queries` queries: NumPy brute force from
    a memory-mapped .npy in the page cache (the file is read once before timing, as the
    benchmark's is)."""
    import numpy as np
    rng = np.random.default_rng(4)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "images.npy"
        np.save(path, unit_rows(rng, SEARCH_ROWS, DIM))
        batch = unit_rows(rng, queries, DIM)

        def run():
            matrix = np.load(path, mmap_mode="r")
            scores = batch @ matrix.T
            top = np.argpartition(-scores, SEARCH_K, axis=1)[:, :SEARCH_K]
            order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
            return np.take_along_axis(top, order, axis=1)

        run()
        return {"seconds": median_time(run, 5 if queries > 1 else 20)}


def measure_encode_text(itm_binary, minilm, threads):
    """scripts/compare_encode_text.py's measurement: 2,000 captions, batch 32, both whole jobs."""
    import numpy as np
    import torch
    sys.path.insert(0, str(ROOT / "scripts"))
    import compare_encode_text as encode
    texts = encode.captions(2_000)
    torch.set_num_threads(threads)
    reference, t_ref = encode.transformers_encode(minilm, texts, 32, 256)
    ours, t_itm = encode.itm_encode(itm_binary, minilm, texts, 32)
    return {"transformers_seconds": t_ref, "itm_seconds": t_itm,
            "max_abs_difference": float(np.abs(ours - reference).max())}


def fine_grained_inputs(rows, cols):
    import numpy as np
    import torch
    rng = np.random.default_rng(8)
    regions = unit_rows(rng, rows * FG_REGIONS, DIM).reshape(rows, FG_REGIONS, DIM)
    words = unit_rows(rng, cols * FG_WORDS, DIM).reshape(cols, FG_WORDS, DIM)
    return torch.from_numpy(regions), torch.from_numpy(words)


def scan_block(regions, words, direction):
    """Batched SCAN (Lee et al. 2018) of every image against every caption of a block, in its
    published form: attention maps, attended vectors, cosine, LogSumExp."""
    import torch
    n_img, k, d = regions.shape
    n_cap, l, _ = words.shape
    lambda_softmax, lambda_lse = (9.0, 6.0) if direction == "t2i" else (4.0, 5.0)
    # [n_img, K, n_cap, L] from one product.
    products = (regions.reshape(n_img * k, d) @ words.reshape(n_cap * l, d).t()).reshape(n_img, k, n_cap, l)
    products = products.permute(0, 2, 1, 3)  # [n_img, n_cap, K, L]
    if direction == "t2i":  # words attend to regions
        attention = torch.nn.functional.leaky_relu(products, 0.1)
        attention = attention / (attention.pow(2).sum(3, keepdim=True).sqrt() + 1e-8)  # over words
        weights = torch.softmax(attention.transpose(2, 3) * lambda_softmax, dim=3)  # [i, c, L, K]
        attended = torch.einsum("iclk,ikd->icld", weights, regions)
        queries = words[None]
    else:  # regions attend to words
        attention = torch.nn.functional.leaky_relu(products.transpose(2, 3), 0.1)  # [i, c, L, K]
        attention = attention / (attention.pow(2).sum(3, keepdim=True).sqrt() + 1e-8)  # over regions
        weights = torch.softmax(attention.transpose(2, 3) * lambda_softmax, dim=3)  # [i, c, K, L]
        attended = torch.einsum("ickl,cld->ickd", weights, words)
        queries = regions[:, None]
    cosine = (attended * queries).sum(-1) / (attended.norm(dim=-1) * queries.norm(dim=-1)).clamp(min=1e-8)
    return torch.logsumexp(cosine * lambda_lse, dim=2) / lambda_lse


def chan_block(regions, words):
    """Batched CHAN (Pan et al. 2023): best region per word, mean over words."""
    n_img, k, d = regions.shape
    n_cap, l, _ = words.shape
    products = (regions.reshape(n_img * k, d) @ words.reshape(n_cap * l, d).t()).reshape(n_img, k, n_cap, l)
    return products.amax(dim=1).mean(dim=2)


def esl_levels(x, aggregators):
    """ESL's levels of one side: x_0 = x, x_j = l2norm(x_{j-1} M_j^T), M_j the top 2 of each row
    of l2norm_rows(P_j); concatenated along the features."""
    import torch
    levels = [x]
    for p in aggregators:
        m = p / (p.norm(dim=1, keepdim=True) + 1e-8)
        kth = m.topk(2, dim=1).values[:, 1:2]
        m = m * (m >= kth)
        x = x @ m.t()
        x = x / (x.norm(dim=-1, keepdim=True) + 1e-8)
        levels.append(x)
    return torch.cat(levels, -1)


def esl_block(regions, words, params):
    """Batched ESL (Zhang et al. 2023, adaptive; the authors' layout: level encoders per
    modality): A = sum_j X_j G_j Y_j^T for all pairs, then both attention directions."""
    import torch
    n_img, k, d = regions.shape
    n_cap, l, _ = words.shape
    region_levels = esl_levels(regions, params["region_aggregators"])
    word_levels = esl_levels(words, params["word_aggregators"])
    forms, start = [], 0
    for e, c in zip(params["bilinear"], params["level_weights"]):
        normed = (e - e.mean()) / (e.var(unbiased=False) + 1e-8).sqrt()
        forms.append(normed * c)
    width = [f.shape[0] for f in forms]
    words_g = torch.cat([word_levels[..., sum(width[:j]):sum(width[:j + 1])] @ forms[j]
                         for j in range(len(forms))], -1)
    a = (region_levels.reshape(n_img * k, -1) @ words_g.reshape(n_cap * l, -1).t()).reshape(n_img, k, n_cap, l)
    a = a.permute(0, 2, 1, 3)  # [i, c, K, L]
    tau = 1 / 0.07

    def direction(scores):  # context axis 2, query axis 3
        s = torch.nn.functional.leaky_relu(torch.tanh(scores), 0.1)
        s = s / (s.norm(dim=3, keepdim=True) + 1e-8)
        weights = torch.softmax(s * tau, dim=2)
        return (scores * weights).sum(2).mean(2)
    return direction(a) + direction(a.transpose(2, 3))


def xdim_block(regions, words, params):
    """Batched X-Dim (Zhang et al. 2023): the sparsified dependency W', g = its column sums,
    A = tanh(words diag(g) regions^T), attention over regions, S = mean_w sum l2norm((c_w * x_w) W'^T)."""
    import torch
    n_img, k, d = regions.shape
    n_cap, l, _ = words.shape
    w = torch.sigmoid(params["dependency"])
    threshold = w.mean(1, keepdim=True) + 2.5 * w.std(1, keepdim=True)
    mask = torch.tanh(torch.exp((w - threshold) * torch.exp(torch.tensor(4.0))))
    dependency = mask * w
    dependency = dependency / (dependency.norm(dim=1, keepdim=True) + 1e-8)
    g = dependency.sum(0)
    a = torch.tanh(((words * g).reshape(n_cap * l, d) @ regions.reshape(n_img * k, d).t())
                   .reshape(n_cap, l, n_img, k).permute(2, 0, 1, 3))  # [i, c, L, K]
    s = torch.nn.functional.leaky_relu(a, 0.1)
    s = s / (s.norm(dim=2, keepdim=True) + 1e-8)  # over words
    weights = torch.softmax(s * (1 / 0.07), dim=3)
    context = torch.einsum("iclk,ikd->icld", weights, regions)
    context = context / (context.norm(dim=-1, keepdim=True) + 1e-8)
    z = (context * words[None]) @ dependency.t()
    z = z / (z.norm(dim=-1, keepdim=True) + 1e-8)
    return z.sum(-1).mean(-1)


def head_parameters(method):
    """Random parameters of the learned heads at their initial scales (N(0, 1) tables, level
    weights 0.1), for timing: ESL at D = 1024 has the heads table's 9 levels."""
    import torch
    generator = torch.Generator().manual_seed(3)
    if method == "esl":
        widths = [DIM >> j for j in range(9)]
        table = lambda r, c: torch.randn(r, c, generator=generator)  # noqa: E731
        return {"region_aggregators": [table(widths[j], widths[j - 1]) for j in range(1, 9)],
                "word_aggregators": [table(widths[j], widths[j - 1]) for j in range(1, 9)],
                "bilinear": [table(w, w) for w in widths],
                "level_weights": [0.1] * 9}
    if method == "xdim":
        return {"dependency": torch.randn(DIM, DIM, generator=generator)}
    return {}


def measure_fine_grained(method, rows, cols):
    import torch
    torch.set_grad_enabled(False)
    regions, words = fine_grained_inputs(rows, cols)
    params = head_parameters(method)
    run = {"scan_t2i": lambda: scan_block(regions, words, "t2i"),
           "scan_i2t": lambda: scan_block(regions, words, "i2t"),
           "chan": lambda: chan_block(regions, words),
           "esl": lambda: esl_block(regions, words, params),
           "xdim": lambda: xdim_block(regions, words, params)}[method]
    reset_peak()
    _, start = memory()
    run()
    peak, _ = memory()
    seconds = median_time(run, 2)
    pairs = FG_IMAGES * FG_CAPTIONS
    return {"block": [rows, cols], "seconds_per_block": seconds,
            "matrix_seconds": seconds * pairs / (rows * cols), "peak_bytes_above_inputs": peak - start}


def measure(args):
    name = args.measure
    if not name.startswith(("cosine:", "recall:", "search:")):
        import torch
        torch.set_num_threads(args.threads)
    if name.startswith("cosine:"):
        result = measure_cosine(name.split(":")[1])
    elif name.startswith("search:"):
        result = measure_search(int(name.split(":")[1]))
    elif name == "encode_text":
        result = measure_encode_text(args.itm, args.minilm, args.threads)
    elif name.startswith("recall:"):
        result = measure_recall(name.split(":")[1], args.itm)
    elif name.startswith("vse_step"):
        result = measure_vse_step(args.threads, name.split(":")[1] if ":" in name else "bigru")
    else:
        method, rows, cols = name.split(":")
        result = measure_fine_grained(method, int(rows), int(cols))
    print(json.dumps(result))


# ----------------------------------------------------------------------------------------------
# Driver (standard library only)
# ----------------------------------------------------------------------------------------------

def python_with_torch(args):
    given = args.python or os.environ.get("ITM_COMPARE_PYTHON")
    if given:
        return given
    venv = ROOT / ".venv-compare"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} (numpy, torch CPU from PyPI)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "numpy"], check=True)
        # PyPI's Linux torch wheel brings the CUDA libraries (~3 GB) but runs on the CPU as
        # well; the smaller CPU-only wheels live on download.pytorch.org, which is tried first.
        cpu_only = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "torch",
                                   "--index-url", "https://download.pytorch.org/whl/cpu"])
        if cpu_only.returncode != 0:
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", "torch"], check=True)
        # BertModel for the BERT-mini step and the encode-text row (4.x: see compare_encode_text.py).
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "transformers<5"], check=True)
    return str(python)


def child(python, args, what):
    command = [python, __file__, "--measure", what, "--threads", str(args.threads), "--itm", args.itm,
               "--minilm", args.minilm or "", "--sustain", str(args.sustain)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=pinned(args.threads))
    if done.returncode != 0:
        sys.exit(f"measurement {what} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {what}: {result}", file=sys.stderr)
    return result


def pinned(threads):
    """The environment of both sides at `threads` threads: rayon (itm's benchmarks and binary),
    OpenBLAS (NumPy), OpenMP/MKL (PyTorch; torch.set_num_threads is also called)."""
    env = dict(os.environ)
    for name in ("RAYON_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    return env


def criterion(group, bench):
    path = ROOT / "target" / "criterion" / group / bench / "new" / "estimates.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["mean"]["point_estimate"] / 1e9  # seconds


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    return f"{os.cpu_count()} cores ({cpu}), {memory_gib:.0f} GiB"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", help="interpreter with torch and numpy ($ITM_COMPARE_PYTHON)")
    parser.add_argument("--run-benches", action="store_true",
                        help="run `cargo bench --profile dev` first (else read target/criterion)")
    parser.add_argument("--threads", default=str(os.cpu_count()),
                        help="threads of both sides (rayon, OpenBLAS, torch); a comma-separated "
                             "list (1,2) runs everything once per count, one table each")
    parser.add_argument("--only", default="all",
                        help="comma-separated rows: cosine, recall, search, vse_step, encode_text, "
                             "fine_grained (cosine, recall and search need NumPy only, no torch)")
    parser.add_argument("--sustain", type=float, default=10.0,
                        help="seconds of back-to-back calls behind each reference time (their "
                             "mean, as criterion's); 0: the median of a few calls")
    parser.add_argument("--methods", default=",".join(FG_METHODS),
                        help="comma-separated fine-grained heads of the fine_grained rows")
    parser.add_argument("--minilm", default=os.environ.get("ITM_MINILM_DIR"),
                        help="all-MiniLM-L6-v2 folder for the encode_text row ($ITM_MINILM_DIR)")
    parser.add_argument("--itm", default=str(ROOT / "target" / "debug" / "itm"),
                        help="the itm binary, for the recall identity check")
    parser.add_argument("--pytorch-block", type=int, default=128,
                        help="images and captions per batched PyTorch SCAN block (published shard size)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    SUSTAIN[0] = args.sustain
    if args.measure:
        args.threads = int(args.threads)
        measure(args)
        return
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = set(args.methods) - set(FG_METHODS)
    if unknown:
        sys.exit(f"unknown --methods {sorted(unknown)}: choose from {', '.join(FG_METHODS)}")
    every = {"cosine", "recall", "search", "vse_step", "encode_text", "fine_grained"}
    only = every if args.only == "all" else set(args.only.split(","))
    if "encode_text" in only and not args.minilm:
        print("encode_text skipped: no --minilm folder ($ITM_MINILM_DIR)", file=sys.stderr)
        only.discard("encode_text")
    python = python_with_torch(args)
    for threads in [int(t) for t in args.threads.split(",")]:
        args.threads = threads
        table(args, python, only)


def table(args, python, only):
    """Runs the benchmarks (with --run-benches) and the references at `args.threads` threads and
    prints the table."""
    if args.run_benches:
        # Each benchmark with its arguments: criterion's filter is a regular expression over the
        # benchmark names; peak_memory takes the heads' names.
        retrieval = sorted(only & {"cosine", "recall", "search"})
        benches = ([("retrieval", ["|".join(retrieval)])] if retrieval else []) + \
            ([("training_step", [])] if "vse_step" in only else []) + \
            ([("fine_grained", ["|".join(args.methods)]), ("peak_memory", list(args.methods))]
             if "fine_grained" in only else [])
        for bench, filters in benches:
            subprocess.run(["cargo", "bench", "--profile", "dev", "--bench", bench, "--", *filters],
                           check=True, cwd=ROOT, env=pinned(args.threads))
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"machine: {machine()}; load average before: {' '.join(load)}", file=sys.stderr)

    # itm's block shapes (`ShardedScorer::block_shape`, per method) as benches/peak_memory.rs
    # recorded them; PyTorch scores SCAN in the published shard size and CHAN in itm's blocks
    # (the same block when the benchmark has not run).
    memory_path = ROOT / "target" / "criterion" / "fine_grained_memory.json"
    peak_report = json.loads(memory_path.read_text()) if memory_path.exists() else {}
    blocks = {method: tuple(shape) for method, shape in peak_report.get("blocks", {}).items()}
    shard = (args.pytorch_block, args.pytorch_block)
    pt_blocks = {method: shard if method.startswith("scan") else blocks.get(method, shard)
                 for method in args.methods}
    # Every reference measurement first, then the itm results (which may still be running).
    references = {}
    for kind in ("cosine", "recall"):
        if kind in only:
            for name in SETS:
                references[f"{kind}:{name}"] = child(python, args, f"{kind}:{name}")
    if "search" in only:
        for queries in SEARCH_QUERIES:
            references[f"search:{queries}"] = child(python, args, f"search:{queries}")
    if "vse_step" in only:
        references["vse_step"] = child(python, args, "vse_step")
        references["vse_step:bert_mini"] = child(python, args, "vse_step:bert_mini")
    if "encode_text" in only:
        references["encode_text"] = child(python, args, "encode_text")
    if "fine_grained" in only:
        for method, (r, c) in pt_blocks.items():
            references[method] = child(python, args, f"{method}:{r}:{c}")

    rows = []  # (operation, itm, reference, ratio, target, met)

    def row(operation, ours, reference, ratio, target, met):
        rows.append((operation, ours, reference, f"{ratio:.2f}" if ratio is not None else "n/a", target,
                     "n/a" if met is None else ("yes" if met else "**no**")))

    for name, (n_img, n_cap, _) in SETS.items() if "cosine" in only else []:
        numpy = references[f"cosine:{name}"]
        seconds = criterion("cosine", name)
        flops = 2 * n_img * n_cap * DIM
        ours = flops / seconds / 1e9 if seconds else None
        ratio = ours / numpy["gflops"] if ours else None
        row(f"cosine {n_img:,} x {n_cap:,} (GFLOP/s)", f"{ours:.1f}" if ours else "not run",
            f"{numpy['gflops']:.1f} (NumPy)", ratio, ">= 0.9x", ratio >= 0.9 if ratio else None)
    for name, (n_img, n_cap, _) in SETS.items() if "recall" in only else []:
        reference = references[f"recall:{name}"]
        seconds = criterion("recall", name)
        fastest = min(reference["argsort_per_query_seconds"], reference["argsort_vectorised_seconds"])
        speedup = fastest / seconds if seconds else None
        identical = reference.get("identical")
        note = "" if identical is None else (", metrics identical" if identical else ", METRICS DIFFER")
        row(f"recall {n_img:,} x {n_cap:,} (s)", f"{seconds:.3f}{note}" if seconds else "not run",
            f"{reference['argsort_per_query_seconds']:.2f} per query / "
            f"{reference['argsort_vectorised_seconds']:.2f} vectorised (argsort)",
            speedup, ">= 20x faster", speedup >= 20 if speedup else None)
    for queries in SEARCH_QUERIES if "search" in only else []:
        numpy = references[f"search:{queries}"]
        seconds = criterion("search", f"100k/{queries}q")
        ratio = numpy["seconds"] / seconds if seconds else None
        row(f"search top-{SEARCH_K} of {SEARCH_ROWS:,} rows, {queries:,} quer{'y' if queries == 1 else 'ies'} (ms)",
            f"{seconds * 1e3:.1f}" if seconds else "not run", f"{numpy['seconds'] * 1e3:.1f} (NumPy)",
            ratio, ">= 1x (speed)", ratio >= 1 if ratio else None)
    if "vse_step" in only:
        for key, bench, label in (("vse_step", "vse_infinity_bigru_b128", "BiGRU"),
                                  ("vse_step:bert_mini", "vse_infinity_bert_mini_b128", "BERT-mini")):
            step = references[key]
            seconds = criterion("training_step", bench)
            ratio = step["seconds"] / seconds if seconds else None
            row(f"VSE-infinity step, {label} text, batch 128 (s)", f"{seconds:.2f}" if seconds else "not run",
                f"{step['seconds']:.2f} (PyTorch)", ratio, ">= 1x (speed)", ratio >= 1 if ratio else None)
    if "encode_text" in only:
        encode = references["encode_text"]
        ratio = encode["transformers_seconds"] / encode["itm_seconds"]
        row("encode-text, all-MiniLM-L6-v2, 2,000 captions (s)",
            f"{encode['itm_seconds']:.1f} (embeddings within {encode['max_abs_difference']:.1e})",
            f"{encode['transformers_seconds']:.1f} (transformers)", ratio, ">= 1x (speed)", ratio >= 1)

    peaks = peak_report.get("peak_bytes_above_inputs", {})
    block_seconds = peak_report.get("block_seconds", {})
    pairs = FG_IMAGES * FG_CAPTIONS
    for method in args.methods if "fine_grained" in only else []:
        pt_block, block = pt_blocks[method], blocks.get(method)
        reference = references[method]
        # The whole matrix is scored in the driver's full-size blocks: extrapolate from one of
        # them (benches/peak_memory.rs); the 10 x 2,000 fraction of benches/fine_grained.rs is
        # shown beside it.
        fraction = criterion("fine_grained", f"{method}/{FRACTION[0]}x{FRACTION[1]}")
        fraction = fraction * pairs / (FRACTION[0] * FRACTION[1]) if fraction else None
        ours = block_seconds.get(method)
        ours = ours * pairs / (block[0] * block[1]) if ours and block else fraction
        ratio = reference["matrix_seconds"] / ours if ours else None
        shown = "not run" if ours is None else f"{ours:.0f}"
        if fraction and block_seconds.get(method):
            shown += f" ({fraction:.0f} from the 10x2,000 fraction)"
        row(f"{method} 1,000 x 5,000 matrix (s, extrapolated)", shown,
            f"{reference['matrix_seconds']:.0f} (PyTorch, blocks {pt_block[0]}x{pt_block[1]})", ratio,
            ">= 1x (speed)", ratio >= 1 if ratio else None)
        peak = peaks.get(method)
        row(f"{method} peak memory above inputs (GiB)",
            f"{peak / GIB:.2f} (block {block[0]}x{block[1]})" if peak and block else "not run",
            f"{reference['peak_bytes_above_inputs'] / GIB:.2f} (PyTorch)", None, "< 2 GiB",
            peak < 2 * GIB if peak else None)

    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"\nmachine: {machine()}; load average after: {' '.join(load)}; {args.threads} threads on each side\n")
    print("| operation | itm | reference | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
