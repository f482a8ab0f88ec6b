#!/usr/bin/env python3
"""Reference fixtures for `itm import` made by the SCAN authors' own code.

The upstream repository (kuanghuei/SCAN, written for Python 2.7 / PyTorch 0.3) is *not* part of this
repository and nothing of it is copied here: this script executes an upstream checkout given with
``--upstream`` on the CPU, under Python 3 and current PyTorch, and records what that code produces:

1. a small seeded synthetic precomp data set in the layout the upstream loader reads
   (``<data_path>/f30k_precomp/{train,dev,test}_{caps.txt,ims.npy}``): 24 train and 20 test images,
   6 regions x 64 features, 5 captions each; the dev split has 1000 images because the upstream
   dataset fixes the length of 'dev' to 5000 captions and train.main() validates on it. The
   vocabulary ``<vocab_path>/f30k_precomp_vocab.json`` is built by the upstream ``vocab.py``
   itself (``build_vocab`` over train+dev captions, threshold 4, as its ``main`` does;
   ``serialize_vocab``);
2. for each of four configurations (the published Flickr30K arguments of the upstream README, with
   tiny sizes and one epoch = 15 steps of batch 8), ``train.main()`` of the upstream checkout: it
   builds ``opt`` with its own argument parser, builds SCAN, trains with its own ``train_emb``/loss,
   validates on 'dev' and saves ``checkpoint_0.pth.tar`` / ``model_best.pth.tar`` with its own
   ``save_checkpoint`` (torch's default zip serialization; ``epoch`` is stored 0-based) -- the
   file is copied byte for byte;
3. ``evaluation.evalrank(model_best.pth.tar, data_path, 'test')`` of the upstream checkout; the
   similarity matrix it passes to its own ``i2t``/``t2i`` and what they return are captured.

Outputs (``--out DIR``, the fixtures/authors folder):

* ``scan_data/``: our copy of the test split in the SCAN precomp layout (``test_ims.npy``,
  ``test_caps.txt``, ``test_ids.txt``) and ``vocab.json`` (the JSON written by upstream
  ``serialize_vocab``; SCAN adds no ``<mask>``: ``opt.vocab_size == len(word2idx)``);
* ``scan_t2i_avg/``, ``scan_i2t_avg/``, ``scan_t2i_lse/``, ``scan_i2t_lse/``: ``model_best.pth.tar``,
  ``sims.npy`` (float64 [N, 5N], exactly as captured; upstream computes the cross attention in
  float64), ``metrics.json``, ``SOURCE.txt``;
* ``scan_t2i_avg/model_best_legacy.pth.tar``: the same checkpoint loaded and saved again with
  ``_use_new_zipfile_serialization=False`` (PyTorch's legacy format, which the published SCAN
  checkpoints use); checked to load back to equal tensors/opt and to give the same sims. Unlike
  the other outputs it is not byte-reproducible: the legacy format names storages by their memory
  address (``str(storage._cdata)``).

Textual Python 2 -> 3 fixes, applied in memory to the upstream source before it is executed (the
upstream files are not modified; each pattern must occur exactly the given number of times):

* model.py ``cap_emb.size(2)/2`` -> ``//2`` (2x): Python 3 ``/`` gives a float slice bound.
* model.py ``loss.data[0]`` -> ``loss.data.item()``: a 0-dim tensor cannot be indexed (PyTorch >= 0.4).
* data.py ``index/self.im_div`` -> ``//``: float index into the image array.
* data.py ``str(caption).lower().decode('utf-8')`` -> ``caption.lower().decode('utf-8')``: the
  captions are read as bytes ('rb'); Python 3 ``str(bytes)`` would give "b'...'" and str has no
  ``decode``. (Python 2's ``str`` was the bytes itself.)
* evaluation.py ``(len(x)-1)/shard_size + 1`` -> ``//`` (4x): ``range()`` of a float.
* evaluation.py ``.iteritems()`` -> ``.items()`` (2x, LogCollector).

train.py and vocab.py run unchanged.

Run-time compatibility shims (monkeypatches):

* ``Tensor.cuda`` / ``Module.cuda`` -> identity. ``shard_xattn_t2i``/``shard_xattn_i2t`` call
  ``.cuda()`` unconditionally; there is no GPU here (the other calls are behind
  ``torch.cuda.is_available()``).
* ``torch.load`` defaults to ``weights_only=False, map_location='cpu'``. ``evalrank`` calls
  ``torch.load(model_path)``; torch >= 2.6 defaults to ``weights_only=True``, which refuses the
  pickled ``argparse.Namespace`` stored as ``opt``.
* ``torch.utils.data.DataLoader`` -> a subclass forcing ``num_workers=0`` (harmless here: upstream's
  ``get_precomp_loader`` already never passes its ``num_workers`` on), and, since the loader is
  created with ``pin_memory=True``, applying to each collated batch the container conversion that
  pinning performs on a GPU machine (tuples become lists, in PyTorch 0.3's ``pin_memory_batch`` as
  today; tensors are left unpinned). Without it ``encode_data`` does ``img_embs[ids] = ...`` with
  ``ids`` the tuple from ``zip(*data)``, which numpy reads as multi-axis indexing and fails.
* ``nltk.word_tokenize`` / ``nltk.tokenize.word_tokenize`` -> ``word_tokenize(text,
  preserve_line=True)``: NLTK's punkt data cannot be downloaded here; every caption is one
  sentence, for which punkt's sentence split is the identity.
* stub modules ``tensorboard_logger`` (no-op ``log_value``; ``configure`` only creates the log
  folder as the real one does -- train.py's ``os.mkdir(opt.model_name)`` relies on that parent),
  ``torchvision`` (+ ``.models``, ``.transforms``) and ``PIL`` (+ ``.Image``) if not installed:
  imported by model.py/data.py but unused on the precomp path.
* the working directory is the scratch folder while upstream runs: ``evalrank`` writes
  ``ranks.pth.tar`` into the current directory.
* ``evaluation.i2t`` / ``t2i`` are wrapped (the names train.py imported for
  validation are not) to record their arguments and results;
  they are called unchanged.

Left as they are (they work, with warnings): ``Variable(x, volatile=True)`` (no effect since PyTorch
0.4: evaluation builds autograd graphs but computes the same values), ``nn.Softmax()`` without
``dim`` (implicit dim=1 for the 2-D inputs, as in 0.3), ``clip_grad_norm`` (deprecated alias).
``pad_packed_sequence`` now returns the lengths as a tensor (0.3: a list); upstream only indexes
with them.

Everything is seeded (random, numpy, torch; reseeded before each configuration) and run with
``torch.set_num_threads(1)``.

Usage:
  python scripts/authors/scan.py --upstream /work/upstream/scan \\
      --out crates/itm-train/tests/fixtures/authors --commit <hash>
"""

import argparse
import collections.abc
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import types

import numpy as np
import torch

SEED = 0
N_TRAIN, N_DEV, N_TEST = 24, 1000, 20  # upstream forces len(dev dataset) = 5000 captions
K_REGIONS, IMG_DIM = 6, 64
EMBED_SIZE, WORD_DIM, BATCH_SIZE = 32, 16, 8
DATA_NAME = 'f30k_precomp'  # vocab file 'f30k_precomp_vocab.json'; data folder 'f30k_precomp'

# The published Flickr30K arguments (upstream README, "Arguments used to train Flickr30K models").
CONFIGS = [
    ('scan_t2i_avg', ['--max_violation', '--bi_gru', '--agg_func=Mean', '--cross_attn=t2i',
                      '--lambda_softmax=9']),
    ('scan_i2t_avg', ['--max_violation', '--bi_gru', '--agg_func=Mean', '--cross_attn=i2t',
                      '--lambda_softmax=4']),
    ('scan_t2i_lse', ['--max_violation', '--bi_gru', '--agg_func=LogSumExp', '--cross_attn=t2i',
                      '--lambda_lse=6', '--lambda_softmax=9']),
    ('scan_i2t_lse', ['--max_violation', '--bi_gru', '--agg_func=LogSumExp', '--cross_attn=i2t',
                      '--lambda_lse=5', '--lambda_softmax=4']),
]
LEGACY_CONFIG = 'scan_t2i_avg'

# ---------------------------------------------------------------- synthetic captions
# A small word list; captions exercise NLTK's Treebank rules: a hyphenated word ("t-shirt"), the
# contractions "isn't" -> is + n't and "man's" -> man + 's, commas, a final period, upper case.
SUBJECTS = ['a man', 'a woman', 'the dog', 'a child', 'two people', 'a girl', 'the cat', 'a boy']
ADJS = ['red', 'blue', 'small', 'large', 'young', 'old', 'green', 'white']
VERBS = ['is sitting', 'is standing', 'is running', 'is walking', 'plays', 'looks']
PREPS = ['on', 'near', 'in', 'under', 'behind']
PLACES = ['the street', 'a bench', 'the grass', 'a table', 'the beach', 'a wall', 'the park']
EXTRAS = ["wearing a t-shirt", "with the man's bag", "and it isn't raining", "with a ball",
          "holding a cup", "next to a car"]
UPPER = ['SMILING', 'Happy', 'BIG']
# Words never used in the train/dev captions: they are absent from the vocabulary (-> <unk>).
OOV = ['zebra', 'kayak', 'saxophone', 'umbrella', 'giraffe', 'volcano']


def make_caption(rng, oov=False):
    subj = SUBJECTS[rng.integers(len(SUBJECTS))]
    adj = ADJS[rng.integers(len(ADJS))]
    if rng.random() < 0.25:
        adj = UPPER[rng.integers(len(UPPER))] + ' ' + adj
    words = subj.split()
    words.insert(1, adj)
    sent = ' '.join(words) + ' ' + VERBS[rng.integers(len(VERBS))] + ' ' + \
        PREPS[rng.integers(len(PREPS))] + ' ' + PLACES[rng.integers(len(PLACES))]
    if rng.random() < 0.6:
        sent += ', ' + EXTRAS[rng.integers(len(EXTRAS))]
    if oov:
        sent += ' near a ' + OOV[rng.integers(len(OOV))]
    if rng.random() < 0.8:
        sent += '.'
    return sent[0].upper() + sent[1:] if rng.random() < 0.7 else sent


from nltk.tokenize import word_tokenize as _nltk_word_tokenize  # the original, before patching


def word_tokenize(text, language='english', preserve_line=True):
    """nltk.word_tokenize without punkt: each caption is one sentence."""
    return _nltk_word_tokenize(text, language=language, preserve_line=True)


def caption_key(c):
    """The caption as the model sees it: tokens, every OOV word being the same <unk>."""
    return tuple('<unk>' if t in OOV else t for t in word_tokenize(c.lower()))


def make_split(rng, n_images, oov_rate):
    """n_images x 5 captions, distinct as id sequences (duplicates would tie in i2t)."""
    caps, keys = [], set()
    while len(caps) < 5 * n_images:
        c = make_caption(rng, oov=rng.random() < oov_rate)
        key = caption_key(c)
        if key in keys:
            continue
        keys.add(key)
        caps.append(c)
    # BUTD-like non-negative region features
    ims = np.abs(rng.standard_normal((n_images, K_REGIONS, IMG_DIM))).astype(np.float32)
    return caps, ims


def build_data(work, rng):
    data_path = os.path.join(work, 'data')
    precomp = os.path.join(data_path, DATA_NAME)
    os.makedirs(precomp)
    splits = {'train': make_split(rng, N_TRAIN, 0.0),
              'dev': make_split(rng, N_DEV, 0.0),
              'test': make_split(rng, N_TEST, 0.3)}
    for name, (caps, ims) in splits.items():
        write_split(precomp, name, caps, ims)
    return data_path, splits


def write_split(folder, name, caps, ims):
    with open(os.path.join(folder, name + '_caps.txt'), 'w') as f:
        f.write(''.join(c + '\n' for c in caps))
    np.save(os.path.join(folder, name + '_ims.npy'), ims)
    with open(os.path.join(folder, name + '_ids.txt'), 'w') as f:
        f.write(''.join('%d\n' % (i // 5) for i in range(len(caps))))


# ---------------------------------------------------------------- upstream source, in memory
# (file, pattern, replacement, expected count); see the module docstring for the reasons.
PY3_FIXES = {
    'vocab': [],
    'model': [('cap_emb.size(2)/2', 'cap_emb.size(2)//2', 2),
              ('loss.data[0]', 'loss.data.item()', 1)],
    'data': [('index/self.im_div', 'index//self.im_div', 1),
             ("str(caption).lower().decode('utf-8')", "caption.lower().decode('utf-8')", 1)],
    'evaluation': [('(len(images)-1)/shard_size + 1', '(len(images)-1)//shard_size + 1', 2),
                   ('(len(captions)-1)/shard_size + 1', '(len(captions)-1)//shard_size + 1', 2),
                   ('.iteritems()', '.items()', 2)],
    'train': [],
}


def load_upstream_module(upstream, name):
    path = os.path.join(upstream, name + '.py')
    with open(path) as f:
        src = f.read()
    for old, new, count in PY3_FIXES[name]:
        found = src.count(old)
        if found != count:
            sys.exit('%s: expected %d x %r, found %d (different upstream version?)' % (path, count, old, found))
        src = src.replace(old, new)
    mod = types.ModuleType(name)
    mod.__file__ = path
    sys.modules[name] = mod
    exec(compile(src, path, 'exec'), mod.__dict__)
    return mod


# ---------------------------------------------------------------- shims
class _Recorder:
    calls = []


def _pin_like(data):
    """The container conversion of torch.utils.data._utils.pin_memory.pin_memory, minus pinning."""
    if isinstance(data, (torch.Tensor, str, bytes)):
        return data
    if isinstance(data, tuple) and hasattr(data, '_fields'):
        return type(data)(*(_pin_like(s) for s in data))
    if isinstance(data, tuple):
        return [_pin_like(s) for s in data]
    if isinstance(data, collections.abc.Sequence):
        return type(data)([_pin_like(s) for s in data])
    return data


def _stub(name, **attrs):
    m = types.ModuleType(name)
    for k, v in attrs.items():
        setattr(m, k, v)
    sys.modules[name] = m
    return m


def install_shims(upstream):
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self

    orig_load = torch.load

    def load(f, *a, **k):
        k.setdefault('weights_only', False)
        k.setdefault('map_location', 'cpu')
        return orig_load(f, *a, **k)
    torch.load = load

    orig_loader = torch.utils.data.DataLoader

    class DataLoader(orig_loader):
        def __init__(self, *a, **k):
            k['num_workers'] = 0
            if k.get('pin_memory'):
                k['pin_memory'] = False
                collate = k.get('collate_fn')
                k['collate_fn'] = lambda batch: _pin_like(collate(batch))
            super().__init__(*a, **k)
    torch.utils.data.DataLoader = DataLoader

    import nltk
    import nltk.tokenize
    nltk.word_tokenize = word_tokenize
    nltk.tokenize.word_tokenize = word_tokenize

    # configure() creates its log folder (and so runs/<name>/, which train.py's os.mkdir needs)
    _stub('tensorboard_logger', configure=lambda logdir, *a, **k: os.makedirs(logdir, exist_ok=True),
          log_value=lambda *a, **k: None)
    try:
        import torchvision  # noqa: F401
    except ImportError:
        tv = _stub('torchvision')
        tv.models = _stub('torchvision.models')
        tv.transforms = _stub('torchvision.transforms')
    try:
        import PIL  # noqa: F401
    except ImportError:
        _stub('PIL').Image = _stub('PIL.Image')

    for name in ('vocab', 'model', 'data', 'evaluation', 'train'):
        load_upstream_module(upstream, name)


def record_rankers():
    ev = sys.modules['evaluation']
    for name in ('i2t', 't2i'):
        orig = getattr(ev, name)

        def wrapped(images, captions, caplens, sims, *a, _orig=orig, _name=name, **k):
            out = _orig(images, captions, caplens, sims, *a, **k)
            _Recorder.calls.append((_name, images.shape[0], np.array(sims, copy=True), out))
            return out
        setattr(ev, name, wrapped)


# ---------------------------------------------------------------- checks and reports
def git_commit(upstream, given):
    if given:
        return given
    try:
        return subprocess.check_output(['git', '-C', upstream, 'rev-parse', 'HEAD'],
                                       stderr=subprocess.DEVNULL, text=True).strip()
    except Exception:
        return 'unknown'


def tie_report(sims):
    """For each query, is the ground-truth score tied with any other score of its row?"""
    n = sims.shape[0]
    i2t = [int(np.sum(sims[i] == sims[i, j]) > 1) for i in range(n) for j in range(5 * i, 5 * i + 5)]
    t2i = [int(np.sum(sims[:, c] == sims[c // 5, c]) > 1) for c in range(5 * n)]
    # smallest |ground-truth score - any other score of the row| (robustness of the ranks to rounding)
    gap_i2t = min(np.min(np.abs(np.delete(sims[i], j) - sims[i, j]))
                  for i in range(n) for j in range(5 * i, 5 * i + 5))
    gap_t2i = min(np.min(np.abs(np.delete(sims[:, c], c // 5) - sims[c // 5, c])) for c in range(5 * n))
    return {'i2t_gt_ties': int(sum(i2t)), 't2i_gt_ties': int(sum(t2i)),
            'i2t_min_gt_gap': float(gap_i2t), 't2i_min_gt_gap': float(gap_t2i),
            'any_row_ties': int(sum(len(np.unique(r)) < len(r) for r in sims) +
                                sum(len(np.unique(r)) < len(r) for r in sims.T))}


def evaluate(ckpt):
    """Upstream evalrank on 'test'; returns (npts, sims, i2t result, t2i result)."""
    _Recorder.calls = []
    sys.modules['evaluation'].evalrank(ckpt, data_path=_State.data_path, split='test')
    (n1, npts, sims, (r, rk)), (n2, _, sims2, (ri, rki)) = _Recorder.calls
    assert (n1, n2) == ('i2t', 't2i') and np.array_equal(sims, sims2)
    assert sims.dtype == np.float64 and sims.shape == (npts, 5 * npts), (sims.dtype, sims.shape)
    return npts, sims, (r, rk), (ri, rki)


class _State:
    data_path = None


def same_checkpoint(a, b):
    assert a.keys() == b.keys(), (a.keys(), b.keys())
    assert vars(a['opt']) == vars(b['opt'])
    for k in ('epoch', 'best_rsum', 'Eiters'):
        assert a[k] == b[k], k
    assert len(a['model']) == len(b['model'])
    for sa, sb in zip(a['model'], b['model']):
        assert list(sa.keys()) == list(sb.keys())
        for k in sa:
            assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--upstream', required=True, help='checkout of kuanghuei/SCAN')
    ap.add_argument('--out', required=True, help='fixtures/authors folder (scan_* folders go inside)')
    ap.add_argument('--commit', default=None, help='upstream commit (if the checkout has no .git)')
    ap.add_argument('--work', default=None,
                    help='scratch folder, kept (default: <tmp>/itm_authors_scan, removed after)')
    args = ap.parse_args()

    upstream = os.path.abspath(args.upstream)
    if not all(os.path.exists(os.path.join(upstream, f + '.py')) for f in PY3_FIXES):
        sys.exit('%s does not look like a checkout of kuanghuei/SCAN' % upstream)
    commit = git_commit(upstream, args.commit)
    out = os.path.abspath(args.out)
    # A fixed scratch path by default: the paths end up in the pickled `opt`, so a fixed path makes
    # model_best.pth.tar byte-reproducible.
    work = os.path.abspath(args.work or os.path.join(tempfile.gettempdir(), 'itm_authors_scan'))
    marker = os.path.join(work, '.itm_authors_scratch')
    if os.path.exists(work):
        if not os.path.exists(marker):
            sys.exit('refusing to clear %s: not a scratch folder of this script' % work)
        shutil.rmtree(work)
    os.makedirs(work)
    open(marker, 'w').close()
    os.makedirs(out, exist_ok=True)

    torch.set_num_threads(1)
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)

    data_path, splits = build_data(work, rng)
    _State.data_path = data_path
    install_shims(upstream)
    # train.py bound its own i2t/t2i at import (validation): only evalrank's calls are recorded
    record_rankers()
    cwd = os.getcwd()
    os.chdir(work)  # evalrank writes ranks.pth.tar into the current directory

    # ---- vocabulary: upstream vocab.py, as its main() does (train+dev captions, threshold 4)
    up_vocab = sys.modules['vocab']
    vocab_dir = os.path.join(work, 'vocab')
    os.makedirs(vocab_dir)
    vocab = up_vocab.build_vocab(data_path, DATA_NAME, caption_file=up_vocab.annotations, threshold=4)
    vocab_file = os.path.join(vocab_dir, DATA_NAME + '_vocab.json')
    up_vocab.serialize_vocab(vocab, vocab_file)
    assert '<mask>' not in vocab.word2idx and not any(w in vocab.word2idx for w in OOV)
    test_ids = [tuple(vocab(t) for t in word_tokenize(c.lower())) for c in splits['test'][0]]
    assert len(set(test_ids)) == len(test_ids), 'test captions collide as id sequences'

    shared = os.path.join(out, 'scan_data')
    os.makedirs(shared, exist_ok=True)
    caps, ims = splits['test']
    write_split(shared, 'test', caps, ims)
    shutil.copyfile(vocab_file, os.path.join(shared, 'vocab.json'))

    up_train = sys.modules['train']
    from importlib.metadata import version
    summary = {}
    for name, published in CONFIGS:
        # ---- training: upstream train.main() with the published arguments, tiny sizes, 1 epoch
        run_dir = os.path.join(work, 'runs', name)
        argv = ['train.py', '--data_path', data_path, '--data_name', DATA_NAME,
                '--vocab_path', vocab_dir,
                '--logger_name', run_dir + '/log', '--model_name', run_dir] + published + \
               ['--raw_feature_norm=clipped_l2norm', '--precomp_enc_type=basic', '--num_epochs=1',
                '--batch_size', str(BATCH_SIZE), '--img_dim', str(IMG_DIM),
                '--embed_size', str(EMBED_SIZE), '--word_dim', str(WORD_DIM)]
        random.seed(SEED)
        np.random.seed(SEED)
        torch.manual_seed(SEED)
        saved_argv, sys.argv = sys.argv, argv
        try:
            up_train.main()
        finally:
            sys.argv = saved_argv
        best = os.path.join(run_dir, 'model_best.pth.tar')
        if not os.path.exists(best):
            sys.exit('%s: upstream did not write model_best.pth.tar (dev rsum 0?)' % name)
        cfg_out = os.path.join(out, name)
        os.makedirs(cfg_out, exist_ok=True)
        ckpt = os.path.join(cfg_out, 'model_best.pth.tar')
        shutil.copyfile(best, ckpt)

        # ---- evaluation: the upstream evalrank on the test split
        npts, sims, (r, rk), (ri, rki) = evaluate(ckpt)
        np.save(os.path.join(cfg_out, 'sims.npy'), np.ascontiguousarray(sims))
        keys = ['r1', 'r5', 'r10', 'medr', 'meanr']
        metrics = {'npts': int(npts),
                   'i2t': {k: float(v) for k, v in zip(keys, r)},
                   't2i': {k: float(v) for k, v in zip(keys, ri)},
                   'rsum': float(r[0] + r[1] + r[2] + ri[0] + ri[1] + ri[2]),
                   'i2t_ranks': [int(x) for x in rk[0]], 'i2t_top1': [int(x) for x in rk[1]],
                   't2i_ranks': [int(x) for x in rki[0]], 't2i_top1': [int(x) for x in rki[1]],
                   'ties': tie_report(sims)}
        with open(os.path.join(cfg_out, 'metrics.json'), 'w') as f:
            json.dump(metrics, f, indent=1)

        legacy_note = ''
        if name == LEGACY_CONFIG:
            # ---- the same checkpoint in PyTorch's legacy (non-zip) format
            legacy = os.path.join(cfg_out, 'model_best_legacy.pth.tar')
            state = torch.load(ckpt)
            torch.save(state, legacy, _use_new_zipfile_serialization=False)
            import zipfile
            assert zipfile.is_zipfile(ckpt) and not zipfile.is_zipfile(legacy)
            same_checkpoint(state, torch.load(legacy))
            _, sims_legacy, _, _ = evaluate(legacy)
            assert np.array_equal(sims, sims_legacy)
            legacy_note = ('model_best_legacy.pth.tar: model_best.pth.tar loaded with torch.load and saved with '
                           'torch.save(..., _use_new_zipfile_serialization=False); checked: equal contents, '
                           'same evalrank sims\n')

        with open(os.path.join(cfg_out, 'SOURCE.txt'), 'w') as f:
            f.write('Generated by scripts/authors/scan.py running the authors\' code (not copied here).\n'
                    'upstream: https://github.com/kuanghuei/SCAN commit %s (Python 2 source executed with the\n'
                    '  in-memory Python 3 fixes and run-time shims listed in the script)\n'
                    'torch %s, numpy %s, nltk %s, python %s\n'
                    'command: python scripts/authors/scan.py --upstream <checkout> --out <fixtures/authors> '
                    '--commit %s\n'
                    'upstream training argv: %s\n'
                    'evaluation: evaluation.evalrank(model_best.pth.tar, data_path, split=\'test\')\n'
                    'test split and vocabulary: ../scan_data/\n%s'
                    % (commit, torch.__version__, np.__version__, version('nltk'), sys.version.split()[0],
                       commit, ' '.join(a if not a.startswith(work) else '<work>' + a[len(work):]
                                        for a in argv[1:]), legacy_note))
        summary[name] = {k: metrics[k] for k in ('i2t', 't2i', 'rsum', 'ties')}
        print('metrics', name, json.dumps(summary[name]))

    with open(os.path.join(shared, 'SOURCE.txt'), 'w') as f:
        f.write('Generated by scripts/authors/scan.py (seed %d): the SCAN test split in the precomp layout\n'
                '(%d images x %d regions x %d features, 5 captions each) and vocab.json, written by the\n'
                'authors\' vocab.py (build_vocab over train+dev captions, threshold 4; serialize_vocab).\n'
                'upstream: https://github.com/kuanghuei/SCAN commit %s\n'
                % (SEED, N_TEST, K_REGIONS, IMG_DIM, commit))
    os.chdir(cwd)
    if args.work is None:
        shutil.rmtree(work)


if __name__ == '__main__':
    logging.basicConfig(format='%(asctime)s %(message)s', level=logging.INFO)
    main()
