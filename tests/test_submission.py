"""Submission files: atomic writing, both kinds' round trips, malformed lines, the localisation grid."""
from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest

from utils import submission
from utils.submission import (CLASSIFY, LOCALIZE, SubmissionError, atomic_write_text, localization_rows,
                              one_based_frames, read_submission, write_classification, write_localization)

C = 3  # classes in the small files below


def write(tmp_path, lines: list[str], name: str = "sub.txt") -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


# --------------------------------------------------------------------------------- writing

def test_atomic_write_text_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    atomic_write_text(str(path), "new\ntext\n")
    assert path.read_text() == "new\ntext\n"
    assert os.listdir(tmp_path) == ["out.txt"]
    assert os.stat(path).st_mode & 0o777 != 0o600        # not mkstemp's private mode


def test_atomic_write_text_failure_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "out.txt"
    path.write_text("old")

    def boom(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(submission.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(str(path), "new")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]


def test_classification_round_trip_and_format(tmp_path):
    ids = ["vidA", "vidB"]
    scores = np.array([[0.5, 1e-05, 123456789.0], [-2.25, 0.0, 1 / 3]])
    path = str(tmp_path / "cls.txt")
    write_classification(path, ids, scores)
    assert open(path).read().splitlines() == ["vidA 0.5 1e-05 1.23457e+08", "vidB -2.25 0 0.333333"]
    sub = read_submission(path, nclass=C)
    assert sub.kind == CLASSIFY and sub.ids == ids and sub.frames is None
    np.testing.assert_allclose(sub.scores, scores, rtol=1e-5)      # %g keeps 6 significant digits


def test_localization_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    ids = ["v1", "v2", "v3"]
    scores = rng.random((3, 25, C)).astype(np.float32)
    path = str(tmp_path / "loc.txt")
    write_localization(path, ids, scores)
    lines = open(path).read().splitlines()
    assert len(lines) == 75 and lines[0].startswith("v1 1 ") and lines[24].startswith("v1 25 ")
    assert lines[25].startswith("v2 1 ")
    sub = read_submission(path, nclass=C)
    assert sub.kind == LOCALIZE and sub.ids == [i for i in ids for _ in range(25)]
    assert sub.frames.tolist() == list(range(1, 26)) * 3
    np.testing.assert_allclose(sub.scores.reshape(3, 25, C), scores, rtol=1e-5)
    assert sub.keys()[26] == ("v2", 2)


def test_writers_reject_what_the_reader_would(tmp_path):
    path = str(tmp_path / "x.txt")
    with pytest.raises(ValueError, match="NaN"):
        write_classification(path, ["a"], np.array([[0.1, np.nan, 0.2]]))
    for bad in ("a b", " ", "\t", "\n", ""):  # inner whitespace, whitespace only, empty
        with pytest.raises(ValueError, match="whitespace"):
            write_classification(path, ["ok", bad], np.zeros((2, C)))
        with pytest.raises(ValueError, match="whitespace"):
            write_localization(path, [bad], np.zeros((1, 25, C)))
    with pytest.raises(ValueError, match="duplicate"):
        write_classification(path, ["a", "a"], np.zeros((2, C)))
    with pytest.raises(ValueError, match="25"):
        write_localization(path, ["a"], np.zeros((1, 24, C)))
    for shape in ((3, C), (1, C), (2,), (2, C, 1)):  # one row of scores per id, no more, no fewer
        with pytest.raises(ValueError, match=r"scores must be \(len\(ids\)=2, C\)"):
            write_classification(path, ["a", "b"], np.zeros(shape))
    assert not os.path.exists(path)


def test_full_size_localisation_file_round_trip(tmp_path):
    """8,000 videos x 25 frames (the Charades test set has 7,985 videos), written in chunks of 4,096 rows:
    read back row for row, every id, frame and score (values %g writes exactly)."""
    V = 8000
    ids = [f"{v:05d}V" for v in range(V)]
    rng = np.random.default_rng(4)
    scores = rng.integers(-40000, 40000, (V, 25, 2)) / 4  # at most 6 significant digits
    path = str(tmp_path / "localize.txt")
    write_localization(path, ids, scores)
    sub = read_submission(path, nclass=2)
    assert len(sub.ids) == V * 25 and sub.ids == [i for i in ids for _ in range(25)]
    np.testing.assert_array_equal(sub.frames, np.tile(np.arange(1, 26), V))
    np.testing.assert_array_equal(sub.scores, scores.reshape(V * 25, 2))


# --------------------------------------------------------------------------------- reading

@pytest.fixture(params=["numpy", "pandas"])
def fast_reader(request, monkeypatch):
    """Each C fast path in turn: np.loadtxt (small files), pandas' reader (big files; forced here)."""
    if request.param == "pandas":
        pytest.importorskip("pandas", minversion="3")
    monkeypatch.setattr(submission, "PANDAS_MIN_BYTES", 0 if request.param == "pandas" else 2**62)
    return request.param


def no_slow_path(monkeypatch):
    def refuse(path, nclass):
        raise AssertionError(f"{path} fell back to the line-by-line reader")
    monkeypatch.setattr(submission, "_parse_slow", refuse)


def test_reader_accepts_tabs_blank_lines_and_long_ids(tmp_path, fast_reader):
    long_id = "x" * 100                                   # longer than the fast path's id field
    path = write(tmp_path, ["a\t0.1  0.2 0.3", "", f"{long_id} 1 2 inf", "   "])
    sub = read_submission(path, nclass=C)
    assert sub.ids == ["a", long_id]
    np.testing.assert_array_equal(sub.scores, [[0.1, 0.2, 0.3], [1, 2, np.inf]])


def test_fast_and_line_by_line_readers_agree(tmp_path, fast_reader, monkeypatch):
    rng = np.random.default_rng(3)
    path, cls = str(tmp_path / "loc.txt"), str(tmp_path / "cls.txt")
    scores = rng.random((2, 25, C)) * 10.0 ** rng.integers(-8, 3, (2, 25, C))   # %g with and without exponents
    scores[0, 0] = [-0.0, 1e-300, -2.5e12]
    write_localization(path, ["a", "b"], scores)
    write_classification(cls, ["01", "b"], scores[:, 0])                          # an id that looks like a number
    slow_loc, slow_cls = submission._parse_slow(path, C), submission._parse_slow(cls, C)
    no_slow_path(monkeypatch)
    for fast, slow in ((read_submission(path, nclass=C), slow_loc), (read_submission(cls, nclass=C), slow_cls)):
        assert fast.ids == slow.ids and fast.kind == slow.kind
        assert (fast.frames is None and slow.frames is None) or fast.frames.tolist() == slow.frames.tolist()
        np.testing.assert_array_equal(fast.scores, slow.scores)   # bit for bit: both round as float() does
        np.testing.assert_array_equal(np.signbit(fast.scores), np.signbit(slow.scores))
    assert read_submission(cls, nclass=C).ids == ["01", "b"]


def test_columns_of_a_parse_by_lines(tmp_path):
    """The line-by-line reader gives the scores as a matrix; the evaluator reads them a class at a time."""
    sub = submission._parse_slow(write(tmp_path, ["a 0.1 0.2 0.3", "b 1 2 3"]), C)
    assert [c.tolist() for c in sub.columns()] == [[0.1, 1], [0.2, 2], [0.3, 3]]


def test_duplicate_pairs_with_absurd_frame_numbers():
    """Frame numbers too far apart to pack (id, frame) into one int64: checked another way, same answers."""
    big = np.array([-2 ** 62, 2 ** 62, 0, 2 ** 62], dtype=np.int64)
    assert not submission._has_duplicate_pairs(["a", "a", "b", "b"], big)
    assert submission._has_duplicate_pairs(["a", "a", "b", "a"], big)
    assert submission._has_duplicate_pairs(["a", "b", "a"], np.array([1, 1, 1]))
    assert not submission._has_duplicate_pairs(["a", "b", "c"], np.array([1, 1, 1]))


def test_byte_order_mark_scored_and_combined(tmp_path, capsys):
    """The evaluator and combine_rgb_flow see the BOM file's first video (before: counted missing)."""
    from combine_rgb_flow import combine
    from utils.charades_eval import classify
    gt = tmp_path / "gt.csv"
    gt.write_text("id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
                  "vidA,S,K,6,7,Yes,x,y,z,c000 0.0 2.0,5.0\nvidB,S,K,6,7,Yes,x,y,z,c001 1.0 3.0,5.0\n")
    rows = ["vidA 0.9 0.1 0.2", "vidB 0.1 0.8 0.3"]
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf" + ("\n".join(rows) + "\n").encode())
    ap, _, _ = classify(str(bom), str(gt), nclass=C)
    assert ap[:2].tolist() == [1.0, 1.0]                  # vidA scored: ranked first for class 0
    result = combine(str(bom), write(tmp_path, rows, "flow.txt"), str(tmp_path / "out.txt"), nclass=C)
    assert result.nkeys == 2 and result.only_rgb == [] and result.only_flow == []
    assert "missing" not in capsys.readouterr().err


def test_fast_paths_round_like_float(tmp_path, fast_reader, monkeypatch):
    """Numbers that are hard to round (halfway cases, subnormals, 17+ digits) parse to the same double as
    ``float()``, so ties and ranks, hence APs, cannot differ from a reader that calls ``float()``."""
    hard = ["0.1", "2.2250738585072011e-308", "4.9e-324", "9007199254740993", "7.038531e-26",
            "1.00000000000000011102230246251565404236316680908203125", "8.41e21", "1e23", "-0", "1e-320",
            "0.30000000000000004", "123456789012345678901234567890", "2.5e-5", "+3.", ".5", "1E5"]
    hard += ["1"] * (-len(hard) % C)
    rows = [f"v{i} " + " ".join(hard[k:k + C]) for i, k in enumerate(range(0, len(hard), C))]
    path = write(tmp_path, rows)
    no_slow_path(monkeypatch)
    got = read_submission(path, nclass=C).scores.ravel()
    want = np.array([float(x) for x in hard])
    assert got.tobytes() == want.tobytes()


def test_byte_order_mark_is_not_part_of_the_first_id(tmp_path, fast_reader):
    """A file saved by an editor that writes a UTF-8 BOM: the first id is still the video's id, so the
    evaluator and combine find it (before: scored as missing)."""
    rows = ["vidA 0.9 0.1 0.2", "vidB 0.1 0.8 0.3"]
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + ("\n".join(rows) + "\n").encode())
    sub = read_submission(str(path), nclass=C)
    assert sub.ids == ["vidA", "vidB"]
    plain = read_submission(write(tmp_path, rows, "plain.txt"), nclass=C)
    np.testing.assert_array_equal(sub.scores, plain.scores)
    assert submission._parse_slow(str(path), C).ids == ["vidA", "vidB"]
    with pytest.raises(SubmissionError, match="line 2"):                  # line numbers unchanged
        path.write_bytes(b"\xef\xbb\xbf" + b"vidA 1 2 3\nvidB 1 2\n")
        read_submission(str(path), nclass=C)


@pytest.mark.parametrize("lines,where,what", [
    (["a 0.1 0.2 0.3", "", "b 0.1 0.2"], "line 3", "3 columns"),           # blank lines still count
    (["a 0.1 0.2"], "line 1", "expected 4"),                               # neither kind
    (["a 0.1 0.2 0.3", "b 0.1 abc 0.3"], "line 2, column 3", "'abc' is not a number"),
    (["a 0.1 0.2 0.3", "b 0.1 0.2 0.3", "a 1 1 1"], "line 3", "duplicate id 'a' (first on line 1)"),
    (["a 0.1 0.2 0.3", "b 1 0.1 0.2 0.3"], "line 2", "but line 1 has 4"),   # mixed kinds
    (["a 1 0.1 0.2 0.3", "a 2 0.1 0.2 0.3", "a 1 0 0 0"], "line 3", "duplicate (id, frame) ('a', 1)"),
    (["a 1 0.1 0.2 0.3", "a 1.5 0.1 0.2 0.3"], "line 2, column 2", "not an integer"),
    (["a 0.1 nan 0.3"], "line 1, column 3", "NaN"),
    (["a 1 0 0 0", "a 1e30 0 0 0"], "line 2, column 2", "not an integer"),
    (["a 2147483647 0 0 0", "a -2147483648 0 0 0"], "line 2, column 2", "not an integer of at most 2147483647"),
    (["a 2147483647 0 0 0", "a 2147483648 0 0 0"], "line 2, column 2", "not an integer of at most 2147483647"),
    (["a 0.1 0.2 0.3", 'b "0.1 0.2 0.3', "c 0.1 0.2 0.3"], "line 2, column 2", "is not a number"),  # no quoting
    (["a 0.1 0.2 0.3", "b NA 0.2 0.3"], "line 2, column 2", "'NA' is not a number"),   # no missing-value words
    (["a 0.1 0.2 0.3", "b 0.1 0.2 0.3 0.4 0.5"], "line 2", "6 columns, but line 1 has 4"),
])
def test_malformed_lines_named(tmp_path, fast_reader, lines, where, what):
    path = write(tmp_path, lines)
    with pytest.raises(SubmissionError) as e:
        read_submission(path, nclass=C)
    msg = str(e.value)
    assert path in msg and f"{where}:" in msg and what in msg, msg


def test_binary_file_rejected(tmp_path):
    path = tmp_path / "bin.txt"
    path.write_bytes(b"\xff\xfe\x00 1 2 3\n")
    with pytest.raises(SubmissionError, match="not a text file"):
        read_submission(str(path), nclass=C)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(SubmissionError, match="empty"):
        read_submission(write(tmp_path, [""]), nclass=C)
    with pytest.raises(FileNotFoundError):
        read_submission(str(tmp_path / "missing.txt"), nclass=C)
    assert issubclass(SubmissionError, ValueError)


def test_one_based_frames():
    frames, shifted = one_based_frames(np.array([0, 1, 24]))
    assert shifted and frames.tolist() == [1, 2, 25]
    frames, shifted = one_based_frames(np.array([1, 25]))
    assert not shifted and frames.tolist() == [1, 25]


# --------------------------------------------------------------------------------- localisation grid

def nearest_brute(test_frames: int, nframes: int, length: Fraction) -> list[int]:
    """argmin_k |k*length/T - (j-1)/nframes*length| in exact arithmetic, first k on ties."""
    times = [k * length / test_frames for k in range(test_frames)]
    out = []
    for j in range(nframes):
        target = Fraction(j, nframes) * length
        out.append(min(range(test_frames), key=lambda k: (abs(times[k] - target), k)))
    return out


def test_localization_rows_values():
    assert localization_rows(50).tolist() == list(range(0, 50, 2))
    assert localization_rows(25).tolist() == list(range(25))
    assert localization_rows(1).tolist() == [0] * 25
    # T = 3, 4 points: exact positions 0, 0.75, 1.5 (tie 1|2 -> the earlier, 1), 2.25
    assert localization_rows(3, nframes=4).tolist() == [0, 1, 1, 2]
    for t in (2, 7, 10, 13, 24, 26, 49, 64, 100):
        assert localization_rows(t).tolist() == nearest_brute(t, 25, Fraction(377, 10)), t
    with pytest.raises(ValueError):
        localization_rows(0)


def test_epoch_files_keep_the_originals_six_digits(tmp_path):
    """The original's submission_file wrote '{:g}' (six significant digits): its ties are kept, not undone
    (combine_rgb_flow.py prints twelve)."""
    path = str(tmp_path / "epoch_001.txt")
    write_classification(path, ["A"], np.array([[0.21172805, 1e-7, 123456789.0]]))
    assert open(path).read() == "A " + " ".join("{:g}".format(x) for x in (0.21172805, 1e-7, 123456789.0)) + "\n"
    assert open(path).read() == "A 0.211728 1e-07 1.23457e+08\n"
