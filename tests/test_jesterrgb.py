"""datasets.jesterrgb on a tiny handmade tree: the exact samples of each split, the labels file and its
option, malformed annotation lines, the flip rule, and one epoch end to end (video top-1/top-5)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

import main
import opts as opts_module
from datasets import jesterrgb
from datasets.transforms import IMAGENET_MEAN, IMAGENET_STD
from test_exp_datasets import load_exp
from utils.charades_csv import AnnotationError
from utils.metrics_log import read_metrics

NAMES = ["Swiping Left", "Swiping Right", "Thumb Up", "Turning Hand Clockwise", "Turning Hand Counterclockwise",
         "Stop Sign", "Drumming Fingers"]
TRAIN = {"101": ("Swiping Left", 9), "102": ("Thumb Up", 3), "103": ("Swiping Right", 0)}  # 103: no frames
VAL = {"201": ("Turning Hand Clockwise", 6), "202": ("Thumb Up", 1)}


def level(frame: int) -> int:
    return 8 * frame


def write_frame(path, frame: int, size: int = 16) -> None:
    """Grey ``level(frame)`` plus a left-to-right ramp: the mean names the frame, and a mirror shows."""
    ramp = level(frame) + 2 * np.arange(size)
    Image.fromarray(np.repeat(ramp[None, :, None], size, 0).repeat(3, 2).astype(np.uint8)).save(path, quality=95)


def grey(x: torch.Tensor) -> float:
    """Mean 8-bit grey level of a normalised frame."""
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return float(((x * std + mean) * 255).mean())


def write_tree(tmp_path, videos: dict, name: str = "frames") -> str:
    root = tmp_path / name
    for vid, (_, n) in videos.items():
        if n:
            os.makedirs(root / vid, exist_ok=True)
        for f in range(1, n + 1):
            write_frame(root / vid / f"{f:05d}.jpg", f)
    return str(root)


@pytest.fixture
def flags(tmp_path) -> list[str]:
    ann = tmp_path / "ann"
    os.makedirs(ann)
    (ann / "jester-v1-labels.csv").write_text("\n".join(NAMES) + "\n")
    (ann / "jester-v1-train.csv").write_text("".join(f"{v};{label}\n" for v, (label, _) in TRAIN.items()))
    (ann / "jester-v1-validation.csv").write_text("".join(f"{v};{label}\n" for v, (label, _) in VAL.items()))
    root = write_tree(tmp_path, {**TRAIN, **VAL})
    return ["--dataset", "jesterrgb", "--data", root, "--train-file", str(ann / "jester-v1-train.csv"),
            "--val-file", str(ann / "jester-v1-validation.csv"), "--nclass", "7", "--inputsize", "16",
            "--test-frames", "4", "--workers", "0", "--batch-size", "4", "--device", "cpu",
            "--cache-dir", str(tmp_path / "cache")]


def items(ds) -> list[tuple[str, int, int]]:
    out = []
    for i in range(len(ds)):
        x, target, meta = ds[i]
        assert target.sum() == 1 and isinstance(meta["time"], int)
        out.append((meta["id"], meta["time"], int(target.argmax())))
    return out


def test_samples_of_each_split(flags):
    train, val, val_video = jesterrgb.get(opts_module.parse(flags))
    torch.manual_seed(0)
    assert items(train) == [("101", 1, 0), ("101", 5, 0), ("102", 1, 2)]  # every 4th frame from 1, < n
    assert train.index.skipped.tolist() == ["103"]
    assert items(val) == [("201", 1, 3), ("201", 5, 3)]  # 202 has 1 frame: no frame-level sample
    # val_video: floor(linspace(0, n-1, 4)) + 1, time order; a 1-frame video repeats it
    assert items(val_video) == [("201", f, 3) for f in (1, 2, 4, 6)] + [("202", 1, 2)] * 4
    for i, (_, frame, _) in enumerate(items(val_video)):
        assert abs(grey(val_video[i][0]) - level(frame) - 15) < 3  # the file of that frame
    assert val_video.single_label and val_video.eval_csv is None


def test_labels_file_option(flags, tmp_path):
    other = tmp_path / "elsewhere.csv"
    other.write_text("\n".join(reversed(NAMES)) + "\n\n")  # the class is the line number: reversed order
    _, val, _ = jesterrgb.get(opts_module.parse(flags + ["--labels-file", str(other)]))
    assert [c for _, _, c in items(val)] == [3, 3]  # "Turning Hand Clockwise" is line 3 of 7 now
    os.remove(os.path.join(os.path.dirname(flags[flags.index("--train-file") + 1]), "jester-v1-labels.csv"))
    with pytest.raises(FileNotFoundError, match="jester-v1-labels.csv.*--labels-file"):
        jesterrgb.get(opts_module.parse(flags))
    with pytest.raises(AnnotationError, match="names 7 classes but --nclass is 27"):
        jesterrgb.get(opts_module.parse(flags + ["--labels-file", str(other), "--nclass", "27"]))


@pytest.mark.parametrize("line, message", [
    ("104;Swiping Sideways", r"line 3, video 104: unknown label 'Swiping Sideways'"),
    ("104 Thumb Up", r"line 3: expected 'id;label', got '104 Thumb Up'"),
    ("101;Thumb Up", r"line 3: video 101 is listed twice \(first at line 1\)"),
    ("10 4;Thumb Up", r"line 3: the id '10 4' contains white space"),
])
def test_malformed_lines_name_the_line(flags, line, message):
    path = flags[flags.index("--train-file") + 1]
    with open(path) as f:
        head = f.read().splitlines()[:2]
    with open(path, "w") as f:
        f.write("\n".join(head + [line]) + "\n")
    with pytest.raises(AnnotationError, match=message) as err:
        jesterrgb.get(opts_module.parse(flags))
    assert "jester-v1-train.csv" in str(err.value)


def test_one_epoch_reports_video_top1_top5(flags, tmp_path):
    """One epoch of exp/asynctf_rgb_jester.py (the original's settings) with a tiny network on the tree."""
    exp = load_exp("asynctf_rgb_jester")
    metrics = main.experiment(exp.FLAGS, flags + ["--arch", "resnet18", "--pretrained", "false", "--epochs", "1",
                                                  "--name", "jester", "--nhidden", "2"])
    cache = tmp_path / "cache" / "jester"
    lines = [line.split() for line in (cache / "epoch_001.txt").read_text().splitlines()]
    assert [row[0] for row in lines] == ["201", "202"] and all(len(row) == 8 for row in lines)  # Charades format
    scores = np.array([[float(v) for v in row[1:]] for row in lines])
    assert all(len(set(row)) == len(row) for row in scores.tolist())  # no ties: the ranks are defined
    rank = (scores > scores[[0, 1], [3, 2]][:, None]).sum(1)  # of the true class; independent of prec@k
    top1, top5 = 100 * np.mean(rank < 1), 100 * np.mean(rank < 5)
    assert (metrics["video_top1"], metrics["video_top5"]) == pytest.approx((top1, top5))
    row = read_metrics(str(cache))[0]
    assert (row["video_top1"], row["video_top5"]) == pytest.approx((top1, top5), abs=1e-3)
    text = (cache / "model_001.txt").read_text()
    assert f"video_top1 {top1:g}\nvideo_top5 {top5:g}\n" in text
    assert "top-1 accuracy" in (cache / "log.txt").read_text()

    # get_alltest scores the same videos from the checkpoint: no Charades CSV to evaluate against, so its
    # mAP is that of the scores against the videos' labels (one positive of two per class: AP 1 or 1/2)
    import get_alltest
    result = get_alltest.main(flags + ["--arch", "resnet18", "--nhidden", "2", "--name", "alltest",
                                       "--resume", str(cache / "model.pth.tar")])
    rows = [line.split() for line in open(result["classify"]).read().splitlines()]
    s = {row[0]: [float(v) for v in row[1:]] for row in rows}
    ap = [1.0 if s[pos][c] > s[neg][c] else 0.5 for pos, neg, c in (("201", "202", 3), ("202", "201", 2))]
    assert result["classify_mAP"] == pytest.approx(np.mean(ap))
