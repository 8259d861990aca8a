"""How much the online (causal) mode costs in accuracy: official mAPs of ``predict.py`` on the demo's test
videos, offline (the synchronous mode, as ``get_alltest.py``) and online (``--online``: each frame from the
frames before it only, one-sided smoothing), at the same frames where the modes allow.

    python exp/asynctf_rgb_demo.py                                   # the demo checkpoint
    python benchmarks/online_map.py [--resume cache/asynctf_rgb_demo/model.pth.tar] [--data demo_data/rgb]

Scores the 20 test videos' frame folders (``data/demo/Charades_demo_test.csv``) four ways: offline at the
default sampling (val_video's 50 frames), offline and online at ``--fps 4`` (offline in windows of 50 frames),
and online at ``--fps 2``; prints the classification mAP (official evaluator, classes with positives) and the
localisation mAP of each, and the largest change of a frame's scores between offline and online at 4 fps.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from datasets.demo import DEMO_TEST_CSV  # noqa: E402
from utils.charades_csv import read_annotations  # noqa: E402
from utils.charades_eval import classify, localize, mean_ap_with_positives  # noqa: E402

MODES = {"offline, 50 frames": [], "offline, --fps 4": ["--fps", "4"], "online, --fps 4": ["--online", "--fps", "4"],
         "online, --fps 2": ["--online", "--fps", "2"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resume", default=os.path.join(REPO, "cache", "asynctf_rgb_demo", "model.pth.tar"))
    ap.add_argument("--data", default=os.path.join(REPO, "demo_data", "rgb"))
    args = ap.parse_args()
    import predict
    folders = [os.path.join(args.data, v.id) for v in read_annotations(DEMO_TEST_CSV)]
    frames = {}
    with tempfile.TemporaryDirectory() as out:
        for mode, flags in MODES.items():
            where = os.path.join(out, str(len(frames)))
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # the per-frame lines and tables
                predict.main(folders + ["--resume", args.resume, "-o", where, "--no-png", "--device", "cpu"] + flags)
            took = time.perf_counter() - t0
            c = mean_ap_with_positives(classify(os.path.join(where, "classify.txt"), DEMO_TEST_CSV)[0])
            loc = mean_ap_with_positives(localize(os.path.join(where, "localize.txt"), DEMO_TEST_CSV)[0])
            print(f"{mode:20s} classification mAP {c:.4f}, localisation mAP {loc:.4f} ({len(folders)} videos, "
                  f"{took:.0f} s)", flush=True)
            frames[mode] = {os.path.basename(f): {r["frame"]: np.asarray(r["scores"]) for r in json.load(
                open(os.path.join(where, os.path.basename(f) + ".json")))["frames"]} for f in folders}
    a, b = frames["offline, --fps 4"], frames["online, --fps 4"]
    diff = [np.abs(a[v][k] - b[v][k]).max() for v in a for k in a[v]]
    print(f"offline vs online at --fps 4, the same {len(diff)} frames: largest change of a score "
          f"{max(diff):.3f}, mean of the largest per frame {np.mean(diff):.3f}")


if __name__ == "__main__":
    main()
