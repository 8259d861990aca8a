"""A person's own videos as model inputs (``predict.py``): which inputs, which frames, frames as tensors.

- **Inputs.** Video files (any container FFmpeg reads, through PyAV), folders searched for them, and frame
  folders ``<id>/<id>-NNNNNN.jpg`` as ``extract_frames.py`` writes them.  A video's id is its file name
  without the extension; a frame folder's id is the folder's name.
- **Length.** A video has the frames of the tree ``extract_frames.py`` would make of it
  (``utils.video_sample.measure``) and lasts until the end of its last frame; a frame folder has its files
  and lasts their count at 24 fps.
- **Frames.** By default the ``test_frames`` (50) frames val_video scores (``frame_index.val_video_frames``:
  frame ``floor(k * length * 24 / T) + 1`` at ``t_k = k * length / T``, clamped to the last frame), as one
  window; with ``fps``, the frames at ``j / fps`` seconds in consecutive windows of ``test_frames``.
- **Tensors.** Every frame goes through the evaluation transform (``transforms.val_transform``), from the
  decoded picture (a video: what ``extract_frames.py`` would save as JPEG) or the frame file.  Streaming:
  one frame decoded at a time.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import torch
from PIL import Image

from datasets.frame_files import FrameNaming, describe_gaps, list_frames
from datasets.frame_index import FPS, val_video_frames
from datasets.frame_io import FrameError, open_frame
from utils.cli import UserError
from utils.video_decode import VideoError

TREE_FPS = Fraction(FPS)
NAMING = FrameNaming("{id}-{frame:06d}.jpg")  # extract_frames.py's names (charadesrgb's; a base module imports no dataset)
VIDEO, FRAMES = "video", "frames"


class InputError(UserError):
    """An input that cannot be scored; the message names it and says what to do."""


@dataclass
class Clip:
    """One input: ``kind`` is ``video`` or ``frames`` (a frame folder); ``nframes`` the frames of its tree,
    ``duration`` in seconds; ``notes``: warnings about it (a truncated file...)."""

    id: str
    path: str
    kind: str
    nframes: int = 0
    duration: float = 0.0
    length: object = None          # utils.video_sample.VideoLength of a video
    notes: list[str] = field(default_factory=list)

    def frame_path(self, k: int) -> str:
        return NAMING.path(os.path.dirname(self.path), self.id, k)


def is_frame_folder(path: str) -> bool:
    """A folder holding ``<name>-000001.jpg`` (its own frames, as ``extract_frames.py`` writes them)."""
    return os.path.isdir(path) and os.path.isfile(NAMING.path(os.path.dirname(os.path.abspath(path)),
                                                             os.path.basename(os.path.abspath(path)), 1))


def find_inputs(paths: Sequence[str], extensions: str,
                find_videos: Callable[[str, str], dict[str, str]]) -> list[Clip]:
    """The clips of ``paths`` in the order given (a folder: its frame folders and videos, sorted).  A path
    that does not exist, or two inputs with one id, is an ``InputError``."""
    found: dict[str, Clip] = {}

    def add(clip: Clip) -> None:
        if clip.id in found:
            raise InputError(f"two inputs have the id {clip.id!r}: {found[clip.id].path} and {clip.path} "
                             f"(outputs are named by id: rename one)")
        found[clip.id] = clip
    for path in paths:
        path = os.path.normpath(path)
        if is_frame_folder(path):
            add(Clip(os.path.basename(os.path.abspath(path)), path, FRAMES))
        elif os.path.isdir(path):
            entries = sorted(os.path.join(path, e) for e in os.listdir(path))
            folders = [e for e in entries if is_frame_folder(e)]
            for folder in folders:
                add(Clip(os.path.basename(folder), folder, FRAMES))
            skip = set(folders)
            try:
                videos = find_videos(path, extensions)
            except ValueError as e:
                raise InputError(f"{e} (outputs are named by id: rename one)") from None
            for vid, video in videos.items():
                if not any(video.startswith(f + os.sep) for f in skip):
                    add(Clip(vid, video, VIDEO))
        elif os.path.isfile(path):
            add(Clip(os.path.splitext(os.path.basename(path))[0], path, VIDEO))
        else:
            raise InputError(f"input not found: {path} (give video files, folders of videos, or frame folders "
                             f"<id>/<id>-NNNNNN.jpg)")
    if not found:
        raise InputError(f"no video file or frame folder in {', '.join(paths)} (video extensions: {extensions})")
    return list(found.values())


def measure_clip(clip: Clip, threads: int = 1) -> Clip:
    """Fill in ``nframes`` and ``duration`` (a video: its tree's length; ``InputError`` when it does not
    decode)."""
    if clip.kind == FRAMES:
        listing = list_frames(clip.path, clip.id, NAMING)
        if listing.n == 0:
            raise InputError(f"{clip.path}: no frames {clip.id}-NNNNNN.jpg in it")
        if listing.missing:
            raise InputError(f"{clip.path}: {describe_gaps(listing)}; extract the video again "
                             f"(extract_frames.py) or give the video itself")
        clip.nframes, clip.duration = listing.n, listing.n / FPS
        return clip
    from utils.video_sample import measure  # PyAV only when there are videos
    if os.path.getsize(clip.path) == 0:
        raise InputError(f"{clip.path}: an empty file")
    try:
        clip.length = measure(clip.path, TREE_FPS, threads)
    except VideoError as e:
        raise InputError(f"{clip.path}: {e}; is it a video? (FFmpeg, through PyAV, could not decode it)") from None
    except ImportError as e:
        raise InputError(str(e)) from None
    clip.nframes, clip.duration, clip.notes = clip.length.nframes, clip.length.duration, list(clip.length.notes)
    return clip


def fps_frames(j, fps: float) -> np.ndarray:
    """The 1-based 24-fps frame numbers of the ``j``-th frames scored at ``fps``: ``floor(j * 24 / fps) + 1``
    (the online mode's frames, one at a time, and ``sample_windows``' at once)."""
    # the epsilon keeps j * 24 / fps that is whole in exact arithmetic from flooring one frame low
    return np.floor(np.asarray(j, np.float64) * FPS / fps + 1e-6).astype(np.int64) + 1


def sample_windows(nframes: int, duration: float, test_frames: int = 50, fps: float | None = None,
                   frames: int | None = None) -> list[np.ndarray]:
    """The 1-based frames to score, in windows that are each scored as one val_video video.  Default: the
    ``test_frames`` frames val_video takes of a video of ``nframes`` frames and ``duration`` seconds;
    ``frames``: that many instead; ``fps``: the frames at ``j / fps`` s (``j / fps < duration``) in
    windows of ``test_frames``."""
    if fps is None:
        count = frames or test_frames
        return [np.clip(val_video_frames(nframes, duration, count, FPS, "time"), 1, nframes)]
    chosen = np.clip(fps_frames(np.arange(max(1, math.ceil(duration * fps - 1e-9))), fps), 1, nframes)
    return [chosen[i:i + test_frames] for i in range(0, len(chosen), test_frames)]


def frame_times(frames: np.ndarray) -> np.ndarray:
    """The time (seconds) of 1-based tree frames: frame ``k`` shows the instant ``(k - 1) / 24``."""
    return (np.asarray(frames, np.float64) - 1) / FPS


def pictures(clip: Clip, frames: Sequence[int], threads: int = 1, stats: dict | None = None
             ) -> Iterator[tuple[int, Image.Image]]:
    """``(k, RGB image)`` of the ``frames`` of a clip (ascending), streaming."""
    if clip.kind == FRAMES:
        for k in frames:
            try:
                yield int(k), open_frame(clip.frame_path(int(k)), "RGB")
            except FrameError as e:
                raise InputError(f"{e}; extract the video again or remove the folder") from None
        return
    from utils.video_sample import sampled
    try:
        for k, rgb in sampled(clip.path, [int(k) for k in frames], clip.length, threads, stats=stats):
            yield k, Image.fromarray(rgb)
    except VideoError as e:
        raise InputError(f"{clip.path}: {e}") from None


def thumbnail_frames(frames: Sequence[int], count: int) -> list[int]:
    """``count`` frame numbers of ``frames`` spread from the first to the last (fewer when there are fewer)."""
    frames = np.asarray(frames)
    if not len(frames):
        return []
    return sorted(set(frames[np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)].tolist()))


def thumbnail(image: Image.Image, height: int) -> Image.Image:
    """``image`` scaled to ``height`` pixels, aspect kept."""
    return image.resize((max(1, round(image.width * height / image.height)), height), Image.BILINEAR)


def batches(images: Iterator[tuple[int, Image.Image]], count: int, transform: Callable, batch_size: int,
            thumbs: dict | None = None, thumb_height: int = 72) -> Iterator[torch.Tensor]:
    """The next ``count`` frames of ``images`` (``pictures``), transformed, in batches of ``batch_size`` (the
    last one shorter).  ``thumbs``: a dict whose keys are frame numbers; their pictures go into it, scaled
    to ``thumb_height`` pixels."""
    batch = []
    for _ in range(count):
        k, image = next(images)
        if thumbs is not None and k in thumbs and thumbs[k] is None:
            thumbs[k] = thumbnail(image, thumb_height)
        batch.append(transform(image))
        if len(batch) == batch_size:
            yield torch.stack(batch)
            batch = []
    if batch:
        yield torch.stack(batch)
