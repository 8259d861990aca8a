"""Choose the demo subset of Charades (reproducibly) and write it as two Charades-format CSVs.

The demo dataset (see ``datasets/demo/tree.py``) renders synthetic frames for a few dozen REAL
Charades annotations, so that the whole pipeline runs end to end on a CPU in minutes.  This script picks
those annotations:

1. **test**: the short (``length <= max_length``) videos of the test subset that have at least one action;
   while there are more than ``ntest``, drop the one whose classes are the rarest among the kept ones
   (``sum(1 / count[c])`` largest), so that the test classes are few and shared.
2. **train**: greedily add short training videos that cover the test classes: a video's gain is
   ``sum_c w[k_c]`` over its classes ``c`` that occur in the chosen test videos, where ``k_c`` is how many
   chosen training videos already contain ``c`` and ``w = (1.0, 0.6, 0.3)`` (nothing after the 3rd),
   divided by ``length + 5`` (short videos preferred); stop when nothing gains, when ``max_train`` videos
   are chosen, or when the next one would take the total number of frames (``int(length * 24)`` summed
   over train and test) past ``frame_budget``.  Ties keep file order, so the result is deterministic.

The rows are copied byte for byte (all columns, quoting unchanged), in their original file order.
The shipped CSVs (``data/demo/Charades_demo_{train,test}.csv``) are what the project uses; this script only
documents and reproduces how they were chosen::

    python -m datasets.demo.selection [--charades-dir /work/shared/charades] [--out-dir data/demo]
"""
from __future__ import annotations

import argparse
import collections
import os

from datasets.demo.codes import frame_count
from utils.charades_csv import Video, read_annotations

DEFAULT_CHARADES_DIR = "/work/shared/charades"
DEFAULT_OUT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                               "data", "demo")
TRAIN_NAME = "Charades_demo_train.csv"
TEST_NAME = "Charades_demo_test.csv"
COVER_WEIGHTS = (1.0, 0.6, 0.3)


def _frames(v: Video) -> int:
    return frame_count(v.length)


def _raw_records(path: str) -> tuple[str, list[str]]:
    """The header line and each record's raw text (newline-terminated), in file order.

    A quoted field may span lines: a record ends where the number of quote characters seen is even.
    """
    with open(path, newline="", encoding="utf-8") as f:
        lines = f.read().splitlines(keepends=True)
    records, cur = [], ""
    for line in lines:
        cur += line
        if cur.count('"') % 2 == 0:
            records.append(cur if cur.endswith(("\n", "\r")) else cur + "\n")
            cur = ""
    if cur:
        records.append(cur + "\n")
    return records[0], records[1:]


def select_demo(train_csv: str, test_csv: str, ntest: int = 20, max_length: float = 20.0,
                max_train: int = 60, frame_budget: int = 21000, nclass: int = 157) -> tuple[list[Video], list[Video]]:
    """Pick the demo (train, test) videos; each list is in the order of its source file."""
    train_all = read_annotations(train_csv, nclass)
    test_all = read_annotations(test_csv, nclass)

    test = [v for v in test_all if v.actions and v.length <= max_length]
    while len(test) > ntest:
        count = collections.Counter(c for v in test for c in v.classes)
        test.remove(max(test, key=lambda v: sum(1.0 / count[c] for c in v.classes)))
    test_classes = {c for v in test for c in v.classes}

    covered = collections.Counter()
    pool = [v for v in train_all if v.actions and v.length <= max_length]
    train: list[Video] = []
    total = sum(_frames(v) for v in test)

    def gain(v: Video) -> float:
        g = sum(COVER_WEIGHTS[covered[c]] for c in v.classes
                if c in test_classes and covered[c] < len(COVER_WEIGHTS))
        return g / (v.length + 5.0)

    while pool and len(train) < max_train:
        best = max(pool, key=gain)
        if gain(best) <= 0 or total + _frames(best) > frame_budget:
            break
        pool.remove(best)
        train.append(best)
        total += _frames(best)
        covered.update(best.classes)

    order = {v.id: i for i, v in enumerate(train_all)}
    train.sort(key=lambda v: order[v.id])
    return train, test


def write_subset(src_csv: str, videos: list[Video], out_csv: str) -> None:
    """Copy the header and the rows of ``videos`` from ``src_csv`` verbatim, in source order."""
    header, records = _raw_records(src_csv)
    keep = {v.id for v in videos}
    out = [header if header.endswith(("\n", "\r")) else header + "\n"]
    out += [r for r in records if r.split(",", 1)[0].strip() in keep]
    if len(out) - 1 != len(keep):
        raise RuntimeError(f"{src_csv}: found {len(out) - 1} of {len(keep)} selected rows")
    os.makedirs(os.path.dirname(os.path.abspath(out_csv)), exist_ok=True)
    with open(out_csv, "w", newline="", encoding="utf-8") as f:
        f.writelines(out)


def main(charades_dir: str = DEFAULT_CHARADES_DIR, out_dir: str = DEFAULT_OUT_DIR, **kwargs) -> tuple[str, str]:
    train_csv = os.path.join(charades_dir, "Charades_v1_train.csv")
    test_csv = os.path.join(charades_dir, "Charades_v1_test_subset.csv")
    train, test = select_demo(train_csv, test_csv, **kwargs)
    out_train, out_test = os.path.join(out_dir, TRAIN_NAME), os.path.join(out_dir, TEST_NAME)
    write_subset(train_csv, train, out_train)
    write_subset(test_csv, test, out_test)

    test_classes = sorted({c for v in test for c in v.classes})
    cover = collections.Counter(c for v in train for c in v.classes)
    nf_train, nf_test = sum(_frames(v) for v in train), sum(_frames(v) for v in test)
    print(f"train: {len(train)} videos, {nf_train} frames -> {out_train}")
    print(f"test:  {len(test)} videos, {nf_test} frames, {len(test_classes)} classes -> {out_test}")
    print(f"total frames {nf_train + nf_test}; training videos per test class: "
          f"min {min(cover[c] for c in test_classes)}, "
          f"mean {sum(cover[c] for c in test_classes) / len(test_classes):.2f}")
    return out_train, out_test


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--charades-dir", default=DEFAULT_CHARADES_DIR)
    p.add_argument("--out-dir", default=DEFAULT_OUT_DIR)
    p.add_argument("--ntest", type=int, default=20)
    p.add_argument("--max-length", type=float, default=20.0)
    p.add_argument("--max-train", type=int, default=60)
    p.add_argument("--frame-budget", type=int, default=21000)
    a = p.parse_args()
    main(a.charades_dir, a.out_dir, ntest=a.ntest, max_length=a.max_length, max_train=a.max_train,
         frame_budget=a.frame_budget)
