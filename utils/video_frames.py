"""Videos -> the pictures of a frame tree (``extract_frames.py``) or of chosen frames (``predict.py``): the
frame rule, and optical flow as 8-bit x/y planes.  Decoding (the stream, frame times, the frame count,
rotation) is ``utils/video_decode.py``, shared by both.  PyAV and OpenCV are optional: imported where used,
with the install command in the error when absent.

**The frame rule.** Source times are presentation timestamps (``pts * time_base``) from the first decoded
frame, so variable frame rates come out right; ``tol`` is half a unit of the stream's time base (containers
round timestamps to it: WebM to the millisecond), at most half a millisecond (``video_decode.tolerance``).  Output frame ``k`` (1-based) is the picture on screen at
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

import functools
import io
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction

import numpy as np
from PIL import Image

from utils.cli import MissingDependency
from utils.video_decode import (MAX_GAP_S, VideoError, decoded, end_duration, frame_count, instants_before,  # noqa: F401
                                open_video, require, scaled_size, short_note, to_rgb, tolerance)



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
    ``MAX_GAP_S`` are shortened (``bounded_gaps``; the note goes into ``notes``).  The last picture fills the
    video up to ``frame_count`` of its end."""
    done, held, prev_t = 0, None, None
    for t, duration, picture in bounded_gaps(frames, notes):
        if held is not None:
            if t <= held[0]:
                continue
            upto = instants_before(t, fps, tol)
            if upto > done:
                yield held[2], upto - done
                done = upto
            prev_t = held[0]
        held = (t, duration, picture)
    if held is None:
        return
    t, duration, picture = held
    end = frame_count(t + end_duration(t, duration, prev_t), fps, tol)
    if end > done:
        yield picture, end - done


def stream_end(frames: Iterable[tuple[Fraction, Fraction | None, object]]) -> Fraction | None:
    """``D``, the end of the last frame of ``(t, duration, picture)`` by the rule of ``resample`` (frames
    whose timestamp does not increase dropped); None without frames.  ``frame_count(D)`` is the length
    ``resample`` gives the same frames."""
    held, prev_t = None, None
    for t, duration, _ in bounded_gaps(frames):
        if held is not None:
            if t <= held[0]:
                continue
            prev_t = held[0]
        held = (t, duration)
    return None if held is None else held[0] + end_duration(held[0], held[1], prev_t)


def shown_at(frames: Iterable[tuple[Fraction, Fraction | None, object]], wanted: Sequence[int], fps: Fraction,
             tol: Fraction) -> Iterator[tuple[int, object]]:
    """``(k, picture)`` for each output frame number ``k`` of ``wanted`` (1-based, ascending, repeats
    allowed): the picture ``resample`` shows there.  Stops once the last is found."""
    i, done = 0, 0
    for picture, repeats in resample(frames, fps, tol):
        done += repeats
        while i < len(wanted) and wanted[i] <= done:
            yield wanted[i], picture
            i += 1
        if i == len(wanted):
            return


def pictures(path: str, fps: Fraction, short_side: int, threads: int,
             notes: list[str], lazy: bool = False) -> Iterator[tuple[Image.Image, int]]:
    """``(RGB picture, count)`` of the video at ``path`` by the frame rule, scaled to ``short_side``
    (area averaging; 0: full size) and turned upright by the stream's display matrix (in quarter turns,
    as ffmpeg's autorotation); ``VideoError`` when no frame decodes.  Warnings go into ``notes``.
    ``lazy``: each picture comes as a function that makes it, for a caller that needs only some (scaling
    and colour conversion cost several times the decoding)."""
    container, stream = open_video(path, threads)
    with container:
        size, count = None, 0
        for frame, repeats in resample(decoded(container, stream, notes), fps, tolerance(stream), notes):
            size = size or scaled_size(frame.width, frame.height, short_side)
            make = functools.partial(_picture, frame, size)
            yield (make if lazy else make()), repeats
            count += repeats
        if count == 0:
            raise VideoError("no frame could be decoded" + (f" ({notes[0]})" if notes else ""))
        note = short_note(Fraction(count) / fps, container, stream)
        if note:
            notes.append(note)


def _picture(frame, size: tuple[int, int]) -> Image.Image:
    return Image.fromarray(to_rgb(frame, size))


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
        raise MissingDependency("TV-L1 flow needs OpenCV's contrib module: pip install opencv-contrib-python-headless")
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
