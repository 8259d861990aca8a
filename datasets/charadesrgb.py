"""Charades RGB frames ``<data>/<id>/<id>-NNNNNN.jpg`` (SPEC sections 1 and 2).

``get(opts)`` returns the train, val and val_video datasets; the sampling lives in
``datasets.charades_index`` (shared with flow) and the transforms in ``datasets.transforms``.
"""
from __future__ import annotations

import argparse
import os
from typing import Any, Callable

import torch
from PIL import Image
from torch.utils.data import Dataset

from datasets import charades_index
from datasets import transforms as frame_transforms
from datasets.charades_index import SplitIndex


class FrameError(RuntimeError):
    """A frame that is missing or cannot be decoded; the message names the file."""


def open_frame(path: str, mode: str) -> Image.Image:
    """Decode one frame now (``convert`` forces the decode, so a truncated file fails here, naming the
    file, instead of silently becoming a black image or failing later inside a transform)."""
    try:
        with Image.open(path) as img:
            return img.convert(mode)
    except (OSError, ValueError, SyntaxError) as e:  # PIL reports bad data through all three
        raise FrameError(f"cannot read frame {path}: {type(e).__name__}: {e}") from e


class CharadesFrames(Dataset):
    """One item per sample of a ``SplitIndex``: ``(input, target, {'id', 'time'})``.

    Attributes: ``index`` (the SplitIndex), ``root``, ``nclass``, ``transform``, ``split``,
    ``video_ids`` (each item's video id, item order; no decoding).  Subclasses define ``load_input``.
    """

    def __init__(self, index: SplitIndex, root: str, nclass: int, transform: Callable | None = None):
        self.index = index
        self.root = root
        self.nclass = nclass
        self.transform = transform

    @property
    def split(self) -> str:
        return self.index.split

    @property
    def video_ids(self) -> list[str]:
        return self.index.video_ids

    def __len__(self) -> int:
        return len(self.index)

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
        return x, self.target(i), {"id": self.index.video_id(i), "time": int(self.index.frame[i])}


class CharadesRGB(CharadesFrames):
    """RGB frames; the input is the PIL image of the sample's frame before ``transform``."""

    def frame_path(self, video_id: str, frame: int) -> str:
        return os.path.join(self.root, video_id, f"{video_id}-{frame:06d}.jpg")

    def load_input(self, i: int) -> Image.Image:
        return open_frame(self.frame_path(self.index.video_id(i), int(self.index.frame[i])), "RGB")


def get(opts: argparse.Namespace) -> tuple[CharadesRGB, CharadesRGB, CharadesRGB]:
    """train, val, val_video datasets of ``opts.data`` with ``opts.train_file`` / ``opts.val_file``."""
    train, val, val_video = charades_index.load_splits(opts, modality="rgb", span=1)
    if getattr(opts, "gpu_decode", False):  # workers read bytes; decoding and the rest per batch on the device
        from datasets import device_decode  # imported here: it imports this module
        return device_decode.get_datasets(opts, train, val, val_video)
    if getattr(opts, "fast_loader", False):  # uint8 samples; jitter + normalisation per batch on the device
        from datasets import fast_frames  # imported here: it imports this module
        return fast_frames.get_datasets(opts, train, val, val_video)
    evaluate = frame_transforms.val_transform(opts)
    return (CharadesRGB(train, opts.data, opts.nclass, frame_transforms.train_transform(opts)),
            CharadesRGB(val, opts.data, opts.nclass, evaluate),
            CharadesRGB(val_video, opts.data, opts.nclass, evaluate))
