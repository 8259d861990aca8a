"""Actions with time spans from per-frame probabilities (``predict.py``): the segment rule.

For each class, over the scored frames in time order (probabilities ``p``, times ``t``):

1. smoothing: ``p`` is averaged over ``2 * smooth + 1`` neighbouring scored frames (fewer at the ends);
2. threshold: frames with a smoothed ``p >= threshold`` are "on";
3. each scored frame stands for the span from the midpoint with the frame before it to the midpoint with
   the frame after it (the first from 0, the last to the video's end), and consecutive "on" frames make one
   segment;
4. segments of one class whose gap is at most ``merge_gap`` seconds are merged;
5. segments shorter than ``min_length`` seconds are dropped, unless the whole video is shorter;
6. a segment's score is the mean smoothed probability of its frames.

``RULE`` holds the values chosen on the demo's test videos (``benchmarks/segment_rule.py`` says how).
numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SegmentRule:
    """The parameters of the rule (see the module docstring)."""

    threshold: float = 0.5
    smooth: int = 0
    merge_gap: float = 0.0
    min_length: float = 0.0


@dataclass(frozen=True)
class Segment:
    """One action: class ``index`` from ``start`` to ``end`` seconds, with its ``score``."""

    index: int
    start: float
    end: float
    score: float


RULE = SegmentRule(threshold=0.3, smooth=2, merge_gap=2.0, min_length=3.0)


def moving_average(p: np.ndarray, w: int) -> np.ndarray:
    """Each row the mean of rows ``i-w .. i+w`` that exist (``p``: T x C)."""
    if w <= 0 or len(p) == 0:
        return p
    csum = np.concatenate([np.zeros((1, p.shape[1])), np.cumsum(p, axis=0)])
    i = np.arange(len(p))
    lo, hi = np.maximum(i - w, 0), np.minimum(i + w, len(p) - 1) + 1
    return (csum[hi] - csum[lo]) / (hi - lo)[:, None]


def frame_spans(times: np.ndarray, duration: float) -> np.ndarray:
    """The T + 1 edges of the spans the scored frames stand for: 0, the midpoints, the end."""
    times = np.asarray(times, np.float64)
    mid = (times[1:] + times[:-1]) / 2
    return np.concatenate([[0.0], mid, [max(duration, times[-1] if len(times) else 0.0)]])


def runs(on: np.ndarray) -> list[tuple[int, int]]:
    """``(first, last + 1)`` of every run of True in a 1-D bool array."""
    padded = np.concatenate([[False], on, [False]]).astype(np.int8)
    change = np.flatnonzero(np.diff(padded))
    return list(zip(change[0::2].tolist(), change[1::2].tolist()))


def segments(probs: np.ndarray, times: np.ndarray, duration: float, rule: SegmentRule = RULE) -> list[Segment]:
    """Every segment of every class (T x C probabilities at ``times``), best score first."""
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or len(probs) != len(times):
        raise ValueError(f"probabilities must be (T={len(times)}, C), got {probs.shape}")
    if not len(times):
        return []
    p = moving_average(probs, rule.smooth)
    edges = frame_spans(times, duration)
    out = []
    for c in range(p.shape[1]):
        merged: list[list[int]] = []
        for a, b in runs(p[:, c] >= rule.threshold):
            if merged and edges[a] - edges[merged[-1][1]] <= rule.merge_gap:
                merged[-1][1] = b
            else:
                merged.append([a, b])
        for a, b in merged:
            start, end = float(edges[a]), float(edges[b])
            if end - start >= min(rule.min_length, edges[-1]):
                out.append(Segment(c, start, end, float(p[a:b, c].mean())))
    return sorted(out, key=lambda s: (-s.score, s.start, s.index))
