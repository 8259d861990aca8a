"""The flow files of a video and the stack a flow sample reads (SPEC sections 1 and 11), shared by the flow
dataset (``charadesflow``) and ``predict.py``'s flow stream (``video_flow``).

Flow frame ``k`` of a video is ``<data>/<id>/<id>-NNNNNNx.jpg`` / ``...y.jpg`` (8-bit, 128 = no motion).  A
stack starting at flow frame ``f`` is the ``span`` (10) consecutive pairs ``f .. f+span-1`` as 20 channels in
the order x_f, y_f, x_{f+1}, y_{f+1}, ... (as the original), scaled to [0, 1].
"""
from __future__ import annotations

import numpy as np
import torch

from datasets.frame_files import FrameNaming
from datasets.frame_index import FLOW_SPAN
from datasets.frame_io import FrameError, open_frame

NAMING = FrameNaming("{id}-{frame:06d}{axis}.jpg", axes=("x", "y"))


def stack_frames(start: int, last: int, span: int = FLOW_SPAN) -> list[int]:
    """The flow frames of the stack that starts at ``start``: ``start .. start+span-1``, each at most
    ``last``.  Only a val_video sample of a video shorter than the span can run past ``last`` (train/val
    drop such samples): repeating the last pair keeps that video scored instead of unscored."""
    return [min(start + j, last) for j in range(span)]


def read_stack(paths: list[str]) -> torch.Tensor:
    """The flow files ``paths`` (channel order) as one float stack in [0, 1], before the transform."""
    planes = [np.asarray(open_frame(p, "L")) for p in paths]
    try:
        stack = np.stack(planes)
    except ValueError as e:  # frames of different sizes: name the sample's files
        raise FrameError(f"flow frames {paths[0]} .. {paths[-1]} differ in size: {e}") from e
    return torch.from_numpy(stack).float().div_(255.0)
