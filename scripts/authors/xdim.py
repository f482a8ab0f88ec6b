#!/usr/bin/env python3
"""Reference fixtures for `itm import` made by the X-Dim authors' own code.

The upstream repository (CrossmodalGroup/X-Dim, ACM MM 2023, built on VSE-infinity's BERT branch)
is *not* part of this repository and nothing of it is copied here: this script imports and runs an
upstream checkout given with ``--upstream`` on the CPU and records what that code produces:

1. the synthetic precomp data set of ``scan.py`` (the splits of ``chan.py``: same rng, same order),
   in the layout the X-Dim loader reads (``<data>/f30k_precomp/{train,dev,test}_{caps.txt,ims.npy}``);
   the dev split has 1000 images because upstream fixes its length to 5000 captions. The test split
   is checked to be byte-identical to ``<out>/scan_data/`` and is not written again;
2. upstream ``train.main()`` with the options of its ``train_region_f30k.sh`` (tiny sizes, one epoch
   = 15 steps of batch 8): its own argument parser (``arguments.py``), model, loss and validation,
   and its ``save_checkpoint`` writing ``model_best.pth`` (copied byte for byte);
3. ``lib.evaluation.evalrank(model_best.pth, data_path, split='test')`` (what upstream ``test.py``
   calls): the similarity matrix it passes to its own ``i2t`` / ``t2i`` and what they return.

Outputs (``--out DIR``, the fixtures/authors folder): ``xdim/``: ``model_best.pth`` (every key
``module.``-prefixed: upstream wraps the three modules in DataParallel), ``sims.npy`` (float64
[N, 5N] as captured; computed in float32), ``metrics.json``, ``SOURCE.txt``, and ``bert/``, the
random 768-wide BERT of ``chan.py`` (upstream hard-codes ``Linear(768, .)``; no transformer layer).

Run-time compatibility shims (the upstream files are not modified; ``sys.dont_write_bytecode``
keeps Python from writing ``__pycache__`` into the checkout):

* the shims of ``chan.py`` that apply here: ``Tensor.cuda`` / ``Module.cuda`` -> identity
  (``Sim_vec.forward`` and ``shard_attn_scores`` call ``.cuda()`` unconditionally);
  ``torch.load(weights_only=False, map_location='cpu')`` (the pickled ``argparse.Namespace``);
  ``DataLoader`` with ``num_workers=0`` and the tuple -> list conversion that pinning performs on a
  GPU (``encode_data`` indexes with the batch's ``ids``); stub modules ``tensorboard_logger``,
  ``imageio``, ``cv2`` (raw-image path only); the ``tensorboard_logger`` stub's ``configure``
  creates the log folder, as the real one does (``train.py`` appends to a file in it).
* ``BertModel.from_pretrained('bert-base-uncased')`` / ``BertTokenizer.from_pretrained(...)`` ->
  the random BERT folder (no network).
* ``lib/vse.py`` is executed from its source with **one textual change**: ``.repeat(1024, 1)`` ->
  ``.repeat(self.sub_dim, 1)`` in ``Sim_vec.forward``. Upstream hard-codes the published width
  1024 there (the per-row threshold vector repeated into a [D, D] matrix); at the fixture's
  D = 32 the literal would make the shapes disagree. With D = 1024 the two are the same code; a
  1024-wide fixture would be ~9 MB of incompressible weights.
* ``lib.vse`` sees ``torch.linspace`` returning its integer index vector with the last element
  clamped to ``n - 1``. ``Sim_vec`` looks the identity index ``torch.linspace(0, n, steps=n,
  dtype=torch.int)`` up in its ``Embedding(n, n)``; on torch 2.9 that vector is ``[0, 1, ..., n-2,
  n]`` and index ``n`` is out of range (an IndexError on the CPU). Clamped, the lookup is the whole
  table in order (``weight[0..n-1]``), what the code evidently means and what ``itm`` implements.
  ``linspace`` is used nowhere else in ``lib.vse``.
* ``lib.evaluation.i2t`` / ``t2i`` are wrapped to record their arguments and results.

Everything is seeded (``random``, ``numpy``, ``torch`` with ``SEED`` before training); run with
``torch.set_num_threads(1)``.

Usage:
  python scripts/authors/xdim.py --upstream /work/upstream/X-Dim \\
      --out crates/itm-train/tests/fixtures/authors --commit <hash>
"""

import argparse
import os
import shutil
import sys
import types

sys.dont_write_bytecode = True  # do not write __pycache__ into the upstream checkout

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chan as chan_gen  # noqa: E402  the recorders and helpers
import common  # noqa: E402  the shims, data and outputs shared with esl.py and hrem.py
import scan as scan_gen  # noqa: E402

IMG_DIM = scan_gen.IMG_DIM
EMBED_SIZE, BATCH_SIZE = 32, 8
DATA_NAME = 'f30k_precomp'
MAX_GZ_BYTES = chan_gen.MAX_GZ_BYTES

# upstream train_region_f30k.sh: every option except the paths, --num_epochs, --workers (see the
# DataLoader shim), --embed_size and --batch_size (tiny sizes here)
PUBLISHED = ['--lr_update=15', '--learning_rate=.0005', '--precomp_enc_type=basic',
             '--log_step=200', '--vse_mean_warmup_epochs=1', '--workers=10', '--num_epochs=1']

# (pattern, replacement, expected count) applied to lib/vse.py in memory; see the docstring.
VSE_FIXES = [('.repeat(1024, 1)', '.repeat(self.sub_dim, 1)', 1)]


class _TorchWithIndexLinspace(types.ModuleType):
    """torch, except that linspace's integer index vector stops at end - 1 (for lib.vse only)."""

    def __init__(self):
        super().__init__('torch')

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def linspace(start, end, steps, dtype=None, **kwargs):
        out = torch.linspace(start, end, steps=steps, dtype=dtype, **kwargs)
        assert dtype is not None and not dtype.is_floating_point, 'lib.vse uses linspace for indices'
        return out.clamp(max=end - 1)


def load_vse(upstream, fixes=VSE_FIXES):
    """lib/vse.py executed from its source with `fixes`, as the module lib.vse (its torch sees
    the index-clamping linspace)."""
    import lib
    path = os.path.join(upstream, 'lib', 'vse.py')
    with open(path) as f:
        src = f.read()
    for old, new, count in fixes:
        if src.count(old) != count:
            sys.exit('%s: expected %d x %r (different upstream version?)' % (path, count, old))
        src = src.replace(old, new)
    mod = types.ModuleType('lib.vse')
    mod.__file__ = path
    mod.__package__ = 'lib'
    sys.modules['lib.vse'] = mod
    lib.vse = mod
    exec(compile(src, path, 'exec'), mod.__dict__)
    mod.torch = _TorchWithIndexLinspace()
    return mod


def install_shims(upstream, bert_dir, fixes=VSE_FIXES):
    common.install_cpu_shims(bert_dir)
    sys.path.insert(0, upstream)
    load_vse(upstream, fixes)
    import lib.evaluation  # noqa: F401


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--upstream', required=True, help='checkout of CrossmodalGroup/X-Dim')
    ap.add_argument('--out', required=True,
                    help='fixtures/authors folder (xdim/ goes inside; scan_data/ must exist)')
    ap.add_argument('--commit', default=None, help='upstream commit (if the checkout has no .git)')
    ap.add_argument('--work', default=None,
                    help='scratch folder, kept (default: <tmp>/itm_authors_xdim, removed after)')
    args = ap.parse_args()

    upstream = os.path.abspath(args.upstream)
    if not all(os.path.exists(os.path.join(upstream, f)) for f in
               ('train.py', 'arguments.py', 'lib/vse.py', 'lib/evaluation.py')):
        sys.exit('%s does not look like a checkout of CrossmodalGroup/X-Dim' % upstream)
    commit = chan_gen.git_commit(upstream, args.commit)
    out = os.path.abspath(args.out)
    work = common.scratch_folder(args.work, 'xdim')
    torch.set_num_threads(1)
    data_path = os.path.join(work, 'data')
    splits = common.precomp_splits(data_path, DATA_NAME, out)
    bert_dir = common.random_bert(work, splits, out)
    install_shims(upstream, bert_dir)
    import train as up_train  # keeps its own references to i2t/t2i (validation): not recorded
    chan_gen.record_rankers()

    run_dir = os.path.join(work, 'runs', 'xdim')
    argv = ['train.py', '--data_path=' + data_path, '--data_name=' + DATA_NAME,
            '--logger_name=' + run_dir + '/log', '--model_name=' + run_dir] + PUBLISHED + \
           ['--embed_size=%d' % EMBED_SIZE, '--img_dim=%d' % IMG_DIM, '--batch_size=%d' % BATCH_SIZE]
    common.train(up_train, argv)
    cfg_out = os.path.join(out, 'xdim')
    ckpt = common.keep_checkpoint(os.path.join(run_dir, 'model_best.pth'), cfg_out, MAX_GZ_BYTES)
    bert_out = os.path.join(cfg_out, 'bert')
    if os.path.exists(bert_out):
        shutil.rmtree(bert_out)
    shutil.copytree(bert_dir, bert_out)
    for f in os.listdir(bert_out):
        os.chmod(os.path.join(bert_out, f), 0o644)
    common.write_results(cfg_out, chan_gen.evaluate(ckpt, data_path))
    common.write_source(
        cfg_out, 'xdim.py', 'CrossmodalGroup/X-Dim', commit, argv, work,
        "lib.evaluation.evalrank(model_best.pth, data_path, split='test')",
        ["bert/: the random BERT of chan.py (768 wide, 0 layers, 64 positions, pooler zeroed) that "
         "from_pretrained('bert-base-uncased') is redirected to"])
    if args.work is None:
        shutil.rmtree(work)


if __name__ == '__main__':
    main()
