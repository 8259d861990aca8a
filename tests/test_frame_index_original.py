"""The samples of our Charades, Charades subset, Jester and Something-Something loaders next to a reference of
what the original's ``prepare()`` produces (tests/original_datasets.py) on small frame trees (empty files: nothing is decoded).

Differences allowed for, each documented (docs/datasets.md, docs/differences.md):
1. times: the original's train / val ``time`` is 0-based (``ii``), ours is the frame number ``ii + 1``;
2. placement by time: our Charades val_video places its frames at ``k * length / 50`` seconds, the
   original at ``floor(linspace(0, n-1, 50)) + 1``; with the original's placement the samples are equal;
3. dict order: the original walked a Python 2 dict (no reproducible order); the port and ours walk the
   annotation file in order.
Everything else is equal: which videos, which frames, in which order, with which targets (the original's
class-index targets of the subset are our one-hot vectors).
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import replace

import pytest
from PIL import Image

import opts as opts_module
from datasets import charadesrgb, charadesrgbsubset, frame_index, jesterrgb, somethingrgb
import original_datasets as original

HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
# id: (frames, actions, length); C03 has no frames; D04 has n=120, where linspace differs from k*(n-1)//49
CHARADES = {"A01": (30, "c002 0.0 0.5;c001 0.3 1.0;c002 0.1 0.3", 1.25), "B02": (9, "", 0.4),
            "C03": (0, "c003 0.0 1.0", 1.0), "D04": (120, "c000 0.5 3.0;c004 2.0 4.9;c000 2.5 2.9", 5.0),
            "E05": (61, "c003 1.0 1.5", 2.55)}
FILLERS = {f"W{k:03d}": (5, "c001 0.0 0.2", 0.2) for k in range(100)}  # past the subset's 101 rows at k=96


def tiny_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buf, format="JPEG")  # the index checks the headers of the frames it samples
    return buf.getvalue()


def touch_frames(root, vid: str, n: int, name: str) -> None:
    os.makedirs(root / vid, exist_ok=True)
    data = tiny_jpeg()
    for f in range(1, n + 1):
        (root / vid / name.format(vid=vid, f=f)).write_bytes(data)


def parse(tmp_path, *flags):
    return opts_module.parse(list(flags) + ["--workers", "0", "--device", "cpu",
                                            "--cache-dir", str(tmp_path / "cache")])


def ours(index, zero_based_times: bool = False):
    """(id, frame, time, classes) of every sample; ``zero_based_times`` shifts train / val times to the
    original's (difference 1)."""
    shift = 1 if zero_based_times and index.split != "val_video" else 0
    return [(index.video_id(i), int(index.frame[i]), int(index.frame[i]) - shift,
             tuple(index.classes(i).tolist())) for i in range(len(index))]


def theirs(data):
    """The same of the original's sample dict (targets: a class index or a 0/1 vector)."""
    out = []
    for path, target, vid, time in zip(data["image_paths"], data["targets"], data["ids"], data["times"]):
        classes = (target,) if isinstance(target, int) else tuple(target.nonzero().flatten().tolist())
        out.append((vid, int(os.path.basename(path)[-10:-4]), time, classes))
    return out


@pytest.fixture
def charades(tmp_path):
    (tmp_path / "ann.csv").write_text(HEADER + "".join(
        f'{vid},S,"Room, {vid}",1,1,Yes,x,,y,"{actions}",{length}\n'
        for vid, (_, actions, length) in {**CHARADES, **FILLERS}.items()))
    for vid, (n, _, _) in {**CHARADES, **FILLERS}.items():
        touch_frames(tmp_path / "rgb", vid, n, "{vid}-{f:06d}.jpg")
    return str(tmp_path / "rgb"), str(tmp_path / "ann.csv")


def test_charades(tmp_path, charades):
    root, csv = charades
    opts = parse(tmp_path, "--data", root, "--train-file", csv, "--val-file", csv)
    labels = original.parse_charades_csv(csv)
    datasets = charadesrgb.get(opts)
    for ds, split in zip(datasets[:2], ("train", "val")):
        assert ours(ds.index, zero_based_times=True) == theirs(original.charades_prepare(root, labels, split))
    # val_video: the same videos, 50 frames each, the same targets; frames placed by time (difference 2) ...
    mine, want = ours(datasets[2].index), theirs(original.charades_prepare(root, labels, "val_video"))
    assert [(v, c) for v, _, _, c in mine] == [(v, c) for v, _, _, c in want]
    assert [f for _, f, _, _ in mine] != [f for _, f, _, _ in want]
    # ... and the same frames with the original's placement
    spread = replace(charadesrgb.source(opts), placement="spread")
    assert ours(frame_index.load_splits(opts, spread)[2]) == want


def test_charades_subset(tmp_path, charades):
    root, csv = charades
    opts = parse(tmp_path, "--dataset", "charadesrgbsubset", "--data", root, "--train-file", csv, "--val-file", csv)
    labels = original.parse_charades_csv(csv)
    train, val, val_video = charadesrgbsubset.get(opts)
    for ds, split in ((train, "train"), (val, "val")):
        want = theirs(original.subset_prepare(root, labels, split))
        assert ours(ds.index, zero_based_times=True) == want
        assert want.count(("A01", 5, 4, (2,))) == 2  # two c002 actions hold frame 5: an item each
    want = theirs(original.subset_prepare(root, labels, "val_video"))
    assert ours(val_video.index) == want
    assert len(want) == 25 * (len(CHARADES) - 1 + 96)  # 101 rows, C03 without frames; B02 has no action
    assert want[25:50] == [("B02", 1 + k // 3, 1 + k // 3, ()) for k in range(25)]  # floor(k*8/24) + 1


def test_jester(tmp_path):
    names = ["Swiping Left", "Swiping Right", "Thumb Up", "Stop Sign"]
    videos = {"101": (0, 9), "102": (2, 1), "103": (1, 0), "104": (3, 120), "105": (2, 239), "106": (0, 3)}
    (tmp_path / "jester-v1-labels.csv").write_text("\n".join(names) + "\n")
    (tmp_path / "train.csv").write_text("".join(f"{v};{names[c]}\n" for v, (c, _) in videos.items()))
    for vid, (_, n) in videos.items():
        touch_frames(tmp_path / "frames", vid, n, "{f:05d}.jpg")
    root, ann = str(tmp_path / "frames"), str(tmp_path / "train.csv")
    opts = parse(tmp_path, "--dataset", "jesterrgb", "--data", root, "--train-file", ann, "--val-file", ann,
                 "--nclass", "4")
    labels = original.parse_jester_csv(ann, original.parse_jester_labels(str(tmp_path / "jester-v1-labels.csv")))
    frame_name = lambda iddir, vid, f: "{}/{:05d}.jpg".format(iddir, f)  # noqa: E731  (Jester: 5-digit names)
    for ds, split in zip(jesterrgb.get(opts), ("train", "val", "val_video")):
        assert ours(ds.index, zero_based_times=True) == theirs(
            original.single_label_prepare(root, labels, split, 4, frame_name))


def test_something_something(tmp_path):
    templates = ["Pushing [something] from left to right", "Holding [something]", "Moving [something] up"]
    videos = {"11": (0, 9), "12": (2, 120), "13": (1, 0), "14": (1, 288), "15": (0, 2)}
    labels_file = tmp_path / "something-something-v2-labels.json"
    labels_file.write_text(json.dumps({t.replace("[", "").replace("]", ""): str(c) for c, t in enumerate(templates)}))
    (tmp_path / "train.json").write_text(json.dumps([{"id": v, "label": templates[c], "template": templates[c],
                                                      "placeholders": []} for v, (c, _) in videos.items()]))
    for vid, (_, n) in videos.items():
        touch_frames(tmp_path / "frames", vid, n, "{vid}-{f:06d}.jpg")
    root, ann = str(tmp_path / "frames"), str(tmp_path / "train.json")
    opts = parse(tmp_path, "--dataset", "somethingrgb", "--data", root, "--train-file", ann, "--val-file", ann,
                 "--nclass", "3")
    labels = original.parse_something_json(ann, original.parse_something_labels(str(labels_file)))
    frame_name = lambda iddir, vid, f: "{}/{}-{:06d}.jpg".format(iddir, vid, f)  # noqa: E731  (Something-Something)
    for ds, split in zip(somethingrgb.get(opts), ("train", "val", "val_video")):
        assert ours(ds.index, zero_based_times=True) == theirs(
            original.single_label_prepare(root, labels, split, 3, frame_name))
