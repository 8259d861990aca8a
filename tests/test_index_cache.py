"""datasets/index_cache.py through frame_index.load_split: a frame tree that changes after its index was
cached (frames removed, a video added, a change within the timestamp resolution) is noticed, only the
changed videos are listed again, and one line says so; nothing is listed when nothing changed.  Frame
headers are checked when an index is built, and the error says how to go on without a bad frame."""
from __future__ import annotations

import logging
import os

import pytest
from PIL import Image

from datasets import frame_index as ci
from datasets import index_cache
from test_frame_index import RGB, samples, write_csv, write_rgb_tree

DAY_NS = 86400 * 10 ** 9


def age(root, *vids) -> None:
    """Date the video folders a day back, as a tree written long before the run (not "racy")."""
    for vid in vids:
        st = os.stat(os.path.join(root, vid))
        os.utime(os.path.join(root, vid), ns=(st.st_atime_ns, st.st_mtime_ns - DAY_NS))


@pytest.fixture
def tree(tmp_path):
    root = write_rgb_tree(tmp_path / "rgb")
    age(root, "AAA01", "BBB02", "DDD04")
    return write_csv(tmp_path / "ann.csv"), root, str(tmp_path / "cache")


@pytest.fixture
def listed(monkeypatch):
    """The ids each load lists (a directory listing each)."""
    calls: list[list[str]] = []
    real = index_cache.list_all
    monkeypatch.setattr(index_cache, "list_all", lambda videos, *a: calls.append([v.id for v in videos])
                        or real(videos, *a))
    return calls


def test_unchanged_tree_is_not_listed_and_a_changed_one_is_rebuilt(tree, listed, caplog):
    csv, root, cache = tree
    first = ci.load_split(csv, root, "train", cache, RGB, nclass=5)
    assert listed == [["AAA01", "BBB02", "CCC03", "DDD04"]] and max(f for v, f, _ in samples(first)) == 29
    again = ci.load_split(csv, root, "train", cache, RGB, nclass=5)
    assert listed[1:] == [[]] and samples(again) == samples(first)  # one stat per video, no listing
    # frames 21-30 of AAA01 removed after the index was cached (used to fail mid-epoch reading frame 21)
    for f in range(21, 31):
        os.remove(os.path.join(root, "AAA01", f"AAA01-{f:06d}.jpg"))
    age(root, "AAA01")  # (a change just now is listed once more, next time: see the next test)
    with caplog.at_level(logging.WARNING):
        shorter = ci.load_split(csv, root, "train", cache, RGB, nclass=5)
    assert listed[2] == ["AAA01"]  # only the changed video is listed again
    assert [f for v, f, _ in samples(shorter) if v == "AAA01"] == [1, 5, 9, 13, 17]
    said = [r.getMessage() for r in caplog.records if "videos changed under" in r.getMessage()]
    assert said == [f"charadesrgb ({csv}): 1 of its 4 videos changed under {root} since they were listed (e.g. AAA01): "
                    "listed again, and the index rebuilt"]
    # a video whose folder appears later (extract_frames.py still writing) joins training, and val_video
    os.makedirs(os.path.join(root, "CCC03"))
    for f in range(1, 6):
        Image.new("RGB", (8, 8)).save(os.path.join(root, "CCC03", f"CCC03-{f:06d}.jpg"))
    age(root, "CCC03")
    for split in ("train", "val_video"):
        index = ci.load_split(csv, root, split, cache, RGB, nclass=5)
        assert "CCC03" in index.ids.tolist() and "CCC03" not in index.skipped.tolist()
    assert listed[3] == ["CCC03"] and listed[4] == []  # (val_video has its own index cache, same listings)


def test_a_change_within_the_timestamp_resolution_is_not_missed(tree, listed):
    """A frame added in the same tick as the listing leaves the folder's mtime as it was: a folder whose
    mtime is that close to its listing is listed again next time."""
    csv, root, cache = tree
    os.utime(os.path.join(root, "BBB02"))  # BBB02 is being written as the run starts
    ci.load_split(csv, root, "train", cache, RGB, nclass=5)
    folder = os.path.join(root, "BBB02")
    mtime = os.stat(folder).st_mtime_ns
    for f in range(10, 14):  # frames 10-13 land in the same tick: the mtime reads as before
        Image.new("RGB", (8, 8)).save(os.path.join(folder, f"BBB02-{f:06d}.jpg"))
    os.utime(folder, ns=(mtime, mtime))
    index = ci.load_split(csv, root, "train", cache, RGB, nclass=5)
    assert listed[1] == ["BBB02"] and int(index.nframes[index.ids.tolist().index("BBB02")]) == 13
    ci.load_split(csv, root, "train", cache, RGB, nclass=5)
    assert listed[2] == ["BBB02"]  # listed just now, still within the window: once more...
    age(root, "BBB02")
    ci.load_split(csv, root, "train", cache, RGB, nclass=5)
    ci.load_split(csv, root, "train", cache, RGB, nclass=5)
    assert listed[3] == ["BBB02"] and listed[4] == []  # ...and then no more


def test_a_bad_frame_is_found_when_the_index_is_built(tree, caplog):
    csv, root, cache = tree
    bad = os.path.join(root, "AAA01", "AAA01-000009.jpg")
    with open(bad, "wb") as f:
        f.write(b"\xff\xd8 not a jpeg at all")
    with pytest.raises(ci.DatasetError, match=rf"1 frame\(s\) of the train split cannot be read: cannot read frame "
                                              rf"{bad}: UnidentifiedImageError.*to go on without a bad frame, "
                                              rf"delete its file.*--frame-gaps skip"):
        ci.load_split(csv, root, "train", cache, RGB, nclass=5)
    os.remove(bad)  # as the message says
    with caplog.at_level(logging.WARNING):
        index = ci.load_split(csv, root, "train", cache, RGB, nclass=5)
    assert index.gapped.tolist() == ["AAA01"] and "AAA01" not in index.ids.tolist()
    assert "video AAA01: frame 9 missing of 1..30" in caplog.text


def test_headers_are_checked_only_where_cheap(tree, monkeypatch, caplog):
    csv, root, cache = tree
    with open(os.path.join(root, "AAA01", "AAA01-000009.jpg"), "wb") as f:
        f.write(b"garbage")
    monkeypatch.setattr(index_cache, "HEADER_CHECK_LIMIT", 5)  # train samples 10 frames: too many
    with caplog.at_level(logging.INFO):
        index = ci.load_split(csv, root, "train", cache, RGB, nclass=5)
    assert len(index) == 10 and "10 frames sampled from new or changed videos: too many to check now" in caplog.text
