"""The original's learnability set for the temporal field.

100 sequences of 25 steps; each sequence has a constant label 0 or 1 (equally likely, one of 5 classes);
the input at every step is a 100-dim vector equal to the label, flipped with probability 0.25.  A frame
model alone can reach only ~75% prec@1; messages from the other steps of the same sequence lift it above
90%.  Use it with ``--arch linear --inputsize 100 --nclass 5``.
"""
from __future__ import annotations

import argparse

import torch
from torch.utils.data import Dataset

from utils.cli import InputError

NSEQ, STEPS, NCLASS, DIM, FLIP = 100, 25, 5, 100, 0.25


class Sequences(Dataset):
    """All steps of ``NSEQ`` sequences, sequence by sequence, in time order."""

    def __init__(self, split: str, seed: int, video_level: bool):
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 2, (NSEQ,), generator=g)
        flips = torch.rand(NSEQ, STEPS, generator=g) < FLIP
        self.observed = (self.labels[:, None] ^ flips.long()).float()
        self.video_ids = [f"{split}{s:03d}" for s in range(NSEQ) for _ in range(STEPS)]
        self.video_level = video_level  # one label per sequence anyway; kept for the contract

    def __len__(self) -> int:
        return NSEQ * STEPS

    def __getitem__(self, i: int):
        s, t = divmod(i, STEPS)
        target = torch.zeros(NCLASS)
        target[self.labels[s]] = 1
        return self.observed[s, t].expand(DIM).clone(), target, {"id": self.video_ids[i], "time": t + 1}


def get(opts: argparse.Namespace):
    """train sequences, val sequences (frame level) and the same val sequences as videos."""
    if opts.nclass != NCLASS:
        raise InputError(f"testdata1 has {NCLASS} classes: run it with --nclass {NCLASS}")
    val = Sequences("val", opts.manual_seed + 1, video_level=False)
    return (Sequences("train", opts.manual_seed, video_level=False), val,
            Sequences("val", opts.manual_seed + 1, video_level=True))
