"""Seeking instead of decoding everything: a video's end from its tail, chosen frames from the keyframes
before them.  Each function returns None where it cannot be sure to give what a full decode gives, and
the caller then decodes the whole stream (``utils.video_sample``)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction


class Counted:
    """Counts the frames decoded (and seeks made) for the benchmark and the tests."""

    def __init__(self):
        self.frames = 0
        self.seeks = 0

    def wrap(self, frames: Iterable) -> Iterator:
        for item in frames:
            self.frames += 1
            yield item


def tail_end(container, stream) -> Fraction | None:
    """``D`` from the last keyframe on; None where a full decode is needed."""
    return None


def plan(container, stream, wanted: list[int], fps: Fraction):
    """Which keyframes to seek to for the output frames ``wanted``; None: decode straight through."""
    return None


def shown_by_seeking(container, stream, plan, fps: Fraction, counted: Counted):
    raise NotImplementedError
