"""predict.py with two streams and --out-video, end to end on a tiny video written here and tiny checkpoints:
a frame folder holding its flow gives get_alltest.py + combine_rgb_flow.py's numbers (1e-5); a video gets
its flow computed while it decodes, each stream's scores in its JSON and a labelled video with its frame
count, size, duration and audio; a frame folder's labelled video is drawn at 24 fps; bad inputs are one
line each, and the other inputs are still done."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

import combine_rgb_flow
import extract_frames
import get_alltest
import opts as options
import predict
from checkpoints.settings import model_settings
from models import build_network
from utils import cli
from utils.submission import read_submission

av = pytest.importorskip("av")
pytest.importorskip("cv2")
HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length".split(",")
C = 5
MODEL = ["--arch", "resnet18", "--inputsize", "32", "--nhidden", "3", "--sigma", "300",
         "--window-smooth", "1", "--temporal-weight", "0.5", "--memory-decay", "1.0", "--device", "cpu",
         "--test-frames", "10"]
RATE, N, W, H = 12, 30, 64, 48      # 2.5 s: a tree of 60 frames and 59 flow frames


def write_video(path, audio: bool = True) -> str:
    """A texture sliding right 2 px a frame, with a tone as its audio."""
    rng = np.random.default_rng(0)
    tex = rng.integers(0, 256, (H // 8, 2 * W // 8, 3), np.uint8).repeat(8, 0).repeat(8, 1)
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=RATE)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        a = c.add_stream("aac", rate=24000) if audio else None
        for i in range(N):
            c.mux(v.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(tex[:, 2 * i:2 * i + W]), format="rgb24")))
        c.mux(v.encode())
        if a is not None:
            tone = (0.2 * np.sin(np.arange(24000 * N // RATE) / 5)).astype(np.float32)
            for k in range(0, len(tone), 1024):
                f = av.AudioFrame.from_ndarray(tone[None, k:k + 1024], format="fltp", layout="mono")
                f.sample_rate, f.pts = 24000, k
                c.mux(a.encode(f))
            c.mux(a.encode())
    return str(path)


def checkpoint(path, cache, dataset: str = "charadesrgb", nclass: int = C, seed: int = 0) -> str:
    o = options.parse(MODEL + ["--dataset", dataset, "--nclass", str(nclass), "--cache-dir", str(cache)])
    torch.manual_seed(seed)
    net = build_network(o)
    torch.save({"epoch": 1, "arch": o.arch, "state_dict": net.state_dict(), "mAP": 0.0,
                "settings": model_settings(o, [f"action {c}" for c in range(nclass)])}, path)
    return str(path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("streams")
    (tmp / "videos").mkdir()
    write_video(tmp / "videos" / "mv.mp4")
    assert extract_frames.main([str(tmp / "videos"), str(tmp / "tree"), "--flow", "--flow-method", "farneback",
                                "--short-side", "48", "--workers", "1"]) == 0
    ckpts = {"rgb": checkpoint(tmp / "rgb.pth.tar", tmp / "cache"),
             "flow": checkpoint(tmp / "flow.pth.tar", tmp / "cache", "charadesflow", seed=1),
             "flow3": checkpoint(tmp / "flow3.pth.tar", tmp / "cache", "charadesflow", nclass=3)}
    return tmp, ckpts


def run(*args) -> int:
    try:
        return cli.run(predict.main, [str(a) for a in args], prog="predict.py")
    except SystemExit as e:   # the options parser's own errors
        return e.code


def test_frame_folder_two_streams_match_get_alltest_and_combine(setup):
    tmp, ckpts = setup
    n = len([f for f in (tmp / "tree" / "mv").iterdir() if f.name[-5].isdigit()])
    with open(tmp / "test.csv", "w", newline="") as f:   # the length predict.py gives a frame folder: frames / 24
        csv.writer(f).writerows([HEADER, ["mv", "", "", "", "", "", "", "", "", "c001 0.0 1.0", repr(n / 24)]])
    common = MODEL + ["--nclass", str(C), "--data", str(tmp / "tree"), "--val-file", str(tmp / "test.csv"),
                      "--workers", "0", "--cache-dir", str(tmp / "cache")]
    get_alltest.main(common + ["--resume", ckpts["rgb"], "--out-dir", str(tmp / "rgb")])
    get_alltest.main(common + ["--resume", ckpts["flow"], "--dataset", "charadesflow", "--out-dir", str(tmp / "flow")])
    weights = (0.3, 0.6)
    for kind in ("classify", "localize"):
        combine_rgb_flow.combine(str(tmp / "rgb" / f"{kind}.txt"), str(tmp / "flow" / f"{kind}.txt"),
                                 str(tmp / f"fused_{kind}.txt"), weights, C)
    assert run(tmp / "tree" / "mv", "--resume", ckpts["rgb"], "--flow-resume", ckpts["flow"], "--weights",
               *weights, "-o", tmp / "out", "--no-png") == 0
    for kind in ("classify", "localize"):
        want = read_submission(str(tmp / f"fused_{kind}.txt"), C).scores
        got = read_submission(str(tmp / "out" / f"{kind}.txt"), C).scores
        np.testing.assert_allclose(got, want, atol=1e-5)
    pred = json.loads((tmp / "out" / "mv.json").read_text())
    rgb_alone = read_submission(str(tmp / "rgb" / "classify.txt"), C).scores[0]
    np.testing.assert_allclose(pred["streams"]["rgb"]["scores"], rgb_alone, atol=1e-5)
    assert abs(np.asarray(pred["streams"]["flow"]["scores"]) - rgb_alone).max() > 1e-3   # two different streams


def test_video_two_streams_and_labelled_video(setup, capsys):
    tmp, ckpts = setup
    out = tmp / "vout"
    assert run(tmp / "videos" / "mv.mp4", "--resume", ckpts["rgb"], "--flow-resume", ckpts["flow"], "--flow-method",
               "farneback", "--flow-short-side", "48", "-o", out, "--out-video", "--no-png") == 0
    pred = json.loads((out / "mv.json").read_text())
    flow = [f["frame"] for f in pred["streams"]["flow"]["frames"]]
    assert len(flow) == 10 and max(flow) == 59 - 9   # the last stack moved back to fit the 59 flow frames
    rgb, fl = (np.asarray(pred["streams"][s]["scores"]) for s in ("rgb", "flow"))
    np.testing.assert_allclose([c["score"] for c in sorted(pred["classes"], key=lambda c: c["index"])],
                               0.5 * rgb + 0.5 * fl, atol=1e-6)   # the streams' video scores, fused
    with av.open(str(out / "mv.mp4")) as c:
        frames = list(c.decode(video=0))
        assert len(frames) == N and (frames[0].width, frames[0].height) == (W, H)
        end = (frames[-1].pts + frames[-1].duration) * frames[-1].time_base
        assert float(end) == pytest.approx(N / RATE, abs=1e-3)
        assert c.streams.audio and c.streams.audio[0].codec_context.name == "aac"


def test_frame_folder_labelled_video_is_drawn_at_24_fps(setup):
    tmp, ckpts = setup
    assert run(tmp / "tree" / "mv", "--resume", ckpts["rgb"], "-o", tmp / "fout", "--out-video", "--no-png") == 0
    n = len([f for f in (tmp / "tree" / "mv").iterdir() if f.name[-5].isdigit()])
    with av.open(str(tmp / "fout" / "mv.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == n and c.streams.video[0].average_rate == 24


@pytest.mark.parametrize("flags, message", [
    (["--resume", "{flow}"], "--resume .*flow.pth.tar: a flow-stream checkpoint .* give it as --flow-resume"),
    (["--resume", "{rgb}", "--flow-resume", "{rgb}"], "--flow-resume .*rgb.pth.tar: an RGB checkpoint"),
    (["--resume", "{rgb}", "--flow-resume", "{flow3}"], "scores 3 classes but --resume .* scores 5: the two streams"),
    (["--resume", "{rgb}", "--flow-resume", "{flow}", "--online"], "--online scores the RGB stream only"),
    (["--resume", "{rgb}", "--weights", "0", "0"], "--weights 0 0: they sum to 0"),
    (["--resume", "{rgb}", "--weights", "1", "-1"], "--weights 1 -1: each weight must be a finite number >= 0"),
])
def test_bad_checkpoints_and_options_are_one_line(setup, capsys, flags, message):
    tmp, ckpts = setup
    code = run(tmp / "videos" / "mv.mp4", *[f.format(**ckpts) for f in flags], "-o", tmp / "bad")
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert __import__("re").search(message, err), err


def test_a_bad_input_among_others_is_reported_and_the_rest_done(setup, capsys):
    tmp, ckpts = setup
    (tmp / "mixed").mkdir(exist_ok=True)
    shutil.copy(tmp / "videos" / "mv.mp4", tmp / "mixed" / "good.mp4")
    (tmp / "mixed" / "broken.mp4").write_bytes(b"not a video at all")
    code = run(tmp / "mixed", "--resume", ckpts["rgb"], "--flow-resume", ckpts["flow"], "--flow-method", "farneback",
               "--flow-short-side", "48", "-o", tmp / "mout", "--no-png", "--out-video")
    err = capsys.readouterr().err
    assert code == 2 and "broken.mp4" in err and "Traceback" not in err
    assert (tmp / "mout" / "good.json").exists() and (tmp / "mout" / "good.mp4").exists()
    assert read_submission(str(tmp / "mout" / "classify.txt"), C).ids == ["good"]
