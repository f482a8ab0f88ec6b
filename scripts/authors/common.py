"""What the fixture generators of the BERT-based systems (xdim.py, esl.py, hrem.py) share.

Nothing here comes from the authors' repositories: these are the compatibility shims that their
code needs on a CPU with current PyTorch (each generator's docstring says which it installs and
why), the synthetic data of ``scan.py`` in a precomp folder, and the writing of the outputs.
"""

import json
import os
import random
import shutil
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chan as chan_gen  # noqa: E402  the random BERT, recorders and helpers
import scan as scan_gen  # noqa: E402  the shared synthetic data set

SEED = scan_gen.SEED


def scratch_folder(work, name):
    """The scratch folder (``work``, or a fixed path under the temporary folder so that the
    paths pickled in ``opt`` are reproducible), emptied; refuses a folder it did not make."""
    work = os.path.abspath(work or os.path.join(tempfile.gettempdir(), 'itm_authors_' + name))
    marker = os.path.join(work, '.itm_authors_scratch')
    if os.path.exists(work):
        if not os.path.exists(marker):
            sys.exit('refusing to clear %s: not a scratch folder of this script' % work)
        shutil.rmtree(work)
    os.makedirs(work)
    open(marker, 'w').close()
    return work


def precomp_splits(data_path, folder, out):
    """scan.py's splits (chan.py's order) in ``<data_path>/<folder>``; the test split must be
    byte-identical to ``<out>/scan_data``. Returns the splits."""
    rng = np.random.default_rng(SEED)
    precomp = os.path.join(data_path, folder)
    os.makedirs(precomp)
    splits = {'train': scan_gen.make_split(rng, scan_gen.N_TRAIN, 0.0),
              'dev': scan_gen.make_split(rng, scan_gen.N_DEV, 0.0),
              'test': scan_gen.make_split(rng, scan_gen.N_TEST, 0.3)}
    for name, (caps, ims) in splits.items():
        scan_gen.write_split(precomp, name, caps, ims)
    for f in ('test_ims.npy', 'test_caps.txt'):
        if not chan_gen.same_bytes(os.path.join(precomp, f), os.path.join(out, 'scan_data', f)):
            sys.exit('%s differs from the shared test split (regenerate with scan.py?)' % f)
    return splits


def random_bert(work, splits, out):
    """chan.py's random BERT, built in ``work/bert``; it must equal ``<out>/xdim/bert`` (the
    folder the fixtures of these systems share) unless that does not exist yet."""
    bert_dir = os.path.join(work, 'bert')
    chan_gen.build_bert_folder(bert_dir, splits['train'][0] + splits['dev'][0])
    shared = os.path.join(out, 'xdim', 'bert')
    if os.path.exists(shared):
        for f in os.listdir(bert_dir):
            if not chan_gen.same_bytes(os.path.join(bert_dir, f), os.path.join(shared, f)):
                sys.exit('xdim/bert/%s differs from the random BERT built here' % f)
    return bert_dir


def install_cpu_shims(bert_dir, force_cpu_load=False, make_log_folder=True):
    """``.cuda()`` -> identity; ``torch.cuda.set_device`` -> no-op; ``torch.load`` with
    ``weights_only=False`` and ``map_location='cpu'`` (forced if ``force_cpu_load``); a
    single-process ``DataLoader`` applying the tuple -> list conversion of pinning;
    ``from_pretrained('bert-base-uncased')`` -> ``bert_dir``; stub modules
    ``tensorboard_logger`` (its ``configure`` makes the log folder if ``make_log_folder``),
    ``imageio``, ``cv2``."""
    import transformers
    import transformers.models.bert.modeling_bert  # noqa: F401

    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.cuda.set_device = lambda *a, **k: None
    orig_load = torch.load

    def load(f, *a, **k):
        if force_cpu_load:
            k['weights_only'], k['map_location'] = False, 'cpu'
        else:
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
                if collate is not None:
                    k['collate_fn'] = lambda batch: chan_gen._pin_like(collate(batch))
            super().__init__(*a, **k)
    torch.utils.data.DataLoader = DataLoader

    if make_log_folder:
        configure = lambda path, *a, **k: os.makedirs(path, exist_ok=True)  # noqa: E731
    else:
        configure = lambda *a, **k: None  # noqa: E731
    chan_gen._stub('tensorboard_logger', configure=configure, log_value=lambda *a, **k: None)
    for name in ('imageio', 'cv2'):
        try:
            __import__(name)
        except ImportError:
            chan_gen._stub(name, imread=None, resize=None)

    for cls in (transformers.BertModel, transformers.BertTokenizer):
        orig = cls.from_pretrained.__func__

        def fp(c, name, *a, _orig=orig, **k):
            assert name == 'bert-base-uncased', name
            return _orig(c, bert_dir, *a, **k)
        cls.from_pretrained = classmethod(fp)


def train(up_train, argv):
    """Upstream ``train.main()`` with ``argv``, after seeding random, numpy and torch."""
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    saved_argv, sys.argv = sys.argv, argv
    try:
        up_train.main()
    finally:
        sys.argv = saved_argv


def keep_checkpoint(best, cfg_out, max_gz_bytes):
    """Copies ``best`` to ``<cfg_out>/model_best.pth`` unless it is over ``max_gz_bytes``
    after gzip -9; returns the copy."""
    if not os.path.exists(best):
        sys.exit('upstream did not write %s' % best)
    gz = chan_gen.gz_size(best)
    print('checkpoint', best, 'bytes', os.path.getsize(best), 'gzip -9', gz)
    if gz > max_gz_bytes:
        sys.exit('%s is %d bytes after gzip -9 (> %d): not written' % (best, gz, max_gz_bytes))
    os.makedirs(cfg_out, exist_ok=True)
    ckpt = os.path.join(cfg_out, 'model_best.pth')
    shutil.copyfile(best, ckpt)
    return ckpt


def write_results(cfg_out, evaluated):
    """``sims.npy`` and ``metrics.json`` of ``(npts, sims, (r, rk), (ri, rki))``, as recorded
    from the authors' ``i2t`` / ``t2i``; returns the metrics."""
    npts, sims, (r, rk), (ri, rki) = evaluated
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
    print('metrics', os.path.basename(cfg_out),
          json.dumps({k: metrics[k] for k in ('i2t', 't2i', 'rsum', 'ties')}))
    return metrics


def write_source(cfg_out, script, repository, commit, argv, work, evaluation, lines=()):
    """``SOURCE.txt``: what made the fixture (versions, command, upstream argv without the
    scratch path, the evaluation call) and ``lines``."""
    from importlib.metadata import version
    with open(os.path.join(cfg_out, 'SOURCE.txt'), 'w') as f:
        f.write('Generated by scripts/authors/%s running the authors\' code (not copied here).\n'
                'upstream: https://github.com/%s commit %s (run-time shims listed in the script)\n'
                'torch %s, numpy %s, transformers %s, python %s\n'
                'command: python scripts/authors/%s --upstream <checkout> --out <fixtures/authors> '
                '--commit %s\n'
                'upstream training argv: %s\n'
                'evaluation: %s\n'
                'test split: ../scan_data/ (test_ims.npy, test_caps.txt, test_ids.txt)\n'
                % (script, repository, commit, torch.__version__, np.__version__,
                   version('transformers'), sys.version.split()[0], script, commit,
                   ' '.join(a.replace(work, '<work>') for a in argv[1:]), evaluation))
        for line in lines:
            f.write(line + '\n')
