"""How the segment rule's values (utils/segments.py: ``RULE``) were chosen: a grid search on the demo's test
videos, scored against their ground-truth intervals.

    python exp/asynctf_rgb_demo.py                                   # the demo checkpoint
    python predict.py $(python benchmarks/segment_rule.py --ids) --resume cache/asynctf_rgb_demo/model.pth.tar \\
        -o cache/demo_predict --no-png                               # the 20 test videos' frame folders
    python benchmarks/segment_rule.py cache/demo_predict

For every (threshold, smoothing, merge gap, minimum length) of the grid it prints the score of the segments of
every (video, class) against the CSV's intervals:
- frame F1: on a 10 Hz grid of each video, a (time, class) is predicted when it is inside a segment of the
  class, true when inside a ground-truth interval of it; F1 over all (video, time, class);
- segment F1 at temporal IoU 0.5: a segment is correct when it overlaps a not yet matched ground-truth
  interval of its class by IoU >= 0.5 (greedy, best score first).
The rule with the best frame F1 wins (ties: the simpler, i.e. the earlier in the grid).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from utils.charades_csv import read_annotations  # noqa: E402
from utils.segments import RULE, SegmentRule, segments  # noqa: E402

DEMO_TEST = os.path.join(REPO, "data", "demo", "Charades_demo_test.csv")
GRID = dict(threshold=[0.2, 0.3, 0.4, 0.5, 0.6, 0.7], smooth=[0, 1, 2, 3], merge_gap=[0.0, 1.0, 2.0, 3.0, 4.0],
            min_length=[0.0, 1.0, 2.0, 3.0, 4.0, 5.0])


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / max(max(a[1], b[1]) - min(a[0], b[0]), 1e-9)


def score(predictions: list[dict], truth: dict, rule: SegmentRule) -> tuple[float, float]:
    """(frame F1, segment F1 at IoU 0.5) of ``rule`` over the videos."""
    tp = fp = fn = 0
    stp = sfp = sfn = 0
    for p in predictions:
        probs = np.array([f["scores"] for f in p["frames"]])
        times = np.array([f["time"] for f in p["frames"]])
        found = segments(probs, times, p["duration"], rule)
        actions = truth[p["video"]]
        grid = np.arange(0, p["duration"], 0.1)
        C = probs.shape[1]
        pred_on = np.zeros((len(grid), C), bool)
        true_on = np.zeros((len(grid), C), bool)
        for s in found:
            pred_on[(grid >= s.start) & (grid < s.end), s.index] = True
        for c, start, end in actions:
            true_on[(grid >= start) & (grid <= end), c] = True
        tp += int((pred_on & true_on).sum())
        fp += int((pred_on & ~true_on).sum())
        fn += int((~pred_on & true_on).sum())
        unmatched = list(actions)
        for s in found:  # best score first
            match = next((a for a in unmatched if a[0] == s.index and iou((s.start, s.end), a[1:]) >= 0.5), None)
            if match is None:
                sfp += 1
            else:
                stp += 1
                unmatched.remove(match)
        sfn += len(unmatched)
    f1 = lambda t, f, n: 2 * t / max(2 * t + f + n, 1)  # noqa: E731
    return f1(tp, fp, fn), f1(stp, sfp, sfn)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("predictions", nargs="?", help="predict.py's output folder on the demo's test videos")
    ap.add_argument("--csv", default=DEMO_TEST)
    ap.add_argument("--ids", action="store_true", help="print the frame folders of the CSV's videos and stop")
    args = ap.parse_args()
    videos = read_annotations(args.csv)
    if args.ids:
        print(" ".join(os.path.join("demo_data", "rgb", v.id) for v in videos))
        return
    truth = {v.id: [(c, float(s), float(e)) for c, s, e in v.actions] for v in videos}
    predictions = [json.load(open(os.path.join(args.predictions, f"{v.id}.json"))) for v in videos]
    results = []
    for values in itertools.product(*GRID.values()):
        rule = SegmentRule(**dict(zip(GRID, values)))
        results.append((score(predictions, truth, rule), rule))
    best = max(results, key=lambda r: r[0][0])  # max keeps the first of equals
    print(f"{len(predictions)} videos, {sum(len(a) for a in truth.values())} ground-truth intervals, "
          f"{len(results)} rules")
    for (frame_f1, seg_f1), rule in sorted(results, key=lambda r: -r[0][0])[:10]:
        print(f"  frame F1 {frame_f1:.3f}  segment F1@0.5 {seg_f1:.3f}  {rule}")
    print(f"best: {best[1]} (frame F1 {best[0][0]:.3f}, segment F1@0.5 {best[0][1]:.3f}); "
          f"utils.segments.RULE: {RULE} {score(predictions, truth, RULE)}")


if __name__ == "__main__":
    main()
