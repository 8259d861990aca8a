"""extract_frames.py on tiny videos written here with PyAV (skipped without it): frame counts and the
source frame each output frame shows (a frame counter drawn as big black/white blocks survives the
codecs, JPEG and scaling), --short-side / --format / --ids-from, a corrupt file reported and skipped,
a run killed mid-video then resumed giving the same tree, and --flow on a known motion."""
import csv
import math
import os
import struct
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

import extract_frames as xf
from utils import cli

W, H = 64, 48                     # 4 x 2 blocks of 16 x 24 pixels: an 8-bit frame counter
HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length".split(",")
# name -> (codec, frame rate, frames); the true times of frame i are i / rate
CFR = {"cfr25.mp4": ("h264", Fraction(25), 23), "cfr30.webm": ("libvpx", Fraction(30), 17),
       "ntsc.mp4": ("mpeg4", Fraction(30000, 1001), 13)}
VFR_MS = [0, 40, 50, 120, 200, 210, 330, 400]  # a variable frame rate video: timestamps in ms


def counter_frame(i: int) -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    for b in range(8):
        if i >> b & 1:
            img[(b // 4) * 24:(b // 4 + 1) * 24, (b % 4) * 16:(b % 4 + 1) * 16] = 255
    return img


def read_counter(path) -> int:
    """The counter of a (possibly scaled) frame: the centre of each block, thresholded."""
    img = np.asarray(Image.open(path).convert("L"), np.float32)
    bh, bw = img.shape[0] / 2, img.shape[1] / 4
    return sum(1 << b for b in range(8) if img[int(((b // 4) + 0.5) * bh), int(((b % 4) + 0.5) * bw)] > 128)


def encoder(av, codec: str) -> str:
    if codec == "h264":  # whichever the wheel encodes
        codec = next((c for c in ("libx264", "h264", "libopenh264") if c in av.codecs_available), "mpeg4")
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV cannot encode {codec}")
    return codec


def write_video(av, path, codec, rate, frames, pts_ms=None, options=None) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream(encoder(av, codec), rate=rate, options=options or {})
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        if pts_ms is not None:
            s.codec_context.time_base = Fraction(1, 1000)
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            if pts_ms is not None:
                f.pts, f.time_base = pts_ms[i], Fraction(1, 1000)
            c.mux(s.encode(f))
        c.mux(s.encode())


def expected(times: list[Fraction], end: Fraction, fps: Fraction = Fraction(24)) -> list[int]:
    """The documented rule, directly: every instant (k-1)/fps < end shows the last frame at or before it."""
    n = max(1, math.ceil(end * fps))
    return [max(j for j, t in enumerate(times) if t <= Fraction(k, 1) / fps) for k in range(n)]


def run(*args) -> int:
    """The command line's exit status (``sys.exit(cli.run(main))``)."""
    return cli.run(xf.main, [str(a) for a in args], prog="extract_frames.py")


def tree(root) -> dict[str, bytes]:
    return {os.path.relpath(os.path.join(d, f), root): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(root) for f in files if f.endswith(".jpg")}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    av = pytest.importorskip("av")
    root = tmp_path_factory.mktemp("videos")
    truth = {}
    for name, (codec, rate, m) in CFR.items():
        write_video(av, root / name, codec, rate, [counter_frame(i) for i in range(m)])
        truth[name.split(".")[0]] = expected([i / rate for i in range(m)], m / rate)
    (root / "sub").mkdir()
    write_video(av, root / "sub" / "vfr.mkv", "h264", 30, [counter_frame(i) for i in range(len(VFR_MS))], VFR_MS)
    with av.open(str(root / "sub" / "vfr.mkv")) as c:  # the last frame's duration is the container's
        last = list(c.decode(video=0))[-1]
    times = [Fraction(t, 1000) for t in VFR_MS]
    truth["vfr"] = expected(times, times[-1] + last.duration * last.time_base)
    (root / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(3000))
    (root / "notes.txt").write_text("not a video")
    return root, truth


@pytest.fixture(scope="module")
def extracted(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("frames") / "rgb"
    assert run(videos[0], out, "--workers", 1) == 0
    return out


def test_frames_follow_the_rule_and_a_corrupt_video_is_skipped(videos, extracted):
    root, truth = videos
    assert sorted(p.name for p in extracted.iterdir() if p.is_dir()) == sorted(truth)  # no partial folder
    for vid, shown in truth.items():
        names = sorted(os.listdir(extracted / vid))
        assert names == [f"{vid}-{k:06d}.jpg" for k in range(1, len(shown) + 1)], vid
        assert [read_counter(extracted / vid / f) for f in names] == shown, vid
        assert Image.open(extracted / vid / names[0]).size == (W, H)
    assert truth["cfr25"] == [math.floor(k * 25 / 24) for k in range(23)]  # ceil(23 * 24 / 25) = 23 frames
    assert len(truth["cfr30"]) == 14 and len(truth["ntsc"]) == 11 and len(truth["vfr"]) >= 10
    with open(extracted / xf.SUMMARY_FILE) as f:
        rows = list(csv.DictReader(f))
    assert [(r["id"], r["status"]) for r in rows] == [("broken", "failed")]
    assert "cannot open" in rows[0]["message"] and "Invalid data" in rows[0]["message"]


def test_short_side_format_and_ids_from(videos, tmp_path, capsys):
    root, truth = videos
    ids = tmp_path / "ids.csv"
    with open(ids, "w", newline="") as f:
        csv.writer(f).writerows([HEADER] + [[v, "S", "Kitchen", "", "", "Yes", "s, t", "", "", "", "1.0"]
                                            for v in ("ntsc", "gone", "vfr")])
    out = tmp_path / "jester"
    assert run(root, out, "--ids-from", ids, "--short-side", 24, "--format", "jester", "--fps", 24,
               "--quality", 95, "--workers", 1) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["ntsc", "vfr"]
    for vid in ("ntsc", "vfr"):
        names = sorted(os.listdir(out / vid))
        assert names == [f"{k:05d}.jpg" for k in range(1, len(truth[vid]) + 1)]
        assert [read_counter(out / vid / f) for f in names] == truth[vid]
        assert Image.open(out / vid / names[0]).size == (32, 24)
    assert "missing: gone" in capsys.readouterr().out


def test_display_matrix_turns_the_frames_upright(tmp_path):
    av = pytest.importorskip("av")
    (tmp_path / "v").mkdir()
    path = tmp_path / "v" / "phone.mp4"
    write_video(av, path, "h264", 25, [counter_frame(i) for i in range(3)])
    data = bytearray(path.read_bytes())  # the track header's matrix: 90 degrees clockwise, as a phone writes
    at = data.index(b"tkhd") + 4 + 40
    data[at:at + 36] = struct.pack(">9i", 0, 1 << 16, 0, -(1 << 16), 0, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))
    assert run(tmp_path / "v", tmp_path / "out", "--short-side", 24, "--workers", 1) == 0
    for k in range(1, 4):
        img = Image.open(tmp_path / "out" / "phone" / f"phone-{k:06d}.jpg")
        assert img.size == (24, 32)  # portrait now
        turned = tmp_path / "back.png"
        img.rotate(90, expand=True).save(turned)  # a quarter turn counterclockwise undoes it
        assert read_counter(turned) == math.floor((k - 1) * 25 / 24)


KILLER = """
import os, signal, sys
import extract_frames as xf
write, seen = xf.write_file, []
def write_file(path, data):  # dies mid-way through the second video
    seen.append(os.path.basename(os.path.dirname(path)))
    if len(set(seen)) == 2 and seen.count(seen[-1]) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    write(path, data)
xf.write_file = write_file
xf.main(sys.argv[1:])
"""


def test_killed_run_resumes_to_the_same_tree(videos, extracted, tmp_path, repo_root):
    out = tmp_path / "rgb"
    args = [str(videos[0]), str(out), "--workers", "1"]
    killed = subprocess.run([sys.executable, "-c", KILLER, *args], cwd=repo_root, capture_output=True)
    assert killed.returncode == -9
    done = [p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    partial = os.listdir(out / xf.PARTIAL)
    assert len(done) == 1 and len(partial) == 1 and len(os.listdir(out / xf.PARTIAL / partial[0])) == 2
    rerun = subprocess.run([sys.executable, "extract_frames.py", *args[:2], "--workers", "2"], cwd=repo_root,
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(done)} already extracted" in rerun.stdout
    assert tree(out) == tree(extracted) and not (out / xf.PARTIAL).exists()
    assert run(videos[0], out, "--fps", 12) == 2  # other settings into the same tree: refused
    assert run(tmp_path / "nowhere", out) == 2 and tree(out) == tree(extracted)


@pytest.mark.parametrize("method", ["tvl1", "farneback"])
def test_flow_has_the_sign_of_the_motion_and_128_where_static(tmp_path, method):
    av = pytest.importorskip("av")
    cv2 = pytest.importorskip("cv2")
    if method == "tvl1" and not hasattr(getattr(cv2, "optflow", None), "DualTVL1OpticalFlow_create"):
        pytest.skip("OpenCV without the contrib module")
    rng = np.random.default_rng(0)
    tex = np.asarray(Image.fromarray(rng.integers(0, 256, (160, 160), np.uint8)).resize((320, 320)), np.int32)
    tex = np.clip((tex - 128) * 3 + 128, 0, 255).astype(np.uint8)
    frames = []
    for i in range(4):  # a square of texture moving 2 px right and 1 px down per frame, the rest static
        img = tex[:H, :W].copy()
        img[12:36, 20:44] = tex[100 - i:124 - i, 100 - 2 * i:124 - 2 * i]
        frames.append(np.repeat(img[..., None], 3, 2))
    (tmp_path / "v").mkdir()
    write_video(av, tmp_path / "v" / "move.mp4", "h264", 24, frames, options={"qp": "0"})
    out, flow = tmp_path / "rgb", tmp_path / "flow"  # tvl1: RGB and flow in one tree; farneback: two
    where = ["--flow"] if method == "tvl1" else ["--flow-out", flow]
    assert run(tmp_path / "v", out, *where, "--flow-method", method, "--workers", 1) == 0
    flow = out if method == "tvl1" else flow
    rgb = sorted(f for f in os.listdir(out / "move") if f[-5].isdigit())
    assert rgb == [f"move-{k:06d}.jpg" for k in range(1, 5)]
    assert sorted(f for f in os.listdir(flow / "move") if f[-5] in "xy") == [
        f"move-{k:06d}{a}.jpg" for k in range(1, 4) for a in "xy"]  # n - 1 pairs
    assert len(os.listdir(out / "move")) == (10 if method == "tvl1" else 4)
    for k in range(1, 4):
        x, y = (np.asarray(Image.open(flow / "move" / f"move-{k:06d}{a}.jpg"), np.float32) for a in "xy")
        # 2 px -> round(255 * 22 / 40) = 140, 1 px -> 134; static -> 128
        assert 136 <= np.median(x[18:30, 26:38]) <= 143 and 131 <= np.median(y[18:30, 26:38]) <= 137
        for corner in (np.s_[:8, :8], np.s_[-8:, -8:]):
            assert abs(np.median(x[corner]) - 128) <= 1 and abs(np.median(y[corner]) - 128) <= 1


def test_without_pyav_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "av", None)  # None in sys.modules makes the import fail
    assert run(tmp_path, tmp_path / "out", "--workers", 1) == 2
    assert "pip install av" in capsys.readouterr().err and not (tmp_path / "out").exists()
