"""combine_rgb_flow.py: weighted fusion of two submission files over the union of their keys."""
from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

from combine_rgb_flow import combine, default_out_path
from utils.charades_eval import average_precision, localize
from utils.submission import SubmissionError, read_submission

C = 3


def write(path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_classification_union_with_missing_keys(tmp_path, capsys):
    rgb = write(tmp_path / "rgb.txt", ["A 1 2 3", "B 0.2 0.4 0.6"])
    flow = write(tmp_path / "flow.txt", ["B 1 1 1", "C 4 0 -2"])
    result = combine(rgb, flow, str(tmp_path / "out.txt"), weights=(0.25, 0.75), nclass=C)
    sub = read_submission(result.out_path, nclass=C)
    assert sub.ids == ["A", "B", "C"]                        # RGB order, then flow-only keys
    # A: 0.25 * (1, 2, 3) + 0;  B: 0.25 * (0.2, 0.4, 0.6) + 0.75 * 1;  C: 0 + 0.75 * (4, 0, -2)
    np.testing.assert_allclose(sub.scores, [[0.25, 0.5, 0.75], [0.8, 0.85, 0.9], [3, 0, -1.5]])
    assert result.only_rgb == [("A",)] and result.only_flow == [("C",)]
    err = capsys.readouterr().err
    assert "1 key(s) of RGB missing from FLOW (counted as zeros): A" in err
    assert "1 key(s) of FLOW missing from RGB (counted as zeros): C" in err


def test_localization_fusion_accepted_by_evaluator(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rgb_s, flow_s = rng.random((2, 25, C)).round(3), rng.random((2, 25, C)).round(3)
    rgb_lines = [f"{v} {j + 1} " + " ".join(f"{x:g}" for x in rgb_s[i, j]) for i, v in enumerate("VW") for j in range(25)]
    # the flow file is 0-based (shifted to 1-based before keys are matched) and lacks W's frame 7
    flow_lines = [f"{v} {j} " + " ".join(f"{x:g}" for x in flow_s[i, j]) for i, v in enumerate("VW") for j in range(25)
                  if (v, j) != ("W", 6)]
    rgb, flow = write(tmp_path / "rgb.txt", rgb_lines), write(tmp_path / "flow.txt", flow_lines)
    result = combine(rgb, flow, nclass=C)
    assert result.out_path == str(tmp_path / "rgb_combined.txt") and result.kind == "localize"
    err = capsys.readouterr().err
    assert "0-based" in err and "1 key(s) of RGB missing from FLOW (counted as zeros): W 7" in err

    expected = 0.5 * rgb_s + 0.5 * flow_s
    expected[1, 6] = 0.5 * rgb_s[1, 6]
    sub = read_submission(result.out_path, nclass=C)
    assert sub.frames.tolist() == list(range(1, 26)) * 2
    np.testing.assert_allclose(sub.scores.reshape(2, 25, C), expected, rtol=1e-5)

    gt_csv = tmp_path / "gt.csv"
    with open(gt_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow("id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length".split(","))
        w.writerow(["V", "S", "Hall", 6, 7, "Yes", "x, y", "cup", "d", "c000 0 10;c001 5 25;c002 3 4", 25])
        w.writerow(["W", "S", "Hall", 6, 7, "Yes", "x, y", "cup", "d", "c001 0 50;c002 20 30", 50])
    ap, _, _ = localize(result.out_path, str(gt_csv), nclass=C)
    t = np.arange(25)                                        # V: t = j-1; W: t = 2(j-1)
    gt = np.zeros((50, C), dtype=int)
    gt[:25, 0], gt[:25, 1], gt[:25, 2] = t <= 10, (t >= 5) & (t <= 25), (t >= 3) & (t <= 4)
    gt[25:, 1], gt[25:, 2] = 1, (2 * t >= 20) & (2 * t <= 30)
    np.testing.assert_allclose(ap, average_precision(sub.scores, gt), rtol=1e-12)


def test_different_kinds_rejected(tmp_path):
    rgb = write(tmp_path / "rgb.txt", ["A 1 2 3"])
    flow = write(tmp_path / "flow.txt", ["A 1 1 2 3"])
    with pytest.raises(SubmissionError, match="classify file .*rgb.txt.* localize file .*flow.txt"):
        combine(rgb, flow, nclass=C)
    assert not (tmp_path / "rgb_combined.txt").exists()


def test_default_out_path():
    assert default_out_path("cache/rgb/epoch_005.txt") == "cache/rgb/epoch_005_combined.txt"
    assert default_out_path("runs/scores") == "runs/scores_combined.txt"


def test_cli(tmp_path, repo_root):
    rgb = write(tmp_path / "rgb.txt", ["A " + " ".join(["0.5"] * 157)])
    flow = write(tmp_path / "flow.txt", ["A " + " ".join(["1.5"] * 157)])
    r = subprocess.run([sys.executable, "combine_rgb_flow.py", rgb, flow, "--weights", "1", "2"],
                       cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "rgb_combined.txt").read_text().split() == ["A"] + ["3.5"] * 157   # 1*0.5 + 2*1.5
    r = subprocess.run([sys.executable, "combine_rgb_flow.py", rgb, str(tmp_path / "none.txt")],
                       cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "none.txt" in r.stderr
    r = subprocess.run([sys.executable, "combine_rgb_flow.py", "--help"], cwd=repo_root, capture_output=True, text=True)
    assert "_combined" in r.stdout
