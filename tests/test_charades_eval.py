"""The Python equivalents of Charades_v1_classify.m / Charades_v1_localize.m (SPEC section 8).

APs are computed by hand in the comments; every case is built so that the usual mistakes (unstable
sort, scoring a video without actions, -inf rows out of ground-truth order, exclusive time bounds,
no 0-based frame shift) give a different number.
"""
from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

from utils.charades_eval import (average_precision, chance_map, classify, localize, localize_gt, mean_ap,
                                 mean_ap_with_positives, report_against_chance)
from utils.submission import SubmissionError

HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length".split(",")


def write_gt(path, videos: list[tuple[str, str, float]]) -> str:
    """A Charades CSV with (id, actions, length) rows; the description has a comma, as real ones do."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for vid, actions, length in videos:
            w.writerow([vid, "S1", "Kitchen", 6, 7, "Yes", "A person, then more.", "cup", "Desc, with comma.",
                        actions, length])
    return str(path)


def write_lines(path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


# --------------------------------------------------------------------------------- classification

# GT rows in CSV order (2 classes):      class 0  class 1
#   A  c001                                  0        1
#   B  c000                                  1        0
#   C  c000;c001                             1        1
#   D  (no actions: its scores are -inf)     0        0
#   E  c000 (missing from the submission)    1        0
CLS_GT = [("A", "c001 0.0 3.0", 10), ("B", "c000 1.0 2.0", 10), ("C", "c000 0.0 1.0;c001 2.0 5.0", 10),
          ("D", "", 10), ("E", "c000 0.0 4.0", 10)]
# Submission lines in another order than the GT (ties must follow GT order), D scored high (must be
# ignored), an extra id X (ignored), E missing.
CLS_SUB = ["C 0.5 0.2", "X 1.0 1.0", "A 0.5 0.2", "D 0.9 0.9", "B 0.5 0.9"]
# Class 0: scores by GT row [0.5, 0.5, 0.5, -inf, -inf], labels [0, 1, 1, 0, 1].  Stable order is
#   A B C D E -> labels 0 1 1 0 1; precision at the positives 1/2, 2/3, 3/5:
#   AP0 = (1/2 + 2/3 + 3/5) / 3 = (15 + 20 + 18) / 90 = 53/90.
#   (Reversed ties: 1 1 0 -> (1 + 1 + 3/5)/3; E before D: 3/4 instead of 3/5; D scored: 0 0 1 1 1.)
# Class 1: scores [0.2, 0.9, 0.2, -inf, -inf], labels [1, 0, 1, 0, 0].  Order B A C D E -> 0 1 1 0 0:
#   AP1 = (1/2 + 2/3) / 2 = 7/12.
AP0, AP1 = 53 / 90, 7 / 12
MAP = (AP0 + AP1) / 2                      # = 211/360
WAP = (3 * AP0 + 2 * AP1) / 5              # class 0 has 3 positives, class 1 has 2: = 88/150


def test_classify_hand_computed(tmp_path):
    gt = write_gt(tmp_path / "gt.csv", CLS_GT)
    sub = write_lines(tmp_path / "sub.txt", CLS_SUB)
    with pytest.warns(UserWarning, match="1 of 4 video"):      # E (D has no actions: not counted)
        ap, m, w = classify(sub, gt, nclass=2)
    np.testing.assert_allclose(ap, [AP0, AP1], rtol=1e-12)
    assert m == pytest.approx(211 / 360) and m == pytest.approx(MAP)
    assert w == pytest.approx(88 / 150) and w == pytest.approx(WAP)


@pytest.mark.filterwarnings("ignore:.*missing from the submission")
def test_classify_extra_id_changes_nothing(tmp_path):
    gt = write_gt(tmp_path / "gt.csv", CLS_GT)
    with_x = classify(write_lines(tmp_path / "a.txt", CLS_SUB), gt, nclass=2)
    without_x = classify(write_lines(tmp_path / "b.txt", [s for s in CLS_SUB if not s.startswith("X")]), gt, nclass=2)
    np.testing.assert_array_equal(with_x[0], without_x[0])


@pytest.mark.filterwarnings("ignore:.*missing from the submission")
def test_class_without_positives_is_nan(tmp_path):
    # Same data with a third class that no video has: its AP is NaN, and so is the plain mAP (as MATLAB's
    # mean); the mean over the classes with positives and the WAP are those of the 2-class case.
    gt = write_gt(tmp_path / "gt.csv", CLS_GT)
    sub = write_lines(tmp_path / "sub.txt", [s + " 0.3" for s in CLS_SUB])
    ap, m, w = classify(sub, gt, nclass=3)
    assert np.isnan(ap[2]) and np.isnan(m)
    np.testing.assert_allclose(ap[:2], [AP0, AP1])
    assert mean_ap_with_positives(ap) == pytest.approx(MAP)
    assert w == pytest.approx(WAP)


def test_each_kind_of_file_rejected_by_the_other_evaluator(tmp_path):
    gt = write_gt(tmp_path / "gt.csv", CLS_GT)
    with pytest.raises(SubmissionError, match="a localize file .* evaluate it with 'localize'"):
        classify(write_lines(tmp_path / "loc.txt", ["A 1 0.5 0.2"]), gt, nclass=2)
    with pytest.raises(SubmissionError, match="a classify file .* evaluate it with 'classify'"):
        localize(write_lines(tmp_path / "cls.txt", ["A 0.5 0.2"]), gt, nclass=2)


@pytest.mark.filterwarnings("ignore:.*missing from the submission")
def test_chance_of_identical_rows_is_their_map(tmp_path):
    """Rows all alike: shuffling them across videos changes nothing.  Class 0, GT order A B C E then D (no
    actions: -inf), labels 0 1 1 1 0: AP = (1/2 + 2/3 + 3/4)/3 = 23/36; class 1, labels 1 0 1 0 0: 5/6."""
    gt = write_gt(tmp_path / "gt.csv", CLS_GT)
    sub = write_lines(tmp_path / "sub.txt", [f"{v} 0.5 0.5" for v in "ABCDE"])
    ap, _, _ = classify(sub, gt, nclass=2)
    np.testing.assert_allclose(ap, [23 / 36, 5 / 6], rtol=1e-12)
    assert chance_map(sub, gt, nclass=2, trials=3) == pytest.approx(53 / 72, rel=1e-12)


@pytest.mark.filterwarnings("ignore:.*missing from the submission")
def test_report_against_chance_reads_the_last_epoch_file(tmp_path, capsys):
    """Among a run's files (other epochs, localisation files, the log), the last epoch_NNN.txt."""
    gt = write_gt(tmp_path / "gt.csv", CLS_GT)
    run = tmp_path / "run"
    run.mkdir()
    write_lines(run / "epoch_001.txt", [f"{v} 0.5 0.5" for v in "ABCDE"])
    write_lines(run / "epoch_002.txt", CLS_SUB)
    write_lines(run / "localize_002.txt", ["A 1 0.5 0.2"])
    write_lines(run / "log.txt", ["epoch 2 done"])
    write_lines(run / "epoch_003.csv", ["not a submission"])
    got, chance = report_against_chance(str(run), gt, nclass=2)
    assert got == pytest.approx(MAP) and 0 < chance < 1
    assert f"{run / 'epoch_002.txt'}: official video mAP {MAP:.4f} over 2 classes" in capsys.readouterr().out


# --------------------------------------------------------------------------------- localisation

# V (25 s): t_j = j-1.  c000 2..4 -> positive at t = 2, 3, 4 (inclusive): frames 3, 4, 5.
#           c001 0..0 -> positive at t = 0 only: frame 1.
# W (50 s): t_j = 2(j-1).  c000 10..11 -> t = 10: frame 6.
# Z (10 s): no actions: 25 all-zero rows, scored from the file like any other video (negatives), unlike
#           classification, where such a video is -inf (Charades_v1_localize.m records every frame id).
LOC_GT = [("V", "c000 2 4;c001 0 0", 25), ("W", "c000 10 11", 50), ("Z", "", 10)]


def loc_lines(first_frame: int = 1) -> list[str]:
    """Class 0: V3, V4 = 0.9, V5 missing (-inf), other V and all W frames 0.1, Z 0.9 (25 negatives).
    Class 1: V1 = 0.2, every other V/W frame 0.5."""
    lines = []
    for vid in "VWZ":
        for j in range(1, 26):
            if vid == "V" and j == 5:
                continue
            s0 = 0.9 if (vid == "V" and j in (3, 4)) or vid == "Z" else 0.1
            s1 = 0.2 if (vid == "V" and j == 1) else 0.5
            lines.append(f"{vid} {j - 1 + first_frame} {s0:g} {s1:g}")
    return lines[::-1]  # file order must not matter


# Class 0, 75 rows: the 0.9 group in GT order is V3, V4, Z1..Z25 -> V3, V4 at ranks 1, 2 (27 rows).
#   The 0.1 group in GT order: V1, V2, V6..V25 (22 rows), then W1..W25, so W6 is 22 + 6 = 28th in it ->
#   rank 27 + 28 = 55.  The -inf group is V5 alone -> rank 27 + 47 + 1 = 75.
#   AP0 = (1/1 + 2/2 + 3/55 + 4/75)/4 = (2 + 89/825)/4 = 1739/3300.
#   (Z scored -inf, as in classification: ranks 1, 2, 30, 50 -> 0.545.)
# Class 1: above V1 (0.2) are the 0.5 rows V2..V4, V6..V25 (23), W1..W25 (25) and Z1..Z25 (25): rank 74,
#   AP1 = 1/74 (Z scored -inf: 1/49).
LOC_AP0, LOC_AP1 = 1739 / 3300, 1 / 74


def test_localize_hand_computed(tmp_path):
    gt = write_gt(tmp_path / "gt.csv", LOC_GT)
    with pytest.warns(UserWarning, match="1 of 75 frame"):     # V5; Z's frames are scored too
        ap, m, w = localize(write_lines(tmp_path / "loc.txt", loc_lines()), gt, nclass=2)
    np.testing.assert_allclose(ap, [LOC_AP0, LOC_AP1], rtol=1e-12)
    assert m == pytest.approx((LOC_AP0 + LOC_AP1) / 2)
    assert w == pytest.approx((4 * LOC_AP0 + 1 * LOC_AP1) / 5)


def test_localize_ignores_frames_past_25(tmp_path):
    """Rows whose frame is not one of 1..25 match no ground-truth row, as in Charades_v1_localize.m (its map
    from 'ID-NNN' frame ids is only asked for frames 1..25): the APs are unchanged, scored high as they are."""
    gt = write_gt(tmp_path / "gt.csv", LOC_GT)
    extra = ["V 26 0.99 0.99", "W 26 0.99 0.99", "Z 1000 0.99 0.99", "V -3 0.99 0.99", "W 2147483647 0.99 0.99"]
    with pytest.warns(UserWarning, match="1 of 75 frame"):     # V5 is still the only missing frame
        ap, _, _ = localize(write_lines(tmp_path / "loc.txt", loc_lines() + extra), gt, nclass=2)
    np.testing.assert_allclose(ap, [LOC_AP0, LOC_AP1], rtol=1e-12)


@pytest.mark.filterwarnings("ignore:.*missing from the submission")
def test_localize_zero_based_frames_are_shifted(tmp_path):
    gt = write_gt(tmp_path / "gt.csv", LOC_GT)
    with pytest.warns(UserWarning, match="1-indexed"):
        ap, _, _ = localize(write_lines(tmp_path / "loc0.txt", loc_lines(first_frame=0)), gt, nclass=2)
    # Unshifted, frame 0 would match nothing and every other frame would be off by one.
    np.testing.assert_allclose(ap, [LOC_AP0, LOC_AP1], rtol=1e-12)


def test_localize_gt_rows_and_inclusive_bounds(tmp_path):
    from utils.charades_csv import read_annotations
    gt = localize_gt(read_annotations(write_gt(tmp_path / "gt.csv", LOC_GT), 2), nclass=2)
    assert gt.shape == (75, 2)
    assert np.flatnonzero(gt[:, 0]).tolist() == [2, 3, 4, 25 + 5]      # V3, V4, V5, W6 (0-based rows)
    assert np.flatnonzero(gt[:, 1]).tolist() == [0]                     # V1 (t = 0 = start = end)
    assert not gt[50:].any()                                            # Z: no actions


# --------------------------------------------------------------------------------- the AP function

def slow_ap(scores: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Line-by-line translation of THUMOSeventclspr: [~, i] = sort(-conf) (stable), cumsum, sum prec."""
    ap = np.full(scores.shape[1], np.nan)
    for c in range(scores.shape[1]):
        order = np.argsort(-scores[:, c], kind="stable")
        tp = gt[order, c] == 1
        npos = tp.sum()
        if npos:
            prec = np.cumsum(tp) / np.arange(1, len(tp) + 1)
            ap[c] = prec[tp].sum() / npos
    return ap


def random_case(rng, n: int, c: int):
    scores = rng.integers(0, 5, (n, c)) / 4.0           # heavy ties
    scores[rng.random((n, c)) < 0.1] = -np.inf
    scores[rng.random((n, c)) < 0.03] = np.inf
    scores[rng.random((n, c)) < 0.03] = np.nan          # MATLAB sorts NaN last; so must we
    scores[rng.random((n, c)) < 0.05] = -0.0            # equal to 0.0
    gt = (rng.random((n, c)) < 0.3).astype(int)
    gt[:, 0] = 0                                        # a class without positives
    return scores, gt


@pytest.mark.parametrize("n,c", [(1, 3), (7, 4), (200, 9), (8000, 130)])  # the last one runs threaded
def test_average_precision_matches_slow_loop(n, c):
    rng = np.random.default_rng(n)
    scores, gt = random_case(rng, n, c)
    fast, slow = average_precision(scores, gt), slow_ap(scores, gt)
    assert np.isnan(fast[0]) and np.isnan(slow[0])
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)


def test_average_precision_continuous_scores():
    rng = np.random.default_rng(5)
    scores = rng.random((3000, 20))
    scores[::7] = np.round(scores[::7], 2)              # some ties among otherwise distinct values
    gt = (rng.random((3000, 20)) < 0.05).astype(int)
    np.testing.assert_allclose(average_precision(scores, gt), slow_ap(scores, gt), rtol=0, atol=1e-12)


def test_average_precision_rows_equals_aligned_matrix():
    # rows[i] picks the submission row scoring GT row i; -1 means no prediction (-inf).
    rng = np.random.default_rng(1)
    scores, gt = random_case(rng, 300, 6)
    sub = rng.random((50, 6)).round(1)
    rows = rng.integers(-1, 50, 300)
    aligned = np.where(rows[:, None] >= 0, sub[np.maximum(rows, 0)], -np.inf)
    np.testing.assert_allclose(average_precision(sub, gt, rows=rows), slow_ap(aligned, gt), rtol=0, atol=1e-12)


def test_average_precision_edge_shapes():
    # one submission row scoring GT row 1, none for GT row 0 (-inf): the scored negative ranks first
    ap = average_precision([np.array([0.7])], np.array([[1], [0]]), rows=np.array([-1, 0]))
    assert ap.tolist() == [0.5]
    assert average_precision([], np.zeros((0, 0), bool)).shape == (0,)  # no rows, no classes: no APs
    # class ids past int16 (below 2**15 classes the positives are grouped by a sort of int16 ids)
    ncls = 2 ** 15 + 3
    gt = np.zeros((2, ncls), bool)
    gt[0, -1] = gt[1, 5] = gt[1, 2 ** 15] = True
    scores = np.zeros((2, ncls))
    scores[1] = 1.0                                     # row 1 ranks first in every class
    ap = average_precision(scores, gt)
    assert (ap[-1], ap[5], ap[2 ** 15]) == (0.5, 1.0, 1.0) and np.isnan(ap).sum() == ncls - 3


def test_average_precision_tiny_hand_case():
    # scores 3, 2, 2, 1 with labels 0, 1, 1, 0 -> stable ranks of the positives 2, 3:
    # AP = (1/2 + 2/3) / 2 = 7/12.  Column 2 has no positives -> NaN.
    scores = np.array([[3, 0], [2, 0], [2, 0], [1, 0]], dtype=float)
    gt = np.array([[0, 0], [1, 0], [1, 0], [0, 0]])
    ap = average_precision(scores, gt)
    assert ap[0] == pytest.approx(7 / 12) and np.isnan(ap[1])
    m, w = mean_ap(ap, gt)
    assert np.isnan(m) and w == pytest.approx(7 / 12)


# --------------------------------------------------------------------------------- command line

def run_cli(repo_root, *args):
    return subprocess.run([sys.executable, "-m", "utils.charades_eval", *map(str, args)],
                          cwd=repo_root, capture_output=True, text=True, timeout=60)


def test_cli_classify_per_class(tmp_path, repo_root):
    gt = write_gt(tmp_path / "gt.csv", CLS_GT)
    sub = write_lines(tmp_path / "sub.txt", [s + " 0.3" for s in CLS_SUB])
    r = run_cli(repo_root, "classify", sub, gt, "--nclass", 3, "--per-class",
                "--classes", "data/Charades_v1_classes.txt")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "MAP: nan" in lines
    assert f"WAP: {WAP:f}" in lines                                   # WAP: 0.586667
    assert f"MAP over 2 classes with positives: {MAP:f}" in lines    # 0.586111
    assert f"c000 {AP0:f} Holding some clothes" in lines
    assert r.stderr.startswith("Warning: ") and "1 of 4 video(s)" in r.stderr


def test_cli_localize(tmp_path, repo_root):
    gt = write_gt(tmp_path / "gt.csv", LOC_GT)
    r = run_cli(repo_root, "localize", write_lines(tmp_path / "loc.txt", loc_lines()), gt, "--nclass", 2)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:2] == [f"Per-Frame MAP: {(LOC_AP0 + LOC_AP1) / 2:f}",
                                         f"Per-Frame WAP: {(4 * LOC_AP0 + LOC_AP1) / 5:f}"]
    assert "classes with positives" not in r.stdout                 # every class has positives


def test_cli_errors_exit_2(tmp_path, repo_root):
    gt = write_gt(tmp_path / "gt.csv", CLS_GT)
    r = run_cli(repo_root, "classify", tmp_path / "nope.txt", gt, "--nclass", 2)
    assert r.returncode == 2 and "nope.txt" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    bad = write_lines(tmp_path / "bad.txt", ["A 0.5 0.2", "B 0.5 zero"])
    r = run_cli(repo_root, "classify", bad, gt, "--nclass", 2)
    assert r.returncode == 2 and "line 2" in r.stderr and "'zero'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""
