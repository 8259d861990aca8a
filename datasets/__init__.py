"""Datasets by name and their three loaders (train, val, val_video).

Every dataset module exposes ``get(opts) -> (train, val, val_video)``: three ``torch`` datasets whose
items are ``(input, target, meta)`` with ``target`` a float multi-hot vector of ``nclass`` and
``meta = {'id': str, 'time': int}``, and whose attribute ``video_ids`` lists each item's video id in
item order (cheap, no decoding) so that val_video can be batched one whole video at a time.
"""
from __future__ import annotations

import argparse
import importlib

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from opts import DATASETS


class VideoBatchSampler(Sampler[list[int]]):
    """Yields the item indices of one video per batch (items of a video are consecutive, in time order)."""

    def __init__(self, video_ids: list[str]):
        self.batches: list[list[int]] = []
        for i, vid in enumerate(video_ids):
            if self.batches and video_ids[self.batches[-1][0]] == vid:
                self.batches[-1].append(i)
            else:
                self.batches.append([i])

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def get_datasets(opts: argparse.Namespace) -> tuple[Dataset, Dataset, Dataset]:
    """The train, val and val_video datasets of ``opts.dataset``."""
    if opts.dataset not in DATASETS:
        raise ValueError(f"unknown --dataset {opts.dataset!r}; choose one of: {', '.join(DATASETS)}")
    return importlib.import_module(f"datasets.{opts.dataset}").get(opts)


def get_dataset(opts: argparse.Namespace) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The three loaders: train (shuffled), val (shuffled, as the original, so that ``val_size`` takes a
    random subset), val_video (one whole video per batch, in time order)."""
    train, val, val_video = get_datasets(opts)
    pin = str(opts.device).startswith("cuda")
    common = dict(num_workers=opts.workers, pin_memory=pin)
    g = torch.Generator()
    g.manual_seed(opts.manual_seed)
    train_loader = DataLoader(train, batch_size=opts.batch_size, shuffle=True, generator=g, **common)
    val_loader = DataLoader(val, batch_size=opts.batch_size, shuffle=True, generator=g, **common)
    video_loader = DataLoader(val_video, batch_sampler=VideoBatchSampler(val_video.video_ids), **common)
    return train_loader, val_loader, video_loader
