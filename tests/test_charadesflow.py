"""datasets.charadesflow: files and channel order behind a sample, span rules, flip, normalisation."""
from __future__ import annotations

import os

import pytest
import torch
from PIL import Image
from torchvision import transforms as tv

import datasets
import opts as opts_module
from datasets import charadesflow
from datasets.charadesrgb import FrameError
from datasets.transforms import FLOW_MEAN, FlowHorizontalFlip, FlowNormalize, flow_train_transform

HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
ROWS = [  # quoted text fields with commas; BBB02 has no actions and too few pairs for a stack
    'AAA01,S01,"Kitchen, small",6,7,Yes,"Opens a door, then sits.","door;chair","Opens, sits.",'
    '"c002 0.0 0.5;c001 0.5 1.0;c002 1.1 1.2",1.25\n',
    'BBB02,S02,Bedroom,5,6,No,"Nothing, really.",,"Stands, waits.",,2.0\n',
    'CCC03,S03,Garage,4,5,Yes,"No frames, sadly.",car,"Drives, parks.",c003 0.0 1.0,1.0\n',
]
NFLOW = {"AAA01": 30, "BBB02": 9}


def level(frame: int, axis: str) -> int:
    """Grey level of flow file ``frame``/``axis``: ties each decoded channel back to its file."""
    return 5 * frame + (100 if axis == "y" else 0)


@pytest.fixture
def opts(tmp_path):
    root = tmp_path / "flow"
    for vid, n in NFLOW.items():
        os.makedirs(root / vid)
        for f in range(1, n + 1):
            for axis in "xy":
                Image.new("L", (8, 8), level(f, axis)).save(root / vid / f"{vid}-{f:06d}{axis}.jpg", quality=100)
    (tmp_path / "ann.csv").write_text(HEADER + "".join(ROWS))
    return opts_module.parse([
        "--data", str(root), "--train-file", str(tmp_path / "ann.csv"), "--val-file", str(tmp_path / "ann.csv"),
        "--dataset", "charadesflow", "--nclass", "5", "--inputsize", "8", "--test-frames", "4",
        "--workers", "0", "--batch-size", "2", "--device", "cpu", "--cache-dir", str(tmp_path / "cache")])


def channel_levels(x: torch.Tensor) -> list[int]:
    """Undo the flow normalisation and read each channel's (constant) grey level."""
    return [round(v) for v in ((x + FLOW_MEAN) * 255).mean(dim=(1, 2)).tolist()]


def expected_levels(frames: list[int]) -> list[int]:
    return [level(f, axis) for f in frames for axis in "xy"]


def test_files_and_channel_order(opts):
    _, val, _ = charadesflow.get(opts)
    names = [os.path.basename(p) for p in val.frame_paths(1)]
    assert names == [f"AAA01-{f:06d}{a}.jpg" for f in range(5, 15) for a in "xy"]  # x5, y5, x6, y6, ...
    x, target, meta = val[1]
    assert x.shape == (20, 8, 8) and meta == {"id": "AAA01", "time": 5}
    assert channel_levels(x) == expected_levels(list(range(5, 15)))
    assert target.tolist() == [0, 0, 1, 0, 0]


def test_tail_samples_dropped(opts):
    train, val, _ = charadesflow.get(opts)
    expected = [("AAA01", f) for f in (1, 5, 9, 13, 17, 21)]  # 25, 29 would need pairs 34, 38; BBB02 has 9
    for ds in (train, val):
        assert [(ds[i][2]["id"], ds[i][2]["time"]) for i in range(len(ds))] == expected
        assert ds.video_ids == ["AAA01"] * 6
    assert [val[i][1].nonzero().flatten().tolist() for i in range(len(val))] == [[], [2], [2], [], [1], [1]]


def test_val_video_moved_back(opts):
    _, _, val_video = charadesflow.get(opts)
    items = [val_video[i] for i in range(len(val_video))]
    assert [(m["id"], m["time"]) for _, _, m in items] == (
        [("AAA01", f) for f in (1, 8, 16, 21)] + [("BBB02", 1)] * 4)  # 23 -> 30-9; BBB02 has 9 < 10 pairs
    assert channel_levels(items[3][0]) == expected_levels(list(range(21, 31)))
    # a video shorter than the stack repeats its last pair rather than go unscored
    assert channel_levels(items[4][0]) == expected_levels(list(range(1, 10)) + [9])
    assert all(t.tolist() == [0, 1, 1, 0, 0] for _, t, _ in items[:4])


def test_flip_negates_horizontal_motion(opts):
    stack = torch.rand(20, 4, 6)
    out = FlowHorizontalFlip(p=1.0)(stack.clone())
    assert torch.allclose(out[0::2], 1 - stack[0::2].flip(-1))  # x: mirrored and negated
    assert torch.equal(out[1::2], stack[1::2].flip(-1))  # y: only mirrored
    assert torch.equal(FlowHorizontalFlip(p=0.0)(stack), stack)
    # through the dataset: x -> 255 - x in 8-bit terms, y unchanged
    _, val, _ = charadesflow.get(opts)
    val.transform = tv.Compose([FlowHorizontalFlip(p=1.0), FlowNormalize()])
    x, _, _ = val[0]
    want = [255 - v if c % 2 == 0 else v for c, v in enumerate(expected_levels(list(range(1, 11))))]
    assert channel_levels(x) == want


@pytest.mark.parametrize("mode,flips", [("auto", False), ("original", False), ("none", False), ("mirror", True)])
def test_training_flip_only_under_flip_mirror(opts, mode, flips):
    """The original's flow training transform has no flip: neither has ours unless --flip mirror, which
    mirrors the stack and negates horizontal motion (x -> 255 - x) for about half the samples."""
    opts.flip = mode
    train, _, _ = charadesflow.get(opts)
    plain = expected_levels(list(range(5, 15)))
    negated = [255 - v if c % 2 == 0 else v for c, v in enumerate(plain)]
    seen = []
    for seed in range(12):
        torch.manual_seed(seed)
        levels = channel_levels(train[1][0])
        assert levels in (plain, negated)
        seen.append(levels == negated)
    assert set(seen) == ({True, False} if flips else {False})


def test_normalisation_mean(opts):
    _, val, _ = charadesflow.get(opts)
    val.transform = FlowNormalize()
    x, _, _ = val[0]
    raw = val.load_input(0)
    assert raw.min() >= 0 and raw.max() <= 1
    assert torch.allclose(x, raw - 0.502)


def test_train_crop_shared_by_all_channels(opts):
    base = torch.rand(1, 16, 16)
    stack = base.expand(20, 16, 16).clone()
    torch.manual_seed(1)
    for _ in range(8):
        out = flow_train_transform(opts)(stack) + FLOW_MEAN
        assert out.shape == (20, 8, 8)
        assert torch.allclose(out[1::2], out[1:2].expand(10, 8, 8))  # every y channel: the same crop
        x, y = out[0::2], out[1::2]
        assert torch.allclose(x, y, atol=1e-6) or torch.allclose(x, 1 - y, atol=1e-6)  # flipped or not


def test_missing_flow_frame_names_file(opts):
    _, val, _ = charadesflow.get(opts)
    os.remove(os.path.join(opts.data, "AAA01", "AAA01-000007y.jpg"))
    with pytest.raises(FrameError, match="AAA01-000007y.jpg"):
        val[1]


def test_loaders_one_video_per_batch(opts):
    train_loader, _, video_loader = datasets.get_dataset(opts)
    batches = [(meta["id"], meta["time"].tolist(), x.shape) for x, _, meta in video_loader]
    assert batches == [(["AAA01"] * 4, [1, 8, 16, 21], (4, 20, 8, 8)),
                       (["BBB02"] * 4, [1, 1, 1, 1], (4, 20, 8, 8))]
    x, target, _ = next(iter(train_loader))
    assert x.shape == (2, 20, 8, 8) and target.shape == (2, 5)


def test_rgb_only_loader_flags_warn_and_change_nothing(opts, caplog):
    _, plain, _ = charadesflow.get(opts)
    opts.gpu_decode = True
    _, val, _ = charadesflow.get(opts)
    assert "--gpu-decode applies to RGB frames only" in caplog.text
    assert torch.equal(val[0][0], plain[0][0]) and not hasattr(val, "collate_fn")
