"""What the single-label frame datasets share (Jester, Something-Something; SPEC section 13).

One class per video, carried by every sampled frame; train/val take every ``GAP``-th frame from frame 1,
val_video spreads ``--test-frames`` frames over the whole video (``frame_index`` placement ``spread``).
The classes come from a labels file (``--labels-file``, by default the dataset's usual name next to
``--train-file``).  There is no Charades-format CSV to score against: val_video's mAP is computed from the
scores in memory, and video top-1 / top-5 accuracy, these datasets' standard metrics, are reported too.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence

from datasets.frame_files import FrameNaming
from datasets.frame_index import FrameSource, LabelledVideo
from datasets.frames import RGBFrames, resolve_flip, rgb_datasets
from utils.charades_csv import AnnotationError
from utils.cli import MissingInputError


def labels_location(opts: argparse.Namespace, default_name: str) -> str:
    """``--labels-file``, or ``default_name`` in the folder of ``--train-file``."""
    return opts.labels_file or os.path.join(os.path.dirname(opts.train_file or opts.val_file), default_name)


def labels_path(opts: argparse.Namespace, default_name: str) -> str:
    """``labels_location``; it must exist."""
    path = labels_location(opts, default_name)
    if not os.path.isfile(path):
        raise MissingInputError(f"labels file not found: {path} (--labels-file; by default {default_name} "
                                f"next to --train-file)")
    return path


def check_classes(names: Sequence[str], path: str, nclass: int) -> None:
    """A labels file must name ``nclass`` distinct classes."""
    seen: dict[str, int] = {}
    for c, name in enumerate(names):
        if name in seen:
            raise AnnotationError(f"{path}: class {name!r} is listed twice (classes {seen[name]} and {c})")
        seen[name] = c
    if len(names) != nclass:
        raise AnnotationError(f"{path} names {len(names)} classes but --nclass is {nclass}: pass --nclass "
                              f"{len(names)}")


def unique_ids(videos: list[LabelledVideo], path: str, where: str) -> list[LabelledVideo]:
    """``videos`` unchanged; a video id listed twice is an error naming both places."""
    first: dict[str, int] = {}
    for v in videos:
        if v.id in first:
            raise AnnotationError(f"{path}, {where} {v.line}: video {v.id} is listed twice (first at "
                                  f"{where} {first[v.id]})")
        first[v.id] = v.line
    return videos


def single_label_datasets(opts: argparse.Namespace, name: str, naming: FrameNaming, labels_name: str,
                          read_labels: Callable[[str], list[str]],
                          read_videos: Callable[[str, dict[str, int], str], list[LabelledVideo]],
                          default_flip: str) -> tuple[RGBFrames, RGBFrames, RGBFrames]:
    """The three RGB datasets of a single-label set: its class names are ``read_labels(labels file)``
    (``labels_name`` unless ``--labels-file``), and ``read_videos(annotation file, {name: class}, labels
    file)`` parses its annotation files."""
    labels = labels_path(opts, labels_name)
    names = read_labels(labels)
    check_classes(names, labels, opts.nclass)
    classes = {class_name: c for c, class_name in enumerate(names)}
    source = FrameSource(name, naming, lambda path: read_videos(path, classes, labels), depends=(labels,),
                         placement="spread")
    return rgb_datasets(opts, source, flip=resolve_flip(opts, default_flip, names), eval_csv=None,
                        single_label=True)
