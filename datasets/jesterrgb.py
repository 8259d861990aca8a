"""20BN-jester-v1 RGB frames ``<data>/<id>/NNNNN.jpg`` (SPEC section 13): 27 hand gestures.

Annotations ``jester-v1-{train,validation}.csv``: lines ``id;label``.  Classes: ``jester-v1-labels.csv``,
one name a line, class = line number from 0.  No flip by default: a mirror turns "Swiping Left" into
"Swiping Right" (``--flip mirror`` swaps such labels, ``--flip original`` flips as the original did).
"""
from __future__ import annotations

import argparse

from datasets.frame_files import FrameNaming
from datasets.frame_index import LabelledVideo
from datasets.frames import RGBFrames
from datasets.single_label import labels_path, single_label_datasets, unique_ids
from utils.charades_csv import AnnotationError

NAMING = FrameNaming("{frame:05d}.jpg")
LABELS = "jester-v1-labels.csv"
DEFAULT_FLIP = "none"


def read_labels(path: str) -> list[str]:
    """Class names in class order: line ``k`` (from 0) names class ``k``; trailing blank lines ignored."""
    with open(path, encoding="utf-8-sig") as f:
        names = [line.strip() for line in f]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise AnnotationError(f"{path}: no class names")
    if "" in names:
        raise AnnotationError(f"{path}, line {names.index('') + 1}: empty class name")
    return names


def read_videos(path: str, classes: dict[str, int], labels: str) -> list[LabelledVideo]:
    """The ``id;label`` lines of ``path`` (blank lines skipped); ``classes``: name -> class of ``labels``."""
    videos = []
    with open(path, encoding="utf-8-sig") as f:
        for line, text in enumerate(f, 1):
            text = text.strip()
            if not text:
                continue
            parts = [p.strip() for p in text.split(";")]
            if len(parts) != 2 or not parts[0]:
                raise AnnotationError(f"{path}, line {line}: expected 'id;label', got {text!r}")
            vid, label = parts
            if label not in classes:
                raise AnnotationError(f"{path}, line {line}, video {vid}: unknown label {label!r} (not in {labels})")
            videos.append(LabelledVideo(vid, classes[label], line))
    return unique_ids(videos, path, "line")


def class_names(opts: argparse.Namespace) -> list[str]:
    """The class names of the labels file (``--labels-file``, or the usual one next to ``--train-file``)."""
    return read_labels(labels_path(opts, LABELS))


def get(opts: argparse.Namespace) -> tuple[RGBFrames, RGBFrames, RGBFrames]:
    """train, val, val_video datasets of ``opts.data`` with ``opts.train_file`` / ``opts.val_file``."""
    return single_label_datasets(opts, "jesterrgb", NAMING, LABELS, read_labels, read_videos, DEFAULT_FLIP)
