"""Input transforms of the frame datasets (SPEC sections 2 and 11).

Kept apart from the datasets so that a faster path (e.g. GPU-side augmentation) can replace these
builders without touching the sampling code: the datasets call ``train_transform(opts)`` etc. once.
"""
from __future__ import annotations

import argparse
from typing import Callable

import torch
from torchvision import transforms as tv

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FLOW_MEAN = 0.502  # 128/255: "no motion" maps to ~0
FLOW_STD = 1.0


def resize_size(inputsize: int) -> int:
    """Shorter-side size before the centre crop (256 for a 224 crop, as ImageNet evaluation)."""
    return int(256 / 224 * inputsize)


def train_transform(opts: argparse.Namespace, flip: bool = True) -> Callable:
    """RGB training augmentation: PIL image -> normalised 3xSxS tensor.  ``flip=False`` leaves out the
    RandomHorizontalFlip: the datasets draw the flip after the transform (``datasets.frames``), so that
    the label can follow it."""
    return tv.Compose([
        tv.RandomResizedCrop(opts.inputsize),
        tv.ColorJitter(0.4, 0.4, 0.4),
        *([tv.RandomHorizontalFlip()] if flip else []),
        tv.ToTensor(),
        tv.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def val_transform(opts: argparse.Namespace) -> Callable:
    """RGB evaluation (val and val_video): PIL image -> normalised 3xSxS tensor."""
    return tv.Compose([
        tv.Resize(resize_size(opts.inputsize)),
        tv.CenterCrop(opts.inputsize),
        tv.ToTensor(),
        tv.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


class FlowHorizontalFlip(torch.nn.Module):
    """Mirror a flow stack (channels x1, y1, x2, y2, ...) left-right with probability ``p``.

    Mirroring the image reverses horizontal motion, so the x channels (even indices) become
    ``1 - x`` in [0, 1] space (``255 - x`` in 8-bit); y is only mirrored.  Must run before
    normalisation.
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, stack: torch.Tensor) -> torch.Tensor:
        if torch.rand(1).item() >= self.p:  # torch RNG: seeded per DataLoader worker like torchvision's
            return stack
        out = stack.flip(-1)
        out[0::2] = 1.0 - out[0::2]
        return out


class FlowNormalize(torch.nn.Module):
    """``(x - FLOW_MEAN) / FLOW_STD`` for any number of channels."""

    def forward(self, stack: torch.Tensor) -> torch.Tensor:
        return (stack - FLOW_MEAN) / FLOW_STD


def flow_train_transform(opts: argparse.Namespace, flip: bool = True) -> Callable:
    """Flow training augmentation on a 20xHxW float stack in [0, 1]: one random resized crop shared by
    all channels (they are one tensor), the motion-aware flip (unless ``flip=False``), no colour jitter."""
    return tv.Compose([
        tv.RandomResizedCrop(opts.inputsize),
        *([FlowHorizontalFlip(0.5)] if flip else []),
        FlowNormalize(),
    ])


def flow_val_transform(opts: argparse.Namespace) -> Callable:
    """Flow evaluation: resize + centre crop as RGB, then normalisation."""
    return tv.Compose([
        tv.Resize(resize_size(opts.inputsize)),
        tv.CenterCrop(opts.inputsize),
        FlowNormalize(),
    ])
