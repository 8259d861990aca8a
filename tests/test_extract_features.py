"""extract_features.py on a tiny handmade Charades tree with a tiny resnet18 checkpoint: the features are the
backbone's activations, the scores the synchronous AsyncTF scores (those of get_alltest.py on the same frames),
the index lists the frames and times, reruns skip finished videos and redo partial ones, processes split the
videos.  The frame rule itself: tests/test_frame_index_strided.py."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torchvision import transforms as tv

import extract_features
import get_alltest
import opts as options
from datasets.transforms import IMAGENET_MEAN, IMAGENET_STD
from models import create_model
from models.asynctf import AsyncTFCriterion
from utils.submission import localization_rows

HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
# AAA01 and BBB02 have 20 frames and last 20/24 s: their frames at --stride 2 (1, 3, ..., 19) are exactly
# get_alltest's val_video frames with --test-frames 10 (floor(k * length * 24 / 10) + 1 = 2k + 1).
# DDD04 has 7 frames (stride 2: 1, 3, 5, 7); CCC03 has none.
ROWS = ["AAA01,S1,Kitchen,6,7,Yes,script,,desc,c001 0.0 0.5;c003 0.2 0.8,0.8333333333333334\n",
        "BBB02,S2,Bedroom,6,7,Yes,script,,desc,c002 0.1 0.6,0.8333333333333334\n",
        "CCC03,S3,Garage,6,7,Yes,script,,desc,c004 0.0 1.0,1.0\n",
        "DDD04,S4,Hall,6,7,Yes,script,,desc,c000 0.0 0.2,0.3\n"]
NFRAMES = {"AAA01": 20, "BBB02": 20, "DDD04": 7}
EXPECTED = {vid: list(range(1, n + 1, 2)) for vid, n in NFRAMES.items()}  # at --stride 2
MODEL = ["--arch", "resnet18", "--inputsize", "16", "--nclass", "5", "--nhidden", "3", "--device", "cpu",
         "--workers", "0"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """The frame tree (24x24 noise JPEGs), the CSV and a checkpoint of a randomly initialised model."""
    tmp = tmp_path_factory.mktemp("extract")
    rng = np.random.default_rng(0)
    for vid, n in NFRAMES.items():
        os.makedirs(tmp / "rgb" / vid)
        for f in range(1, n + 1):
            pixels = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp / "rgb" / vid / f"{vid}-{f:06d}.jpg", quality=95)
    (tmp / "ann.csv").write_text(HEADER + "".join(ROWS))
    model, _, _ = create_model(options.parse(MODEL + ["--cache-dir", str(tmp / "cache")]))
    torch.save({"epoch": 1, "arch": "resnet18", "state_dict": model.state_dict(), "mAP": 0.0}, tmp / "ckpt.pth.tar")
    return tmp


def flags(tree, out, *extra):
    return MODEL + ["--data", str(tree / "rgb"), "--cache-dir", str(tree / "cache"), "--out", str(out), *extra]


@pytest.fixture(scope="module")
def extracted(tree):
    """One extraction at --stride 2 in batches of 3 frames (a video spans several batches)."""
    out = tree / "out"
    result = extract_features.main(flags(tree, out, "--resume", str(tree / "ckpt.pth.tar"),
                                         "--val-file", str(tree / "ann.csv"), "--stride", "2", "--batch-size", "3"))
    return out, result


def backbone(state: dict) -> torch.nn.Module:
    """torchvision's resnet18 with ``state``'s weights, up to the pooled activations (no last layer)."""
    net = torchvision.models.resnet18()
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=False)
    net.fc = torch.nn.Identity()
    return net.eval()


def direct_features(tree, net: torch.nn.Module, vid: str, frames: list[int]) -> torch.Tensor:
    """The network's activations on the frames, each read and transformed here with PIL and torchvision."""
    transform = tv.Compose([tv.Resize(18), tv.CenterCrop(16), tv.ToTensor(), tv.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    x = torch.stack([transform(Image.open(tree / "rgb" / vid / f"{vid}-{f:06d}.jpg").convert("RGB")) for f in frames])
    with torch.no_grad():
        return net(x)


def read_index(path) -> list[tuple[str, int, int, float]]:
    lines = open(path).read().splitlines()
    assert lines[0] == "id,row,frame,time"
    return [(v, int(r), int(f), float(t)) for v, r, f, t in (line.split(",") for line in lines[1:])]


def test_features_scores_and_index(tree, extracted):
    out, result = extracted
    assert result["written"] == ["AAA01", "BBB02", "DDD04"] and result["finished"] == []
    assert result["no_frames"] == ["CCC03"] and result["frames"] == 10 + 10 + 4
    assert read_index(result["index"]) == [(vid, r, f, pytest.approx((f - 1) / 24, abs=1e-6))
                                           for vid, frames in EXPECTED.items() for r, f in enumerate(frames)]
    state = torch.load(tree / "ckpt.pth.tar")["state_dict"]
    opts = options.parse(MODEL + ["--cache-dir", str(tree / "cache")])
    W, b = state["fc.mA.weight"], state["fc.mA.bias"]
    aa = state["fc.mAAa.weight"].view(5, 3) @ state["fc.mAAb.weight"].view(3, 5)
    net = backbone(state)
    for vid, frames in EXPECTED.items():
        feats, scores = (np.load(out / kind / f"{vid}.npy") for kind in ("features", "scores"))
        assert feats.dtype == scores.dtype == np.float32 and feats.shape == (len(frames), 512)
        expected = direct_features(tree, net, vid, frames)
        assert np.allclose(feats, expected.numpy(), atol=1e-5), vid
        # the criterion in synchronous mode, on the head's terms computed from those activations
        T = len(frames)
        want, _ = AsyncTFCriterion(opts).eval()(expected @ W.T + b, aa.expand(T, -1, -1), torch.zeros(T, 5),
                                                {"id": [vid] * T, "time": frames}, synchronous=True)
        assert scores.shape == (T, 5) and np.allclose(scores, want.numpy(), atol=1e-6), vid


def test_scores_equal_get_alltest(tree, extracted):
    out, _ = extracted
    files = get_alltest.main(MODEL + ["--resume", str(tree / "ckpt.pth.tar"), "--val-file", str(tree / "ann.csv"),
                                      "--data", str(tree / "rgb"), "--test-frames", "10", "--cache-dir",
                                      str(tree / "cache"), "--out-dir", str(tree / "alltest")])
    classify = {line.split()[0]: np.array(line.split()[1:], float) for line in open(files["classify"])}
    localize: dict[str, list] = {}
    for line in open(files["localize"]):
        localize.setdefault(line.split()[0], []).append(np.array(line.split()[2:], float))
    for vid in ("AAA01", "BBB02"):  # the videos whose val_video frames are the stride-2 frames
        scores = np.load(out / "scores" / f"{vid}.npy")
        assert np.allclose(scores.max(0), classify[vid], rtol=1e-5, atol=1e-6), vid  # files hold 6 digits
        assert np.allclose(scores[localization_rows(10)], np.stack(localize[vid]), rtol=1e-5, atol=1e-6), vid


def test_rerun_skips_finished_and_redoes_partial_files(tree, extracted, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(extracted[0], out)
    argv = flags(tree, out, "--resume", str(tree / "ckpt.pth.tar"), "--val-file", str(tree / "ann.csv"),
                 "--stride", "2", "--batch-size", "3")
    files = sorted(p for p in out.rglob("*.npy"))
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    again = extract_features.main(argv)
    assert again["written"] == [] and again["finished"] == ["AAA01", "BBB02", "DDD04"]
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files} == before
    partial, foreign = out / "scores" / "AAA01.npy", out / "features" / "BBB02.npy"
    partial.write_bytes(before[partial][1][:-40])     # cut short: the header is fine, the data is not
    foreign.write_bytes(b"not an array")
    (out / "frames.csv").unlink()
    third = extract_features.main(argv)
    assert third["written"] == ["AAA01", "BBB02"] and third["finished"] == ["DDD04"]
    for p in files:  # the same bytes again; the untouched video's files were not rewritten
        assert p.read_bytes() == before[p][1], p
    assert (out / "features" / "DDD04.npy").stat().st_mtime_ns == before[out / "features" / "DDD04.npy"][0]
    assert (out / "frames.csv").read_text() == (extracted[0] / "frames.csv").read_text()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_bad_input_is_a_clear_error(tree, extracted, capsys):
    out = extracted[0]
    common = ["--val-file", str(tree / "ann.csv"), "--stride", "2"]
    with pytest.raises(SystemExit):  # checked when the options are parsed
        extract_features.main(flags(tree, out, "--resume", str(tree / "nope.pth.tar"), *common))
    assert "nope.pth.tar: no such file" in capsys.readouterr().err
    (tree / "corrupt.pth.tar").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="cannot read checkpoint .*corrupt.pth.tar"):
        extract_features.main(flags(tree, out, "--resume", str(tree / "corrupt.pth.tar"), *common))
    with pytest.raises(ValueError, match="needs weights"):
        extract_features.main(flags(tree, out, *common))
    with pytest.raises(ValueError, match=r"settings\.json.*step: 2\.0 there, 3\.0 now"):
        extract_features.main(flags(tree, out, "--resume", str(tree / "ckpt.pth.tar"), *common[:-1], "3"))
    (tree / "ids.txt").write_text("AAA01\nZZZ99\n")
    with pytest.raises(ValueError, match="ids.txt: 1 of its ids are not in .*ann.csv: ZZZ99"):
        extract_features.main(flags(tree, tree / "out_ids", "--resume", str(tree / "ckpt.pth.tar"), *common,
                                    "--ids", str(tree / "ids.txt")))


def test_ids_alone_with_imagenet_style_weights_give_features_only(tree, tmp_path):
    weights = torchvision.models.resnet18().state_dict()  # stands in for downloaded ImageNet weights
    torch.save(weights, tmp_path / "resnet18.pth")
    (tmp_path / "ids.txt").write_text("DDD04\nCCC03\n\nAAA01\n")
    result = extract_features.main(flags(tree, tmp_path / "out", "--pretrained-weights", str(tmp_path / "resnet18.pth"),
                                         "--ids", str(tmp_path / "ids.txt"), "--fps", "12"))  # 24/12: stride 2
    assert result["written"] == ["DDD04", "AAA01"] and result["no_frames"] == ["CCC03"]
    assert not (tmp_path / "out" / "scores").exists()
    net = backbone(weights)
    for vid in ("DDD04", "AAA01"):
        feats = np.load(tmp_path / "out" / "features" / f"{vid}.npy")
        assert np.allclose(feats, direct_features(tree, net, vid, EXPECTED[vid]).numpy(), atol=1e-5), vid
    assert [row[0] for row in read_index(result["index"])] == ["DDD04"] * 4 + ["AAA01"] * 10


def test_processes_split_the_videos(tree, tmp_path, monkeypatch):
    """Rank r of W extracts videos r, r+W, ...; rank 0 alone writes the index, over every finished video."""
    def as_rank(rank):
        def init(opts):
            opts.rank, opts.local_rank, opts.world_size = rank, 0, 2
        monkeypatch.setattr(extract_features.distributed, "init", init)
        return extract_features.main(flags(tree, tmp_path, "--resume", str(tree / "ckpt.pth.tar"), "--val-file",
                                           str(tree / "ann.csv"), "--stride", "2"))
    assert as_rank(1)["written"] == ["BBB02"] and not (tmp_path / "frames.csv").exists()
    assert as_rank(0)["written"] == ["AAA01", "DDD04"]
    assert sorted(p.name for p in (tmp_path / "scores").iterdir()) == ["AAA01.npy", "BBB02.npy", "DDD04.npy"]
    assert {row[0] for row in read_index(tmp_path / "frames.csv")} == {"AAA01", "BBB02", "DDD04"}
