"""Checkpoints: atomic saves, and loads of every format the project meets (SPEC section 10).

``model.pth.tar`` holds ``{'epoch': epoch+1, 'arch', 'state_dict', 'mAP', 'optimizer', ...}``.  The released
``asynctf_rgb.pth.tar`` was pickled by Python 2 / PyTorch 0.4 from a ``DataParallel`` model (``module.``
keys, a numpy ``mAP``): ``load_checkpoint`` reads it too.
"""
from __future__ import annotations

import logging
import os
import pickle
import shutil
import zipfile

import torch

from utils.atomic import atomic_write

log = logging.getLogger(__name__)
METRIC_KEYS = ("top1train", "top5train", "top1val", "top5val", "mAP", "videoprec1", "videoprec5", "video_top1",
               "video_top5")


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read (corrupt, truncated, not a checkpoint)."""


def atomic_torch_save(obj, path: str) -> None:
    """``torch.save`` that never leaves a partial file at ``path``."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_checkpoint(path: str, map_location="cpu") -> dict:
    """Read any checkpoint this project meets: current zip files, legacy (PyTorch 0.4) pickles, and
    Python 2 pickles (retried with ``encoding='latin1'``).  Raises ``CheckpointError`` naming the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    errors = []
    for kwargs in ({"weights_only": False}, {"weights_only": False, "encoding": "latin1"}):
        try:
            return torch.load(path, map_location=map_location, **kwargs)
        except (pickle.UnpicklingError, EOFError, RuntimeError, zipfile.BadZipFile, UnicodeDecodeError,
                ValueError, AttributeError, ImportError, IndexError, KeyError, OSError) as err:
            errors.append(f"{type(err).__name__}: {err}")
    raise CheckpointError(f"cannot read checkpoint {path}: it is corrupt, truncated or not a checkpoint "
                          f"({errors[-1]})")


def strip_module(state_dict: dict) -> dict:
    """Drop the ``module.`` prefix that ``DataParallel``/``DistributedDataParallel`` add to every key."""
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state_dict.items()}


def load_weights_file(path: str) -> dict:
    """A bare state dict from a file holding either weights or a checkpoint dict with ``state_dict``."""
    obj = load_checkpoint(path)
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return strip_module(state)


def save_checkpoint(state: dict, is_best: bool, metrics: dict, cache: str) -> None:
    """Write ``model.pth.tar`` and ``model_NNN.txt`` (NNN = ``state['epoch']``), and their ``_best`` copies."""
    path = os.path.join(cache, "model.pth.tar")
    atomic_torch_save(state, path)
    text = "".join(f"{k} {float(metrics[k]):g}\n" for k in METRIC_KEYS if k in metrics)
    write_text = lambda p: atomic_write(p, lambda tmp: open(tmp, "w").write(text))  # noqa: E731
    write_text(os.path.join(cache, "model_{:03d}.txt".format(state["epoch"])))
    if is_best:
        atomic_write(os.path.join(cache, "model_best.pth.tar"), lambda tmp: shutil.copyfile(path, tmp))
        write_text(os.path.join(cache, "model_best.txt"))


def resume(path: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Restore from ``path``; returns ``{'start_epoch', 'best_mAP', 'checkpoint'}``.

    A dict with ``state_dict`` restores weights, optimiser, start epoch and best mAP; any other dict is
    taken as bare weights; a missing file starts from scratch (logged).
    """
    if not os.path.isfile(path):
        log.info("=> no checkpoint found at %s: starting from scratch", path)
        return {"start_epoch": None, "best_mAP": 0.0, "checkpoint": None}
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} holds a {type(ckpt).__name__}, not a checkpoint dict")
    target = model.module if hasattr(model, "module") else model
    if "state_dict" not in ckpt:
        target.load_state_dict(strip_module(ckpt))
        log.info("=> loaded bare weights from %s", path)
        return {"start_epoch": None, "best_mAP": 0.0, "checkpoint": ckpt}
    target.load_state_dict(strip_module(ckpt["state_dict"]))
    if optimizer is not None and ckpt.get("optimizer") is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    best = float(ckpt.get("mAP", 0.0))
    log.info("=> loaded checkpoint %s (epoch %d, mAP %.4f)", path, ckpt.get("epoch", 0), best)
    return {"start_epoch": int(ckpt.get("epoch", 0)), "best_mAP": best, "checkpoint": ckpt}
