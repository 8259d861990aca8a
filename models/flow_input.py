"""Let an RGB network take a flow stack: widen its first convolution (SPEC section 11)."""
from __future__ import annotations

import torch
import torch.nn as nn

from utils.cli import InputError


def _first_rgb_conv(model: nn.Module) -> str:
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            return name
    raise InputError(f"{type(model).__name__} has no Conv2d with 3 input channels to widen for flow input: choose "
                     "another --arch for --dataset charadesflow")


def widen_first_conv(model: nn.Module, channels: int = 20) -> nn.Module:
    """Replace the first 3-input ``nn.Conv2d`` (module order) by one with ``channels`` inputs, in place.

    Every input channel's filter is the mean of the 3 colour filters: flow channels have no colour
    identity, and the mean keeps the ImageNet edge detectors as a start.  Everything else of the
    conv (out channels, kernel, stride, padding, dilation, bias, padding mode) is kept; returns ``model``.
    """
    name = _first_rgb_conv(model)
    old = model.get_submodule(name)
    if old.groups != 1:  # a grouped 3-channel conv has no per-colour filters to average
        raise InputError(f"cannot widen {name} for flow input: groups={old.groups}; choose another --arch for "
                         "--dataset charadesflow")
    new = nn.Conv2d(channels, old.out_channels, old.kernel_size, old.stride, old.padding, old.dilation,
                    old.groups, old.bias is not None, old.padding_mode,
                    device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(old.weight.mean(1, keepdim=True).expand_as(new.weight))
        if old.bias is not None:
            new.bias.copy_(old.bias)
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)
    # inception_v3/googlenet re-normalise channels 0..2 as RGB and concatenate back to 3 channels
    if getattr(model, "transform_input", False):
        model.transform_input = False
    return model
