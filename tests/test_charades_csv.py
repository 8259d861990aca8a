"""Annotation CSVs are checked when read: each bad file is one error naming the file, the line(s) and the
video, raised before any training step; a byte-order mark is skipped; backwards actions (which the real
Charades files have) are kept and counted in one warning."""
import csv
import logging
import os

import pytest

import main
import train
from utils.charades_csv import AnnotationError, read_annotations

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length".split(",")


def write_csv(path, rows, bom=False):
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for vid, actions, length in rows:
            w.writerow([vid, "S1", "Kitchen", "6", "7", "Yes", "A person, then another", "cup", "d", actions, length])
    return str(path)


GOOD = [("AAAAA", "c001 1.0 2.5;c002 0.0 4.0", "10.5"), ("BBBBB", "", "3")]


@pytest.mark.parametrize("rows,message", [
    (GOOD + [("AAAAA", "", "4")], r"video AAAAA appears twice, on lines 2 and 4"),
    ([("AAAAA", "", "0")], r"line 2, video AAAAA: length '0' is not a finite number of seconds > 0"),
    ([("AAAAA", "", "nan")], r"line 2, video AAAAA: length 'nan'"),
    ([("AAAAA", "", "-3")], r"line 2, video AAAAA: length '-3'"),
    ([("AAAAA", "", "inf")], r"line 2, video AAAAA: length 'inf'"),
    ([("AAAAA", "c001 nan 2", "5")], r"line 2, video AAAAA: action 'c001 nan 2' has a time that is not a finite"),
    ([("AAAAA", "c001 -1 2", "5")], r"line 2, video AAAAA: action 'c001 -1 2' has a time"),
    ([("AAAAA", "c001 1 inf", "5")], r"line 2, video AAAAA: action 'c001 1 inf' has a time"),
    ([("AA AA", "", "5")], r"line 2, video AA AA: the id 'AA AA' contains white space"),
    ([], r"no videos \(only a header"),
])
def test_bad_annotations_are_named(tmp_path, rows, message):
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(AnnotationError, match=r"bad\.csv.*" + message):
        read_annotations(path)


def test_byte_order_mark_is_skipped(tmp_path):
    videos = read_annotations(write_csv(tmp_path / "bom.csv", GOOD, bom=True))
    assert (tmp_path / "bom.csv").read_bytes()[:3] == b"\xef\xbb\xbf"
    assert [v.id for v in videos] == ["AAAAA", "BBBBB"] and videos[0].actions == ((1, 1.0, 2.5), (2, 0.0, 4.0))


def test_backwards_actions_are_kept_and_counted(tmp_path, caplog):
    path = write_csv(tmp_path / "back.csv", GOOD + [("CCCCC", "c003 8.00 7.00;c004 8 7;c005 1 2", "9")])
    with caplog.at_level(logging.WARNING):
        videos = read_annotations(path)
    assert videos[2].actions == ((3, 8.0, 7.0), (4, 8.0, 7.0), (5, 1.0, 2.0))
    assert videos[2].classes == [3, 4, 5]  # they still label the video, as in the original
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: 2 action(s) in 1 video(s) end before they start (first: line 4, video CCCCC, c003 8 7); "
        "kept as they are: they label their video but no frame"]


def test_demo_annotations_still_parse():
    train_videos = read_annotations(os.path.join(ROOT, "data", "demo", "Charades_demo_train.csv"))
    test_videos = read_annotations(os.path.join(ROOT, "data", "demo", "Charades_demo_test.csv"))
    assert (len(train_videos), len(test_videos)) == (52, 20)


def test_duplicate_val_video_stops_before_training(tmp_path, monkeypatch):
    """The issue's case: a duplicate id in the val CSV crashed after a whole training epoch."""
    monkeypatch.setattr(train, "train", lambda *a, **k: pytest.fail("trained before reading the CSVs"))
    val_csv = write_csv(tmp_path / "val.csv", GOOD + [("BBBBB", "", "3")])
    (tmp_path / "frames" / "AAAAA").mkdir(parents=True)  # (an empty --data stops even earlier)
    with pytest.raises(AnnotationError, match=r"val\.csv: video BBBBB appears twice, on lines 3 and 4"):
        main.main(["--dataset", "charadesrgb", "--data", str(tmp_path / "frames"), "--train-file", val_csv,
                   "--val-file", val_csv, "--arch", "linear", "--inputsize", "4", "--device", "cpu",
                   "--workers", "0", "--cache-dir", str(tmp_path), "--name", "run"])
