"""No code runs from a file a run loads: a pickle that would run code (it creates a marker folder) is
refused through every entry point, with one error naming the file and --trust-checkpoint; the state
file a checkpoint names must be a file of the checkpoint's own folder."""
import os
import runpy
import shutil

import pytest
import torch

import checkpoints
import datasets.testdata1 as testdata1
import get_alltest
import main
from checkpoints.run_state import StateFileError, load_run_state
from utils.file_hash import file_digest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def flags(cache, epochs=1):
    return ["--dataset", "testdata1", "--arch", "linear", "--inputsize", "100", "--nclass", "5", "--nhidden", "2",
            "--epochs", str(epochs), "--batch-size", "50", "--workers", "0", "--device", "cpu", "--test-frames", "2",
            "--print-freq", "100000", "--cache-dir", str(cache), "--name", "run"]


class Marker:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.makedirs, (self.path,))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished one-epoch run (8 sequences)."""
    cache = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(testdata1, "NSEQ", 8)
        main.main(flags(cache))
    return cache / "run"


@pytest.fixture
def evil(tmp_path, trained):
    """A checkpoint like the run's own, that also creates ``tmp_path/marker`` when unpickled."""
    ckpt = checkpoints.load_checkpoint(str(trained / "model.pth.tar"))
    path = tmp_path / "evil.pth.tar"
    torch.save(dict(ckpt, note=Marker(tmp_path / "marker")), str(path))
    return path


def refused(call, evil_path, marker):
    with pytest.raises(checkpoints.UntrustedCheckpointError) as err:
        call()
    assert str(evil_path) in str(err.value) and "--trust-checkpoint" in str(err.value)
    assert not marker.exists()


def test_resume_refuses_code(evil, tmp_path):
    refused(lambda: main.main(flags(tmp_path / "out", 2) + ["--resume", str(evil)]), evil, tmp_path / "marker")


def test_get_alltest_refuses_code(evil, tmp_path):
    refused(lambda: get_alltest.main(flags(tmp_path / "out") + ["--resume", str(evil)]), evil, tmp_path / "marker")


def test_pretrained_weights_refuse_code(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"1.mA.weight": torch.zeros(5, 100), "x": Marker(tmp_path / "marker")}, str(path))
    refused(lambda: main.main(flags(tmp_path / "out") + ["--pretrained-weights", str(path)]), path,
            tmp_path / "marker")


def test_flow_experiments_automatic_weights_file_is_loaded_safely(tmp_path, monkeypatch):
    """exp/asynctf_flow.py passes $CHARADES/ucf101_flow_vgg16.pth by itself: the same safe load."""
    path = tmp_path / "ucf101_flow_vgg16.pth"
    torch.save({"features.0.weight": torch.zeros(1), "x": Marker(tmp_path / "marker")}, str(path))
    monkeypatch.setenv("CHARADES", str(tmp_path))
    exp_flags = runpy.run_path(os.path.join(ROOT, "exp", "asynctf_flow.py"), run_name="exp")["FLAGS"]
    assert str(path) in exp_flags
    refused(lambda: main.main(exp_flags + flags(tmp_path / "out")), path, tmp_path / "marker")


def test_state_file_named_by_a_checkpoint_refuses_code(trained, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(trained, run)
    ckpt = checkpoints.load_checkpoint(str(run / "model.pth.tar"))
    state = run / ckpt["run_state"]["file"]
    torch.save({"criterion": Marker(tmp_path / "marker")}, str(state))
    ckpt["run_state"] = dict(ckpt["run_state"], sha1=file_digest(str(state)), bytes=state.stat().st_size)
    torch.save(ckpt, str(run / "model.pth.tar"))
    for extra in ([], ["--ignore-bad-state"]):  # not a damaged file: ignoring it is not an option
        refused(lambda: main.main(flags(tmp_path / "out", 2) + ["--resume", str(run / "model.pth.tar")] + extra),
                state, tmp_path / "marker")


def test_trust_checkpoint_loads_a_trusted_file(trained, tmp_path):
    """A checkpoint with a harmless type outside the allowlist (a set of tags as a custom class would
    be): refused by default, loaded with --trust-checkpoint (the run has no epoch left to train)."""
    ckpt = checkpoints.load_checkpoint(str(trained / "model.pth.tar"))
    path = tmp_path / "trusted.pth.tar"
    torch.save(dict(ckpt, note=frozenset({"mine"})), str(path))
    shutil.copy(trained / ckpt["run_state"]["file"], tmp_path)
    with pytest.raises(checkpoints.UntrustedCheckpointError, match="frozenset"):
        main.main(flags(tmp_path / "out") + ["--resume", str(path)])
    assert main.main(flags(tmp_path / "out") + ["--resume", str(path), "--trust-checkpoint"]) == \
        {"cache": str(tmp_path / "out" / "run")}
    assert f"loaded checkpoint {path} (epoch 1" in (tmp_path / "out" / "run" / "log.txt").read_text()


@pytest.mark.parametrize("name", ["../state_001.pt", "/tmp/state_001.pt", "link.pt"])
def test_state_file_outside_the_checkpoints_folder_is_refused(trained, tmp_path, name):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    ckpt = checkpoints.load_checkpoint(str(run / "model.pth.tar"))
    outside = tmp_path / "state_001.pt"  # a valid state file, but outside the checkpoint's folder
    shutil.copy(run / ckpt["run_state"]["file"], outside)
    if name == "link.pt":
        os.symlink(outside, run / "link.pt")
    ckpt["run_state"] = dict(ckpt["run_state"], file=name)
    torch.save(ckpt, str(run / "model.pth.tar"))
    with pytest.raises(checkpoints.UntrustedCheckpointError, match=f"names the state file '{name}'.*refused"):
        main.main(flags(tmp_path / "out", 2) + ["--resume", str(run / "model.pth.tar"), "--ignore-bad-state"])
    assert not (tmp_path / "out" / "run" / "model.pth.tar").exists()


def test_state_file_load_with_weights_only(trained):
    """What this project saves loads with torch's own safe loader, without any extra allowed type."""
    ckpt = torch.load(str(trained / "model.pth.tar"), weights_only=True)
    state = torch.load(str(trained / ckpt["run_state"]["file"]), weights_only=True)
    assert set(state) == {"criterion", "random", "epoch"}
    with pytest.raises(StateFileError):  # (the ordinary checks still hold)
        load_run_state(dict(ckpt["run_state"], sha1="0" * 40), str(trained), None)
