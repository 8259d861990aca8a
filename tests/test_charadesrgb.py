"""datasets.charadesrgb on a tiny handmade tree: items, pixels behind each time, load errors, loaders."""
from __future__ import annotations

import io
import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image

import datasets
import opts as opts_module
from datasets import charadesrgb
from datasets.transforms import IMAGENET_MEAN, IMAGENET_STD, train_transform

HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
ROWS = [  # quoted text fields with commas; BBB02 has no actions; CCC03 has no frame dir
    'AAA01,S01,"Kitchen, small",6,7,Yes,"Opens a door, then sits.","door;chair","Opens, sits.",'
    '"c002 0.0 0.5;c001 0.5 1.0;c002 1.1 1.2",1.25\n',
    'BBB02,S02,Bedroom,5,6,No,"Nothing, really.",,"Stands, waits.",,2.0\n',
    'CCC03,S03,Garage,4,5,Yes,"No frames, sadly.",car,"Drives, parks.",c003 0.0 1.0,1.0\n',
]
NFRAMES = {"AAA01": 30, "BBB02": 9}


def level(frame: int) -> int:
    """Grey level written into RGB frame ``frame``: ties a decoded pixel back to its file."""
    return 8 * frame


@pytest.fixture
def opts(tmp_path):
    root = tmp_path / "rgb"
    for vid, n in NFRAMES.items():
        os.makedirs(root / vid)
        for f in range(1, n + 1):
            Image.new("RGB", (8, 8), (level(f),) * 3).save(root / vid / f"{vid}-{f:06d}.jpg", quality=100)
    (tmp_path / "ann.csv").write_text(HEADER + "".join(ROWS))
    return opts_module.parse([
        "--data", str(root), "--train-file", str(tmp_path / "ann.csv"), "--val-file", str(tmp_path / "ann.csv"),
        "--nclass", "5", "--inputsize", "8", "--test-frames", "4", "--workers", "0", "--batch-size", "4",
        "--device", "cpu", "--cache-dir", str(tmp_path / "cache")])


def multihot(classes: list[int], nclass: int = 5) -> torch.Tensor:
    t = torch.zeros(nclass)
    t[classes] = 1.0
    return t


def grey(x: torch.Tensor) -> torch.Tensor:
    """Undo the ImageNet normalisation: back to 8-bit grey levels."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x * std + mean) * 255


def test_val_items_exact(opts):
    train, val, val_video = charadesrgb.get(opts)
    expected = [("AAA01", 1, []), ("AAA01", 5, [2]), ("AAA01", 9, [2]), ("AAA01", 13, []),
                ("AAA01", 17, [1]), ("AAA01", 21, [1]), ("AAA01", 25, []), ("AAA01", 29, [2]),
                ("BBB02", 1, []), ("BBB02", 5, [])]
    assert len(train) == len(val) == len(expected)
    assert val.video_ids == [v for v, _, _ in expected] and val.split == "val"
    for i, (vid, time, classes) in enumerate(expected):
        x, target, meta = val[i]
        assert meta == {"id": vid, "time": time} and isinstance(meta["time"], int)
        assert target.dtype == torch.float32 and torch.equal(target, multihot(classes))
        assert x.shape == (3, 8, 8) and x.dtype == torch.float32
        assert torch.allclose(grey(x), torch.full_like(x, level(time)), atol=2.0)  # the file of frame `time`


def test_val_video_items(opts):
    _, _, val_video = charadesrgb.get(opts)
    got = [(m["id"], m["time"], t.tolist()) for _, t, m in (val_video[i] for i in range(len(val_video)))]
    assert got == ([("AAA01", f, multihot([1, 2]).tolist()) for f in (1, 8, 16, 23)]
                   + [("BBB02", f, [0.0] * 5) for f in (1, 9, 9, 9)])
    x, _, _ = val_video[1]
    assert torch.allclose(grey(x), torch.full_like(x, level(8)), atol=2.0)


def test_train_items_augmented(opts):
    train, _, _ = charadesrgb.get(opts)
    torch.manual_seed(0)
    x, target, meta = train[1]
    assert x.shape == (3, 8, 8) and meta == {"id": "AAA01", "time": 5}
    assert torch.equal(target, multihot([2]))


def test_missing_or_corrupt_frame_names_file(opts):
    _, val, _ = charadesrgb.get(opts)
    missing = os.path.join(opts.data, "AAA01", "AAA01-000005.jpg")
    os.remove(missing)
    with pytest.raises(charadesrgb.FrameError, match="AAA01-000005.jpg"):
        val[1]
    corrupt = os.path.join(opts.data, "AAA01", "AAA01-000009.jpg")
    with open(corrupt, "wb") as f:
        f.write(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(charadesrgb.FrameError, match="AAA01-000009.jpg"):
        val[2]


def test_missing_inputs_raise(opts, tmp_path):
    opts.val_file = str(tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        charadesrgb.get(opts)
    opts.data = str(tmp_path / "no_frames_here")
    with pytest.raises(FileNotFoundError, match="no_frames_here"):
        charadesrgb.get(opts)


def test_loaders_one_video_per_batch(opts):
    train_loader, val_loader, video_loader = datasets.get_dataset(opts)
    batches = [(meta["id"], meta["time"].tolist(), x.shape) for x, _, meta in video_loader]
    assert [(ids, times) for ids, times, _ in batches] == [(["AAA01"] * 4, [1, 8, 16, 23]),
                                                          (["BBB02"] * 4, [1, 9, 9, 9])]
    assert all(shape == (4, 3, 8, 8) for _, _, shape in batches)
    x, target, meta = next(iter(train_loader))
    assert x.shape == (4, 3, 8, 8) and target.shape == (4, 5) and len(meta["id"]) == 4


def split_rows(ds) -> list[tuple[str, int]]:
    return [(ds.index.video_id(i), int(ds.index.frame[i])) for i in range(len(ds))]


def test_frame_gap_found_when_the_index_is_built(opts, caplog):
    """Issue 13: frame 13 (drawn) and 14 (never drawn) missing of AAA01's 30: reported per video, and the
    video skipped by default instead of failing mid-epoch or counting one short."""
    for f in (13, 14):
        os.remove(os.path.join(opts.data, "AAA01", f"AAA01-{f:06d}.jpg"))
    with caplog.at_level(logging.WARNING, logger="datasets.frame_index"):
        train, val, val_video = charadesrgb.get(opts)
    for ds in (train, val, val_video):
        assert set(ds.video_ids) == {"BBB02"}
        assert ds.index.gapped.tolist() == ["AAA01"]
    assert any("AAA01" in r.getMessage() and "frames 13-14 missing of 1..30" in r.getMessage()
               and "skipped" in r.getMessage() for r in caplog.records)
    for x, _, meta in (val[i] for i in range(len(val))):  # every sample loads
        assert meta["id"] == "BBB02"


def test_frame_gaps_present_or_error(opts, tmp_path):
    for f in (13, 16):
        os.remove(os.path.join(opts.data, "AAA01", f"AAA01-{f:06d}.jpg"))
    opts.frame_gaps = "present"
    train, val, val_video = charadesrgb.get(opts)
    assert split_rows(val)[:7] == [("AAA01", f) for f in (1, 5, 9, 17, 21, 25, 29)]  # 13 dropped
    assert split_rows(val_video)[:4] == [("AAA01", f) for f in (1, 8, 15, 23)]  # 16 -> nearest present, 15
    for i in range(len(val)):
        val[i]
    opts.frame_gaps, opts.cache = "error", str(tmp_path / "cache2")
    with pytest.raises(ValueError, match=r"AAA01: frames 13, 16 missing of 1\.\.30") as err:
        charadesrgb.get(opts)
    assert opts.data in str(err.value) and "ann.csv" in str(err.value)


def test_no_frames_at_all_or_no_videos_is_a_clear_error(opts, tmp_path):
    """Issue 13: not a ZeroDivisionError after the model is built, but an error naming --data and the CSV."""
    empty = tmp_path / "empty_root"
    os.makedirs(empty / "AAA01")
    opts.data = str(empty)
    with pytest.raises(ValueError, match="no train samples") as err:
        charadesrgb.get(opts)
    assert str(empty) in str(err.value) and "ann.csv" in str(err.value) and "AAA01-000001.jpg" in str(err.value)
    header_only = tmp_path / "header.csv"
    header_only.write_text(HEADER)
    opts.data, opts.train_file = str(tmp_path / "rgb"), str(header_only)
    with pytest.raises(ValueError, match=r"header.csv.*no videos"):
        charadesrgb.get(opts)


@pytest.mark.parametrize("limit", [40, 16])  # 8x8 = 64 pixels: PIL's warning band, then its error band
@pytest.mark.parametrize("path", ["plain", "fast", "device"])
def test_decompression_bomb_names_the_file(opts, monkeypatch, limit, path):
    """Issue 13: a frame above PIL's decompression-bomb limit is a FrameError naming the file."""
    opts.fast_loader, opts.gpu_decode = path == "fast", path == "device"
    _, val, _ = charadesrgb.get(opts)  # (the index checks the headers: the limit is lowered after it)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(charadesrgb.FrameError, match="AAA01-000005.jpg.*exceeds limit.*MAX_IMAGE_PIXELS.*to go on "
                                                     "without a bad frame, delete its file"):
        val[1]


def test_training_flip_is_the_original_transform_exactly(opts):
    """The dataset draws the flip after the transform: with --flip original (Charades' default) a sample is
    bit for bit the original's RandomResizedCrop + ColorJitter + RandomHorizontalFlip pipeline's."""
    train, _, _ = charadesrgb.get(opts)
    reference = train_transform(opts)
    frame = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8).repeat(3).reshape(8, 8, 3))  # asymmetric
    train.load_input = lambda i: frame
    flipped = set()
    for seed in range(12):
        torch.default_generator.manual_seed(seed)
        x, _, _ = train[3]
        torch.default_generator.manual_seed(seed)
        assert torch.equal(x, reference(frame))
        torch.default_generator.manual_seed(seed)
        flipped.add(not torch.equal(x, train.transform(frame)))
    assert flipped == {True, False}
