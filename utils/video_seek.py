"""Seeking instead of decoding everything (``predict.py``): a video's end from its tail, and chosen frames
from the keyframes before them.  Both give exactly what a full decode gives, or say they cannot (None, or
``SeekFailed``), and the caller then decodes the whole stream (``utils.video_sample``).

- **Where.** Containers with a seek index: MP4 / MOV, Matroska / WebM, AVI.  Others (MPEG program and
  transport streams, raw streams...) are decoded straight through.
- **The end.** The first frame's timestamp from the start, then a seek to the last keyframe and a decode
  to the end of the file.  Not trusted (None) when that tail has damaged packets, a lone frame without a
  duration, an index that points past the end of the file, or ends over ``SHORT_BY_S`` before the
  container's declared duration (a truncated file); nor when two frames may lie over ``MAX_GAP_S`` apart
  (the frame rule shortens such a gap, which only a full decode can place): the index's keyframes, every
  frame lying between two of them, rule that out for free; where they are further apart, the timestamps of
  every packet (demuxed, not decoded) say.
- **Chosen frames.** For each output instant ``s``: the last frame with ``t <= s + tolerance``.  Before an
  instant whose keyframe (by the index) lies more than ``SEEK_COST_FRAMES`` frames past what is already
  decoded, seek (to the instant: the demuxer goes to the keyframe at or before it); otherwise go on
  decoding: so a short video, or samples close together, are decoded straight through.  After a seek,
  packets before the first keyframe are dropped, and the keyframe must come at or before the instant
  (else the index's keyframes before it are tried, then the whole stream is decoded).
"""
from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction

from utils.video_decode import MAX_GAP_S, decoded_frames, end_duration, frame_times, short_note, tolerance

SEEKABLE = ("mov", "matroska", "avi")  # demuxers (``container.format.name`` parts) with an index to seek by
SEEK_COST_FRAMES = 8  # a seek costs about the decoder's reorder delay and a flush: a few frames
RETRIES = 3           # keyframes further back tried when a seek lands after the instant


class SeekFailed(Exception):
    """Seeking could not give the frame a full decode gives; decode straight through instead."""


class Counted:
    """Counts the frames decoded and the seeks made (the benchmark and the tests read them)."""

    def __init__(self):
        self.frames = 0
        self.seeks = 0
        self.marks: list[int] = []  # ``frames`` when each chosen frame was found

    def mark(self) -> None:
        self.marks.append(self.frames)

    def wrap(self, frames: Iterable) -> Iterator:
        for item in frames:
            self.frames += 1
            yield item


def seekable(container) -> bool:
    """Whether the container has an index to seek by."""
    return any(name in SEEKABLE for name in container.format.name.split(","))


def from_keyframe(container, stream) -> Iterator:
    """The packets of ``stream`` from the first keyframe the demuxer gives after a seek."""
    started = False
    for packet in container.demux(stream):
        started = started or (packet.is_keyframe and packet.size > 0)
        if started or packet.size == 0:  # (the empty packet at the end flushes the decoder)
            yield packet


def seek(container, stream, pts: int) -> None:
    """Put the demuxer at the keyframe at or before ``pts`` (the stream's time base) and empty the decoder."""
    container.seek(int(pts), backward=True, any_frame=False, stream=stream)
    stream.codec_context.flush_buffers()


def first_pts(container, stream) -> int | None:
    """The pts of the first decoded frame (from the start), or None."""
    for frame in decoded_frames(container, stream, []):
        if frame.pts is not None:
            return frame.pts
    return None


def tail_end(container, stream) -> tuple[Fraction, int] | None:
    """``(D, first pts)``: the end of the last frame in seconds from the first frame, found from the last
    keyframe on; None where only a full decode can say (see the module docstring)."""
    if not seekable(container):
        return None
    try:
        first = first_pts(container, stream)
        if first is None:
            return None
        entries = stream.index_entries
        if len(entries) and os.path.isfile(container.name) and \
                max(e.pos + e.size for e in entries) > os.path.getsize(container.name):
            return None  # the index points past the end of the file: truncated
        seek(container, stream, 2 ** 62)  # the last keyframe
        notes: list[str] = []
        held, prev_t, tail_start = None, None, None
        for t, duration, frame in frame_times(decoded_frames(container, stream, notes, from_keyframe(container, stream)),
                                              first, Fraction(stream.time_base)):
            if tail_start is None:
                tail_start = t
            if held is not None:
                if t <= held[0]:
                    continue
                if t - held[0] > MAX_GAP_S:
                    return None  # a gap the frame rule shortens, in the tail
                prev_t = held[0]
            held = (t, duration)
        if held is None or not gaps_bounded(container, stream, first, tail_start):
            return None
    except Exception:  # any trouble seeking: the full decode will say what is wrong
        return None
    if notes or (not held[1] and prev_t is None) or (held[1] or 0) > MAX_GAP_S:
        return None
    end = held[0] + end_duration(held[0], held[1], prev_t)
    if short_note(end, container, stream):  # truncated: the full decode says so
        return None
    return end, first


def gaps_bounded(container, stream, first: int, tail: Fraction) -> bool:
    """Whether no two consecutive frames before ``tail`` (the last keyframe's time, from which ``tail_end``
    decoded and checked the rest) lie over ``MAX_GAP_S`` apart.  Every frame lies between two keyframes, so
    keyframes of the index that close together, up to ``tail``, settle it for free; otherwise (keyframes
    far apart, or an index that holds only some of them) every packet's timestamp is read: demuxed from the
    start, not decoded (about 1/50 of decoding the video)."""
    keys = [k for k in keyframe_times(stream, first) if k < tail] + [tail]
    if keys[0] <= MAX_GAP_S and all(b - a <= MAX_GAP_S for a, b in zip(keys, keys[1:])):
        return True
    seek(container, stream, first)
    tb = Fraction(stream.time_base)
    times = sorted((p.pts - first) * tb for p in container.demux(stream) if p.pts is not None)
    return all(b - a <= MAX_GAP_S for a, b in zip(times, times[1:]))


def keyframe_times(stream, first: int) -> list[Fraction]:
    """The keyframe timestamps of the stream's index, in seconds from the first frame, ascending."""
    tb = Fraction(stream.time_base)
    return sorted({(e.timestamp - first) * tb for e in stream.index_entries if e.is_keyframe})


def shown_by_seeking(container, stream, wanted: Sequence[int], fps: Fraction, first: int,
                     counted: Counted) -> Iterator[tuple[int, object]]:
    """``(k, frame)`` for each output frame ``k`` of ``wanted`` (ascending): the frame the frame rule shows
    there, seeking to keyframes where that saves decoding.  ``SeekFailed`` where it cannot be sure."""
    tol = tolerance(stream)
    rate = stream.average_rate or stream.guessed_rate or 25
    seek_cost = Fraction(SEEK_COST_FRAMES) / Fraction(rate)
    seek(container, stream, first)  # (Matroska reads its index, the cues, at the first seek)
    keys = keyframe_times(stream, first)
    frames, held, ahead, last_t = None, None, None, None
    for k in wanted:
        limit = Fraction(k - 1) / fps + tol
        if ahead is not None and ahead[0] <= limit:
            held, ahead = ahead, None
        before = bisect.bisect_right(keys, limit)  # keyframes at or before the instant (keys ascending)
        if before and (frames is None or (ahead is None and keys[before - 1] - last_t > seek_cost)):
            frames, held, ahead = _seek_to(container, stream, keys, before - 1, limit, first, counted)
        elif frames is None:
            raise SeekFailed("no keyframe before the instant")
        while ahead is None:
            item = next(frames, None)
            if item is None:
                break
            last_t = item[0]
            if held is not None and item[0] <= held[0]:
                continue  # a timestamp that does not increase: dropped, as by the frame rule
            if item[0] <= limit:
                held = item
            else:
                ahead = item
        if held is None:
            raise SeekFailed(f"no frame at or before {float(limit):.3f} s after the seek")
        yield k, held[2]


def _seek_to(container, stream, keys: list[Fraction], i: int, limit: Fraction, first: int, counted: Counted):
    """Seek to the keyframe at or before ``limit`` (the demuxer's choice), or else to up to ``RETRIES``
    keyframes of the index before ``keys[i]``, so that the first keyframe decoded comes at or before
    ``limit``; returns ``(frames, held, ahead)`` with that keyframe held."""
    tb = Fraction(stream.time_base)
    for target in [limit] + keys[max(i - RETRIES, 0):i][::-1]:
        seek(container, stream, first + target / tb)
        counted.seeks += 1
        notes: list[str] = []
        frames = _checked(frame_times(counted.wrap(decoded_frames(container, stream, notes,
                                                                  from_keyframe(container, stream))),
                                      first, tb), notes)
        head = next(frames, None)
        if head is None or not head[2].key_frame:
            raise SeekFailed("no keyframe after the seek")
        if head[0] <= limit:
            return frames, head, None
    raise SeekFailed("seeks land after the instant")


def _checked(frames: Iterator, notes: list[str]) -> Iterator:
    """``frames``, raising ``SeekFailed`` as soon as decoding notes a damaged packet."""
    for item in frames:
        if notes:
            raise SeekFailed(notes[0])
        yield item
    if notes:
        raise SeekFailed(notes[0])
