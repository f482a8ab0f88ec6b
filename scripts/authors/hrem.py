#!/usr/bin/env python3
"""Reference fixtures for `itm import` made by the HREM authors' own code.

The upstream repository (CrossmodalGroup/HREM, CVPR 2023) is *not* part of this repository and
nothing of it is copied here: this script imports and runs an upstream checkout given with
``--upstream`` on the CPU and records what that code produces:

1. the synthetic precomp data set of ``scan.py`` (the splits of ``chan.py``: same rng, same
   order), in the layout the HREM loader reads (``<data>/f30k_precomp/...``); the test split is
   checked to be byte-identical to ``<out>/scan_data/`` (HREM validates on it);
2. upstream ``train.main()`` with the Flickr30K command of its README (``--dataset f30k
   --mask_weight 1.0``; tiny sizes: ``--embed_size 32`` with the published 16 heads, one epoch
   = 15 steps of batch 8) and its ``save_checkpoint`` writing ``model_best.pth`` (copied byte for
   byte);
3. ``lib.evaluation.evalrank(model_best.pth, split='test', data_path=...)`` (what upstream
   ``eval.py`` calls): the similarity matrix it passes to its own ``i2t`` / ``t2i`` and what
   they return (HREM's matrix is a float64 product of the gathered embeddings).

Outputs (``--out DIR``): ``hrem/``: ``model_best.pth``, ``sims.npy`` (float64 [N, 5N] as
captured), ``metrics.json``, ``SOURCE.txt``; the random BERT is ``xdim/bert`` (the same folder;
upstream hard-codes ``Linear(768, .)``).

Run-time compatibility shims (the upstream files are not modified):

* (``common.install_cpu_shims``) ``Tensor.cuda`` / ``Module.cuda`` -> identity (``forward_emb`` and the losses call ``.cuda()``
  unconditionally); ``torch.cuda.set_device`` -> no-op (``train.main`` selects ``--gpu-id``);
* ``torch.load`` with ``weights_only=False`` and ``map_location='cpu'`` *forced* (``evalrank`` asks
  for ``'cuda'``);
* ``DataLoader`` with ``num_workers=0`` (and the tuple -> list conversion of pinning, which HREM's
  collate does not need);
* ``BertModel.from_pretrained('bert-base-uncased')`` / ``BertTokenizer.from_pretrained(...)`` ->
  the random BERT of ``chan.py`` (no network);
* stub modules ``tensorboard_logger`` (its ``configure`` makes the log folder), ``imageio``, ``cv2``;
* ``lib.evaluation.i2t`` / ``t2i`` are wrapped to record their arguments and results.

Everything is seeded (``random``, ``numpy``, ``torch`` with ``SEED``); ``torch.set_num_threads(1)``.

Usage:
  python scripts/authors/hrem.py --upstream /work/upstream/HREM \\
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
import common  # noqa: E402  the shims, data and outputs shared with xdim.py and esl.py
import scan as scan_gen  # noqa: E402

IMG_DIM = scan_gen.IMG_DIM
EMBED_SIZE, BATCH_SIZE = 32, 8
MAX_GZ_BYTES = chan_gen.MAX_GZ_BYTES

# upstream README, Flickr30K: every option except the paths (tiny sizes here)
PUBLISHED = ['--dataset=f30k', '--mask_weight=1.0', '--num_epochs=1']


def evaluate(ckpt, data_path):
    """Upstream evalrank on 'test'; returns (npts, sims, i2t result, t2i result)."""
    import lib.evaluation as ev
    chan_gen._Recorder.calls = []
    ev.evalrank(ckpt, split='test', data_path=data_path)
    (n1, npts, sims, (r, rk)), (n2, _, sims2, (ri, rki)) = chan_gen._Recorder.calls
    assert (n1, n2) == ('i2t', 't2i') and np.array_equal(sims, sims2)
    assert sims.dtype == np.float64 and sims.shape == (npts, 5 * npts), (sims.dtype, sims.shape)
    return npts, sims, (r, rk), (ri, rki)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--upstream', required=True, help='checkout of CrossmodalGroup/HREM')
    ap.add_argument('--out', required=True,
                    help='fixtures/authors folder (hrem/ goes inside; scan_data/, xdim/bert must exist)')
    ap.add_argument('--commit', default=None, help='upstream commit (if the checkout has no .git)')
    ap.add_argument('--work', default=None,
                    help='scratch folder, kept (default: <tmp>/itm_authors_hrem, removed after)')
    args = ap.parse_args()

    upstream = os.path.abspath(args.upstream)
    if not all(os.path.exists(os.path.join(upstream, f)) for f in
               ('train.py', 'graph_lib.py', 'lib/encoders.py', 'lib/evaluation.py')):
        sys.exit('%s does not look like a checkout of CrossmodalGroup/HREM' % upstream)
    commit = chan_gen.git_commit(upstream, args.commit)
    out = os.path.abspath(args.out)
    work = common.scratch_folder(args.work, 'hrem')
    torch.set_num_threads(1)
    data_path = os.path.join(work, 'data')
    splits = common.precomp_splits(data_path, 'f30k_precomp', out)
    bert_dir = common.random_bert(work, splits, out)
    common.install_cpu_shims(bert_dir, force_cpu_load=True)
    sys.path.insert(0, upstream)
    import train as up_train
    chan_gen.record_rankers()

    run_dir = os.path.join(work, 'runs', 'hrem')
    argv = ['train.py', '--data_path=' + data_path, '--logger_name=' + run_dir] + PUBLISHED + \
           ['--embed_size=%d' % EMBED_SIZE, '--img_dim=%d' % IMG_DIM, '--batch_size=%d' % BATCH_SIZE]
    common.train(up_train, argv)
    cfg_out = os.path.join(out, 'hrem')
    ckpt = common.keep_checkpoint(os.path.join(run_dir, 'model_best.pth'), cfg_out, MAX_GZ_BYTES)
    common.write_results(cfg_out, evaluate(ckpt, data_path))
    common.write_source(cfg_out, 'hrem.py', 'CrossmodalGroup/HREM', commit, argv, work,
                        "lib.evaluation.evalrank(model_best.pth, split='test', data_path)",
                        ['BERT folder: ../xdim/bert'])
    if args.work is None:
        shutil.rmtree(work)


if __name__ == '__main__':
    main()
