#!/usr/bin/env python3
"""Reference fixtures for `itm import` made by the VSE-infinity authors' own code.

The upstream repository (woodfrog/vse_infty) is *not* part of this repository and nothing of it is
copied here: this script imports and runs an upstream checkout given with ``--upstream`` (branch
``bigru`` for the BiGRU text encoder, ``master`` for BERT) on the CPU and records what that code
produces:

1. a small seeded synthetic precomp data set in the layout the upstream loader reads
   (``<data_path>/precomp/{train,dev,test}_{caps.txt,ims.npy}``; the vocabulary JSON
   ``<vocab_path>/f30k_precomp_vocab.json`` with ``word2idx``/``idx2word``/``idx``, bigru only):
   24 train and 20 test images, 6 regions x 64 features, 5 captions each; the dev split has 1000
   images because the upstream dataset fixes the length of 'dev' to 5000 captions and train.main()
   validates on it;
2. ``train.main()`` of the upstream checkout, run with its published region training command
   (``train_region.sh``) with tiny sizes and one epoch: it builds ``opt`` with its own argument
   parser, builds the model, trains with its own ``train_emb``/loss, validates on ``dev`` and saves
   ``model_best.pth`` with its own ``save_checkpoint`` -- the file is copied byte for byte;
3. ``lib.evaluation.evalrank(model_best.pth, data_path, 'test')`` of the upstream checkout; the
   similarity matrix it passes to its own ``i2t``/``t2i`` and what they return are captured.

Outputs (``--out DIR``): ``model_best.pth``, ``sims.npy`` (float64 [N, 5N], exactly as captured),
``metrics.json``, our copy of the test split in the SCAN precomp layout (``test_ims.npy``,
``test_caps.txt``, ``test_ids.txt``; with ``--test-split-from DIR`` they are instead checked to be
byte-identical to DIR's and not written -- the generator does not depend on the branch),
``vocab.json`` (bigru: the JSON given to upstream, without the ``<mask>`` upstream appends after
loading) or ``bert/`` (master: config.json, model.safetensors, vocab.txt, tokenizer_config.json of
the random BERT that ``from_pretrained`` is redirected to), ``SOURCE.txt``.

Run-time compatibility shims (monkeypatches; the upstream files are not modified):

* ``Tensor.cuda`` / ``Module.cuda`` -> identity. ``VSEModel.forward_emb`` calls
  ``torch.Tensor(lengths).cuda()`` unconditionally; there is no GPU here.
* ``torch.load`` defaults to ``weights_only=False, map_location='cpu'``. ``evalrank`` calls
  ``torch.load(model_path)``; torch >= 2.6 defaults to ``weights_only=True``, which refuses the
  pickled ``argparse.Namespace`` stored as ``opt``.
* ``torch.utils.data.DataLoader`` -> a subclass forcing ``num_workers=0`` (``--workers 10`` and
  evalrank's ``opt.workers = 5`` would fork worker processes on a 2-core machine, and the data
  augmentation RNG calls would then depend on worker seeding), and, for loaders created with
  ``pin_memory=True``, applying to each collated batch the container conversion that
  ``torch.utils.data._utils.pin_memory.pin_memory`` performs on a GPU machine (tuples become lists;
  tensors are left as they are instead of being pinned). Without it ``encode_data`` does
  ``img_embs[ids] = ...`` with ``ids`` the tuple from ``zip(*data)``, which numpy reads as
  multi-axis indexing and fails; on the authors' GPU machines pinning turned it into a list.
* ``nltk.word_tokenize`` / ``nltk.tokenize.word_tokenize`` -> ``word_tokenize(text,
  preserve_line=True)`` (bigru tokenisation): NLTK's punkt data cannot be downloaded here; every
  caption is one sentence, for which punkt's sentence split is the identity.
* stub modules ``tensorboard_logger`` (no-op ``configure``/``log_value``; imported by train.py, only
  logs), and ``imageio``/``cv2`` if not installed (imported by the data module, used only by the
  raw-image loader, not by the precomp path run here).
* bigru ``evalrank`` hard-codes ``opt.vocab_path = '/tmp/data/vocab'``: its module-level
  ``deserialize_vocab`` is wrapped to read the same file name from our vocabulary folder instead.
* master: ``BertModel.from_pretrained`` / ``BertTokenizer.from_pretrained`` (called with
  'bert-base-uncased') are redirected to a small random BERT folder written by this script (no
  network); ``Linear(768, .)`` is hard-coded upstream, so the random BERT is 768 wide. To keep the
  fixture small it has no encoder layers by default (``--bert-layers``; their keys are a stock
  Hugging Face BertModel's, covered by itm's Hugging Face BERT loader tests against transformers),
  64 positions, a vocabulary of the train words, and a zero pooler (see ``build_bert_folder``).
* ``lib.evaluation.i2t`` / ``t2i`` are wrapped (after training) to record their arguments and
  results; they are called unchanged.

Everything is seeded (random, numpy, torch) and run with ``torch.set_num_threads(1)``.

Usage:
  python scripts/authors/vse_infty.py --upstream /work/upstream/vse_infty_bigru --branch bigru \
      --out crates/itm-train/tests/fixtures/authors/vse_infty_bigru
  python scripts/authors/vse_infty.py --upstream /work/upstream/vse_infty_master --branch master \
      --out crates/itm-train/tests/fixtures/authors/vse_infty_bert \
      --test-split-from crates/itm-train/tests/fixtures/authors/vse_infty_bigru
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
DATA_NAME = 'f30k'  # vocab file name 'f30k_precomp_vocab.json'; F30K evaluation uses split 'test'

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
# Words never used in the training captions: they are absent from the vocabulary (-> <unk>).
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


def make_split(rng, n_images, oov_rate, seen=None):
    """n_images x 5 captions, unique after tokenisation (duplicates would tie in i2t)."""
    caps, keys = [], set() if seen is None else seen
    while len(caps) < 5 * n_images:
        c = make_caption(rng, oov=rng.random() < oov_rate)
        key = tuple(word_tokenize(c.lower()))
        if key in keys:
            continue
        keys.add(key)
        caps.append(c)
    # BUTD-like non-negative region features
    ims = np.abs(rng.standard_normal((n_images, K_REGIONS, IMG_DIM))).astype(np.float32)
    return caps, ims


def build_data(work, rng):
    data_path = os.path.join(work, 'data', DATA_NAME)
    precomp = os.path.join(data_path, 'precomp')
    os.makedirs(precomp)
    splits = {'train': make_split(rng, N_TRAIN, 0.0),
              'dev': make_split(rng, N_DEV, 0.0),
              'test': make_split(rng, N_TEST, 0.3)}
    for name, (caps, ims) in splits.items():
        with open(os.path.join(precomp, name + '_caps.txt'), 'w') as f:
            f.write(''.join(c + '\n' for c in caps))
        np.save(os.path.join(precomp, name + '_ims.npy'), ims)
        with open(os.path.join(precomp, name + '_ids.txt'), 'w') as f:
            f.write(''.join('%d\n' % (i // 5) for i in range(len(caps))))
    return data_path, splits


def build_vocab_json(train_caps):
    """Vocabulary in the JSON format of upstream lib/vocab.py, from the train captions only."""
    words = []
    for c in train_caps:
        for t in word_tokenize(c.lower()):
            if t not in words:
                words.append(t)
    idx2word = ['<pad>', '<start>', '<end>', '<unk>'] + words
    return {'word2idx': {w: i for i, w in enumerate(idx2word)},
            'idx2word': {str(i): w for i, w in enumerate(idx2word)},
            'idx': len(idx2word)}


# ---------------------------------------------------------------- random BERT (master)
BERT_SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
BERT_MAX_POSITIONS = 64


def bert_words(caps):
    """Distinct basic-tokenised (lower-cased, punctuation split) words of caps, in order of appearance."""
    from transformers.models.bert.tokenization_bert import BasicTokenizer
    bt = BasicTokenizer(do_lower_case=True)
    words = []
    for c in caps:
        for t in bt.tokenize(c):
            if t not in words:
                words.append(t)
    return words


def build_bert_folder(path, train_caps, layers, heads, intermediate):
    """A small random BertModel (768 wide: upstream hard-codes Linear(768, .)) + wordpiece vocab.

    Kept small enough to commit: ``num_hidden_layers`` = ``--bert-layers`` (default 0: the forward is
    then embeddings -> LayerNorm, and the text encoder is embeddings -> Linear -> GPO). The encoder
    layers' keys (``bert.encoder.layer.<i>.*``) and their forward are those of a stock Hugging Face
    BertModel, i.e. exactly what itm's Hugging Face BERT loader reads; that loader is tested against
    transformers elsewhere, so the fixture does not need to carry layers (use ``--bert-layers N`` to
    make one that does). ``max_position_embeddings`` = 64 (asserted to cover every caption).
    The pooler (``bert.pooler.dense.*``, 768x768) is set to **zero** before saving: the upstream
    forward uses only ``bert(...)[0]``, so the pooler gets no gradient and stays zero in
    ``model_best.pth`` too (zeros compress well in git's zlib-compressed objects).

    The vocabulary holds the specials ([PAD] must be 0: upstream masks with ids != 0; [MASK] is used by
    the training-time token masking), the basic-tokenised train words and a few '##' pieces, so OOV test
    words are split or become [UNK].
    """
    from transformers import BertConfig, BertModel, BertTokenizer
    words = bert_words(train_caps)
    # The first three OOV words can be spelt with single-character pieces (greedy longest-match
    # wordpiece splits them into several ids); the others have no piece and become [UNK].
    pieces = []
    for w in OOV[:3]:
        for p in [w[0]] + ['##' + c for c in w[1:]]:
            if p not in pieces and p not in words:
                pieces.append(p)
    vocab = BERT_SPECIALS + words + pieces
    os.makedirs(path)
    with open(os.path.join(path, 'vocab.txt'), 'w') as f:
        f.write(''.join(w + '\n' for w in vocab))
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=768, num_hidden_layers=layers,
                     num_attention_heads=heads, intermediate_size=intermediate,
                     max_position_embeddings=BERT_MAX_POSITIONS, type_vocab_size=2)
    torch.manual_seed(SEED)
    model = BertModel(cfg)
    with torch.no_grad():
        model.pooler.dense.weight.zero_()
        model.pooler.dense.bias.zero_()
    model.save_pretrained(path, safe_serialization=True)
    os.chmod(os.path.join(path, 'model.safetensors'), 0o644)  # written 0600 (temp file)
    # BertTokenizer.from_pretrained(path) needs only vocab.txt; tokenizer_config.json records
    # do_lower_case (the default) explicitly. special_tokens_map.json is redundant (default specials).
    BertTokenizer(os.path.join(path, 'vocab.txt'), do_lower_case=True).save_pretrained(path)
    # itm reads a BERT folder's tokenizer.json (the Hugging Face "fast" tokenizer of the same
    # vocab.txt, as bert-base-uncased ships it); the authors' code never reads it.
    from transformers import BertTokenizerFast
    BertTokenizerFast(os.path.join(path, 'vocab.txt'), do_lower_case=True).backend_tokenizer.save(
        os.path.join(path, 'tokenizer.json'))
    if os.path.exists(os.path.join(path, 'special_tokens_map.json')):
        os.remove(os.path.join(path, 'special_tokens_map.json'))
    return path


def check_bert_lengths(bert_dir, splits):
    """Every caption of every split, as [CLS] + wordpieces + [SEP], fits max_position_embeddings."""
    from transformers import BertTokenizer
    tok = BertTokenizer.from_pretrained(bert_dir)
    longest = max(2 + sum(len(tok.wordpiece_tokenizer.tokenize(t)) for t in tok.basic_tokenizer.tokenize(c))
                  for caps, _ in splits.values() for c in caps)
    assert longest <= BERT_MAX_POSITIONS, longest
    return longest


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


def install_shims(upstream, branch, vocab_dir=None, bert_dir=None):
    if bert_dir is not None:
        # before the cv2/imageio stubs exist: transformers probes them with find_spec at import
        import transformers  # noqa: F401
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

    tb = types.ModuleType('tensorboard_logger')
    tb.configure = lambda *a, **k: None
    tb.log_value = lambda *a, **k: None
    sys.modules['tensorboard_logger'] = tb
    for name in ('imageio', 'cv2'):
        try:
            __import__(name)
        except ImportError:
            m = types.ModuleType(name)
            m.imread = m.resize = None
            sys.modules[name] = m

    if bert_dir is not None:
        import transformers
        for cls in (transformers.BertModel, transformers.BertTokenizer):
            orig = cls.from_pretrained.__func__

            def fp(c, name, *a, _orig=orig, **k):
                assert name == 'bert-base-uncased', name
                return _orig(c, bert_dir, *a, **k)
            cls.from_pretrained = classmethod(fp)

    sys.path.insert(0, upstream)
    import lib.evaluation as ev
    if branch == 'bigru':
        orig_deser = ev.deserialize_vocab

        def deser(src):
            if os.path.dirname(src) == '/tmp/data/vocab':
                src = os.path.join(vocab_dir, os.path.basename(src))
            return orig_deser(src)
        ev.deserialize_vocab = deser


def record_rankers():
    import lib.evaluation as ev
    for name in ('i2t', 't2i'):
        orig = getattr(ev, name)

        def wrapped(npts, sims, *a, _orig=orig, _name=name, **k):
            out = _orig(npts, sims, *a, **k)
            _Recorder.calls.append((_name, npts, np.array(sims, copy=True), out))
            return out
        setattr(ev, name, wrapped)


# ---------------------------------------------------------------- main
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--upstream', required=True, help='checkout of woodfrog/vse_infty')
    ap.add_argument('--branch', required=True, choices=['bigru', 'master'])
    ap.add_argument('--out', required=True)
    ap.add_argument('--commit', default=None, help='upstream commit (if the checkout has no .git)')
    ap.add_argument('--work', default=None,
                    help='scratch folder, kept (default: <tmp>/itm_authors_vse_infty_<branch>, removed after)')
    ap.add_argument('--bert-layers', type=int, default=0,
                    help='master: encoder layers of the random BERT (default 0; see build_bert_folder)')
    ap.add_argument('--bert-heads', type=int, default=2)
    ap.add_argument('--bert-intermediate', type=int, default=32)
    ap.add_argument('--test-split-from', default=None,
                    help='a fixture folder already holding test_{ims.npy,caps.txt,ids.txt}: they are checked '
                         'to be byte-identical to this run\'s test split and not written again')
    args = ap.parse_args()

    upstream = os.path.abspath(args.upstream)
    # bigru has lib/vocab.py (word vocabulary); master (BERT) has none
    if os.path.exists(os.path.join(upstream, 'lib', 'vocab.py')) != (args.branch == 'bigru'):
        sys.exit('%s does not look like a checkout of branch %s' % (upstream, args.branch))
    out = os.path.abspath(args.out)
    # A fixed scratch path by default: the paths end up in the pickled `opt`, so a fixed path makes
    # model_best.pth byte-reproducible.
    work = os.path.abspath(args.work or os.path.join(tempfile.gettempdir(), 'itm_authors_vse_infty_' + args.branch))
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
    train_caps = splits['train'][0]
    vocab_dir = bert_dir = None
    if args.branch == 'bigru':
        vocab_dir = os.path.join(work, 'vocab')
        os.makedirs(vocab_dir)
        vocab_json = build_vocab_json(train_caps)
        for p in (os.path.join(vocab_dir, DATA_NAME + '_precomp_vocab.json'),
                  os.path.join(out, 'vocab.json')):
            with open(p, 'w') as f:
                json.dump(vocab_json, f)
    else:
        bert_dir = os.path.join(out, 'bert')
        if os.path.exists(bert_dir):
            shutil.rmtree(bert_dir)
        build_bert_folder(bert_dir, train_caps, args.bert_layers, args.bert_heads,
                          args.bert_intermediate)
        print('longest caption in wordpieces incl. [CLS]/[SEP]:', check_bert_lengths(bert_dir, splits))

    install_shims(upstream, args.branch, vocab_dir, bert_dir)

    # ---- training: the upstream train.py main() with its published region command, tiny sizes
    run_dir = os.path.join(work, 'runs', 'f30k_butd_region_' + ('bigru' if args.branch == 'bigru' else 'bert'))
    argv = ['train.py', '--data_path', data_path, '--data_name', DATA_NAME]
    if args.branch == 'bigru':
        argv += ['--vocab_path', vocab_dir]
    argv += ['--logger_name', run_dir + '/log', '--model_name', run_dir,
             '--num_epochs=1', '--lr_update=15', '--learning_rate=.0005',
             '--precomp_enc_type', 'basic', '--workers', '10', '--log_step', '200',
             '--embed_size', str(EMBED_SIZE), '--vse_mean_warmup_epochs', '1',
             '--img_dim', str(IMG_DIM), '--batch_size', str(BATCH_SIZE)]
    if args.branch == 'bigru':
        argv += ['--word_dim', str(WORD_DIM)]
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    import train as upstream_train
    saved_argv, sys.argv = sys.argv, argv
    try:
        upstream_train.main()
    finally:
        sys.argv = saved_argv
    ckpt = os.path.join(out, 'model_best.pth')
    shutil.copyfile(os.path.join(run_dir, 'model_best.pth'), ckpt)

    # ---- evaluation: the upstream evalrank on the test split
    record_rankers()
    import lib.evaluation as ev
    ev.evalrank(ckpt, data_path=data_path, split='test')
    (n1, npts, sims, (r, _rk)), (n2, _, sims2, (ri, _rki)) = _Recorder.calls
    assert (n1, n2) == ('i2t', 't2i') and np.array_equal(sims, sims2)
    assert sims.dtype == np.float64 and sims.shape == (npts, 5 * npts), (sims.dtype, sims.shape)
    np.save(os.path.join(out, 'sims.npy'), np.ascontiguousarray(sims))
    keys = ['r1', 'r5', 'r10', 'medr', 'meanr']
    metrics = {'npts': int(npts),
               'i2t': {k: float(v) for k, v in zip(keys, r)},
               't2i': {k: float(v) for k, v in zip(keys, ri)},
               'rsum': float(r[0] + r[1] + r[2] + ri[0] + ri[1] + ri[2]),
               'i2t_ranks': [int(x) for x in _rk[0]], 'i2t_top1': [int(x) for x in _rk[1]],
               't2i_ranks': [int(x) for x in _rki[0]], 't2i_top1': [int(x) for x in _rki[1]],
               'ties': tie_report(sims)}
    with open(os.path.join(out, 'metrics.json'), 'w') as f:
        json.dump(metrics, f, indent=1)

    # ---- our copy of the test split (SCAN precomp layout read by itm)
    caps, ims = splits['test']
    split_dir = out if args.test_split_from is None else os.path.join(work, 'test_split')
    os.makedirs(split_dir, exist_ok=True)
    np.save(os.path.join(split_dir, 'test_ims.npy'), ims)
    with open(os.path.join(split_dir, 'test_caps.txt'), 'w') as f:
        f.write(''.join(c + '\n' for c in caps))
    with open(os.path.join(split_dir, 'test_ids.txt'), 'w') as f:
        f.write(''.join('%d\n' % (i // 5) for i in range(len(caps))))
    split_note = ''
    if args.test_split_from is not None:
        import filecmp
        for name in ('test_ims.npy', 'test_caps.txt', 'test_ids.txt'):
            theirs = os.path.join(args.test_split_from, name)
            if not filecmp.cmp(os.path.join(split_dir, name), theirs, shallow=False):
                sys.exit('%s differs from this run\'s test split' % theirs)
            if os.path.exists(os.path.join(out, name)):
                os.remove(os.path.join(out, name))
        split_note = ('test split: byte-identical to ../%s/test_{ims.npy,caps.txt,ids.txt} (same seeded '
                      'generator), not repeated here\n' % os.path.basename(os.path.normpath(args.test_split_from)))

    bert_note = ''
    if args.branch == 'master':
        bert_note = ('bert/: random BertModel, hidden 768 (upstream hard-codes Linear(768, .)), %d encoder layers, '
                     'max_position_embeddings %d, pooler weight and bias zero (unused by the forward: no '
                     'gradient, still zero in model_best.pth); the encoder layers\' keys are a stock Hugging Face '
                     'BertModel\'s, read by itm\'s Hugging Face BERT loader, which is tested against transformers '
                     'elsewhere\n' % (args.bert_layers, BERT_MAX_POSITIONS))
    from importlib.metadata import version
    with open(os.path.join(out, 'SOURCE.txt'), 'w') as f:
        f.write('Generated by scripts/authors/vse_infty.py running the authors\' code (not copied here).\n'
                'upstream: https://github.com/woodfrog/vse_infty branch %s commit %s\n'
                'torch %s, numpy %s, transformers %s, python %s\n'
                'command: python scripts/authors/vse_infty.py --upstream <checkout> --branch %s --out <this folder>%s\n'
                'upstream training argv: %s\n'
                'evaluation: lib.evaluation.evalrank(model_best.pth, data_path, split=\'test\')\n%s%s'
                % (args.branch, git_commit(upstream, args.commit), torch.__version__, np.__version__,
                   version('transformers'), sys.version.split()[0], args.branch,
                   '' if args.branch == 'bigru' else ' --bert-layers %d --bert-heads %d --bert-intermediate %d'
                   % (args.bert_layers, args.bert_heads, args.bert_intermediate),
                   ' '.join(a if not a.startswith(work) else '<work>' + a[len(work):] for a in argv[1:]),
                   split_note, bert_note))
    print('metrics', json.dumps({k: metrics[k] for k in ('i2t', 't2i', 'rsum', 'ties')}))
    if args.work is None:
        shutil.rmtree(work)


if __name__ == '__main__':
    logging.basicConfig(format='%(asctime)s %(message)s', level=logging.INFO)
    main()
