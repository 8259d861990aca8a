"""First contact: each entry point answers a missing input and a bad option with one or two lines that
name the thing (exit status 2; 1 for a failure that is not the user's) and no traceback; ``--debug`` shows
it; and a user without Charades hears so before any ImageNet download.

The commands a user types run as subprocesses, all started together (each pays the torch import); the
other cases run in-process through ``cli.run``, which is what every script's ``__main__`` calls.
"""
from __future__ import annotations

import errno
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import urllib.error

import combine_rgb_flow
import extract_features
import extract_frames
import get_alltest
import main
import plot_results
import train
from utils import atomic, cli, run_lock

ROOT = Path(__file__).resolve().parent.parent
OFFLINE = "http://127.0.0.1:9"  # the discard port as a proxy: any download is refused at once


def user_env(tmp: Path, **extra: str) -> dict:
    """A user's environment without the debug switch or the dataset variables, offline, with an empty
    torch home of its own (so that a download, or any use of the hub folder, shows)."""
    env = {k: v for k, v in os.environ.items() if k not in ("ASYNCTF_DEBUG", "CHARADES", "JESTER", "SOMETHING")}
    env.update(http_proxy=OFFLINE, https_proxy=OFFLINE, HTTP_PROXY=OFFLINE, HTTPS_PROXY=OFFLINE, no_proxy="",
               TORCH_HOME=str(tmp / "torch_home"), **extra)
    return env


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> tuple[Path, dict]:
    """The user commands that need a process of their own, run at once: ``name -> CompletedProcess``."""
    tmp = tmp_path_factory.mktemp("first_contact")
    (tmp / "charades").mkdir()  # CHARADES set to an empty folder
    missing = ["--data", tmp / "frames", "--train-file", tmp / "train.csv", "--val-file", tmp / "test.csv"]
    commands = {
        "exp": (["exp/asynctf_rgb.py"], {"CHARADES": str(tmp / "charades")}),
        "main_debug": (["main.py", *missing, "--cache-dir", tmp / "cache", "--debug"], {}),
        # the light scripts (no torch import): each as the user types it
        "combine": (["combine_rgb_flow.py", tmp / "rgb.txt", tmp / "flow.txt"], {}),
        "plot": (["plot_results.py", "curves", tmp / "no_run"], {}),
        "extract_frames": (["extract_frames.py", tmp / "videos", tmp / "frames_out"], {}),
    }
    procs = {name: subprocess.Popen([sys.executable, str(ROOT / cmd[0]), *map(str, cmd[1:])], cwd=tmp,
                                    env=user_env(tmp, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
             for name, (cmd, env) in commands.items()}
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return tmp, results


def error_lines(stderr: str, prog: str, *names: str, most: int = 2) -> list[str]:
    """The lines of ``stderr``, checked: one or two (``most``; argparse puts its usage line first), the
    last ``<prog>: error: ...``, every one of ``names`` in them, and no traceback."""
    lines = stderr.strip().splitlines()
    assert 1 <= len(lines) <= most, stderr
    assert lines[-1].startswith(f"{prog}: error: ") and all(line.startswith("usage: ") for line in lines[:-1]), \
        stderr
    assert "Traceback" not in stderr
    for name in names:
        assert name in stderr, (name, stderr)
    return lines


def test_without_charades_the_data_is_named_before_any_download(ran):
    tmp, results = ran
    r = results["exp"]
    assert r.returncode == 2 and r.stdout == ""
    charades = tmp / "charades"
    error_lines(r.stderr, "asynctf_rgb.py", f"--data {charades / 'Charades_v1_rgb'}: no such folder",
                f"--train-file {charades / 'Charades_v1_train.csv'}: no such file",
                f"--val-file {charades / 'Charades_v1_test.csv'}: no such file", "set CHARADES",
                'README "Training on Charades"', most=1)
    assert not (tmp / "torch_home").exists()  # nothing downloaded, the hub folder never touched


@pytest.mark.parametrize("name, prog, named", [
    ("combine", "combine_rgb_flow.py", ["submission file not found", "rgb.txt"]),
    ("plot", "plot_results.py", ["no_run"]),
    ("extract_frames", "extract_frames.py", ["video folder not found", "videos"]),
])
def test_a_missing_input_is_one_line_with_status_2(ran, name, prog, named):
    r = ran[1][name]
    assert r.returncode == 2
    error_lines(r.stderr, prog, *named)


def test_debug_shows_the_traceback(ran):
    r = ran[1]["main_debug"]
    assert r.returncode == 1 and "Traceback (most recent call last)" in r.stderr
    assert "MissingInputError: --data" in r.stderr


@pytest.fixture
def offline_hub(tmp_path, monkeypatch) -> Path:
    """An empty torch hub folder of this test's own, where any download fails as it would offline."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution\n(second line)")
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "hub"


@pytest.mark.parametrize("script, flags", [
    ("main.py", ["--train-file", "train.csv", "--pretrained"]),
    ("get_alltest.py", ["--resume", "model.pth.tar", "--pretrained"]),
    ("extract_features.py", ["--resume", "model.pth.tar", "--out", "features"]),
])
def test_the_torch_scripts_check_their_data_first(script, flags, tmp_path, offline_hub, monkeypatch, capsys):
    """main.py, get_alltest.py and extract_features.py as the user runs them, in this process (their
    ``__main__`` block through runpy: no second torch import): the missing frames and CSV in one line,
    before the model is built (``--pretrained``: nothing downloaded)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.pth.tar").write_bytes(b"")  # exists; never read, since the data is checked first
    monkeypatch.setattr(sys, "argv", [script, "--data", "frames", "--val-file", "test.csv", *flags,
                                      "--cache-dir", "cache"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(ROOT / script), run_name="__main__")
    assert stop.value.code == 2
    error_lines(capsys.readouterr().err, script, "--data frames: no such folder", "--val-file test.csv: no such file",
                'README "Training on Charades"', most=1)
    assert not offline_hub.exists()


# ------------------------------------------------------------------ bad options (in-process: cli.run)

def test_a_bad_option_is_one_line_with_status_2(tmp_path, capsys):
    cache = ["--cache-dir", str(tmp_path / "cache")]
    prog = Path(sys.argv[0]).name  # argparse's
    usage = [  # argparse and opts.RULES: a usage error, SystemExit(2)
        (main.main, ["--dataset", "fake", "--epochs", "0", *cache], prog, "argument --epochs: 0 is out of range"),
        (get_alltest.main, ["--test-frames", "0", *cache], prog, "argument --test-frames: 0 is out of range"),
        (plot_results.main, ["timeline", "a.txt", "b.csv"], "python plot_results.py", "give either --videos"),
        (extract_frames.main, [str(tmp_path), str(tmp_path / "out"), "--fps", "fast"], prog,
         "argument --fps: 'fast' is not a frame rate"),
    ]
    for entry, argv, prog, named in usage:
        with pytest.raises(SystemExit) as stop:
            cli.run(entry, argv)
        assert stop.value.code == 2
        error_lines(capsys.readouterr().err, prog, named)
    checked = [  # values the scripts check themselves: a cli.UserError
        (extract_features.main, ["--stride", "0", "--out", str(tmp_path / "f"), *cache], "--stride 0"),
        (combine_rgb_flow.main, ["a.txt", "b.txt", "--weights", "0", "0"], "--weights 0 0: they sum to 0"),
    ]
    for entry, argv, named in checked:
        assert cli.run(entry, argv, prog="x") == 2
        error_lines(capsys.readouterr().err, "x", named, most=1)


@pytest.mark.parametrize("script, variable, named", [
    ("asynctf_rgb", "CHARADES", ["/path/to/Charades: no such folder (for --data, --train-file, --val-file)",
                                 'README "Training on Charades"']),
    ("asynctf_flow", "CHARADES", ["/path/to/Charades: no such folder", "set CHARADES"]),
    ("asynctf_rgb_jester", "JESTER", ["/path/to/jester: no such folder (for --data, --train-file, --val-file, "
                                      "--labels-file)", "set JESTER", 'docs/datasets.md "Jester"']),
    ("asynctf_rgb_somethingsomething", "SOMETHING", ["/path/to/somethingsomething: no such folder",
                                                     "set SOMETHING", "Something-Something v2"]),
])
def test_each_experiment_without_its_data_says_where_to_get_it(script, variable, named, tmp_path, monkeypatch,
                                                                capsys):
    """The exp/ files with their dataset's variable unset (its placeholder path): the folder and the page."""
    monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT / "exp"))
    monkeypatch.setattr(sys, "argv", [f"{script}.py"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(ROOT / "exp" / f"{script}.py"), run_name="__main__")
    assert stop.value.code == 2
    error_lines(capsys.readouterr().err, f"{script}.py", *named, most=1)


def test_an_empty_or_wrong_frame_tree_is_missing_data(tmp_path):
    import opts as options
    from datasets import missing_data
    (tmp_path / "frames").mkdir()
    (tmp_path / "a.csv").write_text("id,actions,length\n")
    flags = ["--train-file", str(tmp_path / "a.csv"), "--val-file", str(tmp_path / "a.csv"), "--cache-dir",
             str(tmp_path / "cache")]
    opts = options.parse(["--data", str(tmp_path / "frames"), *flags])
    assert missing_data(opts) == [("--data", str(tmp_path / "frames"), "an empty folder (no video folders)")]
    (tmp_path / "frames" / "AAAAA").mkdir()
    assert missing_data(opts) == []
    opts = options.parse(["--data", str(tmp_path / "a.csv"), *flags])
    assert missing_data(opts) == [("--data", str(tmp_path / "a.csv"), "not a folder")]


def test_in_memory_datasets_need_no_files(tmp_path):
    """fake and testdata1 pass the data check with no --data or CSVs at all."""
    import opts as options
    from datasets import missing_data
    for dataset in ("fake", "testdata1"):
        assert missing_data(options.parse(["--dataset", dataset, "--cache-dir", str(tmp_path)])) == []
    assert [p[0] for p in missing_data(options.parse(["--cache-dir", str(tmp_path)]))] == [
        "--data", "--train-file", "--val-file"]


# --------------------------------------------------------- what goes wrong later, still one line

def test_no_network_for_the_weights_is_one_line(tmp_path, offline_hub, capsys):
    argv = ["--dataset", "fake", "--arch", "resnet18", "--pretrained", "--device", "cpu", "--cache-dir",
            str(tmp_path / "cache")]
    assert cli.run(main.main, argv, prog="main.py") == 2
    error_lines(capsys.readouterr().err, "main.py", "--pretrained IMAGENET1K_V1", "name resolution",
                "resnet18-f37072fd.pth", str(offline_hub / "checkpoints"), most=1)


def fake_run(tmp_path) -> list[str]:
    return ["--dataset", "fake", "--arch", "resnet18", "--inputsize", "32", "--nclass", "4", "--nhidden", "2",
            "--device", "cpu", "--workers", "0", "--cache-dir", str(tmp_path / "cache")]


def test_a_checkpoint_of_the_wrong_kind_is_one_line(tmp_path, capsys):
    other = tmp_path / "other.pth.tar"  # another network's checkpoint
    torch.save({"epoch": 3, "arch": "linear", "state_dict": {"1.weight": torch.zeros(4, 10)}}, other)
    assert cli.run(main.main, fake_run(tmp_path) + ["--resume", str(other)], prog="main.py") == 2
    error_lines(capsys.readouterr().err, "main.py", f"{other} does not fit the model", "--arch", most=1)


def test_bad_annotations_are_one_line(tmp_path, capsys):
    (tmp_path / "frames" / "AAAAA").mkdir(parents=True)
    csv = tmp_path / "train.csv"
    csv.write_text("id,actions,length\nAAAAA,c001 1.0,30\n")
    argv = ["--data", str(tmp_path / "frames"), "--train-file", str(csv), "--val-file", str(csv), "--arch", "linear",
            "--inputsize", "4", "--device", "cpu", "--workers", "0", "--cache-dir", str(tmp_path / "cache")]
    assert cli.run(main.main, argv, prog="main.py") == 2
    error_lines(capsys.readouterr().err, "main.py", f"{csv}, line 2, video AAAAA: malformed action", most=1)


def test_a_full_disk_is_one_line_with_status_1(tmp_path, monkeypatch, capsys):
    for name in ("rgb", "flow"):
        (tmp_path / f"{name}.txt").write_text("A 1 2 3\n")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(atomic.os, "fsync", full)
    out = tmp_path / "fused.txt"
    argv = [str(tmp_path / "rgb.txt"), str(tmp_path / "flow.txt"), "-o", str(out), "--nclass", "3"]
    assert cli.run(combine_rgb_flow.main, argv, prog="combine_rgb_flow.py") == 1
    error_lines(capsys.readouterr().err, "combine_rgb_flow.py", f"could not write {out}: no space left",
                "free some space", most=1)
    assert sorted(os.listdir(tmp_path)) == ["flow.txt", "rgb.txt"]  # no partial or temporary file


def test_no_entry_point_has_an_option_named_debug():
    """``cli.run`` takes ``--debug`` off the command line: no script may mean something else by it."""
    for parser in (main.options.build_parser(), extract_features.build_parser(), extract_frames.build_parser(),
                   plot_results.build_parser()):
        assert "--debug" not in parser._option_string_actions
    for path in [*ROOT.glob("*.py"), *ROOT.glob("exp/*.py"), *ROOT.glob("utils/*.py"), *ROOT.glob("datasets/**/*.py")]:
        if path.name != "cli.py":
            assert '"--debug"' not in path.read_text(), path


def test_the_projects_errors_are_user_errors_and_keep_their_base():
    """What each error class is to ``cli.run`` (exit 2 or 1), and that ``except ValueError`` (etc.) written
    before still catches it."""
    from checkpoints import CheckpointError, UntrustedCheckpointError
    from checkpoints.run_state import StateFileError
    from datasets.demo.tree import DemoRootError
    from datasets.frame_index import DatasetError
    from datasets.frame_io import FrameError
    from models import PretrainedWeightsError
    from utils.charades_csv import AnnotationError
    from utils.metrics_log import MetricsFormatError
    from utils.submission import SubmissionError
    from utils.video_frames import VideoError
    user = {AnnotationError: ValueError, DatasetError: ValueError, SubmissionError: ValueError,
            MetricsFormatError: ValueError, cli.InputError: ValueError, FrameError: RuntimeError,
            CheckpointError: RuntimeError, UntrustedCheckpointError: RuntimeError, StateFileError: RuntimeError,
            PretrainedWeightsError: RuntimeError, DemoRootError: RuntimeError, run_lock.RunLocked: Exception, train.Diverged: Exception,
            cli.MissingInputError: FileNotFoundError, cli.MissingDependency: ImportError, VideoError: Exception}
    for cls, base in user.items():
        assert issubclass(cls, cli.UserError) and issubclass(cls, base) and cls.exit_code == 2, cls
    assert issubclass(atomic.WriteError, cli.Failure) and issubclass(atomic.WriteError, OSError)
    assert atomic.WriteError.exit_code == 1
