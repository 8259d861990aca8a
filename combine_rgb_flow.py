"""Fuse the submission files of the RGB and the flow stream (SPEC section 7).

Both files must be of the same kind, told by the column count: classification (``ID s_0 ... s_156``)
or localisation (``ID FRAME s_0 ... s_156``).  The fused score of a key (the video id, or the pair
(id, frame)) is ``w_rgb * rgb + w_flow * flow`` over the union of the keys of both files, with the weights
normalised to sum to 1 (the original's ``w = [x/sum(w) for x in w]``); a key missing from one file counts
as zeros there, and is reported on stderr (the weighted sum itself is ``utils.fusion.fuse``, which
``predict.py`` uses for a video's two streams).  Localisation files with 0-based frame numbers are shifted to
1-based first (as the official evaluator does), so both files' keys agree.

As the original, the fused file goes to stdout (every message to stderr); ``-o`` writes it atomically:

    python combine_rgb_flow.py cache/rgb/epoch_005.txt cache/flow/epoch_005.txt > fused.txt
    python combine_rgb_flow.py cache/rgb/epoch_005.txt cache/flow/epoch_005.txt -o fused.txt
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from utils import cli
from utils.fusion import FusionError, fuse, normalised
from utils.submission import LOCALIZE, Submission, SubmissionError, one_based_frames, read_submission, write_submission

MAX_LISTED = 10  # missing keys named on stderr; the rest are counted
# The original printed str() of numpy floats: 12 significant digits.  Six (%g) would tie fused scores that
# differ only from their 7th digit on (ties the inputs did not have), and ties change average precision.
DIGITS = 12


@dataclass(frozen=True)
class CombineResult:
    out_path: str | None           # None: written to stdout
    kind: str                      # "classify" or "localize"
    nkeys: int                     # rows written
    weights: tuple[float, float]   # as applied, normalised to sum to 1
    only_rgb: list[tuple]          # keys missing from the flow file
    only_flow: list[tuple]         # keys missing from the RGB file


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
    """Write ``w_rgb * RGB + w_flow * FLOW`` (``weights`` normalised to sum to 1) over the union of keys to
    ``out_path`` (atomically), or to stdout when ``out_path`` is None.

    Keys come in RGB file order, then the flow-only keys in flow file order.  An infinite score stays
    infinite; a stream of weight 0 contributes nothing (not ``0 * inf``).  Raises ``SubmissionError`` for
    a malformed file, two files of different kinds, or a key and class scored +inf in one file and -inf
    in the other (their sum is undefined); ``WeightsError`` (a ``ValueError``) for weights that are not
    finite numbers >= 0 with a finite, nonzero sum.
    """
    weights = normalised(weights)
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

    keys = list(index)
    rgb_rows, flow_rows = np.zeros((len(keys), nclass)), np.zeros((len(keys), nclass))
    rgb_rows[: len(rgb_keys)] = rgb.scores    # RGB keys are the first rows, in order; missing ones stay zeros
    flow_rows[np.array([index[k] for k in flow_keys], dtype=np.int64)] = flow.scores
    try:
        fused = fuse(rgb_rows, flow_rows, weights, [" ".join(map(str, k)) for k in keys], (rgb_path, flow_path))
    except FusionError as e:
        raise SubmissionError(str(e)) from None
    frames = np.array([k[1] for k in keys], dtype=np.int64) if rgb.kind == LOCALIZE else None
    if out_path:
        write_submission(out_path, [k[0] for k in keys], fused, frames, DIGITS)
    else:  # the same writer (and checks) through a private file, then all of it to stdout
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "fused.txt")
            write_submission(path, [k[0] for k in keys], fused, frames, DIGITS)
            with open(path, encoding="utf-8") as f:
                shutil.copyfileobj(f, sys.stdout)
            sys.stdout.flush()

    _report(only_rgb, "RGB", "FLOW")
    _report(only_flow, "FLOW", "RGB")
    return CombineResult(out_path or None, rgb.kind, len(keys), weights, only_rgb, only_flow)


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        description="Fuse an RGB and a flow submission file (both classification, or both localisation) "
                    "with a weighted sum over the union of their keys, and print it (as the original: "
                    "python combine_rgb_flow.py RGB FLOW > fused.txt); a key missing from one file counts "
                    "as zeros there and is reported on stderr, as is every other message.")
    parser.add_argument("rgb", help="RGB stream submission file")
    parser.add_argument("flow", help="flow stream submission file")
    parser.add_argument("-o", "--out", default=None,
                        help="write the fused file here (atomically) instead of to stdout")
    parser.add_argument("--weights", nargs=2, type=float, default=(0.5, 0.5), metavar=("W_RGB", "W_FLOW"),
                        help="weights of the RGB and the flow scores, normalised to sum to 1 (default: 0.5 0.5)")
    parser.add_argument("--nclass", type=int, default=157)
    args = parser.parse_args(argv)
    result = combine(args.rgb, args.flow, args.out, tuple(args.weights), args.nclass)  # errors: cli.run
    print(f"combine_rgb_flow: {result.nkeys} fused {result.kind} rows (weights RGB {result.weights[0]:g}, flow "
          f"{result.weights[1]:g}) written to {result.out_path or 'stdout'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
