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
name in ``opts.DATASETS``.  ``check_data`` tells a user without the data what is missing and where to get
it, before any model (or ImageNet download) is built: a dataset read from files gets its line in
``WHERE_TO_GET``.
"""
from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Sequence

from torch.utils.data import DataLoader, Dataset

from datasets.samplers import EpochSampler, SeededDataset, VideoBatchSampler
from datasets.single_label import labels_location
from opts import DATASETS
from utils.cli import InputError, MissingInputError

IN_MEMORY = ("fake", "testdata1")  # datasets made in memory: no files to check
_CHARADES = ('Charades: download it (frames and CSVs) into one folder and set CHARADES to that folder (exp/*.py), '
             'or pass --data, --train-file, --val-file; see README "Training on Charades" (docs/training.md)')
WHERE_TO_GET = {  # how to get the files of each dataset read from files
    "charadesrgb": _CHARADES, "charadesflow": _CHARADES, "charadesrgbsubset": _CHARADES,
    "jesterrgb": 'Jester: download 20BN-jester-v1 and set JESTER to its folder (exp/asynctf_rgb_jester.py), or '
                 'pass --data, --train-file, --val-file; see docs/datasets.md "Jester"',
    "somethingrgb": 'Something-Something v2: download it, extract its frames, and set SOMETHING to its '
                    'folder (exp/asynctf_rgb_somethingsomething.py), or pass --data, --train-file, --val-file; '
                    'see docs/datasets.md "Something-Something v2"',
}


def _dataset_module(opts: argparse.Namespace):
    if opts.dataset not in DATASETS:
        raise InputError(f"unknown --dataset {opts.dataset!r}; choose one of: {', '.join(DATASETS)}")
    return importlib.import_module(f"datasets.{opts.dataset}")


def missing_data(opts: argparse.Namespace, files: Sequence[str] = ("train_file", "val_file")) -> list[tuple]:
    """``(option, path, what is wrong)`` for each input of ``opts.dataset`` that is absent: the annotation
    files named by the options ``files``, the labels file of a single-label dataset, and the frame tree
    ``--data`` (missing, not a folder, or empty).  Looks only at names and one directory entry."""
    module = _dataset_module(opts)
    if opts.dataset in IN_MEMORY:
        return []
    problems = []
    data = opts.data
    if not data:
        problems.append(("--data", "", "not given"))
    elif not os.path.isdir(data):
        problems.append(("--data", data, "not a folder" if os.path.exists(data) else "no such folder"))
    else:
        with os.scandir(data) as entries:
            if next(entries, None) is None:
                problems.append(("--data", data, "an empty folder (no video folders)"))
    named = [("--" + dest.replace("_", "-"), getattr(opts, dest)) for dest in files]
    if getattr(module, "LABELS", None):  # single-label sets: the class list, by default next to --train-file
        named.append(("--labels-file", labels_location(opts, module.LABELS)))
    for option, path in named:
        if not path:
            problems.append((option, "", "not given"))
        elif not os.path.isfile(path):
            problems.append((option, path, "not a file" if os.path.exists(path) else "no such file"))
    return problems


def check_data(opts: argparse.Namespace, files: Sequence[str] = ("train_file", "val_file")) -> None:
    """Stop with one line naming every missing input of ``opts.dataset`` (see ``missing_data``) and how to
    get them; nothing else is read, and nothing random is drawn, so a run with its data is unchanged."""
    problems = missing_data(opts, files)
    if not problems:
        return
    folders = {os.path.dirname(os.path.normpath(path)) for _, path, _ in problems}
    folder = folders.pop() if len(folders) == 1 else ""
    if len(problems) > 1 and all(path for _, path, _ in problems) and folder and not os.path.exists(folder):
        what = f"{folder}: no such folder (for {', '.join(option for option, _, _ in problems)})"  # CHARADES unset
    else:
        what = "; ".join(f"{option} {path}: {why}" if path else f"{option}: {why}" for option, path, why in problems)
    where = WHERE_TO_GET.get(opts.dataset, f"{opts.dataset}: see docs/datasets.md")
    raise MissingInputError(f"{what}. {where}")


def get_datasets(opts: argparse.Namespace) -> tuple[Dataset, Dataset, Dataset]:
    """The train, val and val_video datasets of ``opts.dataset``."""
    return _dataset_module(opts).get(opts)


def class_names(opts: argparse.Namespace) -> list[str] | None:
    """The class names of ``opts.dataset`` in class order (Charades: ``data/Charades_v1_classes.txt`` when
    ``--nclass`` is 157; Jester / Something-Something: ``--labels-file``, or the usual file next to
    ``--train-file``), or None where a dataset has none (``fake``, ``testdata1``) or they cannot be read."""
    names = getattr(_dataset_module(opts), "class_names", None)
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
