#!/usr/bin/env python3
"""Reference fixtures for `itm import` made by the ESL authors' own code.

The upstream repository (CrossmodalGroup/ESL, TCSVT 2023, built on VSE-infinity's BERT branch) is
*not* part of this repository and nothing of it is copied here: this script imports and runs an
upstream checkout given with ``--upstream`` on the CPU and records what that code produces, for
its two strategies: adaptive (``lib/vse.py`` as published) and heuristic (``heuristic_strategy =
True``, the one-line change its README asks for, made in memory):

1. the synthetic precomp data set of ``scan.py`` (the splits of ``chan.py``: same rng, same order),
   in the layout the ESL loader reads (``<data>/f30k_precomp/...``); the test split is checked to be
   byte-identical to ``<out>/scan_data/``;
2. upstream ``train.main()`` with the options of its ``train_region_f30k.sh`` (tiny sizes, one
   epoch = 15 steps of batch 8) except ``--embed_size 256`` (the smallest width its nine
   hard-coded levels of ``--kernel_size 2`` allow: the last level is 256 / 2^8 = 1 wide) and its
   ``save_checkpoint`` writing ``model_best.pth`` (copied byte for byte);
3. ``lib.evaluation.evalrank(model_best.pth, data_path, split='test')``: the similarity matrix it
   passes to its own ``i2t`` / ``t2i`` and what they return.

Outputs (``--out DIR``): ``esl_a/`` and ``esl_h/``: ``model_best.pth`` (every key ``module.``-prefixed),
``sims.npy`` (float64 [N, 5N] as captured; computed in float32), ``metrics.json``, ``SOURCE.txt``; the
random BERT is ``xdim/bert`` (the same folder; upstream hard-codes ``Linear(768, .)``).

Run-time compatibility shims (the upstream files are not modified):

* those of ``xdim.py``: ``.cuda()`` -> identity, ``torch.load(weights_only=False, map_location='cpu')``,
  the single-process ``DataLoader`` with the tuple -> list conversion of pinning,
  ``from_pretrained('bert-base-uncased')`` -> the random BERT, stub modules ``tensorboard_logger``
  (its ``configure`` creates the log folder), ``imageio``, ``cv2``;
* ``lib.vse`` sees ``torch.linspace`` returning its integer index vector with the last element
  clamped to ``end - 1``: ``sims_claculator`` looks the index ``torch.linspace(0, D, steps=D,
  dtype=int)`` up in its ``Embedding(D, D)`` ``masks_0``; on torch 2.9 the last index is ``D``, out
  of range. Clamped, each lookup is its whole table in order (the level encoders take prefixes of
  ``linspace(0, 1024, steps=1024)``, which are ``0, 1, ...`` already), what the code evidently means;
* ``lib/vse.py`` is executed from its source (heuristic: with ``heuristic_strategy = False`` ->
  ``True``); ``train.VSEModel`` and ``lib.evaluation.VSEModel`` are pointed at the class of the
  strategy being run;
* ``train.validate`` -> a constant positive rsum. Upstream validates on the dev split, whose length
  it fixes to 5000 captions (1000 images), with a per-caption loop: tens of minutes per strategy on
  a CPU. Validation only decides whether the epoch is the best; with one epoch and a positive rsum
  upstream saves ``model_best.pth`` either way (its ``best_rsum`` is then that constant);
* ``numpy.savetxt`` skips the path that ``evalrank`` hard-codes (``/mnt/data2/zk/ESL_bert/``);
* ``lib.evaluation.i2t`` / ``t2i`` are wrapped to record their arguments and results.

Everything is seeded (``random``, ``numpy``, ``torch`` with ``SEED`` before each training); run with
``torch.set_num_threads(1)``.

Usage:
  python scripts/authors/esl.py --upstream /work/upstream/ESL \\
      --out crates/itm-train/tests/fixtures/authors --commit <hash>
"""

import argparse
import os
import shutil
import sys

sys.dont_write_bytecode = True  # do not write __pycache__ into the upstream checkout

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chan as chan_gen  # noqa: E402  the recorders and helpers
import common  # noqa: E402  the shims, data and outputs shared with xdim.py and hrem.py
import scan as scan_gen  # noqa: E402
import xdim as xdim_gen  # noqa: E402  lib/vse.py from its source, with the linspace shim

IMG_DIM = scan_gen.IMG_DIM
EMBED_SIZE, BATCH_SIZE = 256, 8
DATA_NAME = 'f30k_precomp'
# a 256-wide ESL has ~0.5M weights of its own besides the trained BERT copy: incompressible
MAX_GZ_BYTES = 4 << 20
VALIDATION_RSUM = 1.0  # the train.validate stub's answer (see the docstring)

# upstream train_region_f30k.sh: every option except the paths, --num_epochs, --embed_size and
# --batch_size (tiny sizes here)
PUBLISHED = ['--lr_update=15', '--learning_rate=.0005', '--precomp_enc_type=basic',
             '--log_step=200', '--vse_mean_warmup_epochs=1', '--workers=10', '--kernel_size=2',
             '--num_epochs=1']

# (name, [(pattern, replacement, expected count)] applied to lib/vse.py in memory)
CONFIGS = [('esl_a', []),
           ('esl_h', [('heuristic_strategy = False', 'heuristic_strategy = True', 1)])]


def install_shims(upstream, bert_dir):
    """xdim.py's shims, lib/vse.py as published, and numpy.savetxt skipping evalrank's path."""
    orig_savetxt = np.savetxt

    def savetxt(fname, *a, **k):
        if str(fname).startswith('/mnt/data2/zk/ESL_bert/'):
            return None
        return orig_savetxt(fname, *a, **k)
    np.savetxt = savetxt
    xdim_gen.install_shims(upstream, bert_dir, fixes=[])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--upstream', required=True, help='checkout of CrossmodalGroup/ESL')
    ap.add_argument('--out', required=True,
                    help='fixtures/authors folder (esl_a/, esl_h/ go inside; scan_data/, xdim/bert must exist)')
    ap.add_argument('--commit', default=None, help='upstream commit (if the checkout has no .git)')
    ap.add_argument('--work', default=None,
                    help='scratch folder, kept (default: <tmp>/itm_authors_esl, removed after)')
    ap.add_argument('--only', choices=[c for c, _ in CONFIGS], action='append',
                    help='run only this configuration (repeatable)')
    args = ap.parse_args()

    upstream = os.path.abspath(args.upstream)
    if not all(os.path.exists(os.path.join(upstream, f)) for f in
               ('train.py', 'arguments.py', 'lib/vse.py', 'lib/evaluation.py', 'train_region_f30k.sh')):
        sys.exit('%s does not look like a checkout of CrossmodalGroup/ESL' % upstream)
    commit = chan_gen.git_commit(upstream, args.commit)
    out = os.path.abspath(args.out)
    work = common.scratch_folder(args.work, 'esl')
    torch.set_num_threads(1)
    data_path = os.path.join(work, 'data')
    splits = common.precomp_splits(data_path, DATA_NAME, out)
    bert_dir = common.random_bert(work, splits, out)
    install_shims(upstream, bert_dir)
    import train as up_train  # keeps its own references to i2t/t2i (validation): not recorded
    import lib.evaluation as up_eval
    chan_gen.record_rankers()
    up_train.validate = lambda *a, **k: VALIDATION_RSUM

    for name, fixes in CONFIGS:
        if args.only and name not in args.only:
            continue
        vse = xdim_gen.load_vse(upstream, fixes)
        up_train.VSEModel = vse.VSEModel
        up_eval.VSEModel = vse.VSEModel
        run_dir = os.path.join(work, 'runs', name)
        argv = ['train.py', '--data_path=' + data_path, '--data_name=' + DATA_NAME,
                '--logger_name=' + run_dir + '/log', '--model_name=' + run_dir] + PUBLISHED + \
               ['--embed_size=%d' % EMBED_SIZE, '--img_dim=%d' % IMG_DIM, '--batch_size=%d' % BATCH_SIZE]
        common.train(up_train, argv)
        cfg_out = os.path.join(out, name)
        ckpt = common.keep_checkpoint(os.path.join(run_dir, 'model_best.pth'), cfg_out, MAX_GZ_BYTES)
        common.write_results(cfg_out, chan_gen.evaluate(ckpt, data_path))
        common.write_source(
            cfg_out, 'esl.py', 'CrossmodalGroup/ESL', commit, argv, work,
            "lib.evaluation.evalrank(model_best.pth, data_path, split='test')",
            ['strategy: %s (lib/vse.py%s)' % ('heuristic' if fixes else 'adaptive',
                                              ' with heuristic_strategy = True, in memory'
                                              if fixes else ' as published'),
             "BERT folder: ../xdim/bert (the random BERT of chan.py that "
             "from_pretrained('bert-base-uncased') is redirected to)"])
    if args.work is None:
        shutil.rmtree(work)


if __name__ == '__main__':
    main()
