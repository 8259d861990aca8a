"""Python equivalents of the official Charades_v1_classify.m and Charades_v1_localize.m (SPEC section 8).

Semantics, as in the MATLAB code (adapted from THUMOS15):

- ground truth rows in CSV order (localisation: 25 rows per video, row j at ``t = (j-1)/25 * length``,
  positive for every action with ``start <= t <= end``);
- classification only: a video whose ``actions`` is empty keeps its row (all labels 0) but its scores are
  -inf (``load_charades`` never records its id); localisation scores every video's 25 frames from the
  submission, those of videos without actions too (``load_charades_localized`` records every frame id);
- a video (or frame) missing from the submission scores -inf; extra ids are ignored;
- per class: stable descending sort of the scores (ties keep ground-truth row order), precision at each
  rank, AP = sum of the precisions at the positive ranks / number of positives (NaN without positives);
- mAP = mean of the class APs (NaN if any is NaN); WAP = APs weighted by the number of positives of
  each class, over the classes with positives.

Usage: ``python -m utils.charades_eval {classify,localize} SUBMISSION GT_CSV [--per-class]``.
Numpy only, no torch.
"""
from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from utils import cli
from utils.charades_csv import Video, read_annotations, read_classes
from utils.cli import MissingInputError
from utils.cores import usable_cores
from utils.submission import CLASSIFY, LOCALIZE, NFRAMES, Submission, SubmissionError, one_based_frames, read_submission


# ------------------------------------------------------------------------------------ average precision

_HASH_BITS = 16


def _hash(key: np.ndarray) -> np.ndarray:
    """A cheap hash of float64 values (Fibonacci hashing of their bits) into ``2**_HASH_BITS`` buckets."""
    h = key.view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    np.right_shift(h, np.uint64(64 - _HASH_BITS), out=h)
    return h.view(np.int64)                          # < 2**_HASH_BITS: a valid index without a copy


def _ties_before(key: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """For each index p in ``idx``: how many i < p have ``key[i] == key[p]`` (NaN equal to NaN).

    ``key`` must hold no -0.0 (it would equal 0.0 but hash differently).  Only the elements that
    share a value with some ``key[idx]`` are sorted (stably).  They are found with a hash table
    (``np.isin`` sorts the whole column: ~10x slower) and then checked exactly.
    """
    vals = key[idx]
    nan = np.isnan(vals)
    tied = np.unique(vals[~nan])
    table = np.zeros(1 << _HASH_BITS, dtype=bool)
    table[_hash(tied)] = True
    cand = np.flatnonzero(table[_hash(key)])
    member = cand[np.isin(key[cand], tied)]
    if nan.any():
        member = np.union1d(member, np.flatnonzero(np.isnan(key)))
    order = np.argsort(key[member], kind="stable")   # ``member`` is ascending: equal keys stay in index order
    ks = key[member][order]
    new_group = np.ones(len(ks), dtype=bool)
    new_group[1:] = ~((ks[1:] == ks[:-1]) | (np.isnan(ks[1:]) & np.isnan(ks[:-1])))
    pos = np.arange(len(ks))
    start = np.maximum.accumulate(np.where(new_group, pos, 0))
    before = np.empty(len(ks), dtype=np.int64)
    before[order] = pos - start
    return before[np.searchsorted(member, idx)]


def _order_bits(key: np.ndarray) -> np.ndarray:
    """uint64 codes in the order of the float64 values (no NaN, no -0.0): equal codes for equal values."""
    u = key.view(np.uint64)
    return np.where(key < 0, ~u, u | np.uint64(1 << 63))


def _stable_ranks(key: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """For each index p in ``idx``: its 0-based rank in a stable ascending sort of ``key``,
    ``#{i: key[i] < key[p]} + #{i < p: key[i] == key[p]}``; ``key`` holds no NaN and no -0.0.

    The same ranks as a sort of ``key``, about 3x faster: the values go into ~n buckets by their order
    codes (monotone, so every element of a lower bucket is smaller), a bincount gives the elements below
    each bucket, and only the buckets that hold some ``key[idx]`` are sorted (stably, so that equal
    values keep their index order).  The codes are log-like in the values, so the buckets stay small
    however the scores are distributed.
    """
    n = len(key)
    nb = 1 << max(4, int(n - 1).bit_length())
    code = _order_bits(key)
    finite = np.isfinite(key)                    # the range of the finite values sets the buckets
    lo_c = code.min(where=finite, initial=np.uint64(2**64 - 1))
    hi_c = code.max(where=finite, initial=np.uint64(0))
    scale = (nb - 2) / float(hi_c - lo_c) if hi_c > lo_c else 0.0  # products stay below nb - 1
    spread = np.clip(code, lo_c, hi_c)           # infinite keys share the end buckets: still monotone
    spread -= lo_c
    bucket = (spread.astype(np.float64) * scale).astype(np.int64)   # monotone: float rounding keeps order
    counts = np.bincount(bucket, minlength=nb)
    below_bucket = np.cumsum(counts) - counts
    bp = bucket[idx]
    mark = np.zeros(nb, dtype=bool)
    mark[bp] = True
    members = np.flatnonzero(mark[bucket])       # ascending: every element of a bucket holding some key[idx]
    order = np.argsort(code[members], kind="stable")
    where = np.empty(len(members), dtype=np.int64)
    where[order] = np.arange(len(members))       # each member's place in the sorted members
    mb = bucket[members][order]
    return below_bucket[bp] + where[np.searchsorted(members, idx)] - np.searchsorted(mb, bp, "left")


def average_precision(scores: np.ndarray | Sequence[np.ndarray], gt: np.ndarray,
                      rows: np.ndarray | None = None) -> np.ndarray:
    """Per-class AP of an (N, C) score matrix (or a sequence of the C columns, e.g.
    ``Submission.columns()``) against an (N, C) binary ground truth (nonzero = positive).

    Equal to MATLAB's ``[~, i] = sort(-conf)`` (stable) followed by precision at each positive rank,
    but without sorting indices: the stable rank of a positive p is
    ``#{i: -s_i < -s_p} + #{i < p: s_i == s_p} + 1``, from buckets of the values (``_stable_ranks``), or,
    when a column holds NaN (which sorts last, as in MATLAB), from a value sort and a binary search, the
    second term only computed where values tie.  With
    the positives' ranks r_1 < r_2 < ... < r_n, AP = mean_k k / r_k.  Returns C APs (NaN: no positives).

    ``rows`` (optional, (N,) ints) saves building an aligned score matrix: ground-truth row i is scored
    by ``scores[rows[i]]``, or -inf where ``rows[i] < 0``.
    """
    if isinstance(scores, (list, tuple)):
        columns = [np.asarray(c, dtype=np.float64) for c in scores]
        shape = (len(columns[0]) if columns else 0, len(columns))
        if any(c.shape != (shape[0],) for c in columns):
            raise ValueError("score columns of different lengths")
    else:
        matrix = np.asarray(scores, dtype=np.float64)
        if matrix.ndim != 2:
            raise ValueError(f"scores must be (N, C), got {matrix.shape}")
        shape, columns = matrix.shape, [matrix[:, c] for c in range(matrix.shape[1])]
    gt = np.asarray(gt)
    n = gt.shape[0] if rows is None else len(rows)
    if gt.shape != (n, shape[1]) or (rows is None and shape[0] != n):
        raise ValueError(f"scores {shape} and gt {gt.shape} do not match (rows: {None if rows is None else len(rows)})")
    missing = None
    if rows is not None:
        rows = np.asarray(rows, dtype=np.intp)
        missing = np.flatnonzero(rows < 0)
        rows = np.maximum(rows, 0)
    ncls = shape[1]
    # Positives grouped by class (rows ascending within a class): nonzero on the C-order matrix, then a
    # stable sort of the class ids, which numpy does by radix sort for int16.
    pos_rows, cls = np.nonzero(gt)
    by_class = np.argsort(cls.astype(np.int16 if ncls < 2**15 else np.int64), kind="stable")
    pos_rows = pos_rows[by_class]
    bounds = np.searchsorted(cls[by_class], np.arange(ncls + 1))
    ap = np.full(ncls, np.nan)

    def one_class(c: int) -> None:
        pos = pos_rows[bounds[c]:bounds[c + 1]]
        if len(pos) == 0:
            return
        if rows is None:
            x = columns[c]
        elif shape[0] == 0:
            x = np.full(n, -np.inf)
        else:
            x = columns[c].take(rows)
            x[missing] = -np.inf                     # no prediction
        key = np.subtract(0.0, x)                    # ascending key = descending score; never -0.0
        if np.isnan(key).any():
            ordered = np.sort(key)                   # NaN last, as in MATLAB
            pos = pos[np.argsort(key[pos], kind="stable")]   # positives in rank order: sorted queries search faster
            kp = key[pos]
            lo = np.searchsorted(ordered, kp, "left")
            after = np.minimum(lo + 1, n - 1)        # kp ties with another value iff the next one equals it
            tied = (lo + 1 < n) & ((ordered[after] == kp) | np.isnan(kp))
            rank = lo + 1
            if tied.any():
                rank[tied] += _ties_before(key, pos[tied])
        else:
            rank = _stable_ranks(key, pos) + 1
        rank.sort()
        ap[c] = np.mean(np.arange(1, len(rank) + 1) / rank)

    # numpy releases the GIL in sort/searchsorted/indexing, so threads use the cores; small inputs
    # are not worth the pool.
    if n * ncls < 1_000_000:
        for c in range(ncls):
            one_class(c)
    else:
        with ThreadPoolExecutor(max_workers=min(4, usable_cores())) as pool:
            list(pool.map(one_class, range(ncls)))
    return ap


def mean_ap(ap: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """``(mAP, WAP)``: plain mean of the APs (NaN if any is NaN, as MATLAB's ``mean``) and the APs
    weighted by each class's number of positives, over the classes with positives."""
    npos = np.asarray(gt).astype(bool).sum(axis=0)
    has = npos > 0
    wap = float(np.sum(ap[has] * npos[has]) / npos[has].sum()) if has.any() else float("nan")
    return float(np.mean(ap)), wap


def mean_ap_with_positives(ap: np.ndarray) -> float:
    """Mean AP over the classes that have positives (the NaN-free classes)."""
    ap = np.asarray(ap)
    return float(np.mean(ap[~np.isnan(ap)])) if (~np.isnan(ap)).any() else float("nan")


# ------------------------------------------------------------------------------------ ground truth

def classify_gt(videos: list[Video], nclass: int = 157) -> np.ndarray:
    """(V, C) bool: video i is positive for every class among its actions."""
    gt = np.zeros((len(videos), nclass), dtype=bool)
    for i, v in enumerate(videos):
        gt[i, [c for c, _, _ in v.actions]] = True
    return gt


def localize_gt(videos: list[Video], nclass: int = 157, nframes: int = NFRAMES) -> np.ndarray:
    """(V*nframes, C) bool: row i*nframes + (j-1) is time ``(j-1)/nframes*length`` of video i,
    positive for every action with ``start <= t <= end``."""
    vid = np.array([i for i, v in enumerate(videos) for _ in v.actions], dtype=np.int64)
    act = np.array([a for v in videos for a in v.actions], dtype=np.float64).reshape(-1, 3)
    length = np.array([v.length for v in videos], dtype=np.float64)
    # Same operation order as MATLAB's (j-1)/frames_per_video*time, so boundary cases round identically.
    times = (np.arange(nframes) / nframes)[None, :] * length[:, None]           # (V, nframes)
    t = times[vid]                                                                # (A, nframes)
    hit = (act[:, 1:2] <= t) & (t <= act[:, 2:3])
    a, j = np.nonzero(hit)
    gt = np.zeros((len(videos) * nframes, nclass), dtype=bool)
    gt[vid[a] * nframes + j, act[a, 0].astype(np.int64)] = True
    return gt


def prediction_rows(sub: Submission, videos: list[Video], nframes: int) -> np.ndarray:
    """For each ground-truth row (V*nframes; nframes=1 for classification) the submission row that
    scores it, or -1 (score -inf): a missing video or frame and, in classification only, a video
    without actions (Charades_v1_classify.m never records its id; Charades_v1_localize.m scores its
    frames as negatives with their submitted scores)."""
    code: dict[str, int] = {}
    sub_code = np.fromiter((code.setdefault(i, len(code)) for i in sub.ids), np.int64, len(sub.ids))
    if sub.frames is None:
        frame = np.zeros(len(sub.ids), dtype=np.int64)
    else:
        frames, shifted = one_based_frames(sub.frames)
        if shifted:
            warnings.warn(f"{sub.path}: frames should be 1-indexed; adding 1 to all frame numbers", stacklevel=3)
        frame = frames - 1
    ok = (frame >= 0) & (frame < nframes)            # frames outside 1..25 match no ground-truth row
    table = np.full((len(code) + 1, nframes), -1, dtype=np.int64)   # last row: videos not scored
    table[sub_code[ok], frame[ok]] = np.flatnonzero(ok)
    gt_code = np.array([code.get(v.id, len(code)) for v in videos], dtype=np.int64)
    rows = table[gt_code]                                           # (V, nframes)
    if sub.frames is None:   # classification: a video without actions is never scored
        scored = np.array([bool(v.actions) for v in videos], dtype=bool)
    else:                    # localisation: every video's frames are
        scored = np.ones(len(videos), dtype=bool)
    lost = int((rows[scored] < 0).sum())
    if lost:  # as the official scripts do: say so, but score them -inf rather than fail
        what = "video(s)" if nframes == 1 else "frame(s)"
        warnings.warn(f"{sub.path}: {lost} of {int(scored.sum()) * nframes} {what} to score are missing "
                      f"from the submission (scored -inf)", stacklevel=3)
    rows[~scored] = -1
    return rows.ravel()


def _check_kind(sub: Submission, kind: str) -> None:
    if sub.kind != kind:
        other = "localize" if sub.kind == LOCALIZE else "classify"
        raise SubmissionError(f"{sub.path}: this is a {sub.kind} file (by its column count); "
                              f"evaluate it with '{other}'")


def classify(submission_path: str, gt_csv_path: str, nclass: int = 157) -> tuple[np.ndarray, float, float]:
    """Charades_v1_classify.m: ``(ap, mAP, wAP)`` of a classification submission against a CSV."""
    videos = read_annotations(gt_csv_path, nclass)
    sub = read_submission(submission_path, nclass)
    _check_kind(sub, CLASSIFY)
    gt = classify_gt(videos, nclass)
    ap = average_precision(sub.columns(), gt, rows=prediction_rows(sub, videos, 1))
    return (ap, *mean_ap(ap, gt))


def localize(submission_path: str, gt_csv_path: str, nclass: int = 157) -> tuple[np.ndarray, float, float]:
    """Charades_v1_localize.m: per-frame ``(ap, mAP, wAP)`` of a localisation submission (25 frames/video)."""
    videos = read_annotations(gt_csv_path, nclass)
    sub = read_submission(submission_path, nclass)
    _check_kind(sub, LOCALIZE)
    gt = localize_gt(videos, nclass)
    ap = average_precision(sub.columns(), gt, rows=prediction_rows(sub, videos, NFRAMES))
    return (ap, *mean_ap(ap, gt))


def chance_map(submission_path: str, gt_csv_path: str, nclass: int = 157, trials: int = 20,
               seed: int = 0) -> float:
    """Chance level of a classification submission: the mean (over ``trials`` seeded shuffles) of the mAP
    over classes with positives when its rows of scores are shuffled across its videos."""
    videos = read_annotations(gt_csv_path, nclass)
    sub = read_submission(submission_path, nclass)
    _check_kind(sub, CLASSIFY)
    gt, rows = classify_gt(videos, nclass), prediction_rows(sub, videos, 1)
    rng = np.random.default_rng(seed)
    return float(np.mean([mean_ap_with_positives(average_precision(sub.scores[rng.permutation(len(sub.ids))],
                                                                   gt, rows=rows)) for _ in range(trials)]))


def report_against_chance(run_dir: str, gt_csv_path: str, nclass: int = 157) -> tuple[float, float]:
    """Print the official mAP (over classes with positives) of the run's last ``epoch_NNN.txt`` and its
    chance level; returns ``(mAP, chance)``."""
    epochs = sorted(f for f in os.listdir(run_dir) if f.startswith("epoch_") and f.endswith(".txt"))
    if not epochs:
        raise MissingInputError(f"no epoch_NNN.txt submission in {run_dir}")
    path = os.path.join(run_dir, epochs[-1])
    ap, _, _ = classify(path, gt_csv_path, nclass)
    got, chance = mean_ap_with_positives(ap), chance_map(path, gt_csv_path, nclass)
    print(f"{path}: official video mAP {got:.4f} over {int((~np.isnan(ap)).sum())} classes with positives; "
          f"chance (rows shuffled across videos) {chance:.4f}: {got / chance:.2f}x chance")
    return got, chance


# ------------------------------------------------------------------------------------ command line

def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m utils.charades_eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=["classify", "localize"])
    parser.add_argument("submission", help="submission file (classification: ID + C scores; localisation: ID FRAME + C scores)")
    parser.add_argument("gt_csv", help="Charades annotation CSV (e.g. Charades_v1_test.csv)")
    parser.add_argument("--per-class", action="store_true", help="also print each class's AP with its name")
    parser.add_argument("--classes", default=os.path.join(os.path.dirname(__file__), "..", "data", "Charades_v1_classes.txt"),
                        help="class names file, for --per-class (default: data/Charades_v1_classes.txt)")
    parser.add_argument("--nclass", type=int, default=157)
    args = parser.parse_args(argv)
    prefix = "Per-Frame " if args.task == "localize" else ""
    with warnings.catch_warnings():  # (a bad file raises a cli.UserError: one line under cli.run)
        warnings.simplefilter("always")
        warnings.showwarning = lambda msg, *a, **k: print(f"Warning: {msg}", file=sys.stderr)
        ap, m, w = (localize if args.task == "localize" else classify)(args.submission, args.gt_csv, args.nclass)
    names = read_classes(args.classes) if args.per_class else []
    print(f"{prefix}MAP: {m:f}")
    print(f"{prefix}WAP: {w:f}")
    with_pos = ~np.isnan(ap)
    if not with_pos.all():
        print(f"{prefix}MAP over {int(with_pos.sum())} classes with positives: {mean_ap_with_positives(ap):f}")
    if args.per_class:
        for c, a in enumerate(ap):
            name = names[c] if c < len(names) else ""
            print(f"c{c:03d} {a:f} {name}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="python -m utils.charades_eval"))
