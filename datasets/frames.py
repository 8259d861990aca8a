"""The frame-dataset base: what every dataset of frame files shares.

A dataset module (``charadesrgb``, ``jesterrgb``, ...) says how to read its annotations and name its
frames (a ``frame_index.FrameSource``) and calls ``rgb_datasets``; everything else is here:

- ``FrameDataset``: one item per sample of a ``SplitIndex``: ``(input, target, {'id', 'time'})``, the
  multi-hot target, the frame paths, the training flip drawn per sample (``datasets.mirror``), and the
  attributes the loop reads: ``video_ids``, ``collate_fn`` and ``batch_transform`` (when the input path
  has them), ``eval_csv`` (the Charades-format annotation file that val_video's submission is scored
  against by the official evaluator, or None) and ``single_label`` (report video top-1/top-5).
- ``at_stride``: a val_video dataset re-sampled at a fixed frame step (``extract_features.py``).
- ``RGBFrames`` and ``rgb_datasets``: the three RGB input paths, the same for every dataset:
  plain (PIL + torchvision, ``datasets.transforms``), ``--fast-loader`` (``datasets.fast_frames``) and
  ``--gpu-decode`` (``datasets.device_decode``).

The flip is drawn here, after the transform, rather than inside it, so that the label can follow the
frame.  It takes the draw RandomHorizontalFlip took at the end of the train transform, and flipping the
tensor equals flipping the image, so ``--flip original`` gives the original's samples exactly.
"""
from __future__ import annotations

import argparse
import copy
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from datasets import device_decode, fast_frames
from datasets import transforms as frame_transforms
from datasets.frame_files import list_frames
from datasets.frame_index import FrameSource, SplitIndex, load_splits
from datasets.frame_strided import strided_index
from datasets.frame_io import open_frame
from datasets.mirror import FlipRule, flip_rule

log = logging.getLogger(__name__)


def flip_tensor(x: torch.Tensor) -> torch.Tensor:
    """Mirror a (C, H, W) frame left-right."""
    return x.flip(-1)


class FrameDataset(Dataset):
    """One item per sample of ``index``: ``(input, target, {'id', 'time'})``.  Subclasses define
    ``load_input``.  ``flip``: the training flip rule (None: no flip), ``mirror``: how to flip an input
    after ``transform``."""

    eval_csv: str | None = None
    single_label: bool = False

    def __init__(self, index: SplitIndex, source: FrameSource, root: str, nclass: int,
                 transform: Callable | None = None, flip: FlipRule | None = None,
                 mirror: Callable[[Any], Any] = flip_tensor):
        self.index, self.naming, self.root, self.nclass = index, source.naming, root, nclass
        self.transform, self.flip, self.mirror = transform, flip, mirror

    @property
    def split(self) -> str:
        return self.index.split

    @property
    def video_ids(self) -> list[str]:
        return self.index.video_ids

    def __len__(self) -> int:
        return len(self.index)

    def frame_path(self, video_id: str, frame: int, axis: str = "") -> str:
        return self.naming.path(self.root, video_id, frame, axis)

    def load_input(self, i: int) -> Any:
        raise NotImplementedError

    def target(self, i: int) -> torch.Tensor:
        """Float multi-hot vector (nclass,) of sample ``i``."""
        t = torch.zeros(self.nclass)
        t[torch.from_numpy(self.index.classes(i).astype("int64"))] = 1.0
        return t

    def __getitem__(self, i: int) -> tuple[Any, torch.Tensor, dict]:
        x = self.load_input(i)
        if self.transform is not None:
            x = self.transform(x)
        target = self.target(i)
        if self.flip is not None:
            flipped, target = self.flip.apply(target)
            if flipped:
                x = self.mirror(x)
        return x, target, {"id": self.index.video_id(i), "time": int(self.index.frame[i])}


class RGBFrames(FrameDataset):
    """RGB frames: the input is the decoded PIL image (``decode``) or the frame's path, which the fast and
    device-decode transforms read themselves."""

    def __init__(self, *args, decode: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.decode = decode

    def path(self, i: int) -> str:
        return self.frame_path(self.index.video_id(i), int(self.index.frame[i]))

    def load_input(self, i: int) -> Any:
        return open_frame(self.path(i), "RGB") if self.decode else self.path(i)


def at_stride(dataset: FrameDataset, step: float, videos: Sequence[str] | None = None) -> FrameDataset:
    """A copy of ``dataset`` (a val_video dataset: evaluation transform, video-level targets) whose items are
    the frames ``frame_strided.strided_frames(n, step)`` of each of its videos (or only ``videos``), in time
    order.  A video with gaps that the index kept (``--frame-gaps present``) is listed again and only its
    frames present are taken."""
    span = getattr(dataset, "span", 1)
    kept = set(dataset.index.ids.tolist())
    listings = {vid: list_frames(os.path.join(dataset.root, vid), vid, dataset.naming)
                for vid in dataset.index.gapped.tolist() if vid in kept}
    out = copy.copy(dataset)
    out.index = strided_index(dataset.index, step, span, listings, videos)
    return out


def resolve_flip(opts: argparse.Namespace, default: str, names: Sequence[str] | None) -> FlipRule | None:
    """``--flip`` (``auto``: the dataset's ``default``) as a rule for ``opts.nclass`` classes; logged."""
    mode = getattr(opts, "flip", "auto")
    mode = default if mode == "auto" else mode
    rule = flip_rule(mode, opts.nclass, names)
    if mode == "mirror" and rule is not None and names is not None:
        never = [names[c] for c in torch.nonzero(~rule.allowed).flatten().tolist()]
        log.info("--flip mirror: %d class pairs swap when flipped (%s); never flipped: %s", len(rule.pairs()),
                 "; ".join(f"{names[a]!r} <-> {names[b]!r}" for a, b in rule.pairs()) or "none",
                 ", ".join(map(repr, never)) or "none")
    else:
        log.info("--flip %s", mode)
    return rule


def rgb_datasets(opts: argparse.Namespace, source: FrameSource, *, flip: FlipRule | None,
                 eval_csv: str | None, single_label: bool) -> tuple[RGBFrames, RGBFrames, RGBFrames]:
    """train, val and val_video RGB datasets of ``source`` on ``opts.data``, in the input path the
    options choose (``--gpu-decode``, ``--fast-loader`` or plain)."""
    train, val, val_video = load_splits(opts, source)
    S, common = opts.inputsize, dict(source=source, root=opts.data, nclass=opts.nclass)
    if getattr(opts, "gpu_decode", False):  # workers read bytes; decoding and the rest per batch on the device
        train_t, eval_t = device_decode.EncodedTrainFrame(S, flip_p=None), device_decode.EncodedEvalFrame()
        batch = [device_decode.DeviceDecode(S, opts.device, training, fast_frames.JITTER if training else None)
                 for training in (True, False, False)]
        common.update(decode=False, mirror=device_decode.flip_encoded)
    elif getattr(opts, "fast_loader", False):  # uint8 samples; jitter + normalisation per batch on the device
        train_t, eval_t = fast_frames.FastTrainFrame(S, flip_p=None), fast_frames.FastEvalFrame(S)
        batch = [fast_frames.BatchTransform(jitter) for jitter in (fast_frames.JITTER, None, None)]
        common.update(decode=False)
    else:
        train_t, eval_t = frame_transforms.train_transform(opts, flip=False), frame_transforms.val_transform(opts)
        batch = [None, None, None]
    out = (RGBFrames(train, transform=train_t, flip=flip, **common),
           RGBFrames(val, transform=eval_t, **common), RGBFrames(val_video, transform=eval_t, **common))
    for ds, batch_transform in zip(out, batch):
        ds.eval_csv, ds.single_label = eval_csv, single_label
        if batch_transform is not None:
            ds.batch_transform = batch_transform
        if getattr(opts, "gpu_decode", False):
            ds.collate_fn = device_decode.collate
    return out
