"""Checkpoints: round trip, resume with the optimiser state, the released model's legacy format
(Python 2 / PyTorch 0.4) loaded safely, files a safe load refuses, corrupt files, mismatched weights,
atomic writes and a full disk."""
import argparse
import errno
import os
import pickle
import struct
import types
import warnings

import numpy as np
import pytest
import torch

import checkpoints
import opts as options
from models import create_model
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


class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's pickle wrote for PyTorch 0.4: ``str`` as SHORT_BINSTRING (bytes), ints
    beyond 32 bits (the optimiser's ``id()`` keys) as the text INT opcode, numpy under ``numpy.core``."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj):
        n = len(obj)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)) + obj)
        self.memoize(obj)

    def save_str(self, obj):
        self.save_bytes(obj.encode("latin1"))

    def save_long(self, obj):
        if -2 ** 31 <= obj < 2 ** 31 or not -2 ** 63 <= obj < 2 ** 63:  # BININT, or a Python 2 long
            return pickle._Pickler.save_long(self, obj)
        self.write(pickle.INT + repr(obj).encode() + b"\n")

    def save_global(self, obj, name=None):
        if getattr(obj, "__module__", None) == "numpy._core.multiarray":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n" + (name or obj.__name__).encode() + b"\n")
            return self.memoize(obj)
        return pickle._Pickler.save_global(self, obj, name)

    dispatch.update({bytes: save_bytes, str: save_str, int: save_long, types.FunctionType: save_global,
                     type: save_global, types.BuiltinFunctionType: save_global})


def save_like_python2(obj, path):
    py2 = types.SimpleNamespace(__name__="py2pickle", Pickler=Py2Pickler,
                                dump=lambda o, f, protocol=2: Py2Pickler(f, protocol).dump(o))
    torch.save(obj, path, pickle_module=py2, pickle_protocol=2, _use_new_zipfile_serialization=False)


def tiny():
    o = argparse.Namespace(inputsize=4, nclass=3, nhidden=2, arch="linear", pretrained=False, pretrained_weights="",
                           dataset="testdata1", device="cpu", lr=0.1, momentum=0.9, weight_decay=0.0,
                           memory_size=2, memory_decay=1.0, sigma=1.0, temporal_weight=1.0, temporalloss_weight=1.0,
                           originalloss_weight=1.0, adjustment=False, balanceloss=False, window_smooth=0,
                           manual_seed=0, trust_checkpoint=False)
    model, _, optimizer = create_model(o)
    a, aa = model(torch.ones(2, 4))
    (a.sum() + aa.sum()).backward()
    optimizer.step()
    return model, optimizer


def test_released_python2_format_loads_safely(tmp_path):
    """Python 2 pickles the way the released asynctf_rgb.pth.tar was written: torch's safe unpickler
    cannot parse their INT opcodes, the restricted one does, and no unsafe global is needed."""
    model, optimizer = tiny()
    sd = optimizer.state_dict()
    ids = [id(p) for p in model.parameters()]  # PyTorch 0.4 keyed the optimiser state by id()
    assert max(ids) >= 2 ** 31
    packed = {"state": {ids[i]: v for i, v in sd["state"].items()},
              "param_groups": [{k: v for k, v in sd["param_groups"][0].items()
                                if k in ("lr", "momentum", "dampening", "weight_decay", "nesterov")} | {"params": ids}]}
    legacy = {"epoch": 5, "arch": "resnet152", "mAP": np.float64(0.261), "optimizer": packed,
              "state_dict": {"module." + k: v.clone() for k, v in model.state_dict().items()}}
    path = str(tmp_path / "asynctf_rgb.pth.tar")
    save_like_python2(legacy, path)
    raw = open(path, "rb").read()
    assert b"numpy.core.multiarray\nscalar" in raw and b"I%d\n" % ids[0] in raw
    with pytest.raises(pickle.UnpicklingError, match="Unsupported operand"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.serialization.safe_globals(checkpoints.safe_load.EXTRA_SAFE_GLOBALS):
            torch.load(path, weights_only=True, encoding="latin1")
    model2, optimizer2 = tiny()
    with torch.no_grad():
        for p in model2.parameters():
            p.zero_()
    info = checkpoints.resume(path, model2, optimizer2)
    assert info["start_epoch"] == 5 and info["best_mAP"] == pytest.approx(0.261)  # no best_mAP: mAP is the best
    for k, v in model.state_dict().items():
        assert torch.equal(model2.state_dict()[k], v), k
    for i, p in enumerate(model2.parameters()):
        assert torch.equal(optimizer2.state[p]["momentum_buffer"], sd["state"][i]["momentum_buffer"])


class Marker:
    """A pickle that runs code: unpickling it creates a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path,))


@pytest.mark.parametrize("zipfile", [True, False])
def test_unsafe_pickle_is_refused_unless_trusted(tmp_path, zipfile):
    model, _ = tiny()
    marker = tmp_path / "marker"
    evil = str(tmp_path / "evil.pth.tar")
    torch.save({"state_dict": model.state_dict(), "x": Marker(str(marker))}, evil,
               _use_new_zipfile_serialization=zipfile)
    for load in (lambda: checkpoints.load_checkpoint(evil), lambda: checkpoints.load_weights_file(evil),
                 lambda: checkpoints.resume(evil, model)):
        with pytest.raises(checkpoints.UntrustedCheckpointError, match=r"evil\.pth\.tar.*--trust-checkpoint"):
            load()
    assert not marker.exists()
    # a checkpoint with a harmless but unlisted type (here the original saved no such thing; many
    # projects pickle their argparse options): refused by default, loaded with --trust-checkpoint
    trusted = str(tmp_path / "with_args.pth.tar")
    torch.save({"state_dict": model.state_dict(), "args": argparse.Namespace(lr=0.1)}, trusted,
               _use_new_zipfile_serialization=zipfile)
    with pytest.raises(checkpoints.UntrustedCheckpointError, match="argparse.Namespace"):
        checkpoints.load_checkpoint(trusted)
    assert checkpoints.load_checkpoint(trusted, trusted=True)["args"].lr == 0.1
    assert checkpoints.resume(trusted, model, trusted=True)["start_epoch"] == 0


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
