"""One video's predictions (``predict.py``): the per-frame probabilities, the video's class scores, the
segments, and how they are written: ``<id>.json``, the rows of the Charades submission files, the console
table.  numpy only.
"""
from __future__ import annotations

import json
import re
import os
from dataclasses import dataclass, field

import numpy as np

from utils.atomic import atomic_write_text
from utils.safe_names import safe_filename
from utils.segments import RULE, Segment, SegmentRule, segments
from utils.submission import NFRAMES, localization_rows

_SPACE = re.compile(r"\s")


@dataclass
class VideoPrediction:
    """``probs`` (T x C): the probabilities of the T scored frames, numbered ``frames`` (1-based, of the
    24 fps tree) and shown at ``times`` seconds; ``even``: the frames are val_video's evenly placed
    samples (the localisation rows are then val_video's, ``localization_rows``)."""

    id: str
    duration: float
    frames: np.ndarray
    times: np.ndarray
    probs: np.ndarray
    names: list[str]
    even: bool = True
    notes: list[str] = field(default_factory=list)
    rule: SegmentRule = RULE
    _segments: list[Segment] | None = None

    @property
    def scores(self) -> np.ndarray:
        """The video's class scores: the maximum over its frames (as val_video and ``get_alltest.py``)."""
        return self.probs.max(axis=0)

    @property
    def segments(self) -> list[Segment]:
        if self._segments is None:
            self._segments = segments(self.probs, self.times, self.duration, self.rule)
        return self._segments

    def name(self, c: int) -> str:
        return self.names[c] if c < len(self.names) else f"class {c}"

    def ranked(self) -> list[int]:
        """Classes by score, best first (ties: the lower index)."""
        return np.argsort(-self.scores, kind="stable").tolist()

    def localization(self) -> np.ndarray:
        """(25, C): the scores at the official localisation times ``(j-1)/25 * duration``: val_video's rows
        for evenly placed frames, else the scored frame nearest in time (ties: the earlier)."""
        if self.even:
            return self.probs[localization_rows(len(self.probs))]
        points = np.arange(NFRAMES) / NFRAMES * self.duration
        rows = np.abs(self.times[None, :] - points[:, None]).argmin(axis=1)
        return self.probs[rows]

    def to_json(self) -> dict:
        scores = self.scores
        return {
            "video": self.id, "duration": round(self.duration, 6),
            "classes": [{"index": c, "name": self.name(c), "score": float(scores[c])} for c in self.ranked()],
            "frames": [{"frame": int(f), "time": round(float(t), 6), "scores": [float(x) for x in row]}
                       for f, t, row in zip(self.frames, self.times, self.probs)],
            "segments": [{"index": s.index, "name": self.name(s.index), "start": round(s.start, 3),
                          "end": round(s.end, 3), "score": s.score} for s in self.segments],
            "notes": list(self.notes),
        }


def output_name(video_id: str) -> str:
    """The file name stem of a video's outputs (its id, made safe as a file name)."""
    return safe_filename(video_id)


def submission_id(video_id: str) -> str:
    """The id as a submission row holds it: one word (white space becomes ``_``)."""
    return _SPACE.sub("_", video_id)


def write_json(pred: VideoPrediction, out: str) -> str:
    """``<out>/<id>.json`` (atomically); returns its path."""
    path = os.path.join(out, output_name(pred.id) + ".json")
    atomic_write_text(path, json.dumps(pred.to_json(), separators=(",", ":")) + "\n")
    return path


def spans_text(segs: list[Segment], limit: int = 3) -> str:
    """``"0.0-4.5 s, 8.0-12.3 s"`` in time order (the first ``limit``)."""
    segs = sorted(segs, key=lambda s: s.start)
    text = ", ".join(f"{s.start:.1f}-{s.end:.1f} s" for s in segs[:limit])
    return text + (f" (+{len(segs) - limit})" if len(segs) > limit else "") if segs else "-"


def table(pred: VideoPrediction, top: int = 5) -> str:
    """The console table of a video: its ``top`` classes with their scores and time spans."""
    by_class: dict[int, list[Segment]] = {}
    for s in pred.segments:
        by_class.setdefault(s.index, []).append(s)
    head = f"{pred.id}  ({pred.duration:.1f} s, {len(pred.probs)} frames scored)"
    rows = [(f"{pred.scores[c]:.3f}", pred.name(c), spans_text(by_class.get(c, []))) for c in pred.ranked()[:top]]
    width = max([len(r[1]) for r in rows] + [6])
    lines = [head, f"  {'score':>5}  {'action':<{width}}  time spans"]
    lines += [f"  {s:>5}  {n:<{width}}  {t}" for s, n, t in rows]
    lines += [f"  note: {n}" for n in pred.notes]
    return "\n".join(lines)
