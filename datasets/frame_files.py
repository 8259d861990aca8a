"""The frame files of a video on disk: how a dataset names them (``FrameNaming``) and what one directory
listing finds (``Listing``: the highest frame number and the gaps in the numbering).  Nothing is decoded.
"""
from __future__ import annotations

import os
import re
import string
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True)
class FrameNaming:
    """How a dataset names the frame files of a video inside ``<data>/<id>/``: ``template`` is formatted
    with ``id``, ``frame`` (1-based) and, for frames stored as several planes (flow x / y), ``axis``."""

    template: str                    # e.g. "{id}-{frame:06d}.jpg", "{frame:05d}.jpg"
    axes: tuple[str, ...] = ("",)    # flow: ("x", "y")

    def path(self, root: str, video_id: str, frame: int, axis: str = "") -> str:
        return os.path.join(root, video_id, self.template.format(id=video_id, frame=frame, axis=axis))

    def pattern(self, video_id: str) -> re.Pattern:
        """The file names ``template`` gives this video, with groups ``frame`` and ``axis``."""
        out = []
        for literal, name, spec, _ in string.Formatter().parse(self.template):
            out.append(re.escape(literal))
            if name == "id":
                out.append(re.escape(video_id))
            elif name == "frame":  # "{frame:06d}": exactly 6 digits, or more without a leading zero
                width = int(spec.rstrip("d") or 1)
                out.append(rf"(?P<frame>\d{{{width}}}|[1-9]\d{{{width},}})")
            elif name == "axis":
                out.append("(?P<axis>" + "|".join(map(re.escape, self.axes)) + ")")
            elif name is not None:
                raise ValueError(f"frame name template {self.template!r}: unknown field {{{name}}}")
        return re.compile("".join(out))


class Listing(NamedTuple):
    """A video's frames from one directory listing: ``n``, the highest frame number present (in every
    plane), and the numbers in ``1..n`` that are missing (gaps in the numbering)."""

    n: int
    missing: tuple[int, ...] = ()


def list_frames(video_dir: str, video_id: str, naming: FrameNaming) -> Listing:
    """The frames of one video from ONE directory listing; ``n = 0`` when it is missing or has none.
    A frame counts when every plane of it exists (flow: a lone x or y is not a usable frame)."""
    try:
        names = os.listdir(video_dir)
    except (FileNotFoundError, NotADirectoryError):
        return Listing(0)
    pattern = naming.pattern(video_id)
    planes: dict[str, set[int]] = {axis: set() for axis in naming.axes}
    for match in map(pattern.fullmatch, names):
        if match:
            planes[match.groupdict().get("axis") or ""].add(int(match.group("frame")))
    present = set.intersection(*planes.values())
    present.discard(0)  # numbered from 1
    if not present:
        return Listing(0)
    n = max(present)
    return Listing(n, tuple(sorted(set(range(1, n + 1)) - present)) if len(present) < n else ())


def list_all(videos: Sequence, root: str, naming: FrameNaming, workers: int = 16) -> list[Listing]:
    """``list_frames`` of every video; threaded because listings on a network file system are
    latency-bound (one round trip per video, ~10k videos)."""
    def one(v) -> Listing:
        return list_frames(os.path.join(root, v.id), v.id, naming)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, videos))


def describe_gaps(listing: Listing, limit: int = 6) -> str:
    """``"frames 13, 20-22 missing of 1..48"``: the missing numbers as ranges (the first ``limit``)."""
    runs: list[list[int]] = []
    for f in listing.missing:
        if runs and f == runs[-1][1] + 1:
            runs[-1][1] = f
        else:
            runs.append([f, f])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs[:limit])
    more = f" and {len(runs) - limit} more runs" if len(runs) > limit else ""
    return f"frame{'s' if len(listing.missing) > 1 else ''} {text}{more} missing of 1..{listing.n}"
