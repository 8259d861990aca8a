"""The one parser of Charades annotation CSVs, shared by the datasets and the evaluator.

Format (SPEC section 1): header ``id,subject,scene,quality,relevance,verified,script,objects,
descriptions,actions,length``; ``actions`` is empty or ``;``-separated ``cNNN START END`` (seconds);
text fields are quoted and may contain commas.  Numpy/stdlib only: the evaluator runs without torch.
"""
from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field

REQUIRED_COLUMNS = ("id", "actions", "length")


class AnnotationError(ValueError):
    """A malformed annotation file; the message names the file, line and video."""


@dataclass(frozen=True)
class Video:
    """One annotated video: its id, its actions ``(class, start, end)`` in seconds, its length."""

    id: str
    actions: tuple[tuple[int, float, float], ...]
    length: float
    line: int = field(default=0, compare=False)

    @property
    def classes(self) -> list[int]:
        """The sorted set of classes that occur anywhere in the video (its video-level label)."""
        return sorted({c for c, _, _ in self.actions})


def _parse_actions(text: str, nclass: int, where: str) -> tuple[tuple[int, float, float], ...]:
    actions = []
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        parts = item.split()
        if len(parts) != 3 or not parts[0].startswith("c") or not parts[0][1:].isdigit():
            raise AnnotationError(f"{where}: malformed action {item!r} (expected 'cNNN START END')")
        cls = int(parts[0][1:])
        try:
            start, end = float(parts[1]), float(parts[2])
        except ValueError:
            raise AnnotationError(f"{where}: malformed action {item!r} (START and END must be numbers)") from None
        if cls >= nclass:
            raise AnnotationError(f"{where}: class {parts[0]} is out of range (nclass={nclass})")
        actions.append((cls, start, end))
    return tuple(actions)


def read_annotations(path: str, nclass: int = 157) -> list[Video]:
    """Parse an annotation CSV into ``Video`` records, in file order.

    Raises ``FileNotFoundError`` for a missing file and ``AnnotationError`` (naming the file, the line
    and the video) for a missing column, a malformed action, a class id ``>= nclass`` or a bad length.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"annotation file not found: {path}")
    videos = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise AnnotationError(f"{path}: missing column(s) {', '.join(missing)} in header {reader.fieldnames}")
        for row in reader:
            vid = (row["id"] or "").strip()
            where = f"{path}, line {reader.line_num}, video {vid or '?'}"
            if not vid:
                raise AnnotationError(f"{where}: empty id")
            try:
                length = float(row["length"])
            except (TypeError, ValueError):
                raise AnnotationError(f"{where}: length {row['length']!r} is not a number") from None
            actions = _parse_actions(row["actions"] or "", nclass, where)
            videos.append(Video(vid, actions, length, reader.line_num))
    return videos


def read_classes(path: str) -> list[str]:
    """Class names from ``Charades_v1_classes.txt`` (lines ``cNNN Name``), in class order."""
    names = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                names.append(line.split(" ", 1)[1] if " " in line else line)
    return names


def file_digest(path: str) -> str:
    """SHA-1 of a file's bytes (keys caches on the annotation content, not its mtime)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
