"""Two streams' scores fused as the two-stream works fuse them (SPEC section 7): ``w_rgb * rgb + w_flow * flow``
with the weights normalised to sum to 1 (the original's ``w = [x/sum(w) for x in w]``).

One function for both callers: ``combine_rgb_flow.py`` fuses the rows of two submission files (keys
missing from one file given as zeros), ``predict.py`` the rows of one video's two streams (its video-level
scores, its localisation rows, its frames).  Numpy only.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from utils import cli

DEFAULT_WEIGHTS = (0.5, 0.5)


class FusionError(cli.UserError, ValueError):
    """Scores that have no weighted sum (``+inf`` from one stream, ``-inf`` from the other), or weights that
    cannot be normalised; the message names the key, the class and the fix."""


class WeightsError(FusionError):
    """``--weights`` that cannot weigh two streams; the message names them and the fix."""


def normalised(weights: Sequence[float]) -> tuple[float, float]:
    """``weights`` divided by their sum (the original's ``w = [x/sum(w) for x in w]``).  Each must be a finite
    number >= 0 (a negative weight would turn a stream's scores upside down) and their sum finite and > 0."""
    shown = " ".join(f"{w:g}" for w in weights)
    if not all(math.isfinite(w) and w >= 0 for w in weights):
        raise WeightsError(f"--weights {shown}: each weight must be a finite number >= 0 (a negative one would "
                           f"rank the stream's scores upside down); e.g. 0.5 0.5")
    total = sum(weights)  # (two numbers: one rounding either way; an overflow gives inf, refused below)
    if total == 0 or not math.isfinite(total):
        raise WeightsError(f"--weights {shown}: they sum to {total:g}, so they cannot be normalised to sum to 1; "
                           f"give weights with a finite, nonzero sum in the same ratio (e.g. 0.5 0.5)")
    return tuple(w / total for w in weights)


def fuse(rgb: np.ndarray, flow: np.ndarray, weights: Sequence[float] = DEFAULT_WEIGHTS,
         keys: Sequence[str] | None = None, sources: tuple[str, str] = ("", "")) -> np.ndarray:
    """``w_rgb * rgb + w_flow * flow`` (float64), row by row, ``weights`` normalised to sum to 1; ``rgb`` and
    ``flow`` have the same shape (a row missing from a stream is given as zeros).

    An infinite score stays infinite; a stream of weight 0 contributes nothing (not ``0 * inf``).  ``+inf``
    from one stream and ``-inf`` from the other raise ``FusionError`` naming the row (``keys[i]``, else its
    number), the class and the ``sources`` (e.g. the files the streams come from)."""
    rgb, flow = np.asarray(rgb, np.float64), np.asarray(flow, np.float64)
    if rgb.shape != flow.shape:
        raise FusionError(f"cannot fuse scores of shapes {rgb.shape} (RGB) and {flow.shape} (flow): the two streams "
                          "must score the same rows and classes")
    w_rgb, w_flow = normalised(weights)
    fused = np.zeros(rgb.shape)
    if w_rgb:
        fused += w_rgb * rgb
    if w_flow:
        part = w_flow * flow
        _check_infinities(fused, part, keys, sources)
        fused += part
    return fused


def _check_infinities(rgb_part: np.ndarray, flow_part: np.ndarray, keys: Sequence[str] | None,
                      sources: tuple[str, str]) -> None:
    """+inf from one stream and -inf from the other have no sum: name the first such key and class."""
    clash = np.isinf(rgb_part) & np.isinf(flow_part) & (np.sign(rgb_part) != np.sign(flow_part))
    if clash.any():
        where = np.argwhere(clash)[0]
        i, c = (0, where[0]) if clash.ndim == 1 else (where[0], where[-1])
        key = keys[i] if keys is not None else f"row {i}"
        src = [f" ({s})" if s else "" for s in sources]
        index = tuple(where)
        raise FusionError(f"key {key}, class {c}: the weighted RGB score{src[0]} is {rgb_part[index]:g} and the "
                          f"weighted flow score{src[1]} is {flow_part[index]:g}: their sum is undefined "
                          f"({int(clash.sum())} such score(s))")
