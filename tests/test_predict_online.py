"""predict.py --online end to end: a frame's scores do not change when later frames change or are cut off (the
offline synchronous mode's do: the positive control), the outputs of the offline mode plus a labelled video
written while scoring, --realtime pacing and dropping, a generated live source (FORMAT:TARGET), a URL that
does not open, and a stream that breaks off mid-way (what was scored is written)."""
from __future__ import annotations

import json
import re
import shutil
import time
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

import train
from test_predict_streams import N, RATE, checkpoint, run, write_video

av = pytest.importorskip("av")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A video, its frame tree as three frame folders (whole, cut after frame 36, frames after 36 changed),
    and a checkpoint."""
    import extract_frames
    tmp = tmp_path_factory.mktemp("online")
    (tmp / "videos").mkdir()
    write_video(tmp / "videos" / "mv.mp4")
    assert extract_frames.main([str(tmp / "videos"), str(tmp / "tree"), "--workers", "1"]) == 0
    n = len(list((tmp / "tree" / "mv").iterdir()))
    for name in ("whole", "cut", "changed"):
        (tmp / "folders" / name).mkdir(parents=True)
        for k in range(1, (36 if name == "cut" else n) + 1):
            img = Image.open(tmp / "tree" / "mv" / f"mv-{k:06d}.jpg")
            if name == "changed" and k > 36:
                img = Image.fromarray(255 - np.asarray(img))
            img.save(tmp / "folders" / name / f"{name}-{k:06d}.jpg", quality=95)
    return tmp, checkpoint(tmp / "rgb.pth.tar", tmp / "cache")


def frame_scores(path) -> dict[int, np.ndarray]:
    return {f["frame"]: np.asarray(f["scores"]) for f in json.loads(path.read_text())["frames"]}


def test_online_scores_are_causal_and_offline_scores_are_not(setup):
    tmp, ckpt = setup
    folders = [tmp / "folders" / name for name in ("whole", "cut", "changed")]
    assert run(*folders, "--resume", ckpt, "--online", "--fps", "6", "-o", tmp / "on", "--no-png") == 0
    assert run(*folders, "--resume", ckpt, "--fps", "6", "-o", tmp / "off", "--no-png") == 0
    diffs = {}
    for mode in ("on", "off"):
        whole = frame_scores(tmp / mode / "whole.json")
        for other in ("cut", "changed"):
            got = frame_scores(tmp / mode / f"{other}.json")
            common = [k for k in got if k <= 36]
            assert common == [1, 5, 9, 13, 17, 21, 25, 29, 33]   # floor(j * 24 / 6) + 1
            diffs[mode, other] = max(np.abs(got[k] - whole[k]).max() for k in common)
    assert diffs["on", "cut"] < 1e-5 and diffs["on", "changed"] < 1e-5
    assert diffs["off", "cut"] > 1e-3 and diffs["off", "changed"] > 1e-3   # the same check fails offline


def test_online_outputs_and_labelled_video_from_a_video(setup, capsys):
    tmp, ckpt = setup
    assert run(tmp / "videos" / "mv.mp4", "--resume", ckpt, "--online", "--fps", "4", "-o", tmp / "v",
               "--out-video") == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if re.match(r"\s*\d+\s+\d+\.\d\d s  ", line)]   # frame, time, top 3
    assert [int(line.split()[0]) for line in lines] == [1, 7, 13, 19, 25, 31, 37, 43, 49, 55]   # 2.5 s at 4 fps
    assert "10 frames scored, 0 dropped" in out
    for name in ("mv.json", "mv.png", "mv.mp4", "classify.txt", "localize.txt"):
        assert (tmp / "v" / name).exists()
    with av.open(str(tmp / "v" / "mv.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == N and c.streams.audio


def counts(out: str) -> tuple[int, int]:
    """(frames scored, frames dropped) from the summary line of an online run."""
    m = re.search(r"online: (\d+) frames scored, (\d+) dropped", out)
    return int(m.group(1)), int(m.group(2))


def test_realtime_paces_the_file_and_drops_rather_than_falls_behind(setup, capsys, monkeypatch):
    tmp, ckpt = setup
    began = time.perf_counter()
    assert run(tmp / "videos" / "mv.mp4", "--resume", ckpt, "--online", "--realtime", "--fps", "4", "-o",
               tmp / "rt", "--no-png") == 0
    assert time.perf_counter() - began > 2.25 - 0.1   # the last frame scored is due at 2.25 s
    assert sum(counts(capsys.readouterr().out)) == 10
    forward = train.forward

    def slow(*args):   # a network slower than the frames come: 0.6 s a frame at 4 frames a second
        time.sleep(0.6)
        return forward(*args)
    monkeypatch.setattr(train, "forward", slow)
    assert run(tmp / "videos" / "mv.mp4", "--resume", ckpt, "--online", "--realtime", "--fps", "4", "-o",
               tmp / "rt2", "--no-png") == 0
    scored, dropped = counts(capsys.readouterr().out)
    assert scored + dropped == 10 and dropped >= 4


def test_live_sources_and_a_url_that_does_not_open(setup, capsys):
    tmp, ckpt = setup
    source = "lavfi:testsrc=duration=1:size=64x48:rate=12"
    assert run(source, "--resume", ckpt, "--online", "--fps", "4", "-o", tmp / "live", "--out-video", "--no-png") == 0
    (pred,) = list((tmp / "live").glob("*.json"))
    assert len(json.loads(pred.read_text())["frames"]) == 4 and list((tmp / "live").glob("*.mp4"))
    capsys.readouterr()
    assert run("rtsp://127.0.0.1:9/none", "--resume", ckpt, "--online", "-o", tmp / "url") == 2
    err = capsys.readouterr().err
    assert "rtsp://127.0.0.1:9/none: cannot open it" in err and "Traceback" not in err


def test_a_stream_that_breaks_off_keeps_what_was_scored(setup):
    tmp, ckpt = setup
    (tmp / "ts").mkdir()
    with av.open(str(tmp / "videos" / "mv.mp4")) as src, av.open(str(tmp / "ts" / "whole.ts"), "w") as dst:
        v = dst.add_stream("mpeg2video", rate=RATE)
        v.width, v.height, v.pix_fmt = src.streams.video[0].width, src.streams.video[0].height, "yuv420p"
        for i, frame in enumerate(src.decode(video=0)):
            frame.pts, frame.time_base = i, Fraction(1, RATE)
            dst.mux(v.encode(frame))
        dst.mux(v.encode())
    data = (tmp / "ts" / "whole.ts").read_bytes()
    (tmp / "ts" / "broken.ts").write_bytes(data[: len(data) * 6 // 10])
    shutil.move(tmp / "ts" / "whole.ts", tmp / "whole.ts")
    assert run(tmp / "ts" / "broken.ts", "--resume", ckpt, "--online", "--fps", "4", "-o", tmp / "br", "--out-video",
               "--no-png") == 0
    frames = json.loads((tmp / "br" / "broken.json").read_text())["frames"]
    assert 3 <= len(frames) < 10 and (tmp / "br" / "broken.mp4").exists()
