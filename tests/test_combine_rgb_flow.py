"""combine_rgb_flow.py: weighted fusion of two submission files over the union of their keys."""
from __future__ import annotations

import csv
import re
import subprocess
import sys

import numpy as np
import pytest

from combine_rgb_flow import combine, main
from utils.charades_eval import average_precision, localize
from utils import cli
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
    out, err = capsys.readouterr()
    assert out == ""                                         # -o: nothing on stdout
    assert "1 key(s) of RGB missing from FLOW (counted as zeros): A" in err
    assert "1 key(s) of FLOW missing from RGB (counted as zeros): C" in err


def test_weights_are_normalised_to_sum_to_one(tmp_path):
    rgb, flow = write(tmp_path / "rgb.txt", ["A 1 2 3"]), write(tmp_path / "flow.txt", ["A 4 5 6"])
    result = combine(rgb, flow, str(tmp_path / "out.txt"), weights=(1, 3), nclass=C)  # 0.25, 0.75
    assert result.weights == (0.25, 0.75)
    np.testing.assert_allclose(read_submission(result.out_path, C).scores, [[3.25, 4.25, 5.25]])
    with pytest.raises(ValueError, match="--weights 0 0: they sum to 0"):
        combine(rgb, flow, str(tmp_path / "zero.txt"), weights=(0, 0), nclass=C)
    assert not (tmp_path / "zero.txt").exists()


def test_twelve_digits_make_no_ties_the_inputs_did_not_have(tmp_path, capsys):
    """The original printed str() of numpy floats: 12 significant digits.  Fused scores that differ in their
    7th digit stay apart (%g would print 0.211728 twice), so the rank of the positive B is defined: AP 1,
    not the 1/2 of a tie that the stable sort breaks in A's favour."""
    rgb = write(tmp_path / "rgb.txt", ["A 0.1234561 0 0", "B 0.1234564 0 0", "D 0.3333333333333333 0 0"])
    flow = write(tmp_path / "flow.txt", ["A 0.3 0 0", "B 0.3 0 0", "D 0.3333333333333333 0 0"])
    combine(rgb, flow, None, nclass=C)
    # and no more: 1/3 prints as 0.333333333333, as str() of a numpy float did
    assert capsys.readouterr().out.split("\n") == ["A 0.21172805 0 0", "B 0.2117282 0 0", "D 0.333333333333 0 0", ""]
    fused = read_submission(combine(rgb, flow, str(tmp_path / "out.txt"), nclass=C).out_path, C).scores
    assert average_precision(fused[:2, :1], np.array([[0.0], [1.0]]))[0] == 1.0


@pytest.mark.parametrize("weights, message", [
    (("1e308", "1e308"), r"--weights 1e\+308 1e\+308: they sum to inf.*same ratio"),  # was an OverflowError
    (("1", "-1"), "--weights 1 -1: each weight must be a finite number >= 0"),             # was "they sum to 0"
    (("-1", "3"), "--weights -1 3: each weight must be a finite number >= 0"),             # was accepted
    (("nan", "1"), "--weights nan 1: each weight must be a finite number >= 0"),
])
def test_bad_weights_are_one_line(tmp_path, capsys, weights, message):
    rgb, flow = write(tmp_path / "rgb.txt", ["A 1 2 3"]), write(tmp_path / "flow.txt", ["A 4 5 6"])
    argv = [rgb, flow, "--nclass", str(C), "-o", str(tmp_path / "out.txt"), "--weights", *weights]
    assert cli.run(main, argv, prog="combine_rgb_flow") == 2  # as a user runs it (utils/cli.py)
    err = capsys.readouterr().err
    assert re.fullmatch(f"combine_rgb_flow: error: {message}.*\n", err) and not (tmp_path / "out.txt").exists()


def test_infinite_scores_stay_infinite(tmp_path):
    """inf is a score like any other (NaN came from 0 * inf with a zero weight, and from inf - inf)."""
    rgb = write(tmp_path / "rgb.txt", ["A inf 1 2", "B -inf 0 0"])
    flow = write(tmp_path / "flow.txt", ["A 1 inf 1", "B 1 -inf 3", "C inf 0 0"])
    both = combine(rgb, flow, str(tmp_path / "both.txt"), nclass=C)
    np.testing.assert_array_equal(read_submission(both.out_path, C).scores,
                                  [[np.inf, np.inf, 1.5], [-np.inf, -np.inf, 1.5], [np.inf, 0, 0]])
    rgb_only = combine(rgb, flow, str(tmp_path / "rgb_only.txt"), weights=(1, 0), nclass=C)
    np.testing.assert_array_equal(read_submission(rgb_only.out_path, C).scores,
                                  [[np.inf, 1, 2], [-np.inf, 0, 0], [0, 0, 0]])   # the flow stream adds nothing
    clash = write(tmp_path / "clash.txt", ["A 1 1 1", "B inf 0 0"])
    with pytest.raises(SubmissionError, match=r"key B, class 0: .*rgb.txt\) is -inf .*clash.txt\) is inf"):
        combine(rgb, clash, str(tmp_path / "out.txt"), nclass=C)


def test_a_stream_of_weight_zero_adds_nothing_even_where_infinite(tmp_path):
    """Weight 0 for either stream: the fused file is the other stream's (missing keys: zeros), even where
    the zero-weight stream is +-inf, and against the other's -+inf (0 * inf would be NaN; a sum undefined)."""
    rgb = write(tmp_path / "rgb.txt", ["A inf -inf 2", "B inf 0 0"])
    flow = write(tmp_path / "flow.txt", ["A -inf inf 1", "C 5 inf -inf"])
    flow_only = combine(rgb, flow, str(tmp_path / "flow_only.txt"), weights=(0, 2), nclass=C)
    assert flow_only.weights == (0, 1)
    np.testing.assert_array_equal(read_submission(flow_only.out_path, C).scores,
                                  [[-np.inf, np.inf, 1], [0, 0, 0], [5, np.inf, -np.inf]])
    rgb_only = combine(rgb, flow, str(tmp_path / "rgb_only.txt"), weights=(3, 0), nclass=C)
    np.testing.assert_array_equal(read_submission(rgb_only.out_path, C).scores,
                                  [[np.inf, -np.inf, 2], [np.inf, 0, 0], [0, 0, 0]])


def test_missing_keys_listed_up_to_ten_and_zero_based_frames_said(tmp_path, capsys):
    rgb = write(tmp_path / "rgb.txt", [f"V{k:02d} 1 1 1" for k in range(12)])
    flow = write(tmp_path / "flow.txt", ["X 1 1 1"])
    combine(rgb, flow, str(tmp_path / "out.txt"), nclass=C)
    err = capsys.readouterr().err
    shown = ", ".join(f"V{k:02d}" for k in range(10))
    assert f"12 key(s) of RGB missing from FLOW (counted as zeros): {shown} and 2 more" in err
    assert "1 key(s) of FLOW missing from RGB (counted as zeros): X\n" in err
    zero = write(tmp_path / "zero.txt", [f"A {f} 1 1 1" for f in range(25)])
    one = write(tmp_path / "one.txt", [f"A {f} 2 2 2" for f in range(1, 26)])
    result = combine(zero, one, str(tmp_path / "loc.txt"), nclass=C)
    assert result.nkeys == 25 and not result.only_rgb and not result.only_flow  # the same keys once shifted
    assert capsys.readouterr().err == f"combine_rgb_flow: RGB {zero}: 0-based frame numbers, adding 1 to all\n"


def test_localization_fusion_to_stdout_accepted_by_evaluator(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rgb_s, flow_s = rng.random((2, 25, C)).round(3), rng.random((2, 25, C)).round(3)
    rgb_lines = [f"{v} {j + 1} " + " ".join(f"{x:g}" for x in rgb_s[i, j]) for i, v in enumerate("VW") for j in range(25)]
    # the flow file is 0-based (shifted to 1-based before keys are matched) and lacks W's frame 7
    flow_lines = [f"{v} {j} " + " ".join(f"{x:g}" for x in flow_s[i, j]) for i, v in enumerate("VW") for j in range(25)
                  if (v, j) != ("W", 6)]
    rgb, flow = write(tmp_path / "rgb.txt", rgb_lines), write(tmp_path / "flow.txt", flow_lines)
    result = combine(rgb, flow, nclass=C)
    assert result.out_path is None and result.kind == "localize"
    out, err = capsys.readouterr()
    assert "0-based" in err and "1 key(s) of RGB missing from FLOW (counted as zeros): W 7" in err
    fused = write(tmp_path / "fused.txt", out.splitlines())

    expected = 0.5 * rgb_s + 0.5 * flow_s
    expected[1, 6] = 0.5 * rgb_s[1, 6]
    sub = read_submission(fused, nclass=C)
    assert sub.frames.tolist() == list(range(1, 26)) * 2
    np.testing.assert_allclose(sub.scores.reshape(2, 25, C), expected, rtol=1e-5)

    gt_csv = tmp_path / "gt.csv"
    with open(gt_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow("id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length".split(","))
        w.writerow(["V", "S", "Hall", 6, 7, "Yes", "x, y", "cup", "d", "c000 0 10;c001 5 25;c002 3 4", 25])
        w.writerow(["W", "S", "Hall", 6, 7, "Yes", "x, y", "cup", "d", "c001 0 50;c002 20 30", 50])
    ap, _, _ = localize(fused, str(gt_csv), nclass=C)
    t = np.arange(25)                                        # V: t = j-1; W: t = 2(j-1)
    gt = np.zeros((50, C), dtype=int)
    gt[:25, 0], gt[:25, 1], gt[:25, 2] = t <= 10, (t >= 5) & (t <= 25), (t >= 3) & (t <= 4)
    gt[25:, 1], gt[25:, 2] = 1, (2 * t >= 20) & (2 * t <= 30)
    np.testing.assert_allclose(ap, average_precision(sub.scores, gt), rtol=1e-12)


def test_different_kinds_rejected(tmp_path, capsys):
    rgb = write(tmp_path / "rgb.txt", ["A 1 2 3"])
    flow = write(tmp_path / "flow.txt", ["A 1 1 2 3"])
    with pytest.raises(SubmissionError, match="classify file .*rgb.txt.* localize file .*flow.txt"):
        combine(rgb, flow, nclass=C)
    assert capsys.readouterr().out == ""


def test_cli_prints_the_fused_file_as_the_original(tmp_path, repo_root):
    """``python combine_rgb_flow.py rgb.txt flow.txt > fused.txt``: stdout is the file, messages on stderr."""
    rgb = write(tmp_path / "rgb.txt", ["A " + " ".join(["0.5"] * 157), "B " + " ".join(["1"] * 157)])
    flow = write(tmp_path / "flow.txt", ["A " + " ".join(["2"] * 157)])
    cmd = [sys.executable, "combine_rgb_flow.py", rgb, flow, "--weights", "1", "3"]
    r = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # weights 1/4, 3/4: A = 0.125 + 1.5; B only in RGB: 0.25
    assert r.stdout.split("\n") == ["A " + " ".join(["1.625"] * 157), "B " + " ".join(["0.25"] * 157), ""]
    assert "missing from FLOW" in r.stderr and "written to stdout" in r.stderr
    printed = r.stdout
    r = subprocess.run(cmd + ["-o", str(tmp_path / "out.txt")], cwd=repo_root, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout == "" and (tmp_path / "out.txt").read_text() == printed
    r = subprocess.run([sys.executable, "combine_rgb_flow.py", rgb, str(tmp_path / "none.txt")],
                       cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "none.txt" in r.stderr and r.stdout == ""
    # no --weights: the mean (0.5, 0.5), as the original
    r = subprocess.run(cmd[:4], cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert r.stdout.split("\n") == ["A " + " ".join(["1.25"] * 157), "B " + " ".join(["0.5"] * 157), ""]
