"""The demo pipeline end to end at small settings: render a few real demo videos, train the RGB and
flow streams for an epoch, fuse their submissions, evaluate, and score the test CSV with get_alltest."""
import math
import os

import numpy as np
import pytest

import combine_rgb_flow
import get_alltest
import main
from datasets.demo import DEMO_TEST_CSV, DEMO_TRAIN_CSV, ensure_demo_data
from utils import charades_eval


def head_csv(src, dst, nrows):
    with open(src, newline="", encoding="utf-8") as f:
        import csv
        rows = list(csv.reader(f))
    with open(dst, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows[: nrows + 1])
    return str(dst)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    train = head_csv(DEMO_TRAIN_CSV, tmp / "train.csv", 3)
    test = head_csv(DEMO_TEST_CSV, tmp / "test.csv", 2)
    root = ensure_demo_data(str(tmp / "data"), size=32, csv_files=[train, test], workers=1)
    return tmp, root, train, test


def run_flags(tmp, root, train, test, stream):
    return ["--dataset", f"charades{stream}", "--data", os.path.join(root, stream), "--train-file", train,
            "--val-file", test, "--arch", "resnet18", "--inputsize", "32", "--device", "cpu", "--workers", "0",
            "--epochs", "1", "--batch-size", "16", "--train-size", "0.3", "--val-size", "0.2", "--localize",
            "--nhidden", "3", "--adjustment", "--balanceloss", "--print-freq", "100",
            "--cache-dir", str(tmp / "cache"), "--name", stream]


def test_two_streams_fused_and_scored(demo):
    tmp, root, train, test = demo
    files = {}
    for stream in ("rgb", "flow"):
        metrics = main.main(run_flags(tmp, root, train, test, stream))
        assert math.isfinite(metrics["mAP"])
        files[stream] = tmp / "cache" / stream
        assert (files[stream] / "epoch_001.txt").is_file() and (files[stream] / "localize_001.txt").is_file()
    for kind, name in (("classify", "epoch_001.txt"), ("localize", "localize_001.txt")):
        out = str(tmp / f"fused_{name}")
        combine_rgb_flow.combine(str(files["rgb"] / name), str(files["flow"] / name), out)
        ap, _, _ = getattr(charades_eval, kind)(out, test)
        assert np.isfinite(np.nanmean(ap)) and (~np.isnan(ap)).sum() > 0


def test_get_alltest_scores_every_video(demo):
    tmp, root, train, test = demo
    flags = run_flags(tmp, root, train, test, "rgb")
    main.main(flags[:-1] + ["alltest_model"])
    ckpt = str(tmp / "cache" / "alltest_model" / "model.pth.tar")
    result = get_alltest.main(["--resume", ckpt, "--val-file", test, "--data", os.path.join(root, "rgb"),
                               "--arch", "resnet18", "--inputsize", "32", "--nhidden", "3", "--device", "cpu",
                               "--workers", "0", "--cache-dir", str(tmp / "cache"), "--name", "alltest",
                               "--out-dir", str(tmp / "alltest")])
    ids = [line.split()[0] for line in open(result["classify"])]
    assert ids == [line.split(",")[0] for line in open(test)][1:]
    loc = open(result["localize"]).read().splitlines()
    assert len(loc) == 25 * len(ids)
    assert math.isfinite(result["classify_mAP"]) and math.isfinite(result["localize_mAP"])
    with pytest.raises(SystemExit):  # a missing --resume is a usage error naming it (tests/test_opts.py)
        get_alltest.main(["--resume", str(tmp / "nope.pth.tar"), "--val-file", test,
                          "--cache-dir", str(tmp / "cache")])


def test_demo_check_passes_at_2x_chance_and_fails_below(tmp_path, capsys):
    """The demo's own pass/fail check (exp/asynctf_rgb_demo.report): scores that are the labels pass, the
    same score everywhere (every class ranked at chance) fails with status 1."""
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "exp"))
    import asynctf_rgb_demo
    from utils.charades_csv import read_annotations
    videos = read_annotations(DEMO_TEST_CSV, 157)
    for name, score in (("good", lambda v, c: float(c in v.classes)), ("flat", lambda v, c: 0.5)):
        run = tmp_path / name
        run.mkdir()
        with open(run / "epoch_001.txt", "w") as f:
            for v in videos:
                f.write(v.id + " " + " ".join(f"{score(v, c):g}" for c in range(157)) + "\n")
        with open(run / "localize_001.txt", "w") as f:
            for v in videos:
                for frame in range(1, 26):
                    f.write(f"{v.id} {frame} " + " ".join(f"{score(v, c):g}" for c in range(157)) + "\n")
        status = asynctf_rgb_demo.report(str(run))
        assert status == (0 if name == "good" else 1), capsys.readouterr().out
    assert "demo check FAILED" in capsys.readouterr().out
