"""Sampling rules, frame listing, cache and errors of datasets.frame_index and datasets.frame_files
(SPEC 2, 11, 12) on Charades trees."""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from datasets import charadesflow, charadesrgb
from datasets import frame_files
from datasets import frame_index as ci
from utils.charades_csv import AnnotationError, Video, read_annotations

HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
ROWS = [  # quoted text fields with commas; BBB02 has no actions; CCC03 has no dir; DDD04 an empty one
    'AAA01,S01,"Kitchen, small",6,7,Yes,"Opens a door, then sits.","door;chair","Opens, sits.",'
    '"c002 0.0 0.5;c001 0.5 1.0;c002 1.1 1.2",1.25\n',
    'BBB02,S02,Bedroom,5,6,No,"Nothing, really.",,"Stands, waits.",,2.0\n',
    'CCC03,S03,Garage,4,5,Yes,"No frames, sadly.",car,"Drives, parks.",c003 0.0 1.0,1.0\n',
    'DDD04,S04,"Hall, long",4,5,Yes,Empty dir.,,x,c000 0.0 1.0,1.0\n',
]
NFRAMES = {"AAA01": 30, "BBB02": 9}
# train/val of AAA01 (n=30): i = 0,4,...,28 -> frame i+1; strict start < i/24 < end
AAA01_TRAIN = [(1, []), (5, [2]), (9, [2]), (13, []), (17, [1]), (21, [1]), (25, []), (29, [2])]
RGB = ci.FrameSource("charadesrgb", charadesrgb.NAMING, lambda path: read_annotations(path, 5))


def write_csv(path, rows=ROWS) -> str:
    path.write_text(HEADER + "".join(rows))
    return str(path)


def write_rgb_tree(root) -> str:
    for vid, n in NFRAMES.items():
        os.makedirs(root / vid)
        for f in range(1, n + 1):
            Image.new("RGB", (8, 8), (8 * f,) * 3).save(root / vid / f"{vid}-{f:06d}.jpg", quality=100)
    os.makedirs(root / "DDD04")
    (root / "DDD04" / "notes.txt").write_text("not a frame")
    return str(root)


@pytest.fixture
def tree(tmp_path):
    return write_csv(tmp_path / "ann.csv"), write_rgb_tree(tmp_path / "rgb"), str(tmp_path / "cache")


def samples(index):
    return [(index.video_id(i), int(index.frame[i]), index.classes(i).tolist()) for i in range(len(index))]


def test_list_frames_ignores_other_names(tmp_path):
    d = tmp_path / "V1"
    os.makedirs(d)
    for name in ["V1-000001.jpg", "V1-000002.jpg", "V1-1.jpg", "V2-000003.jpg", "V1-000004.png",
                 "V1-000001x.jpg", "V1-000001y.jpg", "V1-000002x.jpg", "V1-0000003.jpg", "V1-000000.jpg"]:
        (d / name).write_bytes(b"")
    assert frame_files.list_frames(str(d), "V1", charadesrgb.NAMING) == (2, ())
    assert frame_files.list_frames(str(d), "V1", charadesflow.NAMING) == (1, ())  # a lone x is not a usable pair
    assert frame_files.list_frames(str(tmp_path / "nope"), "nope", charadesrgb.NAMING) == (0, ())


@pytest.mark.parametrize("split", ["train", "val"])
def test_frame_level_samples_exact(tree, split, caplog):
    csv, root, cache = tree
    with caplog.at_level(logging.INFO, logger="datasets.frame_index"):
        index = ci.load_split(csv, root, split, cache, RGB, nclass=5, test_frames=4)
    expected = [("AAA01", f, c) for f, c in AAA01_TRAIN] + [("BBB02", 1, []), ("BBB02", 5, [])]
    assert samples(index) == expected
    assert index.skipped.tolist() == ["CCC03", "DDD04"]
    assert index.ids.tolist() == ["AAA01", "BBB02"] and index.nframes.tolist() == [30, 9]
    assert index.lengths.tolist() == [1.25, 2.0]   # the annotation's lengths of the kept videos
    assert index.video_ids == [v for v, _, _ in expected]
    assert any("skipped 2 of 4" in r.getMessage() and "CCC03" in r.getMessage() for r in caplog.records)


def test_val_video_positions(tree):
    csv, root, cache = tree
    index = ci.load_split(csv, root, "val_video", cache, RGB, nclass=5, test_frames=4)
    # AAA01: t_k*24 = k*1.25*24/4 = 0, 7.5, 15, 22.5; BBB02: 0, 12, 24, 36 -> clamped to n=9
    assert samples(index) == ([("AAA01", f, [1, 2]) for f in (1, 8, 16, 23)]
                              + [("BBB02", f, []) for f in (1, 9, 9, 9)])


def test_val_video_hits_official_localisation_points():
    video = Video("V", ((0, 0.0, 1.0),), 30.0)
    index = ci.build_index([video], [10_000], "val_video", test_frames=50)
    expected = [int(np.floor(j / 25 * 30.0 * 24 + 1e-9)) + 1 for j in range(25)]
    assert index.frame[0::2].tolist() == expected
    assert index.frame[1].item() == int(30 / 50 * 24) + 1  # 14.4 -> frame 15


def test_span_drops_tail_and_moves_back():
    video = Video("V", ((3, 0.0, 100.0),), 30 / 24)
    train = ci.build_index([video], [30], "train", span=10)
    assert train.frame.tolist() == [1, 5, 9, 13, 17, 21]  # 25 and 29 would need pairs 34, 38
    vv = ci.build_index([video], [30], "val_video", test_frames=4, span=10)
    assert vv.frame.tolist() == [1, 8, 16, 21]  # 23 moved back to 30-9
    short = ci.build_index([video], [5], "val_video", test_frames=4, span=10)
    assert short.frame.tolist() == [1, 1, 1, 1]  # at least 1


def test_cache_reused_and_rebuilt(tree, monkeypatch, tmp_path, caplog):
    csv, root, cache = tree
    calls = []
    real = ci.build_index
    monkeypatch.setattr(ci, "build_index", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = ci.load_split(csv, root, "train", cache, RGB, nclass=5)
    again = ci.load_split(csv, root, "train", cache, RGB, nclass=5)
    assert len(calls) == 1 and samples(first) == samples(again)
    assert not [n for n in os.listdir(cache) if n.endswith(".tmp")]
    # a changed CSV rebuilds: AAA01's c001 becomes c003 (a negative start is now an AnnotationError)
    write_csv(tmp_path / "ann.csv", [ROWS[0].replace("c001 0.5 1.0", "c003 0.5 1.0")] + ROWS[1:])
    changed = ci.load_split(csv, root, "train", cache, RGB, nclass=5)
    assert len(calls) == 2 and samples(changed)[4] == ("AAA01", 17, [3])
    # another data root rebuilds
    other = shutil.copytree(root, tmp_path / "rgb2")
    ci.load_split(csv, str(other), "train", cache, RGB, nclass=5)
    assert len(calls) == 3
    # another sampling parameter rebuilds
    ci.load_split(csv, root, "train", cache, dataclasses.replace(RGB, span=10), nclass=5)
    assert len(calls) == 4
    # a corrupt cache file is rebuilt with a log line, not fatal
    for name in os.listdir(cache):
        (tmp_path / "cache" / name).write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="datasets.frame_index"):
        rebuilt = ci.load_split(csv, root, "train", cache, RGB, nclass=5)
    assert len(calls) == 5 and samples(rebuilt) == samples(changed)
    assert any("rebuilding" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("row, message", [
    ('EEE05,S,R,1,1,Yes,x,,y,c12 x,3.0\n', "malformed action 'c12 x'"),
    ('EEE05,S,R,1,1,Yes,x,,y,c005 0.0 1.0,3.0\n', "out of range"),
])
def test_bad_actions(tmp_path, tree, row, message):
    _, root, cache = tree
    csv = write_csv(tmp_path / "bad.csv", ROWS + [row])
    with pytest.raises(AnnotationError, match=message) as err:
        ci.load_split(csv, root, "train", cache, RGB, nclass=5)
    assert "bad.csv" in str(err.value) and "line 6" in str(err.value) and "EEE05" in str(err.value)


def test_missing_column_csv_and_data_dir(tmp_path, tree):
    _, root, cache = tree
    bad = tmp_path / "nocol.csv"
    bad.write_text("id,subject,length\nAAA01,S,1.0\n")
    with pytest.raises(AnnotationError, match="missing column.*actions"):
        ci.load_split(str(bad), root, "train", cache, RGB, nclass=5)
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        ci.load_split(str(tmp_path / "missing.csv"), root, "train", cache, RGB, nclass=5)
    with pytest.raises(FileNotFoundError, match="no_such_root"):
        ci.load_split(str(tmp_path / "ann.csv"), str(tmp_path / "no_such_root"), "train", cache, RGB, nclass=5)


def test_gaps_listed_per_plane_and_described(tmp_path):
    d = tmp_path / "V1"
    os.makedirs(d)
    for f in [1, 2, 3, 5, 8, 9, 10]:
        for axis in "xy":
            if (f, axis) != (9, "y"):  # frame 9 lacks its y plane: a gap for flow
                (d / f"V1-{f:06d}{axis}.jpg").write_bytes(b"")
    listing = frame_files.list_frames(str(d), "V1", charadesflow.NAMING)
    assert listing == (10, (4, 6, 7, 9))
    assert frame_files.describe_gaps(listing) == "frames 4, 6-7, 9 missing of 1..10"
    assert frame_files.describe_gaps(frame_files.Listing(5, (2,))) == "frame 2 missing of 1..5"


def test_frames_present_with_stacks():
    """``--frame-gaps present`` with flow stacks of 10: no sample needs the missing frame 13."""
    video = Video("V", ((3, 0.0, 100.0),), 30 / 24)
    listing = frame_files.Listing(30, (13,))
    train = ci.build_index([video], [listing], "train", span=10, gaps="present")
    assert train.frame.tolist() == [1, 17, 21]  # 5 and 9 would stack frame 13; 13 is it
    vv = ci.build_index([video], [listing], "val_video", test_frames=4, span=10, gaps="present")
    assert vv.frame.tolist() == [1, 3, 16, 21]  # 8 -> 3 (14 is farther), 23 -> 21 (the stack must fit)
    assert ci.build_index([video], [listing], "train", span=10).frame.tolist() == []  # skip: left out
    assert ci.build_index([video], [listing], "train", span=10).gapped.tolist() == ["V"]


def test_nearest_usable_against_a_scan_of_every_start():
    """Each frame moves to the nearest usable start, the earlier on a tie; None when there is none."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 25))
        ok = np.zeros(n + 1, bool)
        ok[1:] = rng.random(n) < rng.random()
        frames = rng.integers(1, n + 1, 6)
        starts = np.flatnonzero(ok).tolist()
        want = [min(starts, key=lambda s: (abs(s - f), s)) for f in frames] if starts else None
        got = ci.nearest_usable(frames, ok)
        assert (got if got is None else got.tolist()) == want, (ok, frames)


def test_spread_placement_is_the_floor_of_linspace():
    """placement 'spread': floor(linspace(0, n-1, T)) + 1, the original's."""
    assert ci.val_video_frames(10, None, 4, 24.0, "spread").tolist() == [1, 4, 7, 10]
    assert ci.val_video_frames(5, None, 3, 24.0, "spread").tolist() == [1, 3, 5]
    assert ci.val_video_frames(7, None, 1, 24.0, "spread").tolist() == [1]


def test_gaps_reported_per_video_or_as_one_error(caplog):
    videos = [Video("V", (), 1.0), Video("W", (), 1.0), Video("X", (), 1.0)]
    listings = [frame_files.Listing(10, (4,)), frame_files.Listing(5), frame_files.Listing(8, (2, 3))]
    with pytest.raises(ci.DatasetError, match=r"^2 of the 3 videos of ann\.csv have gaps in their frame numbering "
                       r"under /rgb: V: frame 4 missing of 1\.\.10; X: frames 2-3 missing of 1\.\.8 \(--frame-gaps"):
        ci._report_gaps(videos, listings, RGB, "ann.csv", "/rgb", "error")
    for gaps, what in (("skip", "skipped (--frame-gaps present would"), ("present", "only the frames present are")):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            ci._report_gaps(videos, listings, RGB, "ann.csv", "/rgb", gaps)
        messages = [r.getMessage() for r in caplog.records]
        assert len(messages) == 2 and "video V: frame 4" in messages[0] and "video X" in messages[1], messages
        assert all(what in m for m in messages), messages


@pytest.mark.parametrize("bad", ["../AAA01", "..", "a/b"])
def test_ids_that_leave_the_data_directory_are_refused(tmp_path, bad):
    """An id names <data>/<id>/: one that climbs out of --data (or into a sub-folder) is an error naming the
    annotation file and the id, before any directory is listed."""
    csv = write_csv(tmp_path / "ann.csv", [ROWS[0].replace("AAA01", bad, 1)] + ROWS[1:])
    os.makedirs(tmp_path / "rgb")
    with pytest.raises(ci.DatasetError, match=r"ann\.csv: 1 video id\(s\) are not plain directory names.*"
                       + re.escape(repr(bad))):
        ci.load_split(csv, str(tmp_path / "rgb"), "train", str(tmp_path / "cache"), RGB, nclass=5)


def test_spread_frames_are_the_originals_float_linspace():
    """The original's val_video frames of Jester / SSv2 (and the subset): ``floor(np.linspace(0, n-1, T)) + 1``,
    i.e. ``floor(k * step) + 1`` with the float ``step = (n-1)/(T-1)`` and the last frame ``n``.  Where
    ``k*(n-1)/(T-1)`` is an integer the float product can fall just below it: at n=120 (the first such length
    for T=50), k=21 and 42 give frames 51 and 102, where exact arithmetic gives 52 and 103."""
    def original(n: int, T: int) -> list[int]:
        step = (n - 1) / (T - 1)
        return [int(k * step // 1) + 1 for k in range(T - 1)] + [n]
    assert ci.val_video_frames(120, None, 50, 24, "spread")[[20, 21, 22, 41, 42, 43]].tolist() == [49, 51, 54, 100,
                                                                                                   102, 105]
    differs = []
    for n in range(1, 1000):
        for T in (25, 50):
            got = ci.val_video_frames(n, None, T, 24, "spread").tolist()
            assert got == original(n, T), (n, T)
            if got != [k * (n - 1) // (T - 1) + 1 for k in range(T)]:
                differs.append((n, T))
    assert differs[:3] == [(120, 50), (239, 50), (288, 50)] and (393, 25) in differs
