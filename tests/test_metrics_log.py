"""metrics.csv: one row per epoch as main.py appends them, resume without duplicates, atomic rewrites,
and an old or foreign header kept aside rather than mixed in."""
import ast
import math
import os

import numpy as np
import pytest

from utils import atomic, cli, metrics_log
from utils.metrics_log import COLUMNS, MetricsFormatError, append_metrics, read_metrics


def epoch_row(epoch: int, mAP: float, **extra) -> dict:
    """A row as main.py builds it after epoch ``epoch`` (1-based); a numpy scalar as AverageMeter may give."""
    row = {"epoch": epoch, "lr": 1e-3 * 0.1 ** (epoch // 2), "train_loss": np.float32(2.5 / epoch),
           "top1train": 10.0 * epoch, "top5train": 30.0 * epoch, "top1val": 8.0 * epoch, "top5val": 25.0 * epoch,
           "mAP": mAP, "epoch_time_s": 12.25, "samples_per_s": 321.5}
    row.update(extra)
    return row


def test_two_epoch_run_writes_one_row_per_epoch(tmp_path):
    for epoch, mAP in ((1, 0.125), (2, 0.2)):
        append_metrics(str(tmp_path), epoch_row(epoch, mAP))
    path = tmp_path / "metrics.csv"
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS) and len(lines) == 3
    rows = read_metrics(str(tmp_path))  # a directory reads its metrics.csv
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[0]["lr"] == pytest.approx(1e-3) and rows[1]["lr"] == pytest.approx(1e-4)
    assert rows[1]["train_loss"] == pytest.approx(1.25, rel=1e-6)
    assert [r["mAP"] for r in rows] == [0.125, 0.2]
    assert rows[1]["top5val"] == 50.0 and rows[1]["samples_per_s"] == 321.5
    assert rows[0]["loc_mAP"] is None  # no --localize: empty, not 0
    assert sorted(os.listdir(tmp_path)) == ["metrics.csv"]  # no temporary file left behind


def test_resume_replaces_the_epoch_and_drops_later_rows(tmp_path):
    for epoch in (1, 2, 3):
        append_metrics(str(tmp_path), epoch_row(epoch, 0.1 * epoch))
    # killed during epoch 3 after its row was written, resumed from the epoch-2 checkpoint: 2 again
    append_metrics(str(tmp_path), epoch_row(2, 0.5, loc_mAP=0.05))
    rows = read_metrics(str(tmp_path / "metrics.csv"))
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[1]["mAP"] == 0.5 and rows[1]["loc_mAP"] == 0.05
    append_metrics(str(tmp_path), epoch_row(3, 0.6))
    assert [(r["epoch"], r["mAP"]) for r in read_metrics(str(tmp_path))] == [(1, 0.1), (2, 0.5), (3, 0.6)]


def test_nan_and_missing_values_round_trip(tmp_path):
    append_metrics(str(tmp_path), {"epoch": 1, "mAP": float("nan"), "lr": None})
    row = read_metrics(str(tmp_path))[0]
    assert math.isnan(row["mAP"]) and row["lr"] is None and row["top1val"] is None


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    append_metrics(str(tmp_path), epoch_row(1, 0.1))
    before = (tmp_path / "metrics.csv").read_bytes()

    def boom(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(metrics_log.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        append_metrics(str(tmp_path), epoch_row(2, 0.2))
    assert (tmp_path / "metrics.csv").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["metrics.csv"]


def test_other_header_is_kept_aside_and_common_columns_carried_over(tmp_path):
    old = "epoch,lr,mAP,foo\n1,0.001,0.1,x\n2,0.001,0.2,y\n"
    (tmp_path / "metrics.csv").write_text(old)
    with pytest.warns(UserWarning, match=r"differs.*missing \['train_loss'.*unknown \['foo'\]"):
        append_metrics(str(tmp_path), epoch_row(3, 0.3))
    assert (tmp_path / "metrics.csv.old1").read_text() == old
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    rows = read_metrics(str(tmp_path))
    assert [(r["epoch"], r["mAP"]) for r in rows] == [(1, 0.1), (2, 0.2), (3, 0.3)]
    assert rows[0]["train_loss"] is None and "foo" not in rows[0]


def test_file_without_epoch_column_starts_afresh(tmp_path):
    (tmp_path / "metrics.csv").write_text("a,b\n1,2\n")
    (tmp_path / "metrics.csv.old1").write_text("earlier backup")
    with pytest.warns(UserWarning, match="starting a new file"):
        append_metrics(str(tmp_path), epoch_row(1, 0.1))
    assert (tmp_path / "metrics.csv.old1").read_text() == "earlier backup"  # never overwrite a backup
    assert (tmp_path / "metrics.csv.old2").read_text() == "a,b\n1,2\n"
    assert [r["epoch"] for r in read_metrics(str(tmp_path))] == [1]
    with pytest.raises(MetricsFormatError, match="no 'epoch' column"):
        read_metrics(str(tmp_path / "metrics.csv.old2"))


def test_bad_rows_and_values_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown metrics column.*'map'"):
        append_metrics(str(tmp_path), {"epoch": 1, "map": 0.1})
    with pytest.raises(ValueError, match="needs an 'epoch'"):
        append_metrics(str(tmp_path), {"mAP": 0.1})
    with pytest.raises(MetricsFormatError, match="epoch 1.5 is not an integer"):
        append_metrics(str(tmp_path), {"epoch": 1.5})
    assert not (tmp_path / "metrics.csv").exists()
    (tmp_path / "bad.csv").write_text(",".join(COLUMNS) + "\n1,0.1,oops,,,,,,,,\n")
    with pytest.raises(MetricsFormatError, match=r"bad.csv, line 2: train_loss 'oops'"):
        read_metrics(str(tmp_path / "bad.csv"))
    with pytest.raises(FileNotFoundError):
        read_metrics(str(tmp_path / "missing.csv"))


def test_a_malformed_row_is_named_at_start_up(tmp_path):
    """main.py reads metrics.csv before training: a bad row stops the run with the file and line, instead of
    failing after the first epoch (and on every rerun) without the line."""
    append_metrics(str(tmp_path), {"epoch": 1, "lr": 0.1})
    good = (tmp_path / "metrics.csv").read_text()
    metrics_log.check_metrics_file(str(tmp_path))  # a good file: nothing to say
    for bad, what in (("x", r"epoch 'x' is not an integer"), ("3,0.1,nan,1e,", r"top1train '1e' is not a number")):
        (tmp_path / "metrics.csv").write_text(good + "2,0.1\n" + bad + "\n")
        with pytest.raises(MetricsFormatError, match=rf"metrics.csv, line 4: {what}.*correct or delete that line"):
            metrics_log.check_metrics_file(str(tmp_path))
    (tmp_path / "metrics.csv").write_text(good + "x\n")
    with pytest.raises(MetricsFormatError, match=r"metrics.csv, line 3: epoch 'x'"):  # append names it too
        append_metrics(str(tmp_path), {"epoch": 2})
    import main
    flags = ["--dataset", "fake", "--arch", "resnet18", "--inputsize", "32", "--nclass", "10", "--epochs", "1",
             "--workers", "0", "--device", "cpu", "--cache-dir", str(tmp_path.parent), "--name", tmp_path.name]
    with pytest.raises(MetricsFormatError, match="line 3"):
        main.main(flags)
    assert not (tmp_path / "epoch_001.txt").exists()  # stopped before the first epoch


def test_imports_only_the_standard_library():
    """main.py and plotting scripts import it without torch, matplotlib or the rest of the project (only
    utils.atomic and utils.cli, themselves standard library only)."""
    def imports(path):
        tree = ast.parse(open(path).read())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        return names | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imports(metrics_log.__file__) <= {"__future__", "csv", "io", "math", "os", "warnings", "utils.atomic",
                                             "utils.cli"}
    assert imports(atomic.__file__) <= {"__future__", "collections.abc", "contextlib", "errno", "os", "re", "tempfile", "utils.cli"}
    assert imports(cli.__file__) <= {"__future__", "argparse", "collections.abc", "errno", "os", "sys"}
