"""Random images with random multi-hot targets: exercises the whole pipeline without any data."""
from __future__ import annotations

import argparse

import torch
from torch.utils.data import Dataset

FRAMES_PER_VIDEO = 8


class FakeFrames(Dataset):
    """``nvideos`` videos of ``nframes`` random frames each, in video then time order."""

    def __init__(self, split: str, nvideos: int, nframes: int, opts: argparse.Namespace, video_level: bool):
        g = torch.Generator().manual_seed(1000 * opts.manual_seed + len(split))  # str hash is salted per process
        self.split, self.nframes, self.size = split, nframes, opts.inputsize
        self.labels = (torch.rand(nvideos, opts.nclass, generator=g) < 3.0 / opts.nclass).float()
        self.seeds = torch.randint(0, 2 ** 31, (nvideos * nframes,), generator=g)
        self.video_ids = [f"{split}{v:04d}" for v in range(nvideos) for _ in range(nframes)]
        self.video_level = video_level

    def __len__(self) -> int:
        return len(self.video_ids)

    def __getitem__(self, i: int):
        v, t = divmod(i, self.nframes)
        g = torch.Generator().manual_seed(int(self.seeds[i]))
        image = torch.randn(3, self.size, self.size, generator=g)
        if not self.video_level and self.split == "train" and torch.rand(()) < 0.5:
            image = image.flip(-1)  # an augmentation drawn from the (worker's) global stream, like real ones
        target = self.labels[v] if self.video_level else self.labels[v] * (torch.rand(1, generator=g) < 0.7)
        return image, target.clone(), {"id": self.video_ids[i], "time": t * 4 + 1}


def get(opts: argparse.Namespace):
    """train (24 videos), val (8 videos) and val_video (the same 8, ``test_frames`` frames each)."""
    return (FakeFrames("train", 24, FRAMES_PER_VIDEO, opts, video_level=False),
            FakeFrames("val", 8, FRAMES_PER_VIDEO, opts, video_level=False),
            FakeFrames("val", 8, opts.test_frames, opts, video_level=True))
