"""utils/cli.py: user errors are one line and exit 2, failures exit 1, bugs keep their traceback."""
import pytest

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
