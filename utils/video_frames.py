"""Videos -> the pictures of a frame tree (``extract_frames.py``): the frame rule, decoding with PyAV, and
optical flow as 8-bit x/y planes.  PyAV and OpenCV are optional: imported where used, with the install
command in the error when absent.

**The frame rule.** Source times are presentation timestamps (``pts * time_base``) from the first decoded
frame, so variable frame rates come out right; ``tol`` is half a unit of the stream's time base (containers
round timestamps to it: WebM to the millisecond).  Output frame ``k`` (1-based) is the picture on screen at
``s_k = (k-1) / fps``: the last source frame with ``t <= s_k + tol``.  A video gets every instant inside
it, ``n = max(1, ceil((D - tol) * fps))`` frames, ``D`` the end of its last frame (timestamp + duration;
without a duration, the gap before it).  At a constant rate ``r`` with ``m`` frames: ``n = ceil(m * fps / r)``
and frame ``k`` shows source frame ``floor((k-1) * r / fps)`` (0-based).  A frame whose timestamp does
not increase is dropped.  Each picture shown is converted once, however many output frames show it.
A picture is held for at most ``MAX_GAP_S`` seconds: a longer gap between two timestamps (a hostile or
broken stream: three frames at 0, 1/12 and 600 s would give 14,401 output frames; a day-long gap, two
million), and a longer last duration, are shortened to it, the later frames moved earlier by the
difference, with a note naming the gap.  So a video's output is bounded by its frame count.

**Flow.** Flow frame ``k`` (``k = 1 .. n-1``) is the motion from output frame ``k`` to ``k+1`` in pixels of
those frames (x rightwards, y downwards), computed on their grey levels by OpenCV's TV-L1 (the contrib
module) or Farneback's algorithm; each component is clipped to ``[-bound, bound]`` and stored as
``round(255 * (v + bound) / (2 * bound))``, so 128 = no motion: the mapping, and the default bound of 20,
of the ``dense_flow`` tool of the two-stream / TSN works (Wang et al., ECCV 2016).
"""
from __future__ import annotations

import importlib
import io
import math
from collections.abc import Iterable, Iterator
from fractions import Fraction

import numpy as np
from PIL import Image

INSTALL = {"av": "PyAV is needed to decode videos: pip install av",
           "cv2": "OpenCV is needed for optical flow: pip install opencv-contrib-python-headless (TV-L1; "
                  "opencv-python-headless gives Farneback only)"}
SHORT_BY_S = 1.0  # a stream that ends this many seconds before its container says is reported
MAX_GAP_S = Fraction(10)  # the longest a picture is held (see the frame rule); real videos stay far below


class VideoError(Exception):
    """A video that cannot be decoded; the message says why."""


def require(module: str):
    """Import an optional dependency; ``ImportError`` with the install command when it is absent."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{INSTALL[module]} ({e})") from e


def bounded_gaps(frames: Iterable[tuple[Fraction, Fraction | None, object]], notes: list[str] | None = None,
                 max_gap: Fraction = MAX_GAP_S) -> Iterator[tuple[Fraction, Fraction | None, object]]:
    """``frames`` with every gap between increasing timestamps, and every duration, at most ``max_gap``:
    the frames after a longer gap come earlier by the excess.  One note (into ``notes``) names the first
    gap shortened and counts them."""
    shift, last, gaps = Fraction(0), None, []
    for t, duration, picture in frames:
        t -= shift
        if last is not None and t - last > max_gap:
            gaps.append((last + shift, t - last))
            shift += t - last - max_gap
            t = last + max_gap
        last = t if last is None else max(last, t)
        yield t, (min(duration, max_gap) if duration else duration), picture
    if gaps and notes is not None:
        (at, gap), more = gaps[0], len(gaps) - 1
        notes.append(f"timestamp gap of {float(gap):.6g} s after {float(at):.6g} s shortened to {float(max_gap):g} s "
                     f"(the frames after it come earlier by the difference)"
                     + (f"; {more} more gap(s) over {float(max_gap):g} s shortened too" if more else ""))


def resample(frames: Iterable[tuple[Fraction, Fraction | None, object]], fps: Fraction,
             tol: Fraction, notes: list[str] | None = None) -> Iterator[tuple[object, int]]:
    """The frame rule on a stream of ``(t, duration or None, picture)`` in decoding order, ``t`` from the
    first frame: yields ``(picture, count)``, the picture shown by the next ``count`` output frames.
    Pictures that no output instant falls on are never yielded (so never converted).  Gaps over
    ``MAX_GAP_S`` are shortened (``bounded_gaps``; the note goes into ``notes``)."""
    def instants_before(t: Fraction) -> int:  # how many s_k satisfy s_k + tol < t
        return max(0, math.ceil((t - tol) * fps))
    done, held, prev_t = 0, None, None
    for t, duration, picture in bounded_gaps(frames, notes):
        if held is not None:
            if t <= held[0]:
                continue
            upto = instants_before(t)
            if upto > done:
                yield held[2], upto - done
                done = upto
            prev_t = held[0]
        held = (t, duration, picture)
    if held is None:
        return
    t, duration, picture = held
    if not duration:
        duration = t - prev_t if prev_t is not None else Fraction(0)
    end = max(instants_before(t + duration), 1)  # every instant inside the video; at least one frame
    if end > done:
        yield picture, end - done


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """``(w, h)`` with the shorter side ``short_side`` and the aspect ratio kept (0: unchanged)."""
    if not short_side:
        return width, height
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


def open_video(path: str, threads: int):
    """``(container, stream)`` of the first video stream; ``VideoError`` when there is none."""
    av = require("av")
    try:
        container = av.open(path)
    except av.error.FFmpegError as e:
        raise VideoError(f"cannot open: {e}") from None
    if not container.streams.video:
        container.close()
        raise VideoError("no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stream.thread_count = threads
    return container, stream


def decoded(container, stream, notes: list[str]) -> Iterator[tuple[Fraction, Fraction | None, object]]:
    """``(t, duration, frame)`` of every decodable frame, ``t`` in seconds from the first frame.  Bad
    packets are skipped and a broken container ends the stream (as ffmpeg does); both go into ``notes``."""
    av = require("av")
    tb, first, last = stream.time_base, None, None
    bad, packets = 0, container.demux(stream)
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
        for frame in frames:
            if frame.pts is None:  # no timestamp: right after the previous frame
                if last is None or not last[1]:
                    raise VideoError("frames without timestamps")
                t = last[0] + last[1]
            else:
                first = frame.pts if first is None else first
                t = (frame.pts - first) * tb
            duration = frame.duration * tb if getattr(frame, "duration", None) else None
            last = (t, duration)
            yield t, duration, frame
    if bad > 1:
        notes.append(f"{bad} undecodable packets skipped in all")


def pictures(path: str, fps: Fraction, short_side: int, threads: int,
             notes: list[str]) -> Iterator[tuple[Image.Image, int]]:
    """``(RGB picture, count)`` of the video at ``path`` by the frame rule, scaled to ``short_side``
    (area averaging; 0: full size) and turned upright by the stream's display matrix (in quarter turns,
    as ffmpeg's autorotation); ``VideoError`` when no frame decodes.  Warnings go into ``notes``."""
    container, stream = open_video(path, threads)
    with container:
        size, count = None, 0
        for frame, repeats in resample(decoded(container, stream, notes), fps, stream.time_base / 2, notes):
            size = size or scaled_size(frame.width, frame.height, short_side)
            turns = round(getattr(frame, "rotation", 0) / 90) % 4  # a phone's display matrix, as ffmpeg
            if (frame.width, frame.height) != size:  # scaled in YUV, then converted: 2x cheaper than at once
                frame = frame.reformat(width=size[0], height=size[1], interpolation="AREA")
            rgb = frame.to_ndarray(format="rgb24")
            yield Image.fromarray(np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb), repeats
            count += repeats
        if count == 0:
            raise VideoError("no frame could be decoded" + (f" ({notes[0]})" if notes else ""))
        end = count / fps
        declared = (stream.duration * stream.time_base if stream.duration
                    else Fraction(container.duration, 1_000_000) if container.duration else None)
        if declared is not None and declared - end > SHORT_BY_S:
            notes.append(f"decoded {float(end):.2f} s of the {float(declared):.2f} s the container declares")


def jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def to_uint8(v: np.ndarray, bound: float) -> np.ndarray:
    """Flow in pixels -> 8-bit: clipped to [-bound, bound], ``round(255 * (v + bound) / (2 * bound))``
    (0 -> 128)."""
    return np.floor((np.clip(v, -bound, bound) + bound) * (255.0 / (2 * bound)) + 0.5).astype(np.uint8)


def flow_method(method: str) -> str:
    """``auto`` -> ``tvl1`` when OpenCV has the contrib module, else ``farneback``."""
    cv2 = require("cv2")
    has_tvl1 = hasattr(getattr(cv2, "optflow", None), "DualTVL1OpticalFlow_create")
    if method == "tvl1" and not has_tvl1:
        raise ImportError("TV-L1 flow needs OpenCV's contrib module: pip install opencv-contrib-python-headless")
    return ("tvl1" if has_tvl1 else "farneback") if method == "auto" else method


class FlowEncoder:
    """The flow frames of a video as its pictures arrive: JPEG ``(x, y)`` pairs, one per output frame
    after the first."""

    def __init__(self, method: str, bound: float, quality: int, threads: int = 1):
        cv2 = require("cv2")
        cv2.setNumThreads(threads)
        if method == "tvl1":
            self.calc = cv2.optflow.DualTVL1OpticalFlow_create().calc
        else:  # OpenCV's documented example parameters (pyramid 0.5 x 3 levels, 15 px window)
            self.calc = lambda a, b, out: cv2.calcOpticalFlowFarneback(a, b, out, 0.5, 3, 15, 3, 5, 1.2, 0)
        self.bound, self.quality, self.prev, self.still = bound, quality, None, None

    def add(self, picture: Image.Image, repeats: int) -> list[tuple[bytes, bytes]]:
        """The flow frames that end at the next picture, shown by ``repeats`` output frames: the motion
        from the previous picture, then no motion between the repeats."""
        grey, pairs = np.asarray(picture.convert("L")), []
        if self.prev is not None:
            flow = self.calc(self.prev, grey, None)
            pairs.append((self._jpeg(flow[..., 0]), self._jpeg(flow[..., 1])))
        if repeats > 1 and self.still is None:
            self.still = self._jpeg(np.zeros(grey.shape, np.float32))
        self.prev = grey
        return pairs + [(self.still, self.still)] * (repeats - 1)

    def _jpeg(self, v: np.ndarray) -> bytes:
        return jpeg(Image.fromarray(to_uint8(v, self.bound)), self.quality)
