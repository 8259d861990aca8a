"""Checkpoints: round trip, resume with the optimiser state, the released model's legacy format, corrupt
and missing files, mismatched weights, atomic writes and a full disk (reading files safely, the Python 2
format included: test_safe_load.py)."""
import errno
import os
import re

import numpy as np
import pytest
import torch

import checkpoints
import opts as options
from models import create_model
from test_safe_load import tiny
from utils.atomic import WriteError


@pytest.fixture
def small(tmp_path):
    o = options.parse(["--arch", "resnet18", "--nhidden", "3", "--device", "cpu", "--cache-dir", str(tmp_path)])
    return o


def one_step(model, optimizer):
    a, aa = model(torch.randn(2, 3, 32, 32))
    (a.sum() + aa.sum()).backward()
    optimizer.step()


def test_round_trip_and_resume(small):
    model, _, optimizer = create_model(small)
    one_step(model, optimizer)
    state = {"epoch": 3, "arch": "resnet18", "state_dict": model.state_dict(), "mAP": 0.25,
             "optimizer": optimizer.state_dict()}
    checkpoints.save_checkpoint(state, True, {"mAP": 0.25, "top1train": 12.5}, small.cache)
    for name in ("model.pth.tar", "model_best.pth.tar", "model_003.txt", "model_best.txt"):
        assert os.path.isfile(os.path.join(small.cache, name))
    assert open(os.path.join(small.cache, "model_003.txt")).read() == "top1train 12.5\nmAP 0.25\n"
    model2, _, optimizer2 = create_model(small)
    info = checkpoints.resume(os.path.join(small.cache, "model.pth.tar"), model2, optimizer2)
    assert info["start_epoch"] == 3 and info["best_mAP"] == pytest.approx(0.25)
    for k, v in model.state_dict().items():
        assert torch.equal(v, model2.state_dict()[k]), k
    m1 = optimizer.state_dict()["state"]
    m2 = optimizer2.state_dict()["state"]
    assert m1.keys() == m2.keys() and all(torch.equal(m1[k]["momentum_buffer"], m2[k]["momentum_buffer"])
                                          for k in m1)
    assert not [f for f in os.listdir(small.cache) if f.endswith(".tmp")]


def test_legacy_released_format(small, tmp_path):
    """Like asynctf_rgb.pth.tar: old (non-zip) serialisation, DataParallel keys, numpy float64 mAP."""
    model, _, _ = create_model(small)
    legacy = {"epoch": 5, "arch": "resnet18", "mAP": np.float64(0.261),
              "state_dict": {"module." + k: v.clone() for k, v in model.state_dict().items()},
              "optimizer": None}
    path = str(tmp_path / "asynctf_rgb.pth.tar")
    torch.save(legacy, path, _use_new_zipfile_serialization=False)
    assert "module.fc.mAAa.weight" in legacy["state_dict"]
    model2, _, opt2 = create_model(small)
    info = checkpoints.resume(path, model2, opt2)
    assert info["start_epoch"] == 5 and info["best_mAP"] == pytest.approx(0.261)
    assert torch.equal(model2.fc.mAAb.weight, model.fc.mAAb.weight)
    # bare weights (any dict without state_dict) load too
    torch.save(model.state_dict(), str(tmp_path / "bare.pth"))
    assert checkpoints.resume(str(tmp_path / "bare.pth"), model2)["start_epoch"] is None


def test_corrupt_and_missing(small, tmp_path):
    model, _, opt = create_model(small)
    good = str(tmp_path / "good.pth.tar")
    checkpoints.atomic_torch_save({"state_dict": model.state_dict()}, good)
    data = open(good, "rb").read()
    bad = str(tmp_path / "truncated.pth.tar")
    open(bad, "wb").write(data[: len(data) // 2])
    with pytest.raises(checkpoints.CheckpointError, match="truncated.pth.tar"):
        checkpoints.resume(bad, model, opt)
    garbage = str(tmp_path / "garbage.pth.tar")
    open(garbage, "wb").write(b"not a checkpoint at all")
    with pytest.raises(checkpoints.CheckpointError, match="garbage.pth.tar"):
        checkpoints.load_checkpoint(garbage)
    with pytest.raises(FileNotFoundError, match="nothing.pth.tar: no such file"):  # no silent fresh start
        checkpoints.resume(str(tmp_path / "nothing.pth.tar"), model, opt)
    with pytest.raises(FileNotFoundError, match="a directory"):
        checkpoints.resume(str(tmp_path), model, opt)
    for missing in (str(tmp_path / "nothing.pth.tar"), str(tmp_path)):  # the loader itself says so too
        with pytest.raises(FileNotFoundError, match=f"checkpoint not found: {re.escape(missing)}$"):
            checkpoints.load_checkpoint(missing)


def test_atomic_save_keeps_old_file_on_failure(tmp_path):
    path = str(tmp_path / "model.pth.tar")
    checkpoints.atomic_torch_save({"x": 1}, path)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("crash mid-save")
    with pytest.raises(RuntimeError):
        checkpoints.atomic_torch_save({"x": Boom()}, path)
    assert checkpoints.load_checkpoint(path) == {"x": 1}
    assert os.listdir(tmp_path) == ["model.pth.tar"]


def test_mismatched_weights_name_file_arch_and_keys(tmp_path):
    model, optimizer = tiny()
    other = torch.nn.Linear(4, 7)
    path = str(tmp_path / "other.pth.tar")
    checkpoints.atomic_torch_save({"epoch": 1, "arch": "resnet50", "state_dict": {"1.mA.weight": other.weight},
                                   "mAP": 0.1}, path)
    with pytest.raises(checkpoints.CheckpointError,
                       match=r"other\.pth\.tar.*arch is resnet50.*1\.mA\.weight \(7, 4\) vs \(3, 4\).*missing"):
        checkpoints.resume(path, model, optimizer)


def test_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = str(tmp_path / "model.pth.tar")
    checkpoints.atomic_torch_save({"epoch": 1}, path)
    real_save = torch.save

    def save_to_full_disk(obj, f, *args, **kwargs):
        class Full:  # a file whose device fills up after the first bytes
            def __init__(self, f):
                self.f, self.n = f, 0

            def write(self, data):
                self.n += len(data)
                if self.n > 64:
                    raise OSError(errno.ENOSPC, "No space left on device")
                return self.f.write(data)

            def __getattr__(self, name):
                return getattr(self.f, name)
        return real_save(obj, Full(f), *args, **kwargs)
    monkeypatch.setattr(torch, "save", save_to_full_disk)
    with pytest.raises(WriteError, match=r"could not write .*model\.pth\.tar: no space left on the device") as err:
        checkpoints.atomic_torch_save({"epoch": 2, "w": torch.zeros(1000)}, path)
    assert err.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert checkpoints.load_checkpoint(path) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["model.pth.tar"]  # no temporary file left
