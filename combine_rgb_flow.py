"""Fuse the submission files of the RGB and the flow stream (SPEC section 7).

Both files must be of the same kind, told by the column count: classification (``ID s_0 ... s_156``)
or localisation (``ID FRAME s_0 ... s_156``).  The fused score of a key (the video id, or the pair
(id, frame)) is ``w_rgb * rgb + w_flow * flow`` over the union of the keys of both files; a key missing
from one file counts as zeros there, and is reported on stderr.  Localisation files with 0-based frame
numbers are shifted to 1-based first (as the official evaluator does), so both files' keys agree.

    python combine_rgb_flow.py cache/rgb/epoch_005.txt cache/flow/epoch_005.txt
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

import numpy as np

from utils.submission import LOCALIZE, Submission, SubmissionError, one_based_frames, read_submission, write_submission

MAX_LISTED = 10  # missing keys named on stderr; the rest are counted


@dataclass(frozen=True)
class CombineResult:
    out_path: str
    kind: str                      # "classify" or "localize"
    nkeys: int                     # rows written
    only_rgb: list[tuple]          # keys missing from the flow file
    only_flow: list[tuple]         # keys missing from the RGB file


def default_out_path(rgb_path: str) -> str:
    """``<RGB stem>_combined<RGB suffix>`` next to the RGB file (suffix ``.txt`` if it has none)."""
    stem, ext = os.path.splitext(rgb_path)
    return f"{stem}_combined{ext or '.txt'}"


def _keys(sub: Submission, name: str) -> list[tuple]:
    if sub.frames is None:
        return sub.keys()
    frames, shifted = one_based_frames(sub.frames)
    if shifted:
        print(f"combine_rgb_flow: {name} {sub.path}: 0-based frame numbers, adding 1 to all", file=sys.stderr)
    return list(zip(sub.ids, frames.tolist()))


def _report(missing: list[tuple], present: str, absent: str) -> None:
    if not missing:
        return
    shown = ", ".join(" ".join(map(str, k)) for k in missing[:MAX_LISTED])
    more = f" and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
    print(f"combine_rgb_flow: {len(missing)} key(s) of {present} missing from {absent} (counted as zeros): "
          f"{shown}{more}", file=sys.stderr)


def combine(rgb_path: str, flow_path: str, out_path: str | None = None,
            weights: tuple[float, float] = (0.5, 0.5), nclass: int = 157) -> CombineResult:
    """Write ``weights[0] * RGB + weights[1] * FLOW`` over the union of keys to ``out_path`` (atomically).

    Keys come in RGB file order, then the flow-only keys in flow file order.  ``out_path`` defaults
    to ``default_out_path(rgb_path)``.  Raises ``SubmissionError`` for a malformed file or two files
    of different kinds.
    """
    rgb, flow = read_submission(rgb_path, nclass), read_submission(flow_path, nclass)
    if rgb.kind != flow.kind:
        raise SubmissionError(f"cannot combine a {rgb.kind} file ({rgb_path}) with a {flow.kind} file ({flow_path})")
    rgb_keys, flow_keys = _keys(rgb, "RGB"), _keys(flow, "FLOW")
    index = {k: i for i, k in enumerate(rgb_keys)}
    only_flow = [k for k in flow_keys if k not in index]
    for k in only_flow:
        index[k] = len(index)
    flow_set = set(flow_keys)
    only_rgb = [k for k in rgb_keys if k not in flow_set]

    fused = np.zeros((len(index), nclass))
    fused[: len(rgb_keys)] += weights[0] * rgb.scores          # RGB keys are the first rows, in order
    fused[[index[k] for k in flow_keys]] += weights[1] * flow.scores
    keys = list(index)
    frames = np.array([k[1] for k in keys], dtype=np.int64) if rgb.kind == LOCALIZE else None
    out_path = out_path or default_out_path(rgb_path)
    write_submission(out_path, [k[0] for k in keys], fused, frames)

    _report(only_rgb, "RGB", "FLOW")
    _report(only_flow, "FLOW", "RGB")
    return CombineResult(out_path, rgb.kind, len(keys), only_rgb, only_flow)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Fuse an RGB and a flow submission file (both classification, or both localisation) "
                    "with a weighted sum over the union of their keys; a key missing from one file counts "
                    "as zeros there and is reported on stderr.")
    parser.add_argument("rgb", help="RGB stream submission file")
    parser.add_argument("flow", help="flow stream submission file")
    parser.add_argument("-o", "--out", default=None,
                        help="output file (default: <RGB stem>_combined<RGB suffix> next to RGB, "
                             "e.g. cache/rgb/epoch_005.txt -> cache/rgb/epoch_005_combined.txt)")
    parser.add_argument("--weights", nargs=2, type=float, default=(0.5, 0.5), metavar=("W_RGB", "W_FLOW"),
                        help="weights of the RGB and the flow scores (default: 0.5 0.5)")
    parser.add_argument("--nclass", type=int, default=157)
    args = parser.parse_args(argv)
    try:
        result = combine(args.rgb, args.flow, args.out, tuple(args.weights), args.nclass)
    except (OSError, ValueError) as e:  # SubmissionError is a ValueError
        print(f"combine_rgb_flow: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {result.out_path}: {result.nkeys} {result.kind} rows "
          f"(weights RGB {args.weights[0]:g}, flow {args.weights[1]:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
