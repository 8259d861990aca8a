"""Checkpoints: atomic saves, safe loads of every format the project meets, resume (SPEC section 10).

``model.pth.tar`` holds ``{'epoch': epoch+1, 'arch', 'state_dict', 'mAP', 'optimizer', ...}``: ``mAP`` is
that epoch's video mAP (the original's ``scores['mAP']``), ``best_mAP`` / ``best_epoch`` the best so far.
The released ``asynctf_rgb.pth.tar`` was pickled by Python 2 / PyTorch 0.4 from a ``DataParallel`` model
(``module.`` keys, a numpy ``mAP``, no ``best_mAP``): ``load_checkpoint`` reads it too, safely
(``checkpoints/safe_load.py``).

``model.pth.tar`` is the commit point of an epoch: it is written after the epoch's state file and before
``model_NNN.txt``, ``model_best.*`` and the metrics row, which are rewritten from it when a run killed in
between is started again (``main.finish_epoch``).
"""
from __future__ import annotations

import logging
import os
import shutil

import torch

from checkpoints.safe_load import TRUST_FLAG, CheckpointError, UntrustedCheckpointError, load_checkpoint
from utils.atomic import atomic_write, atomic_write_text

__all__ = ["METRIC_KEYS", "TRUST_FLAG", "CheckpointError", "UntrustedCheckpointError", "atomic_torch_save",
           "load_checkpoint", "load_into", "load_weights_file", "resume", "save_checkpoint", "strip_module",
           "write_companions"]
log = logging.getLogger(__name__)
METRIC_KEYS = ("top1train", "top5train", "top1val", "top5val", "mAP", "videoprec1", "videoprec5", "video_top1",
               "video_top5")


def atomic_torch_save(obj, path: str) -> None:
    """``torch.save`` that never leaves a partial file at ``path``; a full disk raises
    ``utils.atomic.WriteError`` naming ``path``."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a Python file: a failed write surfaces as the OSError it is
            torch.save(obj, f)
    atomic_write(path, write)


def strip_module(state_dict: dict) -> dict:
    """Drop the ``module.`` prefix that ``DataParallel``/``DistributedDataParallel`` add to every key."""
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state_dict.items()}


def load_weights_file(path: str, trusted: bool = False) -> dict:
    """A bare state dict from a file holding either weights or a checkpoint dict with ``state_dict``
    (loaded safely unless ``trusted``)."""
    obj = load_checkpoint(path, trusted=trusted)
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return strip_module(state)


def save_checkpoint(state: dict, is_best: bool, metrics: dict, cache: str) -> None:
    """Write ``model.pth.tar`` (the commit), then ``write_companions``."""
    atomic_torch_save(state, os.path.join(cache, "model.pth.tar"))
    write_companions(state["epoch"], is_best, metrics, cache)


def write_companions(epoch: int, is_best: bool, metrics: dict, cache: str) -> None:
    """``model_NNN.txt`` (NNN = ``epoch``) and, for the best epoch, ``model_best.pth.tar`` (a copy of
    ``model.pth.tar``) and ``model_best.txt``.  Idempotent: a rerun rewrites the same files."""
    text = "".join(f"{k} {float(metrics[k]):g}\n" for k in METRIC_KEYS if k in metrics)
    atomic_write_text(os.path.join(cache, "model_{:03d}.txt".format(epoch)), text)
    if is_best:
        model = os.path.join(cache, "model.pth.tar")
        atomic_write(os.path.join(cache, "model_best.pth.tar"), lambda tmp: shutil.copyfile(model, tmp))
        atomic_write_text(os.path.join(cache, "model_best.txt"), text)


def _mismatch(path: str, ckpt_arch, model: torch.nn.Module, state: dict) -> str | None:
    """A message naming the first keys where ``state`` does not fit ``model``, or None when it fits."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]
    if not (missing or unexpected or shapes):
        return None
    parts = [f"{label} ({len(keys)}): {', '.join(keys[:3])}" for label, keys in
             (("shape in the file vs the model", shapes), ("missing from the file", missing),
              ("not in the model", unexpected)) if keys]
    return (f"{path} does not fit the model: the file's arch is {ckpt_arch or 'not recorded'}, the model is a "
            f"{type(model).__name__}; " + "; ".join(parts) + " (check --arch, --nclass, --nhidden)")


def _load_weights(path: str, ckpt_arch, model: torch.nn.Module, state: dict) -> None:
    state = strip_module(state)
    problem = _mismatch(path, ckpt_arch, model, state)
    if problem:
        raise CheckpointError(problem)
    model.load_state_dict(state)


def load_into(path: str, ckpt, model: torch.nn.Module) -> None:
    """Put the weights of a loaded checkpoint ``ckpt`` (read from ``path``: a dict with ``state_dict``,
    or bare weights) into ``model``; ``CheckpointError`` naming the file when they do not fit."""
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} holds a {type(ckpt).__name__}, not a checkpoint dict")
    target = model.module if hasattr(model, "module") else model
    if "state_dict" in ckpt:
        _load_weights(path, ckpt.get("arch"), target, ckpt["state_dict"])
    else:
        _load_weights(path, None, target, ckpt)


def resume(path: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
           trusted: bool = False) -> dict:
    """Restore from ``path``; returns ``{'start_epoch', 'best_mAP', 'checkpoint'}``.

    A dict with ``state_dict`` restores weights, optimiser, start epoch and the best mAP so far
    (``best_mAP``; a checkpoint without it, such as the original's, gives its ``mAP``, as the original
    did); any other dict is taken as bare weights (``start_epoch`` and ``best_mAP`` None).  A missing file
    is an error (``FileNotFoundError``), so is a state dict that does not fit the model
    (``CheckpointError`` naming the file, its arch and the first mismatched keys).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--resume {path}: " + ("a directory, not a checkpoint file" if os.path.isdir(path)
                                                         else "no such file"))
    ckpt = load_checkpoint(path, trusted=trusted)
    load_into(path, ckpt, model)
    if "state_dict" not in ckpt:
        log.info("=> loaded bare weights from %s", path)
        return {"start_epoch": None, "best_mAP": None, "checkpoint": ckpt}
    if optimizer is not None and ckpt.get("optimizer") is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    best = ckpt.get("best_mAP", ckpt.get("mAP"))
    best = None if best is None else float(best)
    log.info("=> loaded checkpoint %s (epoch %d, mAP %.4f, best %.4f)", path, ckpt.get("epoch", 0),
             float(ckpt.get("mAP", float("nan"))), float("nan") if best is None else best)
    return {"start_epoch": int(ckpt.get("epoch", 0)), "best_mAP": best, "checkpoint": ckpt}
