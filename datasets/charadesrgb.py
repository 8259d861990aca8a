"""Charades RGB frames ``<data>/<id>/<id>-NNNNNN.jpg`` (SPEC sections 1 and 2).

What is Charades here: the annotation CSV (``utils.charades_csv``, the one parser the evaluator shares),
the frame names, val_video frames placed by time, and the official evaluator scoring val_video against
``--val-file``.  The sampling is ``datasets.frame_index``'s and the dataset ``datasets.frames``'s.
"""
from __future__ import annotations

import argparse
import os

from datasets.frame_files import FrameNaming
from datasets.frame_index import FrameSource
from datasets.frame_io import FrameError, open_frame  # noqa: F401  (public: bench_loader and tests use them)
from datasets.frames import RGBFrames, resolve_flip, rgb_datasets
from utils.charades_csv import read_annotations, read_classes

NAMING = FrameNaming("{id}-{frame:06d}.jpg")
DEFAULT_FLIP = "original"  # no Charades class has a direction that a mirror would change
CLASSES_TXT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                           "Charades_v1_classes.txt")


def class_names(opts: argparse.Namespace) -> list[str] | None:
    """The 157 Charades class names (None for another ``--nclass``)."""
    names = read_classes(CLASSES_TXT)
    return names if len(names) == opts.nclass else None


def source(opts: argparse.Namespace, name: str = "charadesrgb", limit: int | None = None) -> FrameSource:
    """The Charades CSVs as a frame source (``limit``: only the first videos of each CSV)."""
    return FrameSource(name, NAMING, lambda path: read_annotations(path, opts.nclass)[:limit])


def get(opts: argparse.Namespace) -> tuple[RGBFrames, RGBFrames, RGBFrames]:
    """train, val, val_video datasets of ``opts.data`` with ``opts.train_file`` / ``opts.val_file``."""
    return rgb_datasets(opts, source(opts), flip=resolve_flip(opts, DEFAULT_FLIP, None), eval_csv=opts.val_file,
                        single_label=False)
