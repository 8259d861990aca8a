"""utils/cli.py: user errors are one line and exit 2, failures exit 1, bugs keep their traceback."""
import errno

import pytest
import torch

from datasets.frame_io import FrameError
from utils import cli


def _raise(err):
    def main(argv):
        raise err
    return main


def test_user_error_is_one_line_with_status_2(capsys):
    assert cli.run(_raise(cli.UserError("data.csv: line 3: no id")), [], prog="x") == 2
    err = capsys.readouterr().err
    assert err == "x: error: data.csv: line 3: no id\n"


def test_failure_has_status_1(capsys):
    assert cli.run(_raise(cli.Failure("disk full writing a.txt")), [], prog="x") == 1
    assert "Traceback" not in capsys.readouterr().err


def test_debug_shows_the_traceback(monkeypatch):
    with pytest.raises(cli.UserError):
        cli.run(_raise(cli.UserError("boom")), ["--debug"])
    monkeypatch.setenv("ASYNCTF_DEBUG", "1")
    with pytest.raises(cli.UserError):
        cli.run(_raise(cli.UserError("boom")), [])


def test_a_bug_keeps_its_traceback():
    with pytest.raises(ZeroDivisionError):
        cli.run(_raise(ZeroDivisionError("bug")), [])


def test_debug_flag_is_not_passed_on_and_int_result_is_the_status():
    seen = []
    assert cli.run(lambda argv: seen.append(argv) or 3, ["a", "--debug", "b"]) == 3
    assert seen == [["a", "b"]]
    assert cli.run(lambda argv: {"mAP": 0.5}, []) == 0


def test_an_os_error_naming_a_file_is_the_users_and_a_full_disk_a_failure(capsys):
    denied = PermissionError(errno.EACCES, "Permission denied", "/runs/cache")
    assert cli.run(_raise(denied), [], prog="x") == 2
    assert capsys.readouterr().err == "x: error: [Errno 13] Permission denied: '/runs/cache'\n"
    assert cli.run(_raise(OSError(errno.ENOSPC, "No space left on device")), [], prog="x") == 1
    assert "No space left on device; free some space" in capsys.readouterr().err
    with pytest.raises(ConnectionResetError):  # an OS error that names no file: not known to be the user's
        cli.run(_raise(ConnectionResetError(errno.ECONNRESET, "reset")), [])
    with pytest.raises(PermissionError):
        cli.run(_raise(denied), ["--debug"])


class _Unreadable(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        raise FrameError("cannot read frame /data/A/A-000001.jpg: truncated")


def test_an_error_from_a_loader_worker_is_its_own_message(capsys):
    """A DataLoader re-raises a worker's error with the worker's traceback as its message: one line."""
    loader = torch.utils.data.DataLoader(_Unreadable(), num_workers=1)
    assert cli.run(lambda argv: next(iter(loader)), [], prog="x") == 2
    assert capsys.readouterr().err == "x: error: cannot read frame /data/A/A-000001.jpg: truncated\n"
