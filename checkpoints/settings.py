"""The options a checkpoint was trained with that shape its network and its scores, and its class names.

The weights alone do not say how a model scores a video: sigma, the memory size, the smoothing window,
the input size... cannot be read off them.  ``main.py`` records them in every checkpoint under
``settings`` (plain types only, so the safe loader reads them), and ``predict.py`` reads them back.  A
checkpoint without them (the released model, older ones) gives None, and the caller falls back to the
experiment's settings.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

KEY = "settings"
# the options that decide the network (arch, nclass, nhidden, inputsize, dataset: RGB or flow) and the
# synchronous scores (test_frames, the message buffer, smoothing, and the seed of the storing orders)
MODEL_OPTIONS = ("arch", "dataset", "nclass", "nhidden", "inputsize", "test_frames", "sigma", "memory_size",
                 "memory_decay", "temporal_weight", "window_smooth", "manual_seed", "flip")
_TYPES = {"arch": str, "dataset": str, "flip": str, "nclass": int, "nhidden": int, "inputsize": int,
          "test_frames": int, "memory_size": int, "window_smooth": int, "manual_seed": int,
          "sigma": float, "memory_decay": float, "temporal_weight": float}


class SettingsError(ValueError):
    """Recorded settings that are not what ``model_settings`` writes; the message names the key."""


def model_settings(opts: argparse.Namespace, class_names: Sequence[str] | None) -> dict:
    """What to record in a checkpoint: ``MODEL_OPTIONS`` of ``opts`` and the class names (or None)."""
    out = {name: _TYPES[name](getattr(opts, name)) for name in MODEL_OPTIONS}
    out["class_names"] = None if class_names is None else [str(n) for n in class_names]
    return out


def recorded_settings(checkpoint, where: str = "checkpoint") -> dict | None:
    """The settings recorded in a loaded checkpoint (checked), or None when it has none."""
    if not isinstance(checkpoint, dict) or KEY not in checkpoint:
        return None
    found = checkpoint[KEY]
    if not isinstance(found, dict):
        raise SettingsError(f"{where}: '{KEY}' is a {type(found).__name__}, not a dict")
    out = {}
    for name, kind in _TYPES.items():
        if name in found:
            value = found[name]
            allowed = {str: (str,), int: (int,), float: (int, float)}[kind]
            if not isinstance(value, allowed) or isinstance(value, bool):
                raise SettingsError(f"{where}: recorded option {name!r} is {value!r}, not a {kind.__name__}")
            out[name] = kind(value)
    names = found.get("class_names")
    if names is not None and (not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names)):
        raise SettingsError(f"{where}: recorded 'class_names' is not a list of strings")
    out["class_names"] = None if names is None else list(names)
    return out


def as_flags(settings: dict) -> list[str]:
    """Command-line flags that set ``settings`` (the options of ``MODEL_OPTIONS`` among them)."""
    flags = []
    for name in MODEL_OPTIONS:
        if name in settings and settings[name] is not None:
            flags += ["--" + name.replace("_", "-"), str(settings[name])]
    return flags
