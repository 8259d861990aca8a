"""Per-epoch metrics of a run, one CSV row per epoch: ``<cache>/metrics.csv`` (SPEC section 6).

Columns (``COLUMNS``): ``epoch`` (1-based, the NNN of ``epoch_NNN.txt``), ``lr``, ``train_loss``,
``top1train``, ``top5train``, ``top1val``, ``top5val`` (frame-level prec@k, %), ``mAP`` (video
classification mAP), ``loc_mAP`` (localisation mAP with ``--localize``, else empty), ``video_top1``,
``video_top5`` (video top-1/top-5 accuracy, %, on single-label datasets such as Jester; else empty),
``epoch_time_s`` (train + val + val_video wall time), ``samples_per_s`` (training samples per second of the
train phase).

A resumed run recomputes the epochs after its checkpoint, so appending the row of epoch ``e`` keeps only
the rows of epochs ``< e``: the file never holds the same epoch twice, nor rows of an abandoned future.
Every write replaces the whole (small) file atomically, so a crash never leaves a truncated CSV.

Stdlib only (and ``utils.atomic``): this runs inside the training loop and in plotting scripts without
torch or matplotlib.
"""
from __future__ import annotations

import csv
import io
import math
import os
import warnings

from utils.atomic import atomic_write_text
from utils.cli import MissingInputError, UserError

FILENAME = "metrics.csv"
COLUMNS = ("epoch", "lr", "train_loss", "top1train", "top5train", "top1val", "top5val", "mAP", "loc_mAP",
           "video_top1", "video_top5", "epoch_time_s", "samples_per_s")


class MetricsFormatError(UserError, ValueError):
    """A metrics file that cannot be read as metrics; the message names the file and the line."""


def metrics_path(path: str) -> str:
    """``path`` itself when it is a file name, ``path/metrics.csv`` when it is a (cache) directory."""
    return os.path.join(path, FILENAME) if os.path.isdir(path) else path


def _epoch(value, where: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer():  # NaN and 1.5 alike: an epoch must be a whole number
        raise MetricsFormatError(f"{where}: epoch {value!r} is not an integer")
    return int(number)


def _format(value) -> str:
    """CSV text of one value: empty for None; 6 significant digits (enough for any plot or table)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ""
    number = float(value)  # also takes numpy scalars and 0-d tensors (they implement __float__)
    return "nan" if math.isnan(number) else format(number, ".6g")


def _parse(text: str, column: str, where: str) -> float | None:
    if text is None or text.strip() == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise MetricsFormatError(f"{where}: {column} {text!r} is not a number") from None


def _read_raw(path: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and ``(line, row)`` pairs of a CSV; an empty file reads as no header and no rows."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = [(reader.line_num, row) for row in reader]
        return list(reader.fieldnames or []), rows


def read_metrics(path: str) -> list[dict]:
    """The rows of a metrics file (or of ``<dir>/metrics.csv``), in file order.

    Each row has every column of ``COLUMNS`` (``epoch`` an int, the others floats, None when empty)
    plus any extra column the file has (floats).  Raises ``FileNotFoundError`` for a missing file and
    ``MetricsFormatError`` for a file without an ``epoch`` column or with a non-numeric value.
    """
    path = metrics_path(path)
    if not os.path.isfile(path):
        raise MissingInputError(f"metrics file not found: {path}")
    header, raw = _read_raw(path)
    if header and "epoch" not in header:
        raise MetricsFormatError(f"{path}: no 'epoch' column in header {header}; expected {list(COLUMNS)}")
    rows = []
    for line, r in raw:
        where = f"{path}, line {line}"
        row = {c: _parse(r.get(c), c, where) for c in list(COLUMNS) + [h for h in header if h not in COLUMNS]}
        row["epoch"] = _epoch(r["epoch"], where)
        rows.append(row)
    return rows


def _backup_name(path: str) -> str:
    n = 1
    while os.path.exists(f"{path}.old{n}"):
        n += 1
    return f"{path}.old{n}"


def _existing_rows(path: str) -> list[dict[str, str]]:
    """The rows already in ``path`` as text, in ``COLUMNS`` layout.

    A file written with other columns (an older version of this module, a hand edit) is copied to
    ``metrics.csv.oldN`` untouched and its common columns carried over, with a warning naming the
    differences: the run keeps going and nothing is lost.  Without an ``epoch`` column nothing can be
    carried over and the new file starts empty (the old one is still kept).
    """
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return []
    header, raw = _read_raw(path)
    rows = [row for _, row in raw]
    if tuple(header) == COLUMNS:
        for line, row in raw:
            _epoch(row["epoch"], f"{path}, line {line}")
        return rows
    backup = _backup_name(path)
    with open(path, "rb") as src, open(backup, "wb") as dst:
        dst.write(src.read())
    missing = [c for c in COLUMNS if c not in header]
    extra = [c for c in header if c not in COLUMNS]
    keep = "epoch" in header
    warnings.warn(f"{path}: header {header} differs from the expected {list(COLUMNS)} (missing {missing}, "
                  f"unknown {extra}); old file kept as {backup}, "
                  + ("common columns carried over" if keep else "no 'epoch' column: starting a new file"),
                  stacklevel=3)
    if not keep:
        return []
    for line, row in raw:
        _epoch(row["epoch"], f"{path}, line {line}")
    return [{c: row.get(c) or "" for c in COLUMNS} for row in rows]


def check_metrics_file(cache_dir: str) -> None:
    """Read ``<cache_dir>/metrics.csv`` as ``append_metrics`` will, at start-up, so that a malformed file
    stops a run before its first epoch rather than after it (and on every rerun): ``MetricsFormatError``
    names the file, the line and the fix.  A file without an ``epoch`` column is no error (``append_metrics``
    keeps it aside as ``metrics.csv.oldN`` and starts a new one)."""
    path = os.path.join(cache_dir, FILENAME)
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return
    fix = f"correct or delete that line of {path} (or move the file away) and run again"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            for row in reader:
                where = f"{path}, line {reader.line_num}"
                if "epoch" in header:
                    _epoch(row["epoch"], where)
                for c in COLUMNS[1:]:
                    _parse(row.get(c), c, where)
    except MetricsFormatError as err:
        raise MetricsFormatError(f"{err}: {fix}") from None
    except csv.Error as err:
        raise MetricsFormatError(f"{path}, line {reader.line_num}: {err}: {fix}") from None
    except UnicodeDecodeError as err:
        raise MetricsFormatError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); correct it or "
                                 "move it away and run again") from None


def append_metrics(cache_dir: str, row: dict) -> None:
    """Add the metrics of one epoch to ``<cache_dir>/metrics.csv``.

    ``row`` must hold ``epoch``; missing columns are written empty; keys outside ``COLUMNS`` are an
    error (a typo such as ``map`` would otherwise be lost silently).  Rows of epochs ``>= row['epoch']``
    already in the file are dropped first: a resumed run replaces them.
    """
    unknown = sorted(set(row) - set(COLUMNS))
    if unknown:
        raise ValueError(f"unknown metrics column(s) {unknown}; the columns are {list(COLUMNS)}")
    if "epoch" not in row:
        raise ValueError("a metrics row needs an 'epoch'")
    epoch = _epoch(row["epoch"], "metrics row")
    path = os.path.join(cache_dir, FILENAME)
    kept = [r for r in _existing_rows(path) if _epoch(r["epoch"], path) < epoch]
    new = {c: _format(row.get(c)) for c in COLUMNS}
    new["epoch"] = str(epoch)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(kept + [new])
    atomic_write_text(path, out.getvalue())
