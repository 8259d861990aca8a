"""Something-Something v2 RGB frames ``<data>/<id>/<id>-NNNNNN.jpg`` (SPEC section 13): 174 classes.

Annotations ``something-something-v2-{train,validation}.json``: a list of ``{id, label, template,
placeholders}``.  Classes: ``something-something-v2-labels.json``, ``{template without '[' ']': index}``.
The default flip swaps the label of every left/right template pair ("Pushing something from left to
right" <-> "... from right to left") and never flips a direction template without a mirror
(``datasets.mirror``); ``--flip none`` or ``--flip original`` (the original's flip) instead.
"""
from __future__ import annotations

import argparse
import json

from datasets.frame_files import FrameNaming
from datasets.frame_index import LabelledVideo
from datasets.frames import RGBFrames
from datasets.single_label import labels_path, single_label_datasets, unique_ids
from utils.charades_csv import AnnotationError

NAMING = FrameNaming("{id}-{frame:06d}.jpg")
LABELS = "something-something-v2-labels.json"
DEFAULT_FLIP = "mirror"


def load_json(path: str):
    """The JSON content of ``path``; bad JSON is an error naming the file, line and column."""
    with open(path, encoding="utf-8-sig") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise AnnotationError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None


def read_labels(path: str) -> list[str]:
    """Class names (templates without brackets) in class order, from ``{template: index}``."""
    data = load_json(path)
    if not isinstance(data, dict) or not data:
        raise AnnotationError(f"{path}: expected a JSON object {{template: class index}}")
    names: dict[int, str] = {}
    for name, index in data.items():
        try:
            c = int(index)  # the released file writes the indices as strings
        except (TypeError, ValueError):
            raise AnnotationError(f"{path}: template {name!r} has class index {index!r}, not an integer") from None
        if c in names:
            raise AnnotationError(f"{path}: templates {names[c]!r} and {name!r} share class index {c}")
        names[c] = name
    if sorted(names) != list(range(len(names))):
        raise AnnotationError(f"{path}: class indices must be 0..{len(names) - 1}, got {sorted(names)[:5]}...")
    return [names[c] for c in range(len(names))]


def read_videos(path: str, classes: dict[str, int], labels: str) -> list[LabelledVideo]:
    """The entries of ``path``; the class of each is ``classes[template without '[' and ']']``."""
    data = load_json(path)
    if not isinstance(data, list):
        raise AnnotationError(f"{path}: expected a JSON list of {{id, label, template, placeholders}}")
    videos = []
    for k, entry in enumerate(data):
        where = f"{path}, entry {k}"
        if not isinstance(entry, dict):
            raise AnnotationError(f"{where}: expected an object, got {entry!r:.60}")
        missing = [f for f in ("id", "template") if not isinstance(entry.get(f), (str, int)) or entry.get(f) == ""]
        if missing:
            raise AnnotationError(f"{where} (id {entry.get('id', '?')}): missing field(s) {', '.join(missing)}")
        template = str(entry["template"]).replace("[", "").replace("]", "")
        if template not in classes:
            raise AnnotationError(f"{where} (id {entry['id']}): unknown template {template!r} (not in {labels})")
        videos.append(LabelledVideo(str(entry["id"]), classes[template], k))
    return unique_ids(videos, path, "entry")


def class_names(opts: argparse.Namespace) -> list[str]:
    """The class names of the labels file (``--labels-file``, or the usual one next to ``--train-file``)."""
    return read_labels(labels_path(opts, LABELS))


def get(opts: argparse.Namespace) -> tuple[RGBFrames, RGBFrames, RGBFrames]:
    """train, val, val_video datasets of ``opts.data`` with ``opts.train_file`` / ``opts.val_file``."""
    return single_label_datasets(opts, "somethingrgb", NAMING, LABELS, read_labels, read_videos, DEFAULT_FLIP)
