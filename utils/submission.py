"""Charades submission files: writing, reading and the localisation time grid (SPEC sections 6-8).

Two kinds of file, told apart by their column count (C = number of classes):

- classification, C+1 columns: ``ID s_0 ... s_{C-1}``, one line per video;
- localisation, C+2 columns: ``ID FRAME s_0 ... s_{C-1}``, 25 lines per video, FRAME = 1..25 at time
  ``(FRAME-1)/25 * length``.

Numpy/stdlib only (the evaluator runs without torch).  Files are written atomically so a crash mid-write
never leaves a truncated submission that would silently score lower.
"""
from __future__ import annotations

import csv
import os
import warnings

import numpy as np

from utils.atomic import atomic_write_text
from utils.cli import MissingInputError, UserError

CLASSIFY = "classify"
LOCALIZE = "localize"
NFRAMES = 25  # frames per video in the official localisation protocol
MAX_FRAME = 2**31 - 1  # frame numbers are integers; anything bigger is a broken file, not a frame
ENCODING = "utf-8-sig"  # UTF-8, and a byte-order mark at the start (some editors write one) is not part of an id
PANDAS_MIN_BYTES = 8 << 20  # smaller files are read by numpy: importing pandas would cost more than it saves


class SubmissionError(UserError, ValueError):
    """A malformed submission file; the message names the file, the line and what is wrong."""


class Submission:
    """A parsed submission: one row per non-blank line, in file order.

    ``frames`` holds the frame numbers exactly as written (localisation only; see ``one_based_frames``).
    The scores are kept as the reader made them: one array per class (``columns``), which is what the
    evaluator reads, or an (N, C) matrix; ``scores`` is the (N, C) matrix, built on first use (stacking a
    7,985 x 25 file's columns costs more than reading them: 250 MB of fresh memory).
    """

    def __init__(self, path: str, kind: str, ids: list[str], frames: np.ndarray | None,
                 scores: np.ndarray | None = None, columns: tuple[np.ndarray, ...] | None = None):
        if (scores is None) == (columns is None):
            raise ValueError("give the scores either as a matrix or as columns")
        self.path, self.kind, self.ids, self.frames = path, kind, ids, frames
        self._matrix, self._columns = scores, columns

    @property
    def nclass(self) -> int:
        return self._matrix.shape[1] if self._matrix is not None else len(self._columns)

    @property
    def scores(self) -> np.ndarray:
        """(rows, C) float64."""
        if self._matrix is None:
            self._matrix = np.column_stack(self._columns) if self._columns else np.zeros((len(self.ids), 0))
        return self._matrix

    def columns(self) -> tuple[np.ndarray, ...]:
        """The scores of each class, C arrays of (rows,) float64 (views when the matrix exists)."""
        if self._columns is None:
            self._columns = tuple(self._matrix[:, c] for c in range(self._matrix.shape[1]))
        return self._columns

    def keys(self) -> list[tuple]:
        """Row keys: ``(id,)`` for classification, ``(id, frame)`` for localisation."""
        if self.frames is None:
            return [(i,) for i in self.ids]
        return list(zip(self.ids, self.frames.tolist()))


# ----------------------------------------------------------------------------------------- writing

def write_submission(path: str, ids: list[str], scores: np.ndarray, frames: np.ndarray | None = None,
                     digits: int = 6) -> None:
    """Write rows ``ID [FRAME] s_0 ... s_{C-1}`` (``%.{digits}g`` floats: ``%g`` by default, as the original's
    epoch files), atomically.

    One row per entry of ``ids``; ``frames`` (ints) makes it a localisation file.  Rejects what the
    reader would reject: ids with whitespace, NaN scores, duplicate keys.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != len(ids):
        raise ValueError(f"scores must be (len(ids)={len(ids)}, C), got {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError(f"{path}: scores contain NaN (row {int(np.isnan(scores).any(axis=1).argmax())})")
    bad = [i for i in ids if not i or len(i.split()) != 1]
    if bad:
        raise ValueError(f"{path}: id {bad[0]!r} is empty or contains whitespace")
    if frames is None:
        heads = [f"{i} " for i in ids]
    else:
        frames = np.asarray(frames)
        if frames.shape != (len(ids),):
            raise ValueError(f"frames must be ({len(ids)},), got {frames.shape}")
        heads = [f"{i} {int(fr)} " for i, fr in zip(ids, frames.tolist())]
    if len(set(heads)) != len(heads):
        raise ValueError(f"{path}: duplicate {'(id, frame)' if frames is not None else 'id'} in the rows to write")
    fmt = " ".join([f"%.{digits}g"] * scores.shape[1]) + "\n"
    rows = scores.tolist()
    # Chunks of lines keep memory bounded for big localisation files (7,985 x 25 rows is ~300 MB).
    step = 4096
    atomic_write_text(path, ("".join(h + fmt % tuple(r) for h, r in zip(heads[k:k + step], rows[k:k + step]))
                                for k in range(0, len(heads), step)))


def write_classification(path: str, ids: list[str], scores: np.ndarray) -> None:
    """Classification file: one line ``ID s_0 ... s_{C-1}`` per video; ``scores`` is (N, C)."""
    write_submission(path, list(ids), scores)


def write_localization(path: str, ids: list[str], scores: np.ndarray) -> None:
    """Localisation file: lines ``ID FRAME s_0 ...`` with FRAME = 1..25 per video; ``scores`` is (N, 25, C)."""
    scores = np.asarray(scores)
    if scores.ndim != 3 or scores.shape[:2] != (len(ids), NFRAMES):
        raise ValueError(f"scores must be (len(ids)={len(ids)}, {NFRAMES}, C), got {scores.shape}")
    rows_ids = [i for i in ids for _ in range(NFRAMES)]
    frames = np.tile(np.arange(1, NFRAMES + 1), len(ids))
    write_submission(path, rows_ids, scores.reshape(-1, scores.shape[2]), frames)


def localization_rows(test_frames: int, nframes: int = NFRAMES) -> np.ndarray:
    """For frames scored at ``t_k = k*length/test_frames``, the ``k`` nearest each official time point.

    Official point j (1..nframes) is at ``(j-1)/nframes*length``; the nearest k minimises
    ``|k/test_frames - (j-1)/nframes|`` whatever the length, so integer arithmetic decides it exactly
    (ties go to the earlier frame).  With test_frames=50 this is 0, 2, ..., 48.
    """
    if test_frames < 1 or nframes < 1:
        raise ValueError(f"test_frames and nframes must be >= 1, got {test_frames}, {nframes}")
    num = np.arange(nframes, dtype=np.int64) * test_frames      # (j-1) * T; k_exact = num / nframes
    k, rem = np.divmod(num, nframes)
    k += 2 * rem > nframes                                      # round half down: ties keep the earlier k
    return np.minimum(k, test_frames - 1)                       # no frame at t = length: the last is nearest


# ----------------------------------------------------------------------------------------- reading

def _kind(ncols: int, nclass: int) -> str | None:
    return {nclass + 1: CLASSIFY, nclass + 2: LOCALIZE}.get(ncols)


def _parse_slow(path: str, nclass: int) -> Submission:
    """Line-by-line reader: raises ``SubmissionError`` at the first bad line, else returns the parse.

    Used when the fast reader fails (to name the line) or cannot be trusted (very long ids).
    """
    ids, frames, rows, seen = [], [], [], {}
    kind = first = None
    with open(path, encoding=ENCODING) as f:
        for n, line in enumerate(f, 1):
            tok = line.split()
            if not tok:
                continue
            where = f"{path}, line {n}"
            if kind is None:
                kind, first = _kind(len(tok), nclass), n
                if kind is None:
                    raise SubmissionError(f"{where}: {len(tok)} columns; expected {nclass + 1} (classification: "
                                          f"ID + {nclass} scores) or {nclass + 2} (localisation: ID FRAME + scores)")
            ncols = nclass + (1 if kind == CLASSIFY else 2)
            if len(tok) != ncols:
                raise SubmissionError(f"{where}: {len(tok)} columns, but line {first} has {ncols} ({kind} file)")
            try:
                vals = [float(v) for v in tok[1:]]
            except ValueError:
                bad = next(k for k, v in enumerate(tok[1:], 2) if not _is_float(v))
                raise SubmissionError(f"{where}, column {bad}: {tok[bad - 1]!r} is not a number") from None
            if any(v != v for v in vals):
                bad = next(k for k, v in enumerate(vals, 2) if v != v)
                raise SubmissionError(f"{where}, column {bad}: value is NaN")
            key = tok[0]
            if kind == LOCALIZE:
                if not vals[0].is_integer() or abs(vals[0]) > MAX_FRAME:
                    raise SubmissionError(f"{where}, column 2: frame number {tok[1]!r} is not an integer "
                                          f"of at most {MAX_FRAME}")
                key = (tok[0], int(vals[0]))
                frames.append(int(vals[0]))
                vals = vals[1:]
            if key in seen:
                what = f"id {tok[0]!r}" if kind == CLASSIFY else f"(id, frame) ({tok[0]!r}, {key[1]})"
                raise SubmissionError(f"{where}: duplicate {what} (first on line {seen[key]})")
            seen[key] = n
            ids.append(tok[0])
            rows.append(vals)
    if kind is None:
        raise SubmissionError(f"{path}: no submission lines (empty file)")
    scores = np.array(rows, dtype=np.float64).reshape(len(rows), nclass)
    return Submission(path, kind, ids, np.array(frames, dtype=np.int64) if kind == LOCALIZE else None, scores)


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _first_columns(path: str) -> int | None:
    with open(path, encoding=ENCODING) as f:
        for line in f:
            tok = line.split()
            if tok:
                return len(tok)
    return None


def read_submission(path: str, nclass: int = 157) -> Submission:
    """Read a classification (C+1 columns) or localisation (C+2 columns) submission file.

    A UTF-8 byte-order mark at the start is skipped.  Fast path: the file is parsed in C in one pass
    (pandas' reader for big files when pandas >= 3 is installed, else ``np.loadtxt``); the checks on the
    result (column count, numbers, NaN, integer frames, duplicate keys) are vectorised.  If anything is
    wrong the file is re-read line by line to raise a ``SubmissionError`` naming the file, the line and
    the problem.  Frame numbers are returned as written: the 0-based shift of SPEC 8 is
    ``one_based_frames``'s job.
    """
    if not os.path.isfile(path):
        raise MissingInputError(f"submission file not found: {path}")
    try:
        return _read(path, nclass)
    except UnicodeDecodeError as e:  # a ValueError, but not one that names the problem
        raise SubmissionError(f"{path}: not a text file (UTF-8): {e}") from None


def _read(path: str, nclass: int) -> Submission:
    kind = _kind(_first_columns(path) or 0, nclass)
    parsed = _parse_fast(path, nclass, kind == LOCALIZE) if kind else None
    if parsed is None:
        return _parse_slow(path, nclass)  # raises with the line number
    ids, frames, columns, video = parsed
    suspicious = (
        len(ids) == 0 or "" in ids or len(columns) != nclass or any(len(c) != len(ids) for c in columns)
        or any(np.isnan(c).any() for c in columns)
        or (frames is not None and not (np.all(np.abs(frames) <= MAX_FRAME) and np.array_equal(frames, np.round(frames))))
    )
    if not suspicious and frames is None:  # duplicate keys
        suspicious = len(set(ids)) != len(ids)
    elif not suspicious:
        frames = frames.astype(np.int64)
        suspicious = _has_duplicate_pairs(ids, frames, video)
    if suspicious:
        return _parse_slow(path, nclass)
    return Submission(path, kind, ids, frames, columns=columns)


def _parse_fast(path: str, nclass: int, local: bool) -> tuple[list[str], np.ndarray | None, np.ndarray] | None:
    """``(ids, frames as floats or None, one score array per class, video numbers or None)`` parsed in C, or None where the C
    parser refused the file (the careful reader then names the bad line)."""
    pd = _pandas() if os.path.getsize(path) >= PANDAS_MIN_BYTES else None
    return _parse_pandas(pd, path, nclass, local) if pd is not None else _parse_loadtxt(path, nclass, local)


def _pandas():
    """pandas >= 3 (its C reader rounds every number correctly, as ``float()`` does), or None."""
    try:
        import pandas as pd
    except ImportError:
        return None
    return pd if int(pd.__version__.split(".")[0]) >= 3 else None


def _parse_pandas(pd, path: str, nclass: int, local: bool):
    """pandas' C reader: several times faster than ``np.loadtxt``, because every numpy text reader converts
    each number with Python's own ``strtod`` (``benchmarks/bench_eval.py``)."""
    first = 2 if local else 1                        # the first score column
    for sep in (" ", r"\s+"):  # single spaces (what the writers write) parse fastest; else any whitespace
        try:  # numeric columns inferred (faster than naming 158 dtypes); ids kept as written ("01")
            df = pd.read_csv(path, sep=sep, header=None, dtype={0: str}, na_filter=False, quoting=csv.QUOTE_NONE,
                             engine="c", encoding=ENCODING)
        except ValueError:  # pandas' ParserError too: a ragged line
            continue
        columns = [df[k].to_numpy() for k in range(1, df.shape[1])]
        if df.shape[1] != first + nclass or any(c.dtype.kind not in "fi" for c in columns):
            continue  # a non-number somewhere (an object column), or the wrong column count
        # the parser's own arrays, one per class: the evaluator reads one class at a time, and no copy
        scores = tuple(c if c.dtype == np.float64 else c.astype(np.float64) for c in columns[first - 1:])
        video = pd.factorize(df[0])[0] if local else None  # ids numbered in C, for the duplicate check
        return df[0].tolist(), columns[0].astype(np.float64) if local else None, scores, video
    return None


def _parse_loadtxt(path: str, nclass: int, local: bool):
    """``np.loadtxt`` with a record dtype (small files: no pandas import)."""
    width = 64
    fields = [("id", f"U{width}")] + ([("frame", "f8")] if local else []) + [("s", "f8", (nclass,))]
    try:
        with warnings.catch_warnings(), open(path, encoding=ENCODING) as f:
            warnings.simplefilter("ignore")
            data = np.loadtxt(f, dtype=np.dtype(fields), comments=None, ndmin=1)
    except ValueError:
        return None
    ids = data["id"].tolist()
    if any(len(i) >= width for i in ids):  # loadtxt truncates long strings silently
        return None
    # views into the record array: a copy of a big file is that much more memory to touch
    scores = data["s"].reshape(len(ids), nclass)
    return ids, data["frame"] if local else None, tuple(scores[:, c] for c in range(nclass)), None


def _has_duplicate_pairs(ids: list[str], frames: np.ndarray, video: np.ndarray | None = None) -> bool:
    """Whether some (id, frame) occurs twice: ids numbered (``video``, or here by a dict), pairs packed
    into one int64 and sorted (4x faster than a set of 200k tuples)."""
    if video is None:
        code: dict[str, int] = {}
        video = np.fromiter((code.setdefault(i, len(code)) for i in ids), np.int64, len(ids))
    nvideo = int(video.max()) + 1 if len(video) else 0
    span = int(frames.max()) - int(frames.min()) + 1 if len(frames) else 1
    if span * nvideo >= 2**62:                       # absurd frame numbers: no packing
        return len(set(zip(ids, frames.tolist()))) != len(ids)
    packed = np.sort(video * span + (frames - frames.min()))
    return bool((packed[1:] == packed[:-1]).any())


def one_based_frames(frames: np.ndarray) -> tuple[np.ndarray, bool]:
    """Frame numbers as the official evaluator uses them: if the smallest is 0, all are shifted by +1.

    Returns ``(frames, shifted)``.
    """
    frames = np.asarray(frames, dtype=np.int64)
    if frames.size and frames.min() == 0:
        return frames + 1, True
    return frames, False
