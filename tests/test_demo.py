"""Tests of the demo-data renderer (datasets/demo/: codes, scene, tree) and the shipped demo subset.

No torch, no /work/shared: tiny CSVs are written into tmp_path.
"""
from __future__ import annotations

import collections
import json
import os

import numpy as np
import pytest
from PIL import Image

from datasets.demo import codes, scene, tree
from utils.charades_csv import Video, read_annotations

HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
# two videos: one with actions (quoted text fields with commas), one without any action
ROWS = [
    'AAAAA,S1,Kitchen,6,7,Yes,"A person, cooking.",food;stove,"Cooks, then leaves.",c001 0.10 1.00;c005 0.50 1.40,1.50\n',
    "BBBBB,S2,Bedroom,5,6,Yes,Nothing happens.,bed,Nothing.,,0.90\n",
]
N_A, N_B = 36, 21  # floor(1.5 * 24), floor(0.9 * 24)


@pytest.fixture
def tiny_csv(tmp_path):
    p = tmp_path / "tiny.csv"
    p.write_text(HEADER + "".join(ROWS), encoding="utf-8")
    return str(p)


def _gen(root, csv, seed=0, size=32, flow=True):
    return tree.ensure_demo_data(str(root), seed=seed, flow=flow, size=size, csv_files=[csv], workers=1)


def _files(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, root)] = p
    return out


def test_conventions():
    assert codes.frame_count(1.5) == 36 and codes.frame_count(0.9) == 21 and codes.frame_count(0.01) == 1
    assert codes.frame_count(2.33) == 55  # floor(55.92)
    assert codes.flow_count(36) == 35 and codes.flow_count(1) == 1
    assert codes.frame_time(1) == 0.0 and codes.frame_time(25) == 1.0
    acts = ((3, 1.0, 2.0), (4, 0.0, 5.0))
    assert codes.active_classes(acts, 1.0) == [4]        # strict at the start
    assert codes.active_classes(acts, 1.5) == [3, 4]
    assert codes.active_classes(acts, 2.0) == [4]        # strict at the end
    assert codes.active_classes(acts, 5.0) == []


def test_class_codes_distinct_and_flip_safe():
    rgb = {(c.hue, c.orient, c.kind) for c in codes.CLASS_CODES}
    flow = {(c.flow_dir, c.flow_orient, c.flow_kind) for c in codes.CLASS_CODES}
    assert len(codes.CLASS_CODES) == 157 and len(rgb) == 157 and len(flow) == 157
    # orientations in [0, 90] degrees: a horizontal flip (theta -> 180 - theta) maps no code onto another
    assert all(0 <= c.orient <= np.pi / 2 + 1e-9 for c in codes.CLASS_CODES)
    assert np.allclose([np.linalg.norm(codes.class_colour(c)) for c in range(157)], 1.0, atol=1e-5)


def test_tree_names_counts_and_modes(tiny_csv, tmp_path):
    root = _gen(tmp_path / "demo", tiny_csv)
    assert sorted(os.listdir(root)) == sorted(["rgb", "flow", tree.MANIFEST])
    assert sorted(os.listdir(os.path.join(root, "rgb"))) == ["AAAAA", "BBBBB"]
    assert sorted(os.listdir(os.path.join(root, "flow"))) == ["AAAAA", "BBBBB"]
    for vid, n in (("AAAAA", N_A), ("BBBBB", N_B)):
        rgb = sorted(os.listdir(os.path.join(root, "rgb", vid)))
        assert rgb == [f"{vid}-{i:06d}.jpg" for i in range(1, n + 1)]
        flow = sorted(os.listdir(os.path.join(root, "flow", vid)))
        assert flow == sorted(f"{vid}-{i:06d}{a}.jpg" for i in range(1, n) for a in "xy")
        assert len(flow) // 2 == codes.flow_count(n)
        with Image.open(os.path.join(root, "rgb", vid, rgb[0])) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and im.size == (32, 32)
        with Image.open(os.path.join(root, "flow", vid, flow[0])) as im:
            assert im.format == "JPEG" and im.mode == "L" and im.size == (32, 32)
    man = json.load(open(os.path.join(root, tree.MANIFEST)))
    assert man["complete"] is True and man["seed"] == 0 and man["size"] == 32 and man["flow"] is True
    assert man["videos"] == {"AAAAA": {"rgb": N_A, "flow": N_A - 1}, "BBBBB": {"rgb": N_B, "flow": N_B - 1}}
    # no temporary directories left beside the tree
    assert sorted(os.listdir(tmp_path)) == ["demo", "tiny.csv"]


def test_no_flow_and_sizes(tiny_csv, tmp_path):
    root = _gen(tmp_path / "demo", tiny_csv, flow=False, size=24)
    assert sorted(os.listdir(root)) == sorted(["rgb", tree.MANIFEST])
    with Image.open(os.path.join(root, "rgb", "AAAAA", "AAAAA-000001.jpg")) as im:
        assert im.size == (24, 24)
    wide = tree.ensure_demo_data(str(tmp_path / "wide"), size=(40, 24), flow=False, csv_files=[tiny_csv], workers=1)
    with Image.open(os.path.join(wide, "rgb", "AAAAA", "AAAAA-000001.jpg")) as im:
        assert im.size == (40, 24)                       # (width, height)
    assert json.load(open(os.path.join(wide, tree.MANIFEST)))["size"] == [40, 24]
    v = read_annotations(tiny_csv)[0]
    big = scene.render_frames(v, [3, 30], size=(64, 48))
    assert len(big) == 2 and all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in big)
    fl = scene.render_flow(v, [3], size=(64, 48))
    assert fl[0][0].shape == (48, 64) and fl[0][1].shape == (48, 64) and fl[0][0].dtype == np.uint8


def test_determinism(tiny_csv, tmp_path):
    a = _files(_gen(tmp_path / "a", tiny_csv, seed=0))
    b = _files(_gen(tmp_path / "b", tiny_csv, seed=0))
    c = _files(_gen(tmp_path / "c", tiny_csv, seed=1))
    assert a.keys() == b.keys() == c.keys()
    images = [k for k in a if k.endswith(".jpg")]
    for k in images:
        assert open(a[k], "rb").read() == open(b[k], "rb").read(), k
    differ = sum(not np.array_equal(np.asarray(Image.open(a[k])), np.asarray(Image.open(c[k]))) for k in images)
    assert differ == len(images)
    # a frame renders the same alone or within the whole video, and the JPEG holds those pixels
    v = read_annotations(tiny_csv)[0]
    whole = scene.render_frames(v, range(1, N_A + 1), seed=0, size=32)
    alone = scene.render_frames(v, [17], seed=0, size=32)[0]
    assert np.array_equal(whole[16], alone)
    jpg = np.asarray(Image.open(a[os.path.join("rgb", "AAAAA", "AAAAA-000017.jpg")]), np.float32)
    other = scene.render_frames(v, [30], seed=0, size=32)[0]
    assert np.abs(jpg - alone).mean() < min(9.0, 0.4 * np.abs(jpg - other).mean())
    fx, fy = scene.render_flow(v, [17], seed=0, size=32)[0]
    jx = np.asarray(Image.open(a[os.path.join("flow", "AAAAA", "AAAAA-000017x.jpg")]), np.float32)
    jy = np.asarray(Image.open(a[os.path.join("flow", "AAAAA", "AAAAA-000017y.jpg")]), np.float32)
    assert np.abs(jx - fx).mean() < 4 and np.abs(jy - fy).mean() < 4


def test_reuse_and_regeneration(tiny_csv, tmp_path, monkeypatch):
    root = _gen(tmp_path / "demo", tiny_csv, seed=0)
    frame = os.path.join(root, "rgb", "AAAAA", "AAAAA-000010.jpg")
    before = np.asarray(Image.open(frame))
    calls = []
    real = tree.render_video
    monkeypatch.setattr(tree, "render_video", lambda *a, **k: calls.append(a[0].id) or real(*a, **k))
    _gen(tmp_path / "demo", tiny_csv, seed=0)            # same settings: reused
    _gen(tmp_path / "demo", tiny_csv, seed=0, flow=False)  # a tree with flow serves a no-flow request
    assert calls == []
    _gen(tmp_path / "demo", tiny_csv, seed=3)            # other seed: regenerated
    assert sorted(calls) == ["AAAAA", "BBBBB"]
    assert json.load(open(os.path.join(root, tree.MANIFEST)))["seed"] == 3
    assert not np.array_equal(before, np.asarray(Image.open(frame)))
    calls.clear()
    _gen(tmp_path / "demo", tiny_csv, seed=3, size=40)   # other size: regenerated
    assert len(calls) == 2 and Image.open(frame).size == (40, 40)
    calls.clear()
    with open(tiny_csv, "a", encoding="utf-8") as f:     # other CSV content: regenerated
        f.write("CCCCC,S3,Hall,5,6,Yes,x,y,z,c002 0.00 0.50,0.50\n")
    _gen(tmp_path / "demo", tiny_csv, seed=3, size=40)
    assert sorted(calls) == ["AAAAA", "BBBBB", "CCCCC"]
    assert sorted(os.listdir(os.path.join(root, "rgb"))) == ["AAAAA", "BBBBB", "CCCCC"]
    assert sorted(os.listdir(tmp_path)) == ["demo", "tiny.csv"]


def test_interrupted_generation_leaves_no_tree(tiny_csv, tmp_path, monkeypatch):
    real = tree.render_video
    done = []

    def crash_after_first(video, *a, **k):
        if done:
            raise KeyboardInterrupt("simulated interruption")
        done.append(video.id)
        return real(video, *a, **k)

    monkeypatch.setattr(tree, "render_video", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        _gen(tmp_path / "demo", tiny_csv, seed=0)
    assert sorted(os.listdir(tmp_path)) == ["tiny.csv"]  # neither the tree nor a temporary one

    # an interrupted regeneration keeps the previous complete tree as it was
    monkeypatch.setattr(tree, "render_video", real)
    root = _gen(tmp_path / "demo", tiny_csv, seed=0)
    files = _files(root)
    done.clear()
    monkeypatch.setattr(tree, "render_video", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        _gen(tmp_path / "demo", tiny_csv, seed=1)
    assert _files(root).keys() == files.keys()
    assert json.load(open(os.path.join(root, tree.MANIFEST)))["seed"] == 0
    assert sorted(os.listdir(tmp_path)) == ["demo", "tiny.csv"]

    # a half tree without a manifest (e.g. copied by hand) is never taken as complete
    monkeypatch.setattr(tree, "render_video", real)
    os.remove(os.path.join(root, tree.MANIFEST))
    os.remove(os.path.join(root, "rgb", "AAAAA", "AAAAA-000005.jpg"))
    _gen(tmp_path / "demo", tiny_csv, seed=0)
    assert _files(root).keys() == files.keys()


def test_command_line(tiny_csv, tmp_path, monkeypatch, capsys):
    """``python -m datasets.demo --root R --seed S --size N [--no-flow] CSV``: the tree of those settings."""
    import runpy
    root = tmp_path / "cli"
    argv = ["--root", str(root), "--seed", "2", "--size", "16x12", "--no-flow", "--workers", "1", tiny_csv]
    monkeypatch.setattr("sys.argv", ["python -m datasets.demo"] + argv)
    with pytest.raises(SystemExit) as stop:  # sys.exit(cli.run(main))
        runpy.run_module("datasets.demo", run_name="__main__")
    assert stop.value.code == 0
    man = json.load(open(root / tree.MANIFEST))
    assert (man["seed"], man["size"], man["flow"]) == (2, [16, 12], False)
    assert sorted(os.listdir(root)) == sorted(["rgb", tree.MANIFEST])
    assert len(os.listdir(root / "rgb" / "AAAAA")) == N_A
    assert capsys.readouterr().out.strip().endswith(f"demo data ready: {root / 'rgb'}")


def test_stale_scratch_of_killed_runs_is_removed(tiny_csv, tmp_path):
    dead = tmp_path / ".demo.tmp-999999999-abcd"      # no such process: a killed run's leftovers
    (dead / "rgb").mkdir(parents=True)
    alive = tmp_path / f".demo.tmp-{os.getppid()}-efgh"  # a running process: maybe still rendering
    alive.mkdir()
    _gen(tmp_path / "demo", tiny_csv)
    assert not dead.exists() and alive.exists()


def test_refuses_to_overwrite_foreign_directory(tiny_csv, tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("precious")
    with pytest.raises(RuntimeError, match="does not look like a demo tree"):
        _gen(d, tiny_csv)
    assert (d / "notes.txt").read_text() == "precious"
    assert sorted(os.listdir(tmp_path)) == ["mine", "tiny.csv"]


def _spectrum_similarity(diff: np.ndarray, ref: np.ndarray) -> float:
    """Cosine similarity of the amplitude spectra (phase-free) of two 2-D maps."""
    a = np.abs(np.fft.fft2(diff - diff.mean())).ravel()
    b = np.abs(np.fft.fft2(ref - ref.mean())).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _principal_direction(x: np.ndarray) -> np.ndarray:
    """Unit principal axis of the (pixels, channels) values of a difference image."""
    x = x.reshape(-1, x.shape[-1])
    x = x - x.mean(0)
    return np.linalg.eigh(x.T @ x)[1][:, -1]


@pytest.mark.parametrize("c", [0, 37, 101, 156])
def test_class_signal(c):
    """Switching class c on adds its texture (spatial pattern) along its colour (RGB) / direction (flow)."""
    S = 128  # frame size: enough spectral resolution to tell orientations 15 degrees apart
    v = Video("SIG%03d" % c, ((c, 1.0, 3.0),), 4.0)
    code = codes.CLASS_CODES[c]
    # spatial texture of each class k (its pattern seen along its own colour); classes sharing c's
    # orientation and kind (they differ only by colour and frequency) are excluded from the comparison
    others = [k for k in range(157) if (codes.CLASS_CODES[k].orient, codes.CLASS_CODES[k].kind) != (code.orient, code.kind)]

    off, on = scene.render_frames(v, [24, 26], seed=5, size=S)      # t = 0.958 (inactive), 1.042 (active)
    diff = on.astype(np.float32) - off.astype(np.float32)
    assert abs(_principal_direction(diff) @ codes.class_colour(c)) > 0.9
    proj = diff @ codes.class_colour(c)
    tex = lambda k: codes.class_pattern(k, S, 1.0) @ codes.class_colour(k)  # noqa: E731
    sim = _spectrum_similarity(proj, tex(c))
    assert sim > 0.6 and sim > max(_spectrum_similarity(proj, tex(k)) for k in others) + 0.1
    # an inactive -> inactive change carries no such texture
    off2 = scene.render_frames(v, [22], seed=5, size=S)[0].astype(np.float32)
    assert _spectrum_similarity((off - off2) @ codes.class_colour(c), tex(c)) < sim - 0.3
    assert proj.std() > 0.5 * codes.RGB_AMPLITUDE * 0.7 * 255 / np.sqrt(2)

    (fx0, fy0), (fx1, fy1) = scene.render_flow(v, [24, 26], seed=5, size=S)
    d = np.stack([fx1, fy1], -1).astype(np.float32) - np.stack([fx0, fy0], -1).astype(np.float32)
    direction = np.array([np.cos(code.flow_dir), np.sin(code.flow_dir)], np.float32)
    assert abs(_principal_direction(d) @ direction) > 0.9
    along = d @ direction
    ftex = lambda k: codes.flow_pattern(k, S, 1.0) @ np.array(  # noqa: E731
        [np.cos(codes.CLASS_CODES[k].flow_dir), np.sin(codes.CLASS_CODES[k].flow_dir)], np.float32)
    fothers = [k for k in range(157)
               if (codes.CLASS_CODES[k].flow_orient, codes.CLASS_CODES[k].flow_kind) != (code.flow_orient, code.flow_kind)]
    fsim = _spectrum_similarity(along, ftex(c))
    assert fsim > 0.6 and fsim > max(_spectrum_similarity(along, ftex(k)) for k in fothers) + 0.1
    assert along.std() > 0.5 * codes.FLOW_AMPLITUDE * 0.7 / np.sqrt(2)


# --- learnability without torch: augmented random crops + spectral features + logistic regression ---------
def _augment(img: np.ndarray, rng: np.random.Generator, out: int = 32) -> np.ndarray:
    """RandomResizedCrop(scale=(0.08, 1)), ColorJitter(0.4, 0.4, 0.4), horizontal flip, as in training."""
    h, w = img.shape[:2]
    ch, cw = h, w
    for _ in range(10):
        area = h * w * rng.uniform(0.08, 1.0)
        r = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw_, ch_ = int(round(np.sqrt(area * r))), int(round(np.sqrt(area / r)))
        if 0 < cw_ <= w and 0 < ch_ <= h:
            ch, cw = ch_, cw_
            break
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    a = np.asarray(Image.fromarray(img[y:y + ch, x:x + cw]).resize((out, out), Image.BILINEAR), np.float32) / 255
    a = a * rng.uniform(0.6, 1.4)
    m = a.mean()
    a = (a - m) * rng.uniform(0.6, 1.4) + m
    g = (a @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    a = np.clip((a - g) * rng.uniform(0.6, 1.4) + g, 0, 1)
    return a[:, ::-1] if rng.random() < 0.5 else a


def _features(a: np.ndarray) -> np.ndarray:
    """Power and cross spectra of the colour channels pooled into 4 radial x 12 orientation bins."""
    n = a.shape[0]
    f = np.fft.fft2(a - a.mean((0, 1)), axes=(0, 1))
    fy, fx = np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :]
    rb = np.digitize(np.hypot(fx, fy), [0.05, 0.12, 0.2, 0.3, 0.5])
    ob = (np.mod(np.arctan2(fy, fx), np.pi) / np.pi * 12).astype(int) % 12
    keep = ((rb >= 1) & (rb <= 4)).ravel()
    label = ((rb - 1) * 12 + ob).ravel()[keep]
    count = np.maximum(np.bincount(label, minlength=48), 1)
    spectra = [np.abs(f[..., i]) ** 2 for i in range(3)]
    spectra += [np.real(f[..., i] * np.conj(f[..., j])) for i, j in ((0, 1), (0, 2), (1, 2))]
    feats = np.concatenate([np.bincount(label, s.ravel()[keep], minlength=48) / count for s in spectra])
    return np.sign(feats) * np.log1p(np.abs(feats) * 100)


def test_learnable_from_augmented_crops():
    """A linear model on simple spectral features of augmented crops tells, per class, active from inactive
    frames of UNSEEN videos (other backgrounds, distractors, co-occurring classes) well above chance."""
    classes = [3, 17, 40, 77, 100, 120]

    def video(i):
        r = np.random.default_rng(i)
        acts = []
        for c in classes:
            s = r.uniform(0, 10)
            acts.append((c, s, s + r.uniform(4, 10)))
        return Video(f"L{i:03d}", tuple(acts), 20.0)

    def data(videos, per_video, seed):
        rng = np.random.default_rng(seed)
        xs, ys = [], []
        for v in videos:
            frames = rng.integers(1, codes.frame_count(v.length) + 1, per_video)
            for f, img in zip(frames, scene.render_frames(v, frames, seed=seed, size=64)):
                xs.append(_features(_augment(img, rng)))
                ys.append([c in codes.active_classes(v.actions, codes.frame_time(f)) for c in classes])
        return np.array(xs), np.array(ys, np.float64)

    xtr, ytr = data([video(i) for i in range(6)], 60, 1)
    xte, yte = data([video(100 + i) for i in range(3)], 60, 2)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr = np.c_[(xtr - mu) / sd, np.ones(len(xtr))]
    xte = np.c_[(xte - mu) / sd, np.ones(len(xte))]
    w = np.zeros((xtr.shape[1], len(classes)))
    for _ in range(500):
        p = 1 / (1 + np.exp(-xtr @ w))
        w -= 0.1 * (xtr.T @ (p - ytr) / len(xtr) + 1e-2 * w)
    acc = ((xte @ w > 0) == (yte > 0.5)).mean(0)
    chance = np.maximum(yte.mean(0), 1 - yte.mean(0))
    assert acc.mean() > 0.8, (acc, chance)
    assert (acc > chance + 0.1).all(), (acc, chance)


def test_shipped_demo_subset():
    """The shipped demo CSVs: every test video has an action, its classes are in >= 2 training videos,
    and the tree stays small."""
    train = read_annotations(tree.DEMO_TRAIN_CSV)
    test = read_annotations(tree.DEMO_TEST_CSV)
    assert 30 <= len(train) <= 70 and 15 <= len(test) <= 30
    assert not {v.id for v in train} & {v.id for v in test}
    assert all(v.actions for v in test)
    cover = collections.Counter(c for v in train for c in v.classes)
    assert min(cover[c] for v in test for c in v.classes) >= 2
    total = sum(codes.frame_count(v.length) for v in train + test)
    assert 15000 <= total <= 25000
    with open(tree.DEMO_TEST_CSV, encoding="utf-8") as f:
        assert f.readline() == HEADER
