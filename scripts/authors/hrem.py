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

* ``Tensor.cuda`` / ``Module.cuda`` -> identity (``forward_emb`` and the losses call ``.cuda()``
  unconditionally); ``torch.cuda.set_device`` -> no-op (``train.main`` selects ``--gpu-id``);
* ``torch.load`` with ``weights_only=False`` and ``map_location='cpu'`` *forced* (``evalrank`` asks
  for ``'cuda'``);
* ``DataLoader`` with ``num_workers=0`` (and the tuple -> list conversion of pinning, which HREM's
  collate does not need);
* ``BertModel.from_pretrained('bert-base-uncased')`` / ``BertTokenizer.from_pretrained(...)`` ->
  the random BERT of ``chan.py`` (no network);
* a stub ``tensorboard_logger`` (no-op);
* ``lib.evaluation.i2t`` / ``t2i`` are wrapped to record their arguments and results.

Everything is seeded (``random``, ``numpy``, ``torch`` with ``SEED``); ``torch.set_num_threads(1)``.

Usage:
  python scripts/authors/hrem.py --upstream /work/upstream/HREM \\
      --out crates/itm-train/tests/fixtures/authors --commit <hash>
"""

import argparse
import json
import os
import random
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True  # do not write __pycache__ into the upstream checkout

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chan as chan_gen  # noqa: E402  the shared data, random BERT and helpers
import scan as scan_gen  # noqa: E402

SEED = scan_gen.SEED
N_TRAIN, N_DEV, N_TEST = scan_gen.N_TRAIN, scan_gen.N_DEV, scan_gen.N_TEST
IMG_DIM = scan_gen.IMG_DIM
EMBED_SIZE, BATCH_SIZE = 32, 8
MAX_GZ_BYTES = chan_gen.MAX_GZ_BYTES

# upstream README, Flickr30K: every option except the paths (tiny sizes here)
PUBLISHED = ['--dataset=f30k', '--mask_weight=1.0', '--num_epochs=1']


def install_shims(upstream, bert_dir):
    import transformers
    import transformers.models.bert.modeling_bert  # noqa: F401

    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.cuda.set_device = lambda *a, **k: None
    orig_load = torch.load

    def load(f, *a, **k):
        k['weights_only'] = False
        k['map_location'] = 'cpu'
        return orig_load(f, *a, **k)
    torch.load = load

    orig_loader = torch.utils.data.DataLoader

    class DataLoader(orig_loader):
        def __init__(self, *a, **k):
            k['num_workers'] = 0
            if k.get('pin_memory'):
                k['pin_memory'] = False
                collate = k.get('collate_fn')
                if collate is not None:
                    k['collate_fn'] = lambda batch: chan_gen._pin_like(collate(batch))
            super().__init__(*a, **k)
    torch.utils.data.DataLoader = DataLoader

    chan_gen._stub('tensorboard_logger', configure=lambda *a, **k: None,
                   log_value=lambda *a, **k: None)
    for cls in (transformers.BertModel, transformers.BertTokenizer):
        orig = cls.from_pretrained.__func__

        def fp(c, name, *a, _orig=orig, **k):
            assert name == 'bert-base-uncased', name
            return _orig(c, bert_dir, *a, **k)
        cls.from_pretrained = classmethod(fp)
    sys.path.insert(0, upstream)
    import lib.evaluation  # noqa: F401


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
    shared = os.path.join(out, 'scan_data')
    work = os.path.abspath(args.work or os.path.join(tempfile.gettempdir(), 'itm_authors_hrem'))
    marker = os.path.join(work, '.itm_authors_scratch')
    if os.path.exists(work):
        if not os.path.exists(marker):
            sys.exit('refusing to clear %s: not a scratch folder of this script' % work)
        shutil.rmtree(work)
    os.makedirs(work)
    open(marker, 'w').close()

    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    data_path = os.path.join(work, 'data')
    precomp = os.path.join(data_path, 'f30k_precomp')
    os.makedirs(precomp)
    splits = {'train': scan_gen.make_split(rng, N_TRAIN, 0.0),
              'dev': scan_gen.make_split(rng, N_DEV, 0.0),
              'test': scan_gen.make_split(rng, N_TEST, 0.3)}
    for name, (caps, ims) in splits.items():
        scan_gen.write_split(precomp, name, caps, ims)
    for f in ('test_ims.npy', 'test_caps.txt'):
        if not chan_gen.same_bytes(os.path.join(precomp, f), os.path.join(shared, f)):
            sys.exit('%s differs from the shared test split (regenerate with scan.py?)' % f)
    bert_dir = os.path.join(work, 'bert')
    chan_gen.build_bert_folder(bert_dir, splits['train'][0] + splits['dev'][0])
    for f in os.listdir(bert_dir):
        if not chan_gen.same_bytes(os.path.join(bert_dir, f), os.path.join(out, 'xdim', 'bert', f)):
            sys.exit('xdim/bert/%s differs from the random BERT built here' % f)

    install_shims(upstream, bert_dir)
    import train as up_train
    chan_gen.record_rankers()
    run_dir = os.path.join(work, 'runs', 'hrem')
    argv = ['train.py', '--data_path=' + data_path, '--logger_name=' + run_dir] + PUBLISHED + \
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
        sys.exit('upstream did not write model_best.pth (rsum 0?)')
    gz = chan_gen.gz_size(best)
    print('checkpoint bytes', os.path.getsize(best), 'gzip -9', gz)
    if gz > MAX_GZ_BYTES:
        sys.exit('model_best.pth is %d bytes after gzip -9 (> %d): not written' % (gz, MAX_GZ_BYTES))
    cfg_out = os.path.join(out, 'hrem')
    os.makedirs(cfg_out, exist_ok=True)
    ckpt = os.path.join(cfg_out, 'model_best.pth')
    shutil.copyfile(best, ckpt)

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
    from importlib.metadata import version
    with open(os.path.join(cfg_out, 'SOURCE.txt'), 'w') as f:
        f.write('Generated by scripts/authors/hrem.py running the authors\' code (not copied here).\n'
                'upstream: https://github.com/CrossmodalGroup/HREM commit %s (run-time shims listed in '
                'the script)\n'
                'torch %s, numpy %s, transformers %s, python %s\n'
                'command: python scripts/authors/hrem.py --upstream <checkout> --out <fixtures/authors> '
                '--commit %s\n'
                'upstream training argv: %s\n'
                'evaluation: lib.evaluation.evalrank(model_best.pth, split=\'test\', data_path)\n'
                'test split: ../scan_data/ (test_ims.npy, test_caps.txt, test_ids.txt)\n'
                'BERT folder: ../xdim/bert\n'
                % (commit, torch.__version__, np.__version__, version('transformers'),
                   sys.version.split()[0], commit,
                   ' '.join(a.replace(work, '<work>') for a in argv[1:])))
    print('metrics', json.dumps({k: metrics[k] for k in ('i2t', 't2i', 'rsum', 'ties')}))
    if args.work is None:
        shutil.rmtree(work)


if __name__ == '__main__':
    main()
