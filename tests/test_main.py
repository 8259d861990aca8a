"""End to end on the fake dataset: the files of a run, --evaluate, unknown names, and a run killed
mid-epoch that resumes from its last completed epoch."""
import os
import signal
import subprocess
import sys
import time

import pytest

import checkpoints
import main
from utils.metrics_log import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fake_flags(cache, epochs=2):
    return ["--dataset", "fake", "--arch", "resnet18", "--inputsize", "32", "--nclass", "10", "--nhidden", "2",
            "--epochs", str(epochs), "--batch-size", "16", "--workers", "0", "--device", "cpu",
            "--test-frames", "6", "--localize", "--cache-dir", str(cache), "--name", "smoke",
            "--adjustment", "--balanceloss", "--print-freq", "5", "--lr", "0.01"]


def test_smoke_run_writes_all_files(tmp_path):
    metrics = main.main(fake_flags(tmp_path))
    cache = tmp_path / "smoke"
    for name in ("log.txt", "epoch_001.txt", "epoch_002.txt", "localize_002.txt", "model.pth.tar",
                 "model_best.pth.tar", "model_001.txt", "model_002.txt", "model_best.txt"):
        assert (cache / name).is_file(), name
    lines = (cache / "epoch_002.txt").read_text().splitlines()
    assert len(lines) == 8 and all(len(line.split()) == 11 for line in lines)
    loc = (cache / "localize_002.txt").read_text().splitlines()
    assert len(loc) == 8 * 25 and [int(line.split()[1]) for line in loc[:25]] == list(range(1, 26))
    assert 0 <= metrics["mAP"] <= 1
    rows = read_metrics(str(cache / "metrics.csv"))
    assert [r["epoch"] for r in rows] == [1, 2] and rows[1]["mAP"] == pytest.approx(metrics["mAP"], abs=1e-5)
    log = (cache / "log.txt").read_text()
    assert log.index("options:") < log.index("train epoch 1")
    ckpt = checkpoints.load_checkpoint(str(cache / "model.pth.tar"))
    assert ckpt["epoch"] == 2 and ckpt["arch"] == "resnet18"
    # the options that shape the model and its scores, for predict.py (plain types: loaded safely above)
    assert {k: ckpt["settings"][k] for k in ("arch", "dataset", "nclass", "nhidden", "inputsize", "test_frames",
                                             "sigma", "window_smooth", "class_names")} == {
        "arch": "resnet18", "dataset": "fake", "nclass": 10, "nhidden": 2, "inputsize": 32, "test_frames": 6,
        "sigma": 150.0, "window_smooth": 3, "class_names": None}
    # --evaluate with the checkpoint: validate + validate_video only (rewrites epoch_002.txt)
    before = (cache / "model.pth.tar").stat().st_mtime_ns
    out = main.main(fake_flags(tmp_path) + ["--evaluate", "--resume", str(cache / "model.pth.tar")])
    assert set(out) == {"cache", "top1val", "top5val", "mAP"}
    assert (cache / "model.pth.tar").stat().st_mtime_ns == before
    assert log in (cache / "log.txt").read_text()  # appended, not overwritten


@pytest.mark.parametrize("flag,value", [("--arch", "resnet9000"), ("--dataset", "imagenet42")])
def test_unknown_names_list_the_choices(tmp_path, flag, value):
    with pytest.raises(ValueError, match="choose one of:.*resnet18|choose one of:.*charadesrgb"):
        main.main(fake_flags(tmp_path) + [flag, value])


def test_killed_run_resumes_from_last_epoch(tmp_path):
    """SIGKILL in the middle of epoch 2, run the same command again: it continues at epoch 2."""
    script = ("import sys; sys.path.insert(0, %r); import main; "
              "main.experiment(%r, sys.argv[1:])" % (ROOT, fake_flags(tmp_path, epochs=2)))
    cache = tmp_path / "smoke"
    cmd = [sys.executable, "-c", script, "--batch-size", "8"]  # command-line flags override the file's
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log, deadline = cache / "log.txt", time.time() + 120
    while not (log.exists() and "train epoch 2 [1/" in log.read_text()) and time.time() < deadline \
            and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert "batch_size=8" in log.read_text()
    assert not (cache / "model_002.txt").exists(), "the kill came too late to test a mid-epoch stop"
    assert checkpoints.load_checkpoint(str(cache / "model.pth.tar"))["epoch"] == 1  # never a partial file
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = log.read_text()
    assert "loaded checkpoint" in log and log.count("epoch 2/2") == 2  # started before the kill, and again
    assert checkpoints.load_checkpoint(str(cache / "model.pth.tar"))["epoch"] == 2
    assert (cache / "epoch_002.txt").is_file()
    assert log.count("epoch 1/2") == 1  # epoch 1 was not trained again
    assert [row["epoch"] for row in read_metrics(str(cache))] == [1, 2]  # no epoch twice
