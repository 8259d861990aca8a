"""datasets.charadesrgbsubset: the original's sampling (one item per (action, frame inside it), a one-hot
target each; 25 val_video frames spread over the video; the first 101 CSV rows), scored by the official
evaluator against those rows, and one epoch end to end.  (The sample lists are also compared with a reference of
the original's prepare() in tests/test_frame_index_original.py.)"""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

import datasets
import main
import opts as opts_module
from datasets import charadesrgbsubset
from test_charadesrgb import HEADER, grey, level, multihot, opts  # noqa: F401  (opts: the fixture)
from utils import charades_eval
from utils.charades_csv import read_annotations


@pytest.fixture
def subset(opts):  # noqa: F811
    opts.dataset = "charadesrgbsubset"
    return opts


def rows(ds) -> list[tuple[str, int, list[int]]]:
    return [(ds.index.video_id(i), int(ds.index.frame[i]), ds.index.classes(i).tolist()) for i in range(len(ds))]


def test_one_item_per_action_and_frame(subset):
    """AAA01 (30 frames) has c002 over 0-0.5 s, c001 over 0.5-1.0 s, c002 over 1.1-1.2 s; BBB02 (9 frames)
    none; sampled frames i = 0, 4, ..., 28 at t = i/24, strictly inside an action."""
    train, val, _ = charadesrgbsubset.get(subset)
    expected = [("AAA01", 5, [2]), ("AAA01", 9, [2]), ("AAA01", 17, [1]), ("AAA01", 21, [1]), ("AAA01", 29, [2])]
    assert rows(train) == rows(val) == expected  # no frame outside an action, nothing of BBB02
    torch.manual_seed(0)
    for ds in (train, val):
        for i, (vid, frame, classes) in enumerate(expected):
            x, target, meta = ds[i]
            assert meta == {"id": vid, "time": frame} and torch.equal(target, multihot(classes))  # one-hot
    x, _, _ = val[2]
    assert torch.allclose(grey(x), torch.full_like(x, level(17)), atol=2.0)


def test_val_video_25_frames_spread_over_each_video(subset):
    _, _, val_video = charadesrgbsubset.get(subset)
    spread30 = [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22, 24, 25, 26, 27, 29]
    assert rows(val_video) == ([("AAA01", f + 1, [1, 2]) for f in spread30]  # floor(k * 29/24) + 1
                               + [("BBB02", 1 + k // 3, []) for k in range(25)])  # floor(k * 8/24) + 1
    subset.test_frames = 7  # --test-frames does not apply: the original's 25
    _, _, again = charadesrgbsubset.get(subset)
    assert rows(again) == rows(val_video)
    batches = [len(b) for b in datasets.get_dataset(subset)[2].batch_sampler]
    assert batches == [25, 25]  # one video per batch: what the original's missing testGAP meant


def test_first_101_rows_of_each_csv(tmp_path):
    tiny = io.BytesIO()
    Image.new("RGB", (2, 2)).save(tiny, format="JPEG")  # the index checks the headers of the frames it samples
    tiny = tiny.getvalue()
    ids = [f"V{k:04d}" for k in range(105)]
    (tmp_path / "ann.csv").write_text(HEADER + "".join(
        f'{vid},S,"Room, {k}",1,1,Yes,x,,y,"c00{k % 5} 0.0 0.3",0.5\n' for k, vid in enumerate(ids)))
    for vid in ids:  # names only: the index never decodes
        os.makedirs(tmp_path / "rgb" / vid)
        for f in range(1, 7):
            (tmp_path / "rgb" / vid / f"{vid}-{f:06d}.jpg").write_bytes(tiny)
    opts = opts_module.parse(["--dataset", "charadesrgbsubset", "--data", str(tmp_path / "rgb"), "--train-file",
                              str(tmp_path / "ann.csv"), "--val-file", str(tmp_path / "ann.csv"), "--nclass", "5",
                              "--cache-dir", str(tmp_path / "cache")])
    train, val, val_video = datasets.get_datasets(opts)
    assert rows(train) == rows(val) == [(vid, 5, [k % 5]) for k, vid in enumerate(ids[:101])]  # t = 4/24 s
    assert list(dict.fromkeys(val_video.video_ids)) == ids[:101] and len(val_video) == 25 * 101
    # scored by the official evaluator against the same 101 videos
    assert [v.id for v in read_annotations(val_video.eval_csv, 5)] == ids[:101]
    assert read_annotations(val_video.eval_csv, 5)[3] == read_annotations(str(tmp_path / "ann.csv"), 5)[3]


def test_one_epoch_end_to_end(subset, tmp_path):
    """Training on one-hot targets (prec@k), val, then val_video's 25-frame batches through the synchronous
    criterion, both submission files, and the official evaluator's mAP of the written file."""
    flags = ["--dataset", "charadesrgbsubset", "--data", subset.data, "--train-file", subset.train_file,
             "--val-file", subset.val_file, "--nclass", "5", "--inputsize", "8", "--workers", "0",
             "--batch-size", "5", "--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--name", "subset",
             "--arch", "resnet18", "--nhidden", "2", "--epochs", "1", "--localize", "--adjustment",
             "--balanceloss", "--memory-size", "30"]
    metrics = main.main(flags)
    cache = tmp_path / "cache" / "subset"
    lines = [line.split() for line in (cache / "epoch_001.txt").read_text().splitlines()]
    assert [row[0] for row in lines] == ["AAA01", "BBB02"] and all(len(row) == 6 for row in lines)
    assert len((cache / "localize_001.txt").read_text().splitlines()) == 2 * 25
    with pytest.warns(UserWarning, match="1 of 2 video"):  # CCC03, without frames, is scored -inf
        ap, _, _ = charades_eval.classify(str(cache / "epoch_001.txt"), str(cache / "charadesrgbsubset_ann.csv"), 5)
    assert metrics["mAP"] == pytest.approx(charades_eval.mean_ap_with_positives(ap))
    assert 0 <= metrics["top1train"] <= 100 and np.isfinite(metrics["loss"])
