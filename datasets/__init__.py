"""Datasets by name and their three loaders (train, val, val_video).

Every dataset module exposes ``get(opts) -> (train, val, val_video)``: three ``torch`` datasets whose
items are ``(input, target, meta)`` with ``target`` a float multi-hot vector of ``nclass`` and
``meta = {'id': str, 'time': int}``, and whose attribute ``video_ids`` lists each item's video id in
item order (cheap, no decoding) so that val_video can be batched one whole video at a time.
A dataset may also carry ``batch_transform``: work done per batch on the device (``train.prepare``),
``collate_fn``: how its items make a batch (default: ``torch``'s default collate), ``eval_csv``: the
Charades-format annotation file the official evaluator scores val_video against (absent or None: the
mAP of the in-memory scores), and ``single_label``: one class per video (video top-1/top-5 reported).
The frame datasets share one base, ``datasets.frames``; a new one is a module with ``get(opts)`` and its
name in ``opts.DATASETS``.
"""
from __future__ import annotations

import argparse
import importlib

from torch.utils.data import DataLoader, Dataset

from datasets.samplers import EpochSampler, SeededDataset, VideoBatchSampler
from opts import DATASETS


def get_datasets(opts: argparse.Namespace) -> tuple[Dataset, Dataset, Dataset]:
    """The train, val and val_video datasets of ``opts.dataset``."""
    if opts.dataset not in DATASETS:
        raise ValueError(f"unknown --dataset {opts.dataset!r}; choose one of: {', '.join(DATASETS)}")
    return importlib.import_module(f"datasets.{opts.dataset}").get(opts)


def class_names(opts: argparse.Namespace) -> list[str] | None:
    """The class names of ``opts.dataset`` in class order (Charades: ``data/Charades_v1_classes.txt`` when
    ``--nclass`` is 157; Jester / Something-Something: ``--labels-file``, or the usual file next to
    ``--train-file``), or None where a dataset has none (``fake``, ``testdata1``) or they cannot be read."""
    if opts.dataset not in DATASETS:
        raise ValueError(f"unknown --dataset {opts.dataset!r}; choose one of: {', '.join(DATASETS)}")
    names = getattr(importlib.import_module(f"datasets.{opts.dataset}"), "class_names", None)
    return names(opts) if names is not None else None


def get_dataset(opts: argparse.Namespace) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The three loaders: train (shuffled), val (shuffled, as the original, so that ``val_size`` takes a
    random subset), val_video (one whole video per batch, in time order).  With several processes
    (``opts.world_size``) each loader yields this rank's share.  Call ``loader.sampler.set_epoch(e)``
    on the first two before each epoch."""
    train, val, val_video = get_datasets(opts)
    rank, world = getattr(opts, "rank", 0), opts.world_size
    common = dict(num_workers=opts.workers, pin_memory=str(opts.device).startswith("cuda"))
    if opts.workers > 0:  # workers stay up between epochs; safe because every item carries its seed
        common.update(persistent_workers=True, prefetch_factor=4)
    frames = lambda ds, seed: DataLoader(  # noqa: E731
        SeededDataset(ds), batch_size=opts.batch_size, collate_fn=getattr(ds, "collate_fn", None),
        sampler=EpochSampler(len(ds), True, seed, rank, world), **common)
    return (frames(train, opts.manual_seed), frames(val, opts.manual_seed + 1),
            DataLoader(val_video, batch_sampler=VideoBatchSampler(val_video.video_ids, rank, world),
                       collate_fn=getattr(val_video, "collate_fn", None), **common))
