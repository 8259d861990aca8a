"""Which stream a checkpoint was trained on, read off its weights: an RGB network's first convolution takes 3
channels, a flow network's 20 (10 stacked x/y pairs, SPEC section 11), whatever the arch (VGG-16 flow,
a widened ResNet...).  A network without convolutions (``--arch linear``) says nothing."""
from __future__ import annotations

import torch

RGB_CHANNELS = 3
FLOW_CHANNELS = 20
STREAMS = {RGB_CHANNELS: "rgb", FLOW_CHANNELS: "flow"}


def input_channels(state_dict: dict) -> int | None:
    """Input channels of the first convolution (the first 4-D weight, in the state dict's order, which is
    the network's module order); None when there is none."""
    for key, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.dim() == 4 and key.endswith("weight"):
            return int(value.shape[1])
    return None


def checkpoint_stream(state_dict: dict) -> str | None:
    """``"rgb"`` (3 input channels), ``"flow"`` (20), or None (no convolution, or another count)."""
    return STREAMS.get(input_channels(state_dict))
