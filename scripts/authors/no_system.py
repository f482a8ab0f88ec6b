#!/usr/bin/env python3
"""A checkpoint in the authors' layout that fits no system, for `itm import`'s refusal test.

`{'model': [a state dict with one tensor], 'opt': argparse.Namespace(...), 'epoch': 1}` saved by
torch.save, as the authors' train.py scripts save theirs. Writes
crates/itm-train/tests/fixtures/authors/no_system.pth:

    /work/venv-authors/bin/python scripts/authors/no_system.py
"""

import argparse
from collections import OrderedDict
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parents[2] / "crates/itm-train/tests/fixtures/authors/no_system.pth"
torch.manual_seed(0)
state = OrderedDict(proj=torch.randn(4, 3), scale=torch.ones(1))
opt = argparse.Namespace(embed_size=4, precomp_enc_type="basic", cross_attn=None)
torch.save({"epoch": 1, "model": [state], "best_rsum": 0.0, "opt": opt, "Eiters": 1}, OUT)
print(OUT, OUT.stat().st_size)
