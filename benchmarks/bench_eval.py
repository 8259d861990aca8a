"""Time the Charades evaluators on a full-size synthetic problem, against a straightforward scorer.

7,985 videos (the size of Charades_v1_train.csv), 157 classes, a localisation submission of
7,985 x 25 rows (~280 MB of text) and a classification submission of 7,985 rows, all in a temporary
directory.  The straightforward scorer (below) is what one writes first: ``float()`` per token, a
ground-truth matrix, one stable argsort per class.  It runs on the same files in the same run; the
per-class APs of both must be identical (asserted), and the ratio of their times is printed.
Goal: the project's ``localize()`` at least 10x faster, reading the file included.

    python benchmarks/bench_eval.py [--calibrate]
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from anywhere

from benchmarks.machine import calibration_step  # noqa: E402
from utils.cores import usable_cores  # noqa: E402
from utils.charades_csv import read_annotations  # noqa: E402
from utils.charades_eval import classify, localize  # noqa: E402
from utils.submission import write_classification, write_localization  # noqa: E402

NVIDEOS, NCLASS, NFRAMES = 7985, 157, 25
GOAL = 10.0


def write_gt(path: str, rng: np.random.Generator) -> list[str]:
    """A Charades-like CSV: ~7 actions per video, lengths 10-60 s, 2% of videos without actions."""
    ids = [f"V{i:05d}" for i in range(NVIDEOS)]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow("id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length".split(","))
        for vid in ids:
            length = rng.uniform(10, 60)
            actions = []
            if rng.random() > 0.02:
                for _ in range(rng.integers(1, 14)):
                    start = rng.uniform(0, length)
                    actions.append(f"c{rng.integers(NCLASS):03d} {start:.2f} {min(length, start + rng.uniform(2, 20)):.2f}")
            w.writerow([vid, "S", "Kitchen", 6, 7, "Yes", "A person, somewhere.", "cup;dish", "Text, with commas.",
                        ";".join(actions), f"{length:.2f}"])
    return ids


# --------------------------------------------------------------------------- the straightforward scorer

def straightforward(submission: str, gt_csv: str, localisation: bool) -> np.ndarray:
    """Per-class APs the plain way (SPEC section 8): ``float()`` per token into a dict by key, a score and
    a label matrix in ground-truth row order, then per class one stable argsort and the precisions at
    the positive ranks.  Missing predictions score -inf; classification gives -inf to videos without
    actions, localisation scores every video's 25 frames."""
    videos = read_annotations(gt_csv, NCLASS)
    pred = {}
    with open(submission, encoding="utf-8-sig") as f:
        for line in f:
            tok = line.split()
            if tok:
                key = (tok[0], int(float(tok[1]))) if localisation else tok[0]
                pred[key] = np.array([float(x) for x in tok[2 if localisation else 1:]])
    nf = NFRAMES if localisation else 1
    scores = np.full((len(videos) * nf, NCLASS), -np.inf)
    labels = np.zeros((len(videos) * nf, NCLASS), dtype=bool)
    for i, v in enumerate(videos):
        for j in range(nf):
            row, t = i * nf + j, j / NFRAMES * v.length
            key = (v.id, j + 1) if localisation else v.id
            if key in pred and (localisation or v.actions):
                scores[row] = pred[key]
            for c, start, end in v.actions:
                labels[row, c] |= (start <= t <= end) if localisation else True
    ap = np.full(NCLASS, np.nan)
    ranks = np.arange(1, len(scores) + 1)
    for c in range(NCLASS):
        hit = labels[np.argsort(-scores[:, c], kind="stable"), c]
        if hit.any():
            ap[c] = np.mean(np.cumsum(hit)[hit] / ranks[hit])
    return ap


# --------------------------------------------------------------------------- timing

def timed(fn, *args):
    """(wall seconds, CPU seconds of this process, result); CPU time shows contention on a shared machine."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)
    return time.perf_counter() - t0, time.process_time() - c0, out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calibrate", action="store_true",
                        help="also print the machine's calibration step (needs torch) before and after")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # the "N frames missing" warnings are expected here
    rng = np.random.default_rng(0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{usable_cores()} usable CPU core(s), load average {load:.1f} (wall times grow when other jobs share the cores)")
    if args.calibrate:
        print(f"calibration step before: {calibration_step():.3f} s")
    with tempfile.TemporaryDirectory() as tmp:
        gt, loc, cls = (os.path.join(tmp, n) for n in ("gt.csv", "localize.txt", "classify.txt"))
        t0 = time.perf_counter()
        ids = write_gt(gt, rng)
        # uniform float32 scores (%g gives ~6 digits, so values tie as in real files), a few tiny ones
        # (%g writes them with an exponent); 1% of videos left out
        scores = rng.random((NVIDEOS, NFRAMES, NCLASS), dtype=np.float32)
        scores[rng.random(scores.shape) < 0.05] *= np.float32(1e-4)
        keep = np.flatnonzero(rng.random(NVIDEOS) > 0.01)
        write_localization(loc, [ids[i] for i in keep], scores[keep])
        write_classification(cls, [ids[i] for i in keep], scores[keep].max(axis=1))
        print(f"setup (writing the files): {time.perf_counter() - t0:.1f} s; "
              f"localisation file {os.path.getsize(loc) / 1e6:.0f} MB, {len(keep) * NFRAMES} rows")
        for name, fn, path in (("localize", localize, loc), ("classify", classify, cls)):
            runs = [timed(fn, path, gt) for _ in range(3)]
            best, cpu, (ap, _, _) = min(runs, key=lambda r: r[0])
            plain, plain_cpu, plain_ap = timed(straightforward, path, gt, name == "localize")
            same = np.array_equal(ap, plain_ap, equal_nan=True)
            print(f"{name}: project {best:.2f} s wall (best of {len(runs)}; {cpu:.2f} s CPU), "
                  f"straightforward "
                  f"{plain:.2f} s ({plain_cpu:.2f} s CPU): {plain / best:.1f}x (CPU {plain_cpu / cpu:.1f}x); "
                  f"per-class APs {'identical' if same else 'DIFFER'} (mAP over classes with positives "
                  f"{np.nanmean(ap):.6f})")
            assert same, f"{name}: APs differ in classes {np.flatnonzero(~np.isclose(ap, plain_ap, equal_nan=True))}"
            if name == "localize":
                print(f"goal: at least {GOAL:g}x -> {'met' if plain / best >= GOAL else 'NOT met'}")
    if args.calibrate:
        print(f"calibration step after: {calibration_step():.3f} s")


if __name__ == "__main__":
    main()
