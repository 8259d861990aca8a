"""The labelled video (``predict.py --out-video``): the input video with its current top actions drawn on it.

Every frame of the input's first video stream is written, at its own timestamps (so its own rate, variable
or not, and its own duration), turned upright by its display matrix (as the frame rule does), with the panel
of ``utils/overlay.py`` in the top-left corner.  Labels change only at scored frames: a frame at ``t``
seconds (from the first frame) shows the scores of the latest scored frame at or before ``t``, held until
the next one, so they never flicker; frames before the first scored one have no panel.  The scores given
are the ones the segments are made from (smoothed by the caller).

The output is H.264 (libx264, ``PRESET``) in yuv420p with even sizes (an odd width or height is scaled by
one pixel), in MP4 with its index at the front (``faststart``): what every player and browser plays.  The
input's first audio stream is kept: copied when MP4 holds its codec (AAC, MP3, AC-3, ALAC), re-encoded to
AAC otherwise.  The file is written atomically (``utils/atomic.py``).

``LabelledVideoWriter`` takes frames, scores and audio packets as they come (a live stream: a frame is
written once the scores that label it are known); ``label_video`` labels a video file in one pass.
"""
from __future__ import annotations

import bisect
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from fractions import Fraction

import numpy as np

from utils.atomic import atomic_output
from utils.overlay import YUVOverlay, margin, render_panel, top_actions
from utils.video_decode import decoded_frames, open_video, quarter_turns, require

log = logging.getLogger(__name__)

# superfast: on the benchmark's 30-s 480p video (900 frames, 2 cores) it took 2.0 s for 7.6 MB, against
# ultrafast 1.7 s / 15.5 MB, veryfast 2.9 s / 6.6 MB, medium (libx264's default) 6.0 s / 6.5 MB
PRESET = "superfast"
CRF = 23
MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac"}   # copied; any other audio codec is re-encoded to AAC
ENCODERS = ("libx264", "libopenh264", "h264")


def _encoder(av) -> str:
    for name in ENCODERS:
        if name in av.codecs_available:
            return name
    raise RuntimeError("this PyAV build has no H.264 encoder (libx264): pip install av (the wheels have it)")


class LabelledVideoWriter:
    """Write a labelled copy of a video stream to ``path`` (MP4), atomically.

    ``time_base`` of the frames' pts, nominal ``rate``; ``colours``: the input stream's codec context, whose
    colour tags are kept (None: frames made from RGB); ``audio``: the input audio stream to keep, or None
    (``for_stream`` takes them from an input stream).  ``add_scores(t, scores)`` in time order,
    ``add_frame(frame)`` (PyAV frames in presentation order), ``add_audio(packet)`` (packets of ``audio``);
    ``no_more_scores()`` once every score is in (a file scored beforehand).  Use as a context manager:
    on an error nothing is left at ``path`` (a previous file there is kept)."""

    def __init__(self, path: str, names: Sequence[str], time_base: Fraction, rate: Fraction, colours=None,
                 audio=None, top: int = 3, preset: str = PRESET, crf: int = CRF):
        self.av = require("av")
        self.path, self.names, self.top = path, list(names), top
        self.time_base, self.rate, self.colours = Fraction(time_base), Fraction(rate), colours
        self.options = {"preset": preset, "crf": str(crf)}
        self.audio_in = audio
        self.times: list[float] = []
        self.scores: list[np.ndarray] = []
        self.final = False
        self.pending: deque = deque()       # (t, frame) waiting for the scores that label them
        self.first_pts = self.prev = None   # first frame's pts; (pts, duration) of the last frame
        self.container = self.video = self.audio = self.resampler = None
        self.shown = (None, None)           # (label index, its overlay)
        self.frames = 0
        self.audio_samples = 0
        self.early_audio: list = []         # audio packets that came before the first video frame
        self._stack = ExitStack()

    @classmethod
    def for_stream(cls, path: str, names: Sequence[str], stream, audio=None, **kwargs) -> "LabelledVideoWriter":
        """A writer of the frames of the input video ``stream`` (its time base, rate and colour tags)."""
        rate = stream.average_rate or stream.guessed_rate or Fraction(24)
        return cls(path, names, stream.time_base, rate, stream.codec_context, audio, **kwargs)

    # -- inputs ---------------------------------------------------------------------------------------
    def add_scores(self, t: float, scores: np.ndarray) -> None:
        """A scored frame at ``t`` seconds: the frames from ``t`` to the next scored frame show its labels."""
        if self.times and t < self.times[-1]:
            raise ValueError(f"scores must come in time order ({t} after {self.times[-1]})")
        self.times.append(float(t))
        self.scores.append(np.asarray(scores, np.float64))
        while self.pending and self.pending[0][0] < t:  # their latest scored frame is now known
            self._write(*self.pending.popleft())

    def no_more_scores(self) -> None:
        """Every scored frame is in: frames are written as they come."""
        self.final = True
        while self.pending:
            self._write(*self.pending.popleft())

    def add_frame(self, frame) -> None:
        """The next frame of the input video stream (presentation order)."""
        pts = frame.pts
        if pts is None:  # no timestamp: right after the previous frame
            pts = self.prev[0] + self.prev[1] if self.prev else 0
        if self.first_pts is None:
            self.first_pts = pts
            self._open(frame)
        self.prev = (pts, frame.duration or self._frame_ticks())
        t = float((pts - self.first_pts) * self.time_base)
        if self.final or (self.times and t < self.times[-1]):
            self._write(t, frame, pts)
        else:
            self.pending.append((t, frame, pts))

    def add_audio(self, packet) -> None:
        """The next packet of the input audio stream (copied, or decoded and re-encoded to AAC)."""
        if self.audio_in is None:
            return
        if self.container is None:  # before the first video frame: its clock starts there
            self.early_audio.append(packet)
            return
        if self.resampler is not None:
            for frame in packet.decode():  # an empty packet flushes the decoder
                self._encode_audio(frame)
            return
        if packet.size == 0 or packet.pts is None:
            return
        shift = round(self._start_seconds() / packet.time_base)
        # copied as it is, on the video's clock; packets before the video's start (an AAC encoder's priming
        # packet) keep their negative times, which MP4 holds with an edit list (as ffmpeg's stream copy)
        packet.pts -= shift
        packet.dts = packet.pts if packet.dts is None else packet.dts - shift
        packet.stream = self.audio
        self.container.mux(packet)

    # -- output ---------------------------------------------------------------------------------------
    def _frame_ticks(self) -> int:
        return max(1, round(1 / (self.rate * self.time_base)))

    def _start_seconds(self) -> Fraction:
        return self.first_pts * self.time_base

    def _open(self, frame) -> None:
        """The output container and streams, sized by the first frame (upright, even)."""
        av = self.av
        tmp = self._stack.enter_context(atomic_output(self.path))
        self.turns = quarter_turns(frame)
        w, h = (frame.height, frame.width) if self.turns % 2 else (frame.width, frame.height)
        self.size = (w - w % 2, h - h % 2)
        self.container = av.open(tmp, "w", format="mp4", options={"movflags": "+faststart"})
        self._stack.callback(self.container.close)
        self.video = self.container.add_stream(_encoder(av), rate=self.rate, options=self.options)
        self.video.width, self.video.height, self.video.pix_fmt = *self.size, "yuv420p"
        self.video.time_base = self.video.codec_context.time_base = self.time_base
        for tag in ("color_primaries", "color_trc", "colorspace", "color_range") if self.colours else ():
            try:  # keep the input's colour tags, so the pixels mean what they meant
                setattr(self.video.codec_context, tag, getattr(self.colours, tag))
            except (AttributeError, TypeError, ValueError):
                pass
        # the panel's colours in the matrix players assume: the input's tag, else BT.709 for HD (frames made
        # from RGB are converted with BT.601, as swscale does)
        hd = self.colours is not None and (self.colours.colorspace == 1 or self.size[1] >= 720)
        self.matrix = 709 if hd else 601
        if self.audio_in is not None:
            self._open_audio(self.audio_in)
            for packet in self.early_audio:
                self.add_audio(packet)
            self.early_audio = []

    def _open_audio(self, audio) -> None:
        if audio.codec_context.name in MP4_AUDIO:
            self.audio = self.container.add_stream_from_template(audio)
            return
        rate = audio.codec_context.sample_rate or 48000
        self.audio = self.container.add_stream("aac", rate=rate)
        layout = audio.codec_context.layout.name if audio.codec_context.layout else "stereo"
        self.audio.layout = layout
        self.resampler = self.av.AudioResampler(format="fltp", layout=layout, rate=rate)
        log.info("%s: the %s audio is re-encoded to AAC (MP4 does not hold it as it is)", self.path,
                 audio.codec_context.name)

    def _encode_audio(self, frame) -> None:
        for out in self.resampler.resample(frame) if frame is not None else [None]:
            if out is not None:
                if self.audio_samples == 0 and frame.pts is not None:  # start on the video's clock
                    start = frame.pts * self.audio_in.time_base - self._start_seconds()
                    self.audio_samples = max(0, round(start * out.sample_rate))
                out.pts, out.time_base = self.audio_samples, Fraction(1, out.sample_rate)
                self.audio_samples += out.samples
            self.container.mux(self.audio.encode(out))

    def _overlay(self, t: float):
        """The overlay of the latest scored frame at or before ``t`` (None before the first)."""
        label = bisect.bisect_right(self.times, t + 1e-9) - 1
        if label < 0:
            return None
        if self.shown[0] != label:
            panel = render_panel(top_actions(self.scores[label], self.names, self.top), *self.size)
            m = margin(self.size[1])
            self.shown = (label, YUVOverlay(panel, m, m, self.matrix))
        return self.shown[1]

    def _write(self, t: float, frame, pts: int) -> None:
        av = self.av
        w, h = self.size
        src_w, src_h = (h, w) if self.turns % 2 else (w, h)
        if frame.format.name != "yuv420p" or (frame.width, frame.height) != (src_w, src_h):
            frame = frame.reformat(width=src_w, height=src_h, format="yuv420p")
        planes = _planes(frame.to_ndarray(), src_w, src_h)
        if self.turns:  # upright, as the frame rule turns the pictures it scores
            planes = [np.ascontiguousarray(np.rot90(p, self.turns)) for p in planes]
        overlay = self._overlay(t)
        if overlay is not None:
            overlay.apply(*planes)
        out = av.VideoFrame.from_ndarray(np.concatenate([p.reshape(-1, w) for p in planes]), format="yuv420p")
        out.pts = pts - self.first_pts
        out.time_base = self.time_base
        self.container.mux(self.video.encode(out))
        self.frames += 1

    # -- end --------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Write the frames still waiting (with the last labels), flush the encoders, rename into place."""
        self.no_more_scores()
        if self.container is None:
            self._stack.close()
            raise ValueError(f"{self.path}: no video frame to write")
        self.container.mux(self.video.encode())
        if self.resampler is not None:
            self._encode_audio(None)
        self._stack.close()

    def __enter__(self) -> "LabelledVideoWriter":
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            self.close()
        else:  # discard the partial file; the error goes on
            self._stack.__exit__(kind, value, tb)


def _planes(arr: np.ndarray, w: int, h: int) -> list[np.ndarray]:
    """The Y, U, V planes (views) of a yuv420p frame's ``to_ndarray()`` (1.5h x w)."""
    y = arr[:h]
    u = arr[h:h + h // 4].reshape(h // 2, w // 2)
    v = arr[h + h // 4:].reshape(h // 2, w // 2)
    return [y, u, v]


def label_video(src: str, dst: str, times: Sequence[float], scores: np.ndarray, names: Sequence[str],
                top: int = 3, preset: str = PRESET, threads: int = 0) -> int:
    """Write ``dst``: the video ``src`` labelled with ``scores[i]`` from ``times[i]`` seconds (from its first
    frame) on, and its audio; returns the frames written.  Undecodable packets are skipped (as ffmpeg)."""
    container, stream = open_video(src, threads)
    notes: list[str] = []
    with container:
        audio = container.streams.audio[0] if container.streams.audio else None
        with LabelledVideoWriter.for_stream(dst, names, stream, audio, top=top, preset=preset) as writer:
            for t, s in zip(times, scores):
                writer.add_scores(t, s)
            writer.no_more_scores()

            def video_packets():  # the audio goes straight to the writer
                for packet in container.demux(*[s for s in (stream, audio) if s is not None]):
                    if packet.stream is audio:
                        writer.add_audio(packet)
                    else:
                        yield packet
            for frame in decoded_frames(container, stream, notes, video_packets()):
                writer.add_frame(frame)
    for note in notes:
        log.warning("%s: %s", src, note)
    return writer.frames


def label_pictures(pictures: Iterable[np.ndarray], rate: Fraction, dst: str, times: Sequence[float],
                   scores: np.ndarray, names: Sequence[str], top: int = 3, preset: str = PRESET) -> int:
    """Write ``dst`` from RGB pictures (H x W x 3, e.g. a frame folder's) shown at ``rate``, labelled as
    ``label_video`` does; returns the frames written."""
    av = require("av")
    rate = Fraction(rate)
    with LabelledVideoWriter(dst, names, 1 / rate, rate, top=top, preset=preset) as writer:
        for t, s in zip(times, scores):
            writer.add_scores(t, s)
        writer.no_more_scores()
        for i, rgb in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            writer.add_frame(frame)
    return writer.frames
