"""predict.py end to end on tiny videos written here with PyAV and a tiny resnet18 checkpoint: a frame folder
gives get_alltest.py's scores (1e-5); a video gives exactly the frames get_alltest.py scores on its
extract_frames.py tree, with scores that differ only by the JPEG step; the outputs; the checkpoint's
recorded settings and the released experiment's for older checkpoints; bad inputs."""
from __future__ import annotations

import csv
import json
import os
import shutil
from fractions import Fraction

import numpy as np
import pytest
import torch

import extract_frames
import get_alltest
import opts as options
import predict
from checkpoints.settings import model_settings
from datasets import get_datasets
from models import create_model
from utils.submission import read_submission

av = pytest.importorskip("av")

HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length".split(",")
MODEL = ["--arch", "resnet18", "--inputsize", "32", "--nclass", "5", "--nhidden", "3", "--sigma", "300",
         "--window-smooth", "1", "--temporal-weight", "0.03", "--memory-decay", "1.0", "--device", "cpu"]
# id -> (frame rate, frames): AAA lasts 37/25 s (its tree: ceil(35.52) = 36 frames), BBB 30/24 s
VIDEOS = {"AAA": (25, 37), "BBB": (24, 30)}


def picture(i: int, rng) -> np.ndarray:
    """A frame that changes a lot from one frame to the next (so a wrong frame changes the scores)."""
    img = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    img[:, : 4 + i % 50] //= 2
    return img


def write_video(path, rate: int, frames: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=rate)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            c.mux(s.encode(av.VideoFrame.from_ndarray(picture(i, rng), format="rgb24")))
        c.mux(s.encode())


def checkpoint(path, cache, extra=(), settings=True) -> str:
    o = options.parse(MODEL + list(extra) + ["--cache-dir", str(cache)])
    torch.manual_seed(0)
    model, _, _ = create_model(o)
    state = {"epoch": 1, "arch": o.arch, "state_dict": model.state_dict(), "mAP": np.float64(0.0)}
    if settings:
        state["settings"] = model_settings(o, [f"action {c}" for c in range(o.nclass)])
    else:  # as the released model: saved from DataParallel ("module." keys), a numpy mAP, no settings
        state["state_dict"] = {"module." + k: v for k, v in state["state_dict"].items()}
    torch.save(state, path)
    return str(path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Two videos, their extract_frames.py tree, a checkpoint, and get_alltest.py's files on the tree (AAA
    with its video's length, BBB with its frame folder's: frames / 24)."""
    tmp = tmp_path_factory.mktemp("predict")
    (tmp / "videos").mkdir()
    for i, (vid, (rate, n)) in enumerate(VIDEOS.items()):
        write_video(tmp / "videos" / f"{vid}.mp4", rate, n, seed=i)
    assert extract_frames.main([str(tmp / "videos"), str(tmp / "tree"), "--workers", "1"]) == 0
    lengths = {"AAA": 37 / 25, "BBB": len(os.listdir(tmp / "tree" / "BBB")) / 24}
    with open(tmp / "test.csv", "w", newline="") as f:
        csv.writer(f).writerows([HEADER] + [[v, "", "", "", "", "", "", "", "", "", repr(lengths[v])] for v in VIDEOS])
    ckpt = checkpoint(tmp / "model.pth.tar", tmp / "cache")
    flags = MODEL + ["--data", str(tmp / "tree"), "--val-file", str(tmp / "test.csv"), "--workers", "0",
                     "--cache-dir", str(tmp / "cache"), "--name", "alltest"]
    result = get_alltest.main(flags + ["--resume", ckpt, "--out-dir", str(tmp / "alltest")])
    index = get_datasets(options.parse(flags + ["--train-file", str(tmp / "test.csv")]))[2].index
    frames = {vid: index.frame[index.video == k].tolist() for k, vid in enumerate(index.ids.tolist())}
    return tmp, ckpt, result, frames


def rows(path) -> dict:
    sub = read_submission(str(path), 5)
    keys = sub.keys()
    return {k: sub.scores[i] for i, k in enumerate(keys)}


def test_frame_folder_gives_get_alltest_scores_and_video_its_tree_frames(setup, capsys):
    tmp, ckpt, result, frames = setup
    out = tmp / "out"
    assert predict.main([str(tmp / "videos" / "AAA.mp4"), str(tmp / "tree" / "BBB"), "--resume", ckpt,
                         "-o", str(out)]) == 0
    ours, theirs = rows(out / "classify.txt"), rows(result["classify"])
    local, their_local = rows(out / "localize.txt"), rows(result["localize"])
    # the frame folder: get_alltest.py's numbers (both files round to 6 significant digits)
    np.testing.assert_allclose(ours[("BBB",)], theirs[("BBB",)], atol=1e-5)
    for j in range(1, 26):
        np.testing.assert_allclose(local[("BBB", j)], their_local[("BBB", j)], atol=1e-5)
    # the video: exactly the frames get_alltest.py scores on its tree; the scores differ by the JPEG step only
    report = {vid: json.loads((out / f"{vid}.json").read_text()) for vid in VIDEOS}
    assert [f["frame"] for f in report["AAA"]["frames"]] == frames["AAA"]
    assert [f["frame"] for f in report["BBB"]["frames"]] == frames["BBB"]
    assert report["AAA"]["duration"] == pytest.approx(37 / 25) and len(frames["AAA"]) == 50
    jpeg_step = np.abs(ours[("AAA",)] - theirs[("AAA",)]).max()
    assert 0 < jpeg_step < 0.02, jpeg_step
    # JSON: every class best first, per-frame scores whose maximum is the video's score, segments in range
    classes = report["AAA"]["classes"]
    assert sorted(c["index"] for c in classes) == list(range(5)) and classes[0]["name"].startswith("action ")
    assert [c["score"] for c in classes] == sorted((c["score"] for c in classes), reverse=True)
    per_frame = np.array([f["scores"] for f in report["AAA"]["frames"]])
    np.testing.assert_allclose(per_frame.max(0)[[c["index"] for c in classes]], [c["score"] for c in classes])
    assert all(0 <= s["start"] < s["end"] <= 37 / 25 + 1e-9 for s in report["AAA"]["segments"])
    assert (out / "AAA.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "AAA  (1.5 s, 50 frames scored)" in printed and "2 of 2 inputs scored" in printed


def test_fps_windows_and_checkpoint_settings(setup, tmp_path):
    tmp, ckpt, _, _ = setup
    assert predict.main([str(tmp / "videos" / "AAA.mp4"), "--resume", ckpt, "-o", str(tmp_path), "--fps", "20",
                         "--no-png"]) == 0
    report = json.loads((tmp_path / "AAA.json").read_text())
    # 20 frames per second for 1.48 s: j / 20 s for j = 0..29 -> frame floor(j * 1.2) + 1, two windows of 50 max
    assert [f["frame"] for f in report["frames"]] == [int(j * 1.2 + 1e-6) + 1 for j in range(30)]
    assert not (tmp_path / "AAA.png").exists()
    # frames batched, channels_last, bf16: the same frames; the same scores (fp32), or close ones (bf16)
    runs = {}
    for name, extra in (("fp32", []), ("batched", ["--batch-size", "7", "--channels-last"]), ("amp", ["--amp"])):
        assert predict.main([str(tmp / "videos" / "BBB.mp4"), "--resume", ckpt, "-o", str(tmp_path / name),
                             "--no-png", *extra]) == 0
        runs[name] = json.loads((tmp_path / name / "BBB.json").read_text())["frames"]
    probs = {k: np.array([f["scores"] for f in v]) for k, v in runs.items()}
    assert [f["frame"] for f in runs["amp"]] == [f["frame"] for f in runs["fp32"]]
    np.testing.assert_allclose(probs["batched"], probs["fp32"], atol=1e-5)
    assert 0 < np.abs(probs["amp"] - probs["fp32"]).max() < 0.05
    # recorded settings win over the released experiment's; flags win over both
    opts, _, names = predict.resolve(["x.mp4", "--resume", ckpt])
    assert (opts.arch, opts.inputsize, opts.nclass, opts.window_smooth) == ("resnet18", 32, 5, 1) and names[4] == "action 4"
    opts, _, _ = predict.resolve(["x.mp4", "--resume", ckpt, "--window-smooth", "2"])
    assert opts.window_smooth == 2
    old = checkpoint(tmp_path / "old.pth.tar", tmp_path / "cache", ["--nhidden", "4"], settings=False)
    opts, _, names = predict.resolve(["x.mp4", "--resume", old, "--inputsize", "32"])
    released = predict.released_settings()
    assert (opts.sigma, opts.memory_decay, opts.temporal_weight) == (300.0, 1.0, 0.03) == \
        (released["sigma"], released["memory_decay"], released["temporal_weight"])
    assert (opts.arch, opts.nclass, opts.nhidden, names) == ("resnet18", 5, 4, [])  # read off the weights
    assert predict.main([str(tmp / "videos" / "BBB.mp4"), "--resume", old, "--inputsize", "32", "-o",
                         str(tmp_path / "old"), "--no-png"]) == 0
    assert json.loads((tmp_path / "old" / "BBB.json").read_text())["classes"][0]["name"] == "class " + \
        str(json.loads((tmp_path / "old" / "BBB.json").read_text())["classes"][0]["index"])


def test_bad_inputs_are_reported_and_the_others_done(setup, tmp_path, capsys):
    tmp, ckpt, _, _ = setup
    bad = tmp_path / "inputs"
    bad.mkdir()
    (bad / "text.mp4").write_text("not a video at all")
    (bad / "empty.webm").write_bytes(b"")
    with av.open(str(bad / "audio.mkv"), "w") as c:  # audio only
        s = c.add_stream("flac", rate=8000)
        for i in range(3):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 8000, i * 800, Fraction(1, 8000)
            c.mux(s.encode(frame))
        c.mux(s.encode())
    write_video(bad / "whole.mkv", 25, 100)
    data = (bad / "whole.mkv").read_bytes()
    (bad / "whole.mkv").unlink()
    (bad / "cut.mkv").write_bytes(data[: len(data) // 2])  # truncated: what decodes is scored
    shutil.copy(tmp / "videos" / "BBB.mp4", bad / "good.mp4")
    assert predict.main([str(bad), "--resume", ckpt, "-o", str(tmp_path / "out"), "--no-png"]) == 2
    captured = capsys.readouterr()
    assert "2 of 5 inputs scored" in captured.out
    for name, why in (("text.mp4", "cannot open: Invalid data found"), ("empty.webm", "an empty file"),
                      ("audio.mkv", "no video stream")):
        assert f"not scored: {bad / name}: {why}" in captured.err, name
    assert "note: decoded 1.92 s of the 4.00 s the container declares" in captured.out  # scored, with a warning
    assert sorted(os.listdir(tmp_path / "out")) == ["classify.txt", "cut.json", "good.json", "localize.txt"]


def test_bad_checkpoints_and_output_folder(setup, tmp_path, capsys):
    tmp, ckpt, _, _ = setup
    video = str(tmp / "videos" / "BBB.mp4")
    run = lambda *args: predict.cli.run(predict.main, [video, *map(str, args)], prog="predict.py")  # noqa: E731
    plain = tmp_path / "resnet.pth"
    torch.save(__import__("torchvision").models.resnet18().state_dict(), plain)
    flow = checkpoint(tmp_path / "flow.pth.tar", tmp_path / "cache", ["--dataset", "charadesflow"], settings=False)
    labels = tmp_path / "labels.csv"
    labels.write_text("a\nb\nc\n")
    cases = [(["--resume", plain], "not an AsyncTF checkpoint"),
             (["--resume", flow], "a flow-stream checkpoint"),
             (["--resume", ckpt, "--dataset", "jesterrgb", "--labels-file", labels], "are 3 but the checkpoint"),
             (["--resume", ckpt, "-o", tmp / "test.csv"], "cannot write to the output folder")]
    for args, message in cases:
        assert run(*args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("predict.py: error: ") and message in err and err.count("\n") == 1, err


def high_water_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def test_memory_stays_flat_in_the_video_length(setup, tmp_path):
    """Peak memory over what the process held before (Linux: the high-water mark, reset) of --fps 12 on a
    40-s video, against a 4-s one: decoded pictures, images and inputs are never all kept (all 960 decoded
    pictures of the long one would be 55 MB, its 480 scored images 27 MB)."""
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak memory")
    tmp, ckpt, _, _ = setup
    extra = {}
    for seconds in (4, 40):
        path = tmp_path / f"v{seconds}.mp4"
        rng = np.random.default_rng(0)
        with av.open(str(path), "w") as c:
            s = c.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=24)
            s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
            for i in range(24 * seconds):
                img = np.roll(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), i, axis=1)
                c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            c.mux(s.encode())
        opts, loaded, names = predict.resolve([str(path), "--resume", ckpt, "--fps", "12", "-o", str(tmp_path)])
        stream = predict.rgb_stream(opts, loaded)
        clip = predict.video_input.Clip(path.stem, str(path), "video")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the high-water mark starts again from what is resident now
        before = high_water_mb()
        pred, _ = predict.predict_clip(clip, [stream], names, opts)
        extra[seconds] = high_water_mb() - before
        assert len(pred.frames) == 12 * seconds
    assert extra[40] - extra[4] < 15, extra
