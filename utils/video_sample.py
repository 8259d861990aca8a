"""Chosen frames of a video, in memory, by the frame rule of ``extract_frames.py`` (``predict.py``).

``measure`` finds how many frames the video's tree has (``frame_count`` of the end of its last decodable
frame) and ``sampled`` decodes the pictures of chosen output frames: exactly those ``extract_frames.py``
would write as those frame numbers, before their JPEG step.  Nothing is written to disk and only the
chosen pictures are converted to RGB.  Both take the cheap way where the file allows (``utils.video_seek``:
the end from a seek to the last keyframe; the chosen frames by seeking to the keyframe before each when
that skips enough of the video), and decode the whole stream where it must.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from utils import video_seek
from utils.video_decode import (VideoError, decoded, frame_count, open_video, scaled_size, short_note, to_rgb,
                                tolerance)
from utils.video_frames import shown_at, stream_end


@dataclass
class VideoLength:
    """How long a video is by the frame rule: ``end`` (``D``, seconds from its first frame) and the
    ``nframes`` of its tree at ``fps``; ``decoded_all``: found by decoding the whole stream (the slow
    path) rather than from its tail; ``notes``: warnings (skipped packets, a truncated file)."""

    end: Fraction
    nframes: int
    fps: Fraction
    decoded_all: bool
    notes: list[str] = field(default_factory=list)
    first_pts: int | None = None  # of the first frame (found on the cheap path; seeks need it)

    @property
    def duration(self) -> float:
        return float(self.end)


def measure(path: str, fps: Fraction, threads: int = 1, cheap: bool = True) -> VideoLength:
    """The video's length by the frame rule: from its tail where that is safe (``video_seek.tail_end``),
    else by decoding every frame.  ``VideoError`` when nothing decodes."""
    if cheap:
        container, stream = open_video(path, threads)
        with container:
            found = video_seek.tail_end(container, stream)
            if found is not None:
                end, first = found
                return VideoLength(end, frame_count(end, fps, tolerance(stream)), fps, False, first_pts=first)
    container, stream = open_video(path, threads)  # the full decode, from a freshly opened file
    with container:
        tol = tolerance(stream)
        notes: list[str] = []
        end = stream_end(decoded(container, stream, notes))
        if end is None:
            raise VideoError("no frame could be decoded" + (f" ({notes[0]})" if notes else ""))
        n = frame_count(end, fps, tol)
        note = short_note(Fraction(n) / fps, container, stream)
        return VideoLength(end, n, fps, True, notes + ([note] if note else []))


def sampled(path: str, wanted: Sequence[int], length: VideoLength, threads: int = 1, short_side: int = 0,
            cheap: bool = True, stats: dict | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(k, RGB picture)`` for each output frame ``k`` of ``wanted`` (1-based, ascending, repeats allowed,
    at most ``length.nframes``), scaled to ``short_side`` (0: full size) and turned upright: the picture
    ``extract_frames.py`` writes as frame ``k``.  Seeks where that is cheaper (``video_seek.shown_by_seeking``), else
    decodes straight through, stopping after the last one.  ``stats`` (a dict) receives ``frames_decoded``,
    ``seeks`` and ``marks`` (the frames decoded when each chosen frame was found)."""
    wanted = list(wanted)
    if not wanted:
        return
    if wanted != sorted(wanted) or wanted[0] < 1 or wanted[-1] > length.nframes:
        raise ValueError(f"frames must be ascending in 1..{length.nframes}, got {wanted[0]}..{wanted[-1]}")
    counted, size, last, rgb, done = video_seek.Counted(), None, None, None, 0
    seeking = cheap and length.first_pts is not None
    while done < len(wanted):
        container, stream = open_video(path, threads)
        with container:
            if seeking:
                shown = video_seek.shown_by_seeking(container, stream, wanted[done:], length.fps, length.first_pts,
                                                    counted)
            else:
                shown = shown_at(counted.wrap(decoded(container, stream, [])), wanted[done:], length.fps,
                                 tolerance(stream))
            try:
                for k, frame in shown:
                    size = size or scaled_size(frame.width, frame.height, short_side)
                    if frame is not last:  # a picture shown by several chosen frames is converted once
                        last, rgb = frame, to_rgb(frame, size)
                    counted.mark()
                    if stats is not None:
                        stats.update(frames_decoded=counted.frames, seeks=counted.seeks, marks=counted.marks)
                    yield k, rgb
                    done += 1
            except video_seek.SeekFailed:
                seeking = False  # the rest straight through, from the start
                continue
            if done < len(wanted):
                raise VideoError(f"the video ended before frame {wanted[done]} of its {length.nframes}")
