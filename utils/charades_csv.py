"""The one parser of Charades annotation CSVs, shared by the datasets and the evaluator.

Format (SPEC section 1): header ``id,subject,scene,quality,relevance,verified,script,objects,
descriptions,actions,length``; ``actions`` is empty or ``;``-separated ``cNNN START END`` (seconds);
text fields are quoted and may contain commas.  Numpy/stdlib only: the evaluator runs without torch.

Checked when read, so that a bad file stops a run before its first batch: a duplicate id, an id with
white space (a submission line could not hold it), a length that is not a finite number > 0, an action
time that is NaN, infinite or negative, and a file without any video are errors naming the file, the
line(s) and the video.  A UTF-8 byte-order mark is skipped.  Actions that end before they start occur in
the real Charades CSVs (7 in Charades_v1_train.csv): they are kept as they are (they label the video,
but no frame lies inside them, as in the original and the official evaluator) and counted in one warning.
"""
from __future__ import annotations

import csv
import logging
import math
import os
from dataclasses import dataclass, field

from utils.cli import MissingInputError, UserError

REQUIRED_COLUMNS = ("id", "actions", "length")
log = logging.getLogger(__name__)


class AnnotationError(UserError, ValueError):
    """A malformed annotation file; the message names the file, line and video."""


def id_problem(vid: str) -> str | None:
    """Why ``vid`` cannot be a video id (white space or control characters: a submission line, ``ID s_0
    ...``, could not hold it), or None.  Shared by every dataset's annotation parser."""
    if any(ch.isspace() or not ch.isprintable() for ch in vid):
        return f"the id {vid!r} contains white space or control characters"
    return None


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
        if not (math.isfinite(start) and math.isfinite(end) and start >= 0 and end >= 0):
            raise AnnotationError(f"{where}: action {item!r} has a time that is not a finite number >= 0")
        if cls >= nclass:
            raise AnnotationError(f"{where}: class {parts[0]} is out of range (nclass={nclass})")
        actions.append((cls, start, end))
    return tuple(actions)


def read_annotations(path: str, nclass: int = 157) -> list[Video]:
    """Parse an annotation CSV into ``Video`` records, in file order.

    Raises ``FileNotFoundError`` for a missing file and ``AnnotationError`` (naming the file, the line
    and the video) for a missing column, a malformed action, a class id ``>= nclass``, a bad length or
    time, a duplicate or unusable id, or a file without videos (see the module docstring).
    """
    if not os.path.isfile(path):
        raise MissingInputError(f"annotation file not found: {path}")
    videos, first_line, backwards = [], {}, []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a byte-order mark is not part of 'id'
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise AnnotationError(f"{path}: missing column(s) {', '.join(missing)} in header {reader.fieldnames}")
            for row in reader:
                vid = (row["id"] or "").strip()
                where = f"{path}, line {reader.line_num}, video {vid or '?'}"
                if not vid:
                    raise AnnotationError(f"{where}: empty id")
                if id_problem(vid):
                    raise AnnotationError(f"{where}: {id_problem(vid)}")
                if vid in first_line:
                    raise AnnotationError(f"{path}: video {vid} appears twice, on lines {first_line[vid]} and "
                                          f"{reader.line_num}: each video must have one row")
                first_line[vid] = reader.line_num
                try:
                    length = float(row["length"])
                except (TypeError, ValueError):
                    raise AnnotationError(f"{where}: length {row['length']!r} is not a number") from None
                if not (math.isfinite(length) and length > 0):
                    raise AnnotationError(f"{where}: length {row['length']!r} is not a finite number of seconds > 0")
                actions = _parse_actions(row["actions"] or "", nclass, where)
                backwards += [(reader.line_num, vid, a) for a in actions if a[1] > a[2]]
                videos.append(Video(vid, actions, length, reader.line_num))
    except UnicodeDecodeError as e:  # a ValueError, but not one that names the file
        raise AnnotationError(f"{path}: not a UTF-8 text file ({e.reason}): is it the annotation "
                              "CSV?") from None
    except csv.Error as e:  # a NUL byte, an unclosed quote that swallows the rest, a huge field
        raise AnnotationError(f"{path}: not a readable CSV ({e})") from None
    if not videos:
        raise AnnotationError(f"{path}: no videos (only a header, or an empty file)")
    if backwards:
        line, vid, (c, start, end) = backwards[0]
        log.warning("%s: %d action(s) in %d video(s) end before they start (first: line %d, video %s, c%03d %g %g);"
                    " kept as they are: they label their video but no frame", path, len(backwards),
                    len({b[1] for b in backwards}), line, vid, c, start, end)
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
