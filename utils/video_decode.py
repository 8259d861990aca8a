"""Decoding videos with PyAV: the part of the frame rule shared by ``extract_frames.py`` (frame trees) and
``predict.py`` (frames in memory).  PyAV is optional: imported where used, with the install command in
the error when absent.

- **Which stream.** The first video stream that is not an attached picture (the cover art that Matroska
  and MP4 files may carry as a one-frame "video" stream).
- **Frame times.** Presentation timestamps (``pts * time_base``) from the first decoded frame, so variable
  frame rates come out right; ``tolerance`` is half a unit of the stream's time base (containers round
  timestamps to it: WebM to the millisecond), at most half a millisecond (a time base of a whole frame,
  as AVI's, is exact).  A frame without a timestamp comes right after the previous
  one.  Undecodable packets are skipped and a broken container ends the stream, as ffmpeg does; both are
  noted.
- **How many frames.** ``frame_count``: a video gets every output instant ``(k-1)/fps`` inside it,
  ``max(1, ceil((D - tolerance) * fps))`` frames, ``D`` the end of its last frame (timestamp + duration).
- **Rotation.** Pictures are turned upright by the stream's display matrix in quarter turns, as ffmpeg's
  autorotation (a phone held upright).
"""
from __future__ import annotations

import importlib
import math
from collections.abc import Iterator
from fractions import Fraction

import numpy as np

from utils.cli import MissingDependency, UserError

INSTALL = {"av": "PyAV is needed to decode videos: pip install av",
           "cv2": "OpenCV is needed for optical flow: pip install opencv-contrib-python-headless (TV-L1; "
                  "opencv-python-headless gives Farneback only)"}
SHORT_BY_S = 1.0  # a stream that ends this many seconds before its container says is reported
MAX_GAP_S = Fraction(10)  # the longest a picture is held (the frame rule, utils/video_frames.bounded_gaps)


class VideoError(UserError):
    """A video that cannot be decoded; the message says why."""


def require(module: str):
    """Import an optional dependency; ``ImportError`` with the install command when it is absent."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependency(f"{INSTALL[module]} ({e})") from e


def instants_before(t: Fraction, fps: Fraction, tolerance: Fraction) -> int:
    """How many output instants ``s_k = k / fps`` (k = 0, 1, ...) satisfy ``s_k + tolerance < t``."""
    return max(0, math.ceil((t - tolerance) * fps))


def frame_count(end: Fraction, fps: Fraction, tolerance: Fraction) -> int:
    """The number of frames of a video whose last frame ends at ``end`` (seconds from its first frame):
    every output instant inside it, and at least one.  The one place that says how long a tree is:
    ``extract_frames.py`` writes this many frames and ``predict.py`` counts them without writing any."""
    return max(instants_before(end, fps, tolerance), 1)


def video_stream(container):
    """The first video stream that is not an attached picture (cover art), or None."""
    av = require("av")
    attached = av.stream.Disposition.attached_pic
    return next((s for s in container.streams.video if not s.disposition & attached), None)


def open_video(path: str, threads: int):
    """``(container, stream)`` of ``video_stream``; ``VideoError`` when there is none."""
    av = require("av")
    try:
        container = av.open(path)
    except av.error.FFmpegError as e:  # (its text repeats the path: the caller names the file)
        raise VideoError(f"cannot open: {e.strerror or e}") from None
    except (OSError, ValueError) as e:  # a folder, an unreadable file
        raise VideoError(f"cannot open: {getattr(e, 'strerror', None) or e}") from None
    stream = video_stream(container)
    if stream is None:
        container.close()
        raise VideoError("no video stream" + (" (only an attached picture)" if container.streams.video else ""))
    stream.thread_type = "AUTO"
    stream.thread_count = threads
    return container, stream


ROUNDING = Fraction(1, 1000)  # the coarsest unit containers round timestamps to (Matroska, WebM, FLV: 1 ms)


def tolerance(stream) -> Fraction:
    """How far a container's timestamp may be from the true time: half a unit of the stream's time base, at
    most half a millisecond.  A coarser time base counts frames (AVI: 1001/30000 s), whose timestamps are
    exact: half of its unit would turn the rule's "at or before" into "nearest"."""
    return min(Fraction(stream.time_base), ROUNDING) / 2


def declared_duration(container, stream) -> Fraction | None:
    """The duration the stream (else the container) declares, in seconds; None when neither does."""
    if stream.duration:
        return stream.duration * Fraction(stream.time_base)
    if container.duration:
        return Fraction(container.duration, 1_000_000)
    return None


def frame_times(frames, first: int | None, time_base: Fraction) -> Iterator[tuple[Fraction, Fraction | None, object]]:
    """``(t, duration, frame)`` of decoded ``frames``, ``t`` in seconds from the pts ``first`` (None: the
    first frame's own); a frame without pts follows the previous one (its time plus its duration)."""
    last = None
    for frame in frames:
        if frame.pts is None:  # no timestamp: right after the previous frame
            if last is None or not last[1]:
                raise VideoError("frames without timestamps")
            t = last[0] + last[1]
        else:
            first = frame.pts if first is None else first
            t = (frame.pts - first) * time_base
        duration = frame.duration * time_base if getattr(frame, "duration", None) else None
        last = (t, duration)
        yield t, duration, frame


def decoded_frames(container, stream, notes: list[str], packets=None) -> Iterator[object]:
    """Every decodable frame of ``stream`` (from ``packets``: default, demuxing it from where the container
    is).  Bad packets are skipped and a broken container ends the stream (as ffmpeg does); both go into
    ``notes``."""
    av = require("av")
    bad, packets = 0, container.demux(stream) if packets is None else packets
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.error.FFmpegError as e:
            notes.append(f"demuxing stopped early: {e}")
            packets = iter([None])  # flush the decoder
            continue
        try:
            frames = stream.codec_context.decode(packet)
        except av.error.FFmpegError as e:
            bad += 1
            if bad == 1:
                notes.append(f"undecodable packet(s) skipped, first: {e}")
            continue
        yield from frames
    if bad > 1:
        notes.append(f"{bad} undecodable packets skipped in all")


def decoded(container, stream, notes: list[str]) -> Iterator[tuple[Fraction, Fraction | None, object]]:
    """``(t, duration, frame)`` of every decodable frame from the start, ``t`` in seconds from the first."""
    return frame_times(decoded_frames(container, stream, notes), None, Fraction(stream.time_base))


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """``(w, h)`` with the shorter side ``short_side`` and the aspect ratio kept (0: unchanged)."""
    if not short_side:
        return width, height
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


def end_duration(t: Fraction, duration: Fraction | None, prev_t: Fraction | None) -> Fraction:
    """How long the last frame lasts: its own duration, else the gap before it (0 for a lone frame)."""
    if duration:
        return duration
    return t - prev_t if prev_t is not None else Fraction(0)


def quarter_turns(frame) -> int:
    """Quarter turns (counterclockwise, as ``np.rot90``) that put ``frame`` upright: its display matrix,
    as ffmpeg's autorotation."""
    return round(getattr(frame, "rotation", 0) / 90) % 4


def to_rgb(frame, size: tuple[int, int]) -> np.ndarray:
    """An (H, W, 3) uint8 picture of ``frame`` scaled to ``size`` (before turning; area averaging) and
    turned upright."""
    turns = quarter_turns(frame)
    if (frame.width, frame.height) != size:  # scaled in YUV, then converted: 2x cheaper than at once
        frame = frame.reformat(width=size[0], height=size[1], interpolation="AREA")
    rgb = frame.to_ndarray(format="rgb24")
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def short_note(end: Fraction, container, stream) -> str | None:
    """A note when the decoded stream ends over ``SHORT_BY_S`` before the container says (truncated)."""
    declared = declared_duration(container, stream)
    if declared is not None and declared - end > SHORT_BY_S:
        return f"decoded {float(end):.2f} s of the {float(declared):.2f} s the container declares"
    return None
