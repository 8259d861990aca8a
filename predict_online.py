"""``predict.py --online``: frames scored in order, each from the frames scored before it only.

Frames come from a video file, a frame folder, a URL (``rtsp://...``, ``http://...``) or a capture device
PyAV opens (``FORMAT:TARGET``, e.g. ``v4l2:/dev/video0``; ``lavfi:testsrc`` for a generated one), decoded
in order by the frame rule of ``extract_frames.py`` (24-fps frame numbers, as everywhere).  ``--fps F``
scores the frames ``floor(j * 24 / F) + 1`` (the default sampling needs the video's length, which a stream
does not have).  Each scored frame gets one pass of the causal field (``models/online.py``: the messages
of the frames scored before it, one-sided smoothing); its line (frame, time, top actions) is printed as
soon as it is scored, and a segment is printed once no later frame can change it.  Segments come from
the scores by ``utils.segments``' rule with its smoothing made one-sided too (the mean over the frame
and the ``smooth`` frames before it).

``--realtime`` paces a file at its own speed (a stand-in for a camera): frame ``k`` is not scored before
``(k - 1) / 24`` seconds after the first, and a scored frame whose successor is already due is dropped
rather than scored late; the number dropped and the latency (picture decoded to line printed) are reported.
Without it, frames are batched (the scores do not depend on the batching).  At the end (the input ends,
breaks off mid-way, or Ctrl-C) the same files as the offline mode are written, from what was scored.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import torch
from PIL import Image

from datasets import video_input
from datasets.frame_index import FPS
from datasets.transforms import val_transform
from models.online import CausalField, causal_smooth
from utils import cli
from utils.predictions import VideoPrediction, output_name, spans_text, table
from utils.overlay import top_actions
from utils.segments import RULE, segments
from utils.video_decode import VideoError, decoded_frames, frame_times, open_video, require, to_rgb, tolerance, video_stream
from utils.video_frames import resample

log = logging.getLogger("predict")
STREAM = "stream"
BATCH = 8          # frames per network pass without --realtime
THUMBS = 16        # thumbnails kept for the timeline (every other one dropped when more come)


def is_stream(path: str) -> bool:
    """A URL (``scheme://...``) or a capture device (``FORMAT:TARGET`` with a format PyAV has)."""
    if "://" in path:
        return True
    head, sep, _ = path.partition(":")
    return bool(sep) and not os.path.exists(path) and head in require("av").formats_available


def online_inputs(paths: list[str], extensions: str, find_videos) -> list[video_input.Clip]:
    """The inputs of the online mode: URLs and devices as streams, the rest as ``find_inputs`` finds them."""
    clips = []
    for path in paths:
        if is_stream(path):  # its id: the last part of the URL's path (or host), the device's name
            target = path.split("://", 1)[1] if "://" in path else path.split(":", 1)[1]
            name = os.path.splitext(os.path.basename(target.split("?")[0].rstrip("/")))[0]
            clips.append(video_input.Clip(name[:60] or "stream", path, STREAM))
        else:
            clips += video_input.find_inputs([path], extensions, find_videos)
    return clips


def open_source(clip: video_input.Clip, threads: int):
    """``(container, video stream)`` of a file, URL or device; ``InputError`` when it does not open."""
    if clip.kind != STREAM:
        try:
            return open_video(clip.path, threads)
        except VideoError as e:
            raise video_input.InputError(f"{clip.path}: {e}; is it a video?") from None
    av = require("av")
    fmt, target = (None, clip.path) if "://" in clip.path else clip.path.split(":", 1)
    try:
        container = av.open(target, format=fmt, timeout=10.0)
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise video_input.InputError(f"{clip.path}: cannot open it: {e} (is the address right and the stream "
                                     f"up? a device is FORMAT:TARGET, e.g. v4l2:/dev/video0)") from None
    stream = video_stream(container)  # as for files: the first video stream that is not a cover picture
    if stream is None:
        container.close()
        raise video_input.InputError(f"{clip.path}: no video stream in it")
    stream.thread_type, stream.thread_count = "AUTO", threads
    return container, stream


def scored_frame(j: int, fps: float) -> int:
    """The 1-based 24-fps frame number of the ``j``-th frame scored at ``fps`` (as ``sample_windows``)."""
    return int(video_input.fps_frames(j, fps))


def pictures(clip: video_input.Clip, on_open, notes: list[str], threads: int) -> Iterator[tuple[np.ndarray, int]]:
    """``(RGB picture, repeats)`` by the frame rule, in order.  ``on_open(stream, audio)`` is called once the
    input is open (a frame folder: ``(None, None)``) and returns the labelled video's writer or None; every
    decoded frame (and audio packet) also goes to it."""
    if clip.kind == video_input.FRAMES:
        video_input.measure_clip(clip)
        writer = on_open(None, None)
        for k, image in video_input.pictures(clip, range(1, clip.nframes + 1)):
            rgb = np.asarray(image)
            if writer is not None:
                frame = require("av").VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = k - 1
                writer.add_frame(frame)
            yield rgb, 1
        return
    container, stream = open_source(clip, threads)
    with container:
        audio = container.streams.audio[0] if container.streams.audio else None
        writer = on_open(stream, audio)
        kept = [stream] + ([audio] if writer is not None and audio is not None else [])

        def packets():
            for packet in container.demux(*kept):
                if packet.stream is stream:
                    yield packet
                else:
                    writer.add_audio(packet)

        def tapped():
            for frame in decoded_frames(container, stream, notes, packets()):
                if writer is not None:
                    writer.add_frame(frame)
                yield frame
        timed = frame_times(tapped(), None, Fraction(stream.time_base))
        size = None
        for frame, repeats in resample(timed, Fraction(FPS), tolerance(stream), notes):  # notes: as offline
            size = size or (frame.width, frame.height)
            yield to_rgb(frame, size), repeats


class OnlineRun:
    """The online scoring of one clip: frames in, lines out, a ``VideoPrediction`` at the end."""

    def __init__(self, clip: video_input.Clip, stream, names: list[str], opts: argparse.Namespace):
        self.clip, self.model, self.names, self.opts = clip, stream.model, names, opts
        self.field = CausalField.from_opts(stream.opts)
        self.transform = val_transform(stream.opts)
        self.rule = dataclasses.replace(RULE, smooth=0)  # smoothed one-sided here, before the rule
        self.frames: list[int] = []
        self.scores: list[np.ndarray] = []   # the field's scores (its one-sided smoothing)
        self.shown: list[np.ndarray] = []    # those, smoothed one-sided as the segment rule smooths
        self.closed: set[tuple[int, float]] = set()   # (class, start) of the segments printed
        self.thumbs: list[tuple[float, Image.Image]] = []
        self.thumb_every = 1
        self.dropped = 0
        self.latency: list[float] = []
        self.batch: list[tuple[int, torch.Tensor, float]] = []
        self.end = 0.0
        self.writer = None

    def open_writer(self, stream, audio):
        """The labelled video's writer (``--out-video``) once the input is open, or None."""
        if not self.opts.out_video:
            return None
        from utils.labelled_video import LabelledVideoWriter
        path = os.path.join(self.opts.out, output_name(self.clip.id) + ".mp4")
        if stream is None:
            log.info("%s: a frame folder has no source video: the labelled video shows its frames at 24 fps",
                     self.clip.path)
            self.writer = LabelledVideoWriter(path, self.names, Fraction(1, FPS), Fraction(FPS))
        else:
            self.writer = LabelledVideoWriter.for_stream(path, self.names, stream, audio)
        return self.writer

    def add(self, k: int, rgb: np.ndarray, arrived: float) -> None:
        """Frame ``k``'s picture, available since ``arrived`` (perf_counter)."""
        image = Image.fromarray(rgb)
        if (len(self.frames) + len(self.batch)) % self.thumb_every == 0:
            self.thumbs.append(((k - 1) / FPS, video_input.thumbnail(image, 72)))
            if len(self.thumbs) > THUMBS:
                self.thumbs, self.thumb_every = self.thumbs[::2], 2 * self.thumb_every
        self.batch.append((k, self.transform(image), arrived))
        if len(self.batch) >= (1 if self.opts.realtime else BATCH):
            self.flush()

    @torch.no_grad()
    def flush(self) -> None:
        """Score the frames waiting, print their lines and the segments they close."""
        if not self.batch:
            return
        frames = [k for k, _, _ in self.batch]
        inputs = torch.stack([x for _, x, _ in self.batch]).to(self.opts.device)
        if self.opts.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        from train import forward
        a, aa = forward(self.model, inputs, self.opts)
        _, smoothed = self.field.step(a, aa, frames)
        smoothed = smoothed.cpu().numpy()
        before = torch.from_numpy(np.asarray(self.scores[-RULE.smooth:])) if self.scores and RULE.smooth else None
        shown = causal_smooth(torch.from_numpy(smoothed), RULE.smooth, before).numpy()
        for (k, _, arrived), row, show in zip(self.batch, smoothed, shown):
            self.frames.append(k)
            self.scores.append(row)
            self.shown.append(show)
            if self.writer is not None:
                self.writer.add_scores((k - 1) / FPS, show)
            top = "  ".join(f"{n} {p:.2f}" for n, p in top_actions(show, self.names, 3))
            print(f"{k:7d} {(k - 1) / FPS:8.2f} s  {top}", flush=True)
            self.latency.append(time.perf_counter() - arrived)
        self.batch = []
        self.report_closed()

    def report_closed(self) -> None:
        """Print the segments no later frame can change: over ``merge_gap`` before the present."""
        times = (np.asarray(self.frames) - 1) / FPS
        now = times[-1]
        for s in segments(np.asarray(self.shown), times, now, self.rule):
            if s.end < now - RULE.merge_gap and (s.index, s.start) not in self.closed:
                self.closed.add((s.index, s.start))
                name = self.names[s.index] if s.index < len(self.names) else f"class {s.index}"
                print(f"  segment: {name} {spans_text([s])} ({s.score:.2f})", flush=True)

    def run(self, threads: int) -> VideoPrediction:
        """Score the clip to its end (or a break, or Ctrl-C); returns its prediction."""
        fps, opts = self.opts.fps or 4.0, self.opts
        notes: list[str] = []
        j, done, start = 0, 0, None
        try:
            for rgb, repeats in pictures(self.clip, self.open_writer, notes, threads):
                start = time.perf_counter() if start is None else start
                done += repeats
                self.end = done / FPS
                while scored_frame(j, fps) <= done:
                    k = scored_frame(j, fps)
                    j += 1
                    arrived = time.perf_counter()
                    if opts.realtime:
                        due = start + (k - 1) / FPS
                        if arrived < due:  # a camera would not have it yet
                            time.sleep(due - arrived)
                            arrived = due
                        elif time.perf_counter() > start + (scored_frame(j, fps) - 1) / FPS:
                            self.dropped += 1  # the next one is due already: skip this one
                            continue
                    self.add(k, rgb, arrived)
        except KeyboardInterrupt:
            notes.append("interrupted: what was scored is written")
            print(f"{self.clip.path}: interrupted; writing what was scored", file=sys.stderr)
        except VideoError as e:
            notes.append(f"stopped: {e}")
        self.flush()
        if self.writer is not None and self.writer.first_pts is not None:
            self.writer.close()
        if not self.frames:
            raise video_input.InputError(f"{self.clip.path}: no frame could be scored"
                                         + (f" ({notes[0]})" if notes else ""))
        frames = np.asarray(self.frames)
        times = (frames - 1) / FPS
        pred = VideoPrediction(self.clip.id, max(self.end, float(times[-1])), frames, times,
                               np.asarray(self.scores), self.names, even=False, notes=notes, rule=self.rule)
        pred._segments = segments(np.asarray(self.shown), times, pred.duration, self.rule)
        return pred


def run_online(opts: argparse.Namespace, streams: list, names: list[str], paths_or_clips) -> int:
    """Score every input online; write the offline mode's files.  Returns 0, or 2 when some failed."""
    from predict import write_outputs, write_submissions
    from utils.cores import usable_cores
    if len(streams) > 1:
        raise cli.UserError("--online scores the RGB stream only (a flow stack needs the 10 frames after its "
                            "frame): leave out --flow-resume, or score the file offline")
    if opts.fps is None:
        log.info("--online: scoring 4 frames per second (--fps F sets it)")
    done, failed = [], []
    for clip in paths_or_clips:
        run = OnlineRun(clip, streams[0], names, opts)
        try:
            pred = run.run(usable_cores())
        except cli.UserError as e:
            failed.append((clip, str(e)))
            log.warning("not scored: %s", e)
            continue
        write_outputs(pred, run.thumbs[:: max(1, len(run.thumbs) // 8)], opts)
        lat = np.asarray(run.latency) * 1000
        print(table(pred, opts.top) + f"\n  online: {len(pred.frames)} frames scored, {run.dropped} dropped; latency "
              f"(picture decoded to line printed) mean {lat.mean():.0f} ms, max {lat.max():.0f} ms\n", flush=True)
        done.append(pred)
    return write_submissions(done, failed, len(paths_or_clips), opts)

