"""Options are checked when parsed: each bad value stops the run before anything is built, with one
error naming the option and its valid range; so do an explicit --resume of a missing file, --evaluate
without weights, and a resume past --epochs."""
import os
import runpy

import pytest

import checkpoints
import main
import opts as options
import train
from models import create_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def flags(cache, epochs=1):
    return ["--dataset", "testdata1", "--arch", "linear", "--inputsize", "100", "--nclass", "5", "--nhidden", "2",
            "--epochs", str(epochs), "--batch-size", "50", "--workers", "0", "--device", "cpu", "--test-frames", "2",
            "--print-freq", "100000", "--cache-dir", str(cache), "--name", "run"]


@pytest.fixture
def no_training(monkeypatch):
    """Any training or validation step fails the test: errors must come first."""
    def step(*args, **kwargs):
        raise AssertionError("a training step ran before the error")
    for name in ("train", "validate", "validate_video"):
        monkeypatch.setattr(train, name, step)


def usage_error(capsys, call) -> str:
    with pytest.raises(SystemExit) as stop:
        call()
    assert stop.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("option,value,valid", [
    ("--sigma", "0", "> 0"), ("--sigma", "inf", "> 0"), ("--temporal-weight", "nan", ">= 0"),
    ("--test-frames", "0", ">= 1"), ("--memory-size", "0", ">= 1"), ("--memory-decay", "0", "> 0"),
    ("--lr-decay-rate", "0", ">= 1"), ("--accum-grad", "0", ">= 1"), ("--train-size", "2", "> 0 and <= 1"),
    ("--train-size", "0", "> 0 and <= 1"), ("--val-size", "-0.5", "> 0 and <= 1"), ("--epochs", "0", ">= 1"),
    ("--batch-size", "0", ">= 1"), ("--workers", "-1", ">= 0"), ("--nclass", "0", ">= 1"),
    ("--nhidden", "0", ">= 1"), ("--inputsize", "0", ">= 1"), ("--window-smooth", "-1", ">= 0"),
    ("--lr", "-0.1", ">= 0"), ("--print-freq", "0", ">= 1"), ("--manual-seed", "-1", ">= 0 and <= 4294967295"),
])
def test_bad_option_names_option_and_range(tmp_path, capsys, no_training, option, value, valid):
    err = usage_error(capsys, lambda: main.main(flags(tmp_path) + [option, value]))
    assert f"argument {option}: " in err and f"(valid: {valid})" in err, err
    assert err.count("\n") == 1, err  # one line, no usage block of every option
    assert not (tmp_path / "run").exists()  # nothing created either


def test_rules_cover_every_numeric_option():
    """A new numeric option gets a rule (or is listed here as free): the table stays complete."""
    free = {"world_size", "local_rank", "rank"}
    numeric = {a.dest for a in options.build_parser()._actions if a.type in (int, float)}
    assert numeric - set(options.RULES) - free == set()


def test_resume_of_a_missing_file_or_a_directory(tmp_path, capsys, no_training):
    err = usage_error(capsys, lambda: main.main(flags(tmp_path) + ["--resume", str(tmp_path / "typo.pth.tar")]))
    assert "argument --resume" in err and "typo.pth.tar: no such file" in err
    err = usage_error(capsys, lambda: main.main(flags(tmp_path) + ["--resume", str(tmp_path)]))
    assert "is a directory, not a checkpoint file" in err


def test_released_model_missing_says_where_to_get_it(tmp_path, capsys, no_training, monkeypatch):
    """exp/asynctf_rgb_test.py without asynctf_rgb.pth.tar in the current folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(os.path.join(ROOT, "exp"))  # as when the file runs as a script
    exp = runpy.run_path(os.path.join(ROOT, "exp", "asynctf_rgb_test.py"), run_name="exp")
    err = usage_error(capsys, lambda: exp["experiment"](exp["FLAGS"], ["--cache-dir", str(tmp_path)]))
    assert "asynctf_rgb.pth.tar: no such file" in err and "dropbox.com" in err


def test_evaluate_needs_weights(tmp_path, capsys, no_training):
    err = usage_error(capsys, lambda: main.main(flags(tmp_path) + ["--evaluate"]))
    assert "argument --evaluate: needs weights" in err


def test_resume_past_epochs_is_an_error(tmp_path, no_training):
    ckpt = tmp_path / "ckpt.pth.tar"
    opts = options.parse(flags(tmp_path))
    net, _, optimizer = create_model(opts)
    checkpoints.atomic_torch_save({"epoch": 3, "arch": "linear", "state_dict": net.state_dict(), "mAP": 0.5,
                                   "optimizer": optimizer.state_dict()}, str(ckpt))
    with pytest.raises(ValueError, match=r"ckpt\.pth\.tar is at epoch 3, past --epochs 2"):
        main.main(flags(tmp_path, 2) + ["--resume", str(ckpt)])
    out = main.main(flags(tmp_path, 3) + ["--resume", str(ckpt)])  # = --epochs: nothing to do, said so
    assert out == {"cache": str(tmp_path / "run")}
    assert "nothing to train" in (tmp_path / "run" / "log.txt").read_text()
