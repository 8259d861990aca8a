"""Charades optical flow ``<data>/<id>/<id>-NNNNNNx.jpg`` / ``...y.jpg`` (SPEC sections 1 and 11).

A sample starting at frame ``f`` stacks the 10 consecutive flow pairs ``f .. f+9`` into 20 channels
in the order **x_f, y_f, x_{f+1}, y_{f+1}, ..., x_{f+9}, y_{f+9}** (x and y interleaved per frame, as
the original; ``datasets/flow_files.py``).  The 8-bit grayscale values (128 = no motion) are scaled to [0, 1] and normalised with
mean 0.502, std 1.  The sampling rules are RGB's (``frame_index`` with ``span=10``).

Flips: the original's flow training transform has none, and neither has ours by default (``--flip auto``,
``original`` and ``none`` alike).  ``--flip mirror`` adds the motion-aware flip (``FlowHorizontalFlip``:
p = 0.5, part of the flow transform, since mirroring flow also reverses horizontal motion).
"""
from __future__ import annotations

import argparse
import logging

import torch

from datasets import transforms as frame_transforms
from datasets.charadesrgb import class_names  # noqa: F401  (the same 157 classes)
from datasets.flow_files import NAMING, read_stack, stack_frames
from datasets.frame_index import FLOW_SPAN, FrameSource, load_splits
from datasets.frames import FrameDataset
from utils.charades_csv import read_annotations

log = logging.getLogger(__name__)


class CharadesFlow(FrameDataset):
    """Flow stacks; the input is a float (2*span)xHxW tensor in [0, 1] before ``transform``."""

    span = FLOW_SPAN

    def frame_paths(self, i: int) -> list[str]:
        """The files behind sample ``i``, in channel order (x1, y1, x2, y2, ...)."""
        vid = self.index.video_id(i)
        start = int(self.index.frame[i])
        last = int(self.index.nframes[self.index.video[i]])
        return [self.frame_path(vid, f, axis) for f in stack_frames(start, last, self.span) for axis in "xy"]

    def load_input(self, i: int) -> torch.Tensor:
        return read_stack(self.frame_paths(i))


def get(opts: argparse.Namespace) -> tuple[CharadesFlow, CharadesFlow, CharadesFlow]:
    """train, val, val_video flow datasets of ``opts.data`` with ``opts.train_file`` / ``opts.val_file``."""
    source = FrameSource("charadesflow", NAMING, lambda path: read_annotations(path, opts.nclass),
                         span=CharadesFlow.span)
    train, val, val_video = load_splits(opts, source)
    for flag in ("fast_loader", "gpu_decode"):
        if getattr(opts, flag, False):
            log.warning("--%s applies to RGB frames only: flow frames are loaded as usual", flag.replace("_", "-"))
    flip = getattr(opts, "flip", "auto") == "mirror"  # the original's flow transform flips nothing
    log.info("--flip %s: %s", getattr(opts, "flip", "auto"),
             "the motion-aware flip of the flow stacks" if flip else "no flip (the original's flow transform)")
    evaluate = frame_transforms.flow_val_transform(opts)
    out = (CharadesFlow(train, source, opts.data, opts.nclass, frame_transforms.flow_train_transform(opts, flip)),
           CharadesFlow(val, source, opts.data, opts.nclass, evaluate),
           CharadesFlow(val_video, source, opts.data, opts.nclass, evaluate))
    for ds in out:
        ds.eval_csv = opts.val_file
    return out
