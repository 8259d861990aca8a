"""plot_results.py: each figure's prepared data (what the drawing function receives) from small generated
runs and submissions, and each PNG written at its expected size.  Drawing tests skip without matplotlib."""
import csv
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import plot_results
from utils import cli
from utils.charades_csv import read_classes
from utils.metrics_log import append_metrics
from utils.submission import write_classification, write_localization

NCLASS = 157
NAMES = read_classes(plot_results.CLASSES_TXT)
HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length".split(",")


@pytest.fixture
def mpl():
    return pytest.importorskip("matplotlib")


def png_size(path) -> tuple[int, int]:
    data = open(path, "rb").read(24)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG file"
    return struct.unpack(">II", data[16:24])


def write_gt(path, videos: list[tuple[str, str, float]]) -> str:
    """An annotation CSV with ``(id, actions, length)`` rows (text fields with commas, as Charades has)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for vid, actions, length in videos:
            w.writerow([vid, "S1", "Kitchen", "6", "7", "Yes", "A person, then another", "cup;door", "d",
                        actions, length])
    return str(path)


def record(monkeypatch, name: str) -> list:
    """Wrap ``plot_results.<name>`` so that the test sees the data the CLI hands to it."""
    seen, real = [], getattr(plot_results, name)
    monkeypatch.setattr(plot_results, name, lambda data, out: (seen.append(data), real(data, out))[1])
    return seen


# ------------------------------------------------------------------------------------ curves

def fake_run(directory, mAPs):
    for epoch, mAP in enumerate(mAPs, 1):  # exactly as main.py appends after each epoch
        append_metrics(str(directory), {"epoch": epoch, "lr": 0.01, "train_loss": 3.0 / epoch,
                                        "top1train": 10.0 * epoch, "top1val": 5.0 * epoch, "mAP": mAP})


def test_curves_data_names_runs_and_marks_best_epoch(tmp_path):
    rgb, flow = tmp_path / "rgb", tmp_path / "flow"
    rgb.mkdir(), flow.mkdir()
    fake_run(rgb, [0.10, 0.30, 0.20])
    fake_run(flow, [0.05, 0.08])
    runs = plot_results.curves_data([str(rgb), str(flow / "metrics.csv")])
    assert [r.name for r in runs] == ["rgb", "flow"]
    assert runs[0].epoch.tolist() == [1, 2, 3] and runs[0].top1val.tolist() == [5.0, 10.0, 15.0]
    assert (runs[0].best_epoch, runs[0].best_mAP) == (2, 0.30)
    assert (runs[1].best_epoch, runs[1].best_mAP) == (2, 0.08)
    assert np.isnan(runs[0].loc_mAP).all()  # empty column: NaN gaps, not zeros


def test_curves_png_from_cli_and_plot_curves(tmp_path, mpl, monkeypatch):
    for name, mAPs in (("rgb", [0.1, 0.3]), ("flow", [0.2])):
        (tmp_path / name).mkdir()
        fake_run(tmp_path / name, mAPs)
    seen = record(monkeypatch, "draw_curves")
    out = tmp_path / "curves.png"
    assert plot_results.main(["curves", str(tmp_path / "rgb"), str(tmp_path / "flow"), "-o", str(out)]) == 0
    assert [r.name for r in seen[0]] == ["rgb", "flow"] and seen[0][1].epoch.tolist() == [1]
    assert png_size(out) == (1536, 480)  # 16 x 5 inches at 96 dpi
    # main.py's --plot refresh: same file rewritten in place, no temporary file left behind
    assert plot_results.plot_curves(str(tmp_path / "rgb"), str(out)) == (1536, 480)
    assert png_size(out) == (1536, 480)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "flow", "rgb"]


# ------------------------------------------------------------------------------------ per-class

@pytest.fixture
def per_class_files(tmp_path):
    """4 videos; classes 2, 5 (AP 1), 7 (AP 1/2), 9 (AP 1/3) have positives, the other 153 none."""
    gt = write_gt(tmp_path / "gt.csv", [("A", "c005 0 3;c007 1 2", 10), ("B", "c009 0 1", 10),
                                        ("C", "c002 0 5", 10), ("D", "", 10)])
    s = np.zeros((4, NCLASS))
    s[:, 5] = [4, 3, 2, 1]   # A first: AP 1
    s[:, 7] = [3, 4, 1, 2]   # A second: AP 1/2
    s[:, 9] = [3, 1, 4, 2]   # B third among A, B, C (D has no actions: -inf): AP 1/3
    s[:, 2] = [1, 2, 3, 0]   # C first: AP 1, ties with class 5 and must come before it (stable, by index)
    sub = tmp_path / "epoch_001.txt"
    write_classification(str(sub), ["A", "B", "C", "D"], s)
    return str(sub), gt


def test_per_class_data_sorted_with_names(per_class_files):
    data = plot_results.per_class_data(*per_class_files)
    assert data.order.tolist() == [2, 5, 7, 9]
    assert data.values == pytest.approx([1, 1, 0.5, 1 / 3])
    assert data.labels[1] == "c005 " + NAMES[5] and data.labels[0].startswith("c002 ")
    assert data.n_nan == NCLASS - 4 and np.isnan(data.mAP)  # official mAP is NaN with empty classes
    assert data.mAP_with_positives == pytest.approx((1 + 1 + 0.5 + 1 / 3) / 4)


def test_per_class_png(per_class_files, tmp_path, mpl, monkeypatch):
    seen = record(monkeypatch, "draw_per_class")
    out = tmp_path / "per_class_ap.png"
    assert plot_results.main(["per-class", *per_class_files, "-o", str(out)]) == 0
    assert seen[0].order.tolist() == [2, 5, 7, 9]
    assert png_size(out) == (960, 216)  # 10 x (1.5 + 4 * 3/16) inches at 96 dpi
    w, h = plot_results.per_class_size(157)
    assert h * plot_results.DPI / 157 >= 16  # >= 16 px per bar: 7 pt labels (9 px) never overlap


# ------------------------------------------------------------------------------------ timeline

@pytest.fixture
def loc_files(tmp_path):
    """Video P scored perfectly, video W scored backwards, video M with frame 7 missing."""
    gt = write_gt(tmp_path / "gt.csv", [("P", "c003 2.0 6.0;c010 5.0 9.0", 10), ("W", "c004 0 4", 10),
                                        ("M", "c001 0 10", 10)])
    t = np.arange(25) / 25 * 10
    p = np.zeros((25, NCLASS))
    p[:, 3], p[:, 10] = (t >= 2) & (t <= 6), (t >= 5) & (t <= 9)
    p[:, 50], p[:, 60], p[:, 70] = 0.9 * (t == 0), 0.8 * (t == 0), 0.7 * (t == 0)  # wrong, but below GT
    w = -p.copy()
    w[:, 4] = -((t >= 0) & (t <= 4)).astype(float)  # its GT class scored lowest
    w[:, 3] = 0
    m = np.ones((25, NCLASS))
    sub = tmp_path / "localize_001.txt"
    write_localization(str(sub), ["P", "W", "M"], np.stack([p, w, m]))
    lines = sub.read_text().splitlines()
    sub.write_text("\n".join(line for line in lines if not line.startswith("M 7 ")) + "\n")
    return str(sub), gt, t


def test_timeline_data_from_ground_truth(loc_files, mpl, monkeypatch, tmp_path):
    sub, gt, t = loc_files
    seen = record(monkeypatch, "draw_timeline")
    assert plot_results.main(["timeline", sub, gt, "--videos", "P", "M", "-o", str(tmp_path / "out")]) == 0
    p, m = seen
    assert p.video_id == "P" and p.intervals == [(3, 2.0, 6.0), (10, 5.0, 9.0)]
    assert p.classes == [3, 10, 50, 60] and p.wrong == [50, 60]  # GT, then the 2 best-scored others
    assert p.labels[3] == "c003 " + NAMES[3]
    assert p.times == pytest.approx(t)
    assert p.scores[0].tolist() == ((t >= 2) & (t <= 6)).astype(float).tolist()
    assert p.ap == 1.0
    assert np.isnan(m.scores[0, 6]) and (np.delete(m.scores[0], 6) == 1).all()  # frame 7 missing
    for vid in ("P", "M"):
        assert png_size(tmp_path / "out" / f"timeline_{vid}.png") == (1152, 720)


def test_timeline_of_a_traversing_id_stays_in_its_folder(mpl, tmp_path):
    """Ids come from input files: one that looks like a path still names a file inside -o."""
    vid = "../../../escaped"  # with the old naming: out/timeline_../../../escaped.png, i.e. a/b/escaped.png
    gt = write_gt(tmp_path / "gt.csv", [(vid, "c003 0.0 5.0", 10.0)])
    sub = tmp_path / "loc.txt"
    write_localization(str(sub), [vid], np.zeros((1, 25, NCLASS)))
    out = tmp_path / "a" / "b" / "out"
    assert plot_results.main(["timeline", str(sub), gt, "--videos", vid, "-o", str(out)]) == 0
    written = [p for p in tmp_path.rglob("*.png")]
    assert len(written) == 1 and written[0].parent == out and written[0].name.startswith("timeline__.._.._escaped-")
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["out"]


def test_best_and_worst_videos_by_per_video_ap(loc_files, mpl, tmp_path, capsys):
    sub, gt, _ = loc_files
    assert plot_results.main(["timeline", sub, gt, "--best", "1", "--worst", "1", "-o", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "P: per-video AP 1.0000" in printed
    assert sorted(p.name for p in tmp_path.glob("timeline_*.png")) == ["timeline_P.png", "timeline_W.png"]
    assert plot_results.select_videos([("a", 1.0), ("b", 0.5), ("c", 0.1)], 2, 2) == ["a", "b", "c"]
    assert plot_results.select_videos([("a", 1.0), ("b", 0.5), ("c", 0.1)], 0, 2) == ["c", "b"]


def test_bad_inputs_exit_2_with_a_message(loc_files, per_class_files, mpl, capsys):
    sub, gt, _ = loc_files
    assert cli.run(plot_results.main, ["timeline", sub, gt, "--videos", "nope"]) == 2
    assert "['nope'] not in both" in capsys.readouterr().err
    assert cli.run(plot_results.main, ["timeline", per_class_files[0], per_class_files[1], "--videos", "A"]) == 2
    assert "needs a localisation file" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # neither --videos nor --best/--worst
        plot_results.main(["timeline", sub, gt])


# ------------------------------------------------------------------------------------ without matplotlib

def test_without_matplotlib_says_how_to_install(tmp_path, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules makes the import fail
    (tmp_path / "run").mkdir()
    fake_run(tmp_path / "run", [0.1])
    assert cli.run(plot_results.main, ["curves", str(tmp_path / "run"), "-o", str(tmp_path / "c.png")]) == 2
    assert "pip install matplotlib" in capsys.readouterr().err
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plot_results.plot_curves(str(tmp_path / "run"), str(tmp_path / "c.png"))
    assert not (tmp_path / "c.png").exists()


def test_importing_does_not_import_matplotlib():
    """main.py imports plot_results only with --plot, but even then matplotlib loads at the first draw."""
    code = "import sys, plot_results; sys.exit(any(m.startswith('matplotlib') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], cwd=os.path.dirname(plot_results.__file__)).returncode == 0
