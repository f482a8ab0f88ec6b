#!/usr/bin/env python3
"""Reference fixtures for `itm import` made by the CHAN authors' own code.

The upstream repository (ppanzx/CHAN, CVPR 2023, built on VSE-infinity) is *not* part of this
repository and nothing of it is copied here: this script imports and runs an upstream checkout given
with ``--upstream`` on the CPU and records what that code produces:

1. the synthetic precomp data set of ``scan.py`` (imported from it: same seed, same caption
   generator, same order of the train/dev/test splits), written in the layout the CHAN loader reads
   (``<root>/f30k/precomp/{train,dev,test}_{caps.txt,ims.npy,ids.txt}``): 24 train and 20 test images,
   6 regions x 64 features, 5 captions each; the dev split has 1000 images because the upstream
   dataset fixes the length of 'dev' to 5000 captions and train.main() validates on it. The test
   split is checked to be byte-identical to ``<out>/scan_data/`` and is not written again. The
   BiGRU vocabulary ``<root>/vocab/f30k_precomp_vocab.json`` (the SCAN vocabulary files, as the
   CHAN README says) is built by the upstream ``lib/vocab.py`` itself (``build_vocab`` over the
   train+dev captions, threshold 4; ``serialize_vocab``) and checked to be byte-identical to
   ``<out>/scan_data/vocab.json``. ``<root>/vocab`` is where upstream ``evalrank`` looks
   (``dirname(data_path)/vocab``); training is given the same folder with ``--vocab_path``;
2. for the two configurations of upstream ``scripts/train.sh`` (Flickr30K, BiGRU and BERT text
   encoders; tiny sizes, one epoch = 15 steps of batch 8), ``train.main()`` of the upstream checkout:
   it builds ``opt`` with its own argument parser (``lib/arguments.py``), builds the model, trains
   with its own ``train_emb``/loss, validates on 'dev' and saves ``model_best.pth`` with its own
   ``save_checkpoint`` (torch's default zip serialization) -- the file is copied byte for byte;
3. ``lib.evaluation.evalrank(model_best.pth, data_path, split='test')`` of the upstream checkout (what
   upstream ``eval.py --dataset f30k`` calls); the similarity matrix it passes to its own ``i2t`` /
   ``t2i`` and what they return are captured.

Outputs (``--out DIR``, the fixtures/authors folder):

* ``chan_bigru/``: ``model_best.pth``, ``sims.npy`` (float64 [N, 5N], exactly as captured; upstream
  computes it in float32 and stores it in a float64 array), ``metrics.json``, ``SOURCE.txt``;
* ``chan_bert/``: the same, and ``bert/`` (config.json, vocab.txt, model.safetensors,
  tokenizer_config.json, special_tokens_map.json, and tokenizer.json, the fast tokenizer of the
  same vocab.txt that itm reads): the small random BERT that upstream's
  ``from_pretrained`` calls are redirected to. Upstream hard-codes ``Linear(768, .)``, so it is 768
  wide; it has no transformer layer (``num_hidden_layers=0``: one 768-wide layer would add ~9.6 MB,
  its attention alone being 4 x 768 x 768 floats),
  ``max_position_embeddings=64``, a wordpiece vocabulary of the specials ([PAD] = 0: upstream masks
  with ``ids != 0``), the basic-tokenised train+dev words and the single-character pieces of three
  OOV words (the other OOV words become [UNK]); its pooler weight and bias are set to zero before
  it is saved (the pooler is unused by every forward, so training leaves it at zero and it
  compresses). The folder is made in the scratch folder and copied, with the checkpoint, only if
  the checkpoint stays under ``MAX_GZ_BYTES`` after gzip -9.

Upstream imports ``tkinter`` (train.py, ``from tkinter.messagebox import NO``) and ``turtle``
(lib/modules.py), both unused: the Python running this needs its tkinter module (no display).

Run-time compatibility shims (monkeypatches; the upstream files are not modified, and
``sys.dont_write_bytecode`` keeps Python from writing ``__pycache__`` into the checkout):

* ``Tensor.cuda`` / ``Module.cuda`` -> identity. ``Model.forward_emb`` calls
  ``torch.Tensor(lengths).cuda()`` unconditionally and ``compute_sims`` calls ``.float().cuda()`` on
  every shard; there is no GPU here.
* ``lib.model`` sees ``torch.cuda.is_available() == True`` (its module global ``torch`` is replaced
  by a proxy of torch whose ``cuda.is_available`` returns True; everything else is torch itself;
  other modules see the real answer, False). ``Model.forward_sim`` converts the image- and
  caption-length lists to tensors only in its GPU branch; on the CPU branch ``VHACoding`` receives
  Python lists and fails on ``lens.max()``. The other effects of the GPU branches are ``.cuda()``
  calls (identity, above) and ``cudnn.benchmark = True`` (no effect on the CPU).
* ``@autocast()`` (``torch.cuda.amp``) on ``Model.forward_emb`` / ``train_emb`` is left as it is: without
  CUDA torch disables it (warning "CUDA is not available. Disabling") -- the encoders run in float32
  here; on the authors' GPUs they ran under float16 autocast.
* ``torch.load`` defaults to ``weights_only=False, map_location='cpu'``. ``evalrank`` calls
  ``torch.load(model_path)``; torch >= 2.6 defaults to ``weights_only=True``, which refuses the
  pickled ``argparse.Namespace`` stored as ``opt``.
* ``torch.utils.data.DataLoader`` -> a subclass forcing ``num_workers=0`` (``--workers=16`` and
  evalrank's ``opt.workers = 16`` would fork worker processes on a 2-core machine, and the
  augmentation's ``random``/``np.random`` calls would then depend on worker seeding), and, since
  the loaders are created with ``pin_memory=True``, applying to each collated batch the container
  conversion that pinning performs on a GPU machine (tuples become lists; tensors are left
  unpinned). Without it ``encode_data`` does ``img_embs[ids] = ...`` with ``ids`` the tuple from
  ``zip(*data)``, which numpy reads as multi-axis indexing and fails.
* ``nltk.word_tokenize`` / ``nltk.tokenize.word_tokenize`` -> ``word_tokenize(text,
  preserve_line=True)`` (BiGRU tokenisation and ``build_vocab``): NLTK's punkt data cannot be
  downloaded here; every caption is one sentence, for which punkt's sentence split is the identity.
* stub module ``torchtext`` (``torchtext.vocab.GloVe`` / ``FastText``): imported by
  ``lib/encoders.py``; torchtext does not exist for torch 2.9 and GloVe cannot be downloaded. With
  ``--wemb_type=glove`` (BiGRU script) training initialises the rows of the word embedding whose word
  (or the word without '-', '.', "'") is in GloVe from GloVe. The stub's ``GloVe`` has a fixed word
  list (the generator's words, with 't-shirt' and "'s" only as 'tshirt' and 's', and without
  'smiling', "n't" and the specials, so that hits, hits through that rewriting and misses all occur)
  and seeded random vectors (``np.random.default_rng(GLOVE_SEED)``, N(0, 0.4^2), not drawn from
  torch's RNG) of width ``WORD_DIM`` (upstream asserts ``vectors.shape[1] == word_dim``; real GloVe
  840B is 300 wide, the default ``--word_dim``). Only the embedding's initial values depend on it;
  ``evalrank`` sets ``opt.word2idx = None`` and never loads GloVe.
* stub modules ``tensorboard_logger`` (no-op ``configure``/``log_value``; imported by train.py, only
  logs), and ``imageio``/``cv2`` if not installed (imported by the data modules, used only by the
  raw-image path, not by the precomp path run here).
* ``BertModel.from_pretrained`` / ``BertTokenizer.from_pretrained``: upstream loads both from
  ``~/.cache/torch/hub/transformers`` (``pretrained_model_name_or_path=`` and, for the model,
  ``config=`` that folder); every argument equal to that path is replaced by the random BERT folder
  (``<work>/bert``, copied to ``chan_bert/bert``; no network, no home-directory cache).
* ``lib.evaluation.i2t`` / ``t2i`` are wrapped (train.py imported its own references for validation,
  which are not) to record their arguments and results; they are called unchanged.

Everything is seeded: upstream ``train.main()`` calls its own ``set_seeds(2022)`` (numpy, torch);
Python's ``random`` (caption token dropping with ``--drop``) is seeded here before each
configuration; run with ``torch.set_num_threads(1)``.

Usage:
  python scripts/authors/chan.py --upstream /work/upstream/chan \\
      --out crates/itm-train/tests/fixtures/authors --commit <hash>
"""

import argparse
import collections.abc
import gzip
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import types

sys.dont_write_bytecode = True  # do not write __pycache__ into the upstream checkout

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scan as scan_gen  # noqa: E402  the shared synthetic data set (scan_data/)

SEED = scan_gen.SEED
N_TRAIN, N_DEV, N_TEST = scan_gen.N_TRAIN, scan_gen.N_DEV, scan_gen.N_TEST
K_REGIONS, IMG_DIM = scan_gen.K_REGIONS, scan_gen.IMG_DIM
EMBED_SIZE, WORD_DIM, BATCH_SIZE = 32, 16, 8
DATA_NAME = 'f30k'  # vocabulary file 'f30k_precomp_vocab.json'; F30K evaluation uses split 'test'
GLOVE_SEED = 1
MAX_GZ_BYTES = 1 << 20  # a checkpoint larger than this after gzip -9 is not written
word_tokenize = scan_gen.word_tokenize
OOV = scan_gen.OOV

# upstream scripts/train.sh, Flickr30K: the options of each training command except the paths,
# --num_epochs, --workers (see the DataLoader shim), --embed_size and --batch_size (tiny sizes here)
COMMON = ['--num_epochs=1', '--lr_update=15', '--learning_rate=5e-4', '--workers=16', '--log_step=200',
          '--vse_mean_warmup_epochs=1', '--coding_type=VHACoding', '--alpha=0.1', '--belta=0.1',
          '--drop', '--criterion=ContrastiveLoss', '--margin=0.05']
CONFIGS = [
    ('chan_bigru', ['--text_enc_type=bigru', '--precomp_enc_type=selfattention',
                    '--pooling_type=LSEPooling', '--wemb_type=glove', '--word_dim=%d' % WORD_DIM]),
    ('chan_bert', ['--text_enc_type=bert', '--pooling_type=MeanPooling']),
]


# ---------------------------------------------------------------- data
def build_data(work, rng):
    """scan.py's splits (same rng, same order), in CHAN's <root>/f30k/precomp layout."""
    data_path = os.path.join(work, 'data', DATA_NAME)
    precomp = os.path.join(data_path, 'precomp')
    os.makedirs(precomp)
    splits = {'train': scan_gen.make_split(rng, N_TRAIN, 0.0),
              'dev': scan_gen.make_split(rng, N_DEV, 0.0),
              'test': scan_gen.make_split(rng, N_TEST, 0.3)}
    for name, (caps, ims) in splits.items():
        scan_gen.write_split(precomp, name, caps, ims)
    return data_path, splits


def same_bytes(a, b):
    with open(a, 'rb') as fa, open(b, 'rb') as fb:
        return fa.read() == fb.read()


def check_shared(shared, precomp, vocab_file):
    for f in ('test_ims.npy', 'test_caps.txt', 'test_ids.txt'):
        if not same_bytes(os.path.join(precomp, f), os.path.join(shared, f)):
            sys.exit('%s differs from the generated test split (regenerate with scan.py?)' % f)
    if not same_bytes(vocab_file, os.path.join(shared, 'vocab.json')):
        sys.exit('scan_data/vocab.json differs from the vocabulary built by upstream lib/vocab.py')


# ---------------------------------------------------------------- random BERT
BERT_SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']


def build_bert_folder(path, caps):
    from transformers import BertConfig, BertModel, BertTokenizer
    from transformers.models.bert.tokenization_bert import BasicTokenizer
    bt = BasicTokenizer(do_lower_case=True)
    words = []
    for c in caps:
        for t in bt.tokenize(c):
            if t not in words:
                words.append(t)
    # The first three OOV words can be spelt with single-character pieces (greedy longest-match
    # wordpiece splits them into several ids); the others have no piece and become [UNK].
    pieces = []
    for w in OOV[:3]:
        for p in [w[0]] + ['##' + ch for ch in w[1:]]:
            if p not in pieces and p not in words:
                pieces.append(p)
    vocab = BERT_SPECIALS + words + pieces
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    with open(os.path.join(path, 'vocab.txt'), 'w') as f:
        f.write(''.join(w + '\n' for w in vocab))
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=768, num_hidden_layers=0,
                     num_attention_heads=12, intermediate_size=32,
                     max_position_embeddings=64, type_vocab_size=2)
    torch.manual_seed(SEED)
    model = BertModel(cfg)
    with torch.no_grad():  # unused by every forward; zeros compress
        model.pooler.dense.weight.zero_()
        model.pooler.dense.bias.zero_()
    model.save_pretrained(path, safe_serialization=True)
    BertTokenizer(os.path.join(path, 'vocab.txt'), do_lower_case=True).save_pretrained(path)
    # itm reads a BERT folder's tokenizer.json (the Hugging Face "fast" tokenizer of the same
    # vocab.txt, as bert-base-uncased ships it); the authors' code never reads it.
    from transformers import BertTokenizerFast
    BertTokenizerFast(os.path.join(path, 'vocab.txt'), do_lower_case=True).backend_tokenizer.save(
        os.path.join(path, 'tokenizer.json'))
    return path


# ---------------------------------------------------------------- shims
class _Recorder:
    calls = []
    glove_messages = []


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


def glove_words():
    """The stub GloVe's word list (see the module docstring)."""
    text = ' '.join(scan_gen.SUBJECTS + scan_gen.ADJS + scan_gen.VERBS + scan_gen.PREPS +
                    scan_gen.PLACES + scan_gen.EXTRAS + scan_gen.UPPER) + ' , .'
    words = sorted(set(word_tokenize(text.lower())))
    drop = {'t-shirt', "'s", 'smiling', "n't"}
    return [w for w in words if w not in drop] + ['tshirt', 's']


class _StubGloVe:
    def __init__(self, name='840B', dim=300, cache=None, **kwargs):
        self.itos = glove_words()
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        rng = np.random.default_rng(GLOVE_SEED)
        self.vectors = torch.from_numpy(
            (0.4 * rng.standard_normal((len(self.itos), WORD_DIM))).astype(np.float32))
        self.dim = WORD_DIM


class _TorchSeenWithCuda(types.ModuleType):
    """torch, except that cuda.is_available() answers True (for lib.model only)."""

    def __init__(self):
        super().__init__('torch')
        cuda = types.ModuleType('torch.cuda')
        cuda.__getattr__ = lambda name: getattr(torch.cuda, name)
        cuda.is_available = lambda: True
        self.cuda = cuda

    def __getattr__(self, name):
        return getattr(torch, name)


def install_shims(upstream, bert_dir):
    # before the cv2/imageio stubs exist: transformers probes them with find_spec at import
    import transformers
    import transformers.models.bert.modeling_bert  # noqa: F401

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

    tt = _stub('torchtext')
    tt.vocab = _stub('torchtext.vocab', GloVe=_StubGloVe, FastText=_StubGloVe)
    _stub('tensorboard_logger', configure=lambda *a, **k: None, log_value=lambda *a, **k: None)
    for name in ('imageio', 'cv2'):
        try:
            __import__(name)
        except ImportError:
            _stub(name, imread=None, resize=None)

    hub = os.path.expanduser('~/.cache/torch/hub/transformers')
    for cls in (transformers.BertModel, transformers.BertTokenizer):
        orig = cls.from_pretrained.__func__

        def fp(c, *a, _orig=orig, **k):
            a = tuple(bert_dir if x == hub else x for x in a)
            k = {n: (bert_dir if v == hub else v) for n, v in k.items()}
            assert hub not in a and hub not in k.values()
            if not os.path.exists(os.path.join(bert_dir, 'config.json')):
                raise RuntimeError('the random BERT folder is not written yet')
            return _orig(c, *a, **k)
        cls.from_pretrained = classmethod(fp)

    sys.path.insert(0, upstream)
    import lib.model
    lib.model.torch = _TorchSeenWithCuda()
    import lib.evaluation  # noqa: F401
    import lib.vocab  # noqa: F401


def record_rankers():
    import lib.evaluation as ev
    for name in ('i2t', 't2i'):
        orig = getattr(ev, name)

        def wrapped(npts, sims, *a, _orig=orig, _name=name, **k):
            out = _orig(npts, sims, *a, **k)
            _Recorder.calls.append((_name, npts, np.array(sims, copy=True), out))
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


def gz_size(path):
    with open(path, 'rb') as f:
        return len(gzip.compress(f.read(), compresslevel=9))


def evaluate(ckpt, data_path):
    """Upstream evalrank on 'test'; returns (npts, sims, i2t result, t2i result)."""
    import lib.evaluation as ev
    _Recorder.calls = []
    ev.evalrank(ckpt, data_path=data_path, split='test')
    (n1, npts, sims, (r, rk)), (n2, _, sims2, (ri, rki)) = _Recorder.calls
    assert (n1, n2) == ('i2t', 't2i') and np.array_equal(sims, sims2)
    assert sims.dtype == np.float64 and sims.shape == (npts, 5 * npts), (sims.dtype, sims.shape)
    # computed in float32 by upstream's compute_sims (shards cast with .float())
    assert np.array_equal(sims.astype(np.float32).astype(np.float64), sims)
    return npts, sims, (r, rk), (ri, rki)


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--upstream', required=True, help='checkout of ppanzx/CHAN')
    ap.add_argument('--out', required=True,
                    help='fixtures/authors folder (chan_* folders go inside; scan_data/ must exist)')
    ap.add_argument('--commit', default=None, help='upstream commit (if the checkout has no .git)')
    ap.add_argument('--work', default=None,
                    help='scratch folder, kept (default: <tmp>/itm_authors_chan, removed after)')
    ap.add_argument('--only', choices=[c for c, _ in CONFIGS], action='append',
                    help='run only this configuration (repeatable)')
    args = ap.parse_args()

    upstream = os.path.abspath(args.upstream)
    if not all(os.path.exists(os.path.join(upstream, f)) for f in
               ('train.py', 'lib/coding.py', 'lib/encoders.py', 'lib/evaluation.py', 'lib/vocab.py')):
        sys.exit('%s does not look like a checkout of ppanzx/CHAN' % upstream)
    commit = git_commit(upstream, args.commit)
    out = os.path.abspath(args.out)
    shared = os.path.join(out, 'scan_data')
    if not os.path.exists(os.path.join(shared, 'vocab.json')):
        sys.exit('%s missing: run scripts/authors/scan.py first (the shared test split)' % shared)
    # A fixed scratch path by default: the paths end up in the pickled `opt`, so a fixed path makes
    # model_best.pth byte-reproducible.
    work = os.path.abspath(args.work or os.path.join(tempfile.gettempdir(), 'itm_authors_chan'))
    marker = os.path.join(work, '.itm_authors_scratch')
    if os.path.exists(work):
        if not os.path.exists(marker):
            sys.exit('refusing to clear %s: not a scratch folder of this script' % work)
        shutil.rmtree(work)
    os.makedirs(work)
    open(marker, 'w').close()

    torch.set_num_threads(1)
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)

    data_path, splits = build_data(work, rng)
    bert_dir = os.path.join(work, 'bert')  # copied to <out>/chan_bert/bert once the checkpoint is small
    install_shims(upstream, bert_dir)
    import train as up_train  # keeps its own references to i2t/t2i (validation): not recorded
    record_rankers()

    # ---- vocabulary: upstream lib/vocab.py (build_vocab over train+dev, threshold 4, serialize_vocab)
    up_vocab = sys.modules['lib.vocab']
    src = os.path.join(work, 'vocab_src')
    os.makedirs(os.path.join(src, 'f30k_precomp'))
    for s in ('train', 'dev'):
        shutil.copyfile(os.path.join(data_path, 'precomp', s + '_caps.txt'),
                        os.path.join(src, 'f30k_precomp', s + '_caps.txt'))
    vocab = up_vocab.build_vocab(src, 'f30k_precomp', caption_file=up_vocab.annotations, threshold=4)
    vocab_dir = os.path.join(os.path.dirname(data_path), 'vocab')  # where evalrank looks
    os.makedirs(vocab_dir)
    vocab_file = os.path.join(vocab_dir, 'f30k_precomp_vocab.json')
    up_vocab.serialize_vocab(vocab, vocab_file)
    check_shared(shared, os.path.join(data_path, 'precomp'), vocab_file)

    from importlib.metadata import version

    for name, published in CONFIGS:
        if args.only and name not in args.only:
            continue
        cfg_out = os.path.join(out, name)
        if name == 'chan_bert':
            build_bert_folder(bert_dir, splits['train'][0] + splits['dev'][0])

        # ---- training: upstream train.main() with the published arguments, tiny sizes, 1 epoch
        run_dir = os.path.join(work, 'runs', name)
        argv = ['train.py', '--data_path=' + data_path, '--data_name=' + DATA_NAME,
                '--vocab_path=' + vocab_dir, '--logger_name=' + run_dir + '/log',
                '--model_name=' + run_dir] + published + COMMON + \
               ['--embed_size=%d' % EMBED_SIZE, '--img_dim=%d' % IMG_DIM, '--batch_size=%d' % BATCH_SIZE]
        random.seed(SEED)
        np.random.seed(SEED)
        torch.manual_seed(SEED)
        saved_argv, sys.argv = sys.argv, argv
        try:
            up_train.main()
        finally:
            sys.argv = saved_argv
        best = os.path.join(run_dir, 'model_best.pth')
        if not os.path.exists(best):
            sys.exit('%s: upstream did not write model_best.pth (dev rsum 0?)' % name)
        size, gz = os.path.getsize(best), gz_size(best)
        print('checkpoint', name, 'bytes', size, 'gzip -9', gz)
        if gz > MAX_GZ_BYTES:
            sys.exit('%s: model_best.pth is %d bytes after gzip -9 (> %d): not written'
                     % (name, gz, MAX_GZ_BYTES))
        os.makedirs(cfg_out, exist_ok=True)
        ckpt = os.path.join(cfg_out, 'model_best.pth')
        shutil.copyfile(best, ckpt)
        if name == 'chan_bert':
            bert_out = os.path.join(cfg_out, 'bert')
            if os.path.exists(bert_out):
                shutil.rmtree(bert_out)
            shutil.copytree(bert_dir, bert_out)
            for f in os.listdir(bert_out):
                os.chmod(os.path.join(bert_out, f), 0o644)
            print('bert/model.safetensors bytes', os.path.getsize(os.path.join(bert_out, 'model.safetensors')),
                  'gzip -9', gz_size(os.path.join(bert_out, 'model.safetensors')))

        # ---- evaluation: the upstream evalrank on the test split
        npts, sims, (r, rk), (ri, rki) = evaluate(ckpt, data_path)
        np.save(os.path.join(cfg_out, 'sims.npy'), np.ascontiguousarray(sims))
        keys = ['r1', 'r5', 'r10', 'medr', 'meanr']
        metrics = {'npts': int(npts),
                   'i2t': {k: float(v) for k, v in zip(keys, r)},
                   't2i': {k: float(v) for k, v in zip(keys, ri)},
                   'rsum': float(r[0] + r[1] + r[2] + ri[0] + ri[1] + ri[2]),
                   'i2t_ranks': [int(x) for x in rk[0]], 'i2t_top1': [int(x) for x in rk[1]],
                   't2i_ranks': [int(x) for x in rki[0]], 't2i_top1': [int(x) for x in rki[1]],
                   'ties': scan_gen.tie_report(sims)}
        with open(os.path.join(cfg_out, 'metrics.json'), 'w') as f:
            json.dump(metrics, f, indent=1)

        bert_note = ''
        if name == 'chan_bert':
            bert_note = ('bert/: the random BERT (768 wide, 0 layers, 64 positions, pooler zeroed) that '
                         'from_pretrained(~/.cache/torch/hub/transformers) is redirected to\n')
        with open(os.path.join(cfg_out, 'SOURCE.txt'), 'w') as f:
            f.write('Generated by scripts/authors/chan.py running the authors\' code (not copied here).\n'
                    'upstream: https://github.com/ppanzx/CHAN commit %s (run-time shims listed in the script)\n'
                    'torch %s, numpy %s, transformers %s, nltk %s, python %s\n'
                    'command: python scripts/authors/chan.py --upstream <checkout> --out <fixtures/authors> '
                    '--commit %s\n'
                    'upstream training argv: %s\n'
                    'evaluation: lib.evaluation.evalrank(model_best.pth, data_path, split=\'test\')\n'
                    'test split: ../scan_data/ (test_ims.npy, test_caps.txt, test_ids.txt)%s\n%s'
                    % (commit, torch.__version__, np.__version__, version('transformers'), version('nltk'),
                       sys.version.split()[0], commit,
                       ' '.join(a.replace(work, '<work>') for a in argv[1:]),
                       '; vocabulary: ../scan_data/vocab.json (upstream appends <mask> after loading)'
                       if name == 'chan_bigru' else '', bert_note))
        print('metrics', name, json.dumps({k: metrics[k] for k in ('i2t', 't2i', 'rsum', 'ties')}))

    if args.work is None:
        shutil.rmtree(work)


if __name__ == '__main__':
    logging.basicConfig(format='%(asctime)s %(message)s', level=logging.INFO)
    main()
