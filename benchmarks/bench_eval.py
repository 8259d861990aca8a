"""Time the Charades evaluators on a full-size synthetic problem.

7,985 videos (the size of Charades_v1_train.csv), 157 classes, a localisation submission of
7,985 x 25 rows (~280 MB of text) and a classification submission of 7,985 rows, all in a temporary
directory.  Goal: ``localize()`` under 2 s including reading the file (2 CPU cores).

    python benchmarks/bench_eval.py
"""
from __future__ import annotations

import csv
import os
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from anywhere

from benchmarks.machine import usable_cores  # noqa: E402
from utils.charades_eval import classify, localize  # noqa: E402
from utils.submission import write_classification, write_localization  # noqa: E402

NVIDEOS, NCLASS, NFRAMES = 7985, 157, 25
GOAL_S = 2.0


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


def timed(fn, *args) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of this process, mAP); CPU time shows contention on a shared machine."""
    t0, c0 = time.perf_counter(), time.process_time()
    _, m, _ = fn(*args)
    return time.perf_counter() - t0, time.process_time() - c0, m


def main() -> None:
    warnings.simplefilter("ignore")  # the "N frames missing" warnings are expected here
    rng = np.random.default_rng(0)
    cores = usable_cores()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{cores} usable CPU core(s), load average {load:.1f} (wall times grow when other jobs share the cores)")
    with tempfile.TemporaryDirectory() as tmp:
        gt, loc, cls = (os.path.join(tmp, n) for n in ("gt.csv", "localize.txt", "classify.txt"))
        t0 = time.perf_counter()
        ids = write_gt(gt, rng)
        # uniform float32 scores (%g gives ~6 digits, so values tie as in real files); 1% of videos left out
        scores = rng.random((NVIDEOS, NFRAMES, NCLASS), dtype=np.float32)
        keep = np.flatnonzero(rng.random(NVIDEOS) > 0.01)
        write_localization(loc, [ids[i] for i in keep], scores[keep])
        write_classification(cls, [ids[i] for i in keep], scores[keep].max(axis=1))
        print(f"setup (writing the files): {time.perf_counter() - t0:.1f} s; "
              f"localisation file {os.path.getsize(loc) / 1e6:.0f} MB, {len(keep) * NFRAMES} rows")
        for name, fn, path in (("localize", localize, loc), ("classify", classify, cls)):
            runs = [timed(fn, path, gt) for _ in range(3)]
            best, cpu, m = min(runs)
            print(f"{name}: {best:.2f} s wall (best of {len(runs)}; {cpu:.2f} s CPU), mAP {m:.4f}")
            if name == "localize":
                print(f"goal: under {GOAL_S:g} s -> {'met' if best < GOAL_S else 'NOT met'}")


if __name__ == "__main__":
    main()
