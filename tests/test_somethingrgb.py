"""datasets.somethingrgb (Something-Something v2) on a tiny handmade tree: the exact samples of each
split, the labels file and its option, malformed annotations (bad JSON, missing fields, unknown
templates) named with their entry, and one epoch end to end."""
from __future__ import annotations

import json
import os

import pytest
import torch

import main
import opts as opts_module
from datasets import somethingrgb
from test_exp_datasets import load_exp
from test_jesterrgb import grey, items, level, write_frame
from utils.charades_csv import AnnotationError

LABELS = {"Pushing something from left to right": "0", "Pushing something from right to left": "1",
          "Holding something": "2", "Turning the camera left while filming something": "3",
          "Putting something on a surface": "4", "Moving something up": "5", "Showing something to the camera": "6"}
TEMPLATES = {0: "Pushing [something] from left to right", 1: "Pushing [something] from right to left",
             2: "Holding [something]", 3: "Turning the camera left while filming [something]"}
TRAIN = {"11": (0, 9), "12": (3, 5), "13": (2, 5), "14": (1, 0)}  # id: (class, frames); 14 has no frames
VAL = {"21": (1, 4)}


def entries(videos: dict) -> list[dict]:
    return [{"id": vid, "label": TEMPLATES[c].replace("[something]", "a pen"), "template": TEMPLATES[c],
             "placeholders": ["a pen"]} for vid, (c, _) in videos.items()]


def write_tree(root, videos: dict) -> None:
    for vid, (_, n) in videos.items():
        for f in range(1, n + 1):
            os.makedirs(root / vid, exist_ok=True)
            write_frame(root / vid / f"{vid}-{f:06d}.jpg", f)


@pytest.fixture
def flags(tmp_path) -> list[str]:
    ann = tmp_path / "ann"
    os.makedirs(ann)
    (ann / "something-something-v2-labels.json").write_text(json.dumps(LABELS, indent=1))
    (ann / "something-something-v2-train.json").write_text(json.dumps(entries(TRAIN), indent=1))
    (ann / "something-something-v2-validation.json").write_text(json.dumps(entries(VAL), indent=1))
    write_tree(tmp_path / "frames", {**TRAIN, **VAL})
    return ["--dataset", "somethingrgb", "--data", str(tmp_path / "frames"),
            "--train-file", str(ann / "something-something-v2-train.json"),
            "--val-file", str(ann / "something-something-v2-validation.json"), "--nclass", "7", "--inputsize", "16",
            "--test-frames", "4", "--workers", "0", "--batch-size", "4", "--device", "cpu",
            "--cache-dir", str(tmp_path / "cache")]


def test_samples_of_each_split(flags):
    train, val, val_video = somethingrgb.get(opts_module.parse(flags + ["--flip", "none"]))
    assert items(train) == [("11", 1, 0), ("11", 5, 0), ("12", 1, 3), ("13", 1, 2)]
    assert train.index.skipped.tolist() == ["14"]
    assert items(val) == [("21", 1, 1)]
    assert items(val_video) == [("21", f, 1) for f in (1, 2, 3, 4)]  # floor(linspace(0, 3, 4)) + 1
    for i, (_, frame, _) in enumerate(items(val_video)):
        assert abs(grey(val_video[i][0]) - level(frame) - 15) < 3


def test_labels_file_option(flags, tmp_path):
    moved = tmp_path / "labels_v2.json"
    swapped = {**LABELS, "Pushing something from right to left": "2", "Holding something": "1"}
    moved.write_text(json.dumps(swapped))
    _, val, _ = somethingrgb.get(opts_module.parse(flags + ["--labels-file", str(moved)]))
    assert items(val) == [("21", 1, 2)]
    os.remove(os.path.join(os.path.dirname(flags[flags.index("--train-file") + 1]), "something-something-v2-labels.json"))
    with pytest.raises(FileNotFoundError, match="something-something-v2-labels.json.*--labels-file"):
        somethingrgb.get(opts_module.parse(flags))


@pytest.mark.parametrize("index", [0.7, "0.7", True, "1 ", "-1"])
def test_a_class_index_that_is_not_a_whole_number_is_an_error(flags, index):
    labels = os.path.join(os.path.dirname(flags[flags.index("--train-file") + 1]), "something-something-v2-labels.json")
    with open(labels, "w") as f:
        json.dump({**LABELS, "Holding something": index}, f)
    with pytest.raises(AnnotationError, match=r"template 'Holding something' has class index .* not an integer"):
        somethingrgb.get(opts_module.parse(flags))


@pytest.mark.parametrize("edit, message", [
    (lambda e: e[:1] + [{**e[1], "template": "Pushing [something] in circles"}],
     r"entry 1 \(id 12\): unknown template 'Pushing something in circles'"),
    (lambda e: e[:2] + [{"id": "13", "label": "holding a pen"}], r"entry 2 \(id 13\): missing field\(s\) template"),
    (lambda e: e + [e[0]], r"entry 4: video 11 is listed twice \(first at entry 0\)"),
    (lambda e: json.dumps(e)[:-40], r"not valid JSON \(line 1, column"),
    (lambda e: e[:1] + [{**e[1], "id": "12 b"}], r"entry 1: the id '12 b' contains white space"),
    (lambda e: e[:1] + [{**e[1], "id": "12\t"}], r"entry 1: the id '12\\t' contains white space"),
])
def test_malformed_annotations_name_the_entry(flags, edit, message):
    path = flags[flags.index("--train-file") + 1]
    edited = edit(entries(TRAIN))
    with open(path, "w") as f:
        f.write(edited if isinstance(edited, str) else json.dumps(edited))
    with pytest.raises(AnnotationError, match=message) as err:
        somethingrgb.get(opts_module.parse(flags))
    assert "something-something-v2-train.json" in str(err.value)


def test_one_epoch(flags, tmp_path):
    """One epoch of exp/asynctf_rgb_somethingsomething.py with a tiny network on the tree."""
    exp = load_exp("asynctf_rgb_somethingsomething")
    metrics = main.experiment(exp.FLAGS, flags + ["--arch", "resnet18", "--pretrained", "false", "--epochs", "1",
                                                  "--name", "ssv2", "--nhidden", "2"])
    lines = (tmp_path / "cache" / "ssv2" / "epoch_001.txt").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["21"] and len(lines[0].split()) == 8
    assert metrics["video_top1"] in (0.0, 100.0) and metrics["video_top5"] in (0.0, 100.0)
    assert 0 <= metrics["mAP"] <= 1 and torch.isfinite(torch.tensor(metrics["loss"]))
