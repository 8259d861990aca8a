"""Checkpoints: round trip, resume with the optimiser state, the released model's legacy format
(Python 2 / PyTorch 0.4) loaded safely, files a safe load refuses, corrupt files, mismatched weights,
atomic writes and a full disk."""
import argparse
import collections
import errno
import os
import pickle
import re
import struct
import subprocess
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


class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's pickle wrote for PyTorch 0.4: ``str`` as SHORT_BINSTRING (bytes), ints
    beyond 32 bits (the optimiser's ``id()`` keys) as the text INT opcode, numpy under ``numpy.core``."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj, raw=None):
        raw = obj if raw is None else raw
        n = len(raw)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)) + raw)
        self.memoize(obj)  # the object pickled (its bytes may be a temporary, whose id can come back)

    def save_str(self, obj):
        self.save_bytes(obj, obj.encode("latin1"))

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
    # a weight as an nn.Parameter (what state_dict(keep_vars=True) holds), which unpickles through
    # torch._utils._rebuild_parameter
    legacy["state_dict"]["module.1.mA.bias"] = torch.nn.Parameter(model.state_dict()["1.mA.bias"].clone())
    path = str(tmp_path / "asynctf_rgb.pth.tar")
    save_like_python2(legacy, path)
    raw = open(path, "rb").read()
    assert b"numpy.core.multiarray\nscalar" in raw and b"I%d\n" % ids[0] in raw
    assert b"torch._utils\n_rebuild_parameter" in raw
    loaded = checkpoints.load_checkpoint(path)
    assert type(loaded["state_dict"]["module.1.mA.bias"]) is torch.nn.Parameter
    assert type(loaded["mAP"]) is np.float64 and loaded["optimizer"]["param_groups"][0]["params"] == ids
    with pytest.raises(pickle.UnpicklingError, match="Unsupported operand"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.serialization.safe_globals(checkpoints.safe_load.EXTRA_SAFE_GLOBALS):
            torch.load(path, weights_only=True, encoding="latin1")
    model2, optimizer2 = tiny()
    with torch.no_grad():
        for p in model2.parameters():
            p.zero_()
    with warnings.catch_warnings():  # torch's notes on old formats and load arguments are not the user's
        warnings.simplefilter("error")
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


class Calls:
    """Unpickles as ``func(*args)``: how a crafted file runs code."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def old_format_file(path, payload) -> str:
    """A Python 2 style old-format file whose pickle holds a 64-bit INT opcode (as PyTorch 0.4's
    optimiser state did) before ``payload``: torch's own safe unpickler stops at that opcode, so only the
    restricted unpickler stands between ``payload`` and a plain, untrusted load."""
    save_like_python2({"optimizer": {"state": {2 ** 40: 1}}, "x": payload}, str(path))
    with pytest.raises(pickle.UnpicklingError, match="Unsupported operand"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.load(str(path), weights_only=True, encoding="latin1")
    return str(path)


def dangerous_calls(marker):
    """(global the file names, the call): those that would run code create ``marker``.  The names are
    Python 2's (``__builtin__``), which unpickling maps to Python 3's."""
    m = str(marker)
    return [("posix.system", Calls(os.system, f"touch '{m}'")),
            ("__builtin__.exec", Calls(exec, f"open({m!r}, 'w').close()")),
            ("__builtin__.eval", Calls(eval, f"open({m!r}, 'w').close()")),
            ("io.open", Calls(open, m, "w")),
            ("os.makedirs", Calls(os.makedirs, m)),
            ("commands.call", Calls(subprocess.call, ["touch", m])),  # Python 2 names subprocess "commands"
            ("__builtin__.getattr", Calls(getattr, 1, "real")),
            # near misses: an allowed module, a name it does not allow
            ("collections.namedtuple", Calls(collections.namedtuple, "T", "a")),
            ("torch._utils._rebuild_device_tensor_from_numpy",
             Calls(torch._utils._rebuild_device_tensor_from_numpy, np.zeros(1), "float32", "cpu", False))]


@pytest.mark.parametrize("case", range(9))
def test_old_format_file_naming_a_global_outside_the_allowlist_runs_nothing(tmp_path, case):
    """Every global outside the restricted unpickler's allowlist is refused before it is called: one
    error (one line) naming the file, the global and --trust-checkpoint, and no code run."""
    marker = tmp_path / "marker"
    name, payload = dangerous_calls(marker)[case]
    path = old_format_file(tmp_path / "evil.pth.tar", payload)
    assert f"{name.rsplit('.', 1)[0]}\n{name.rsplit('.', 1)[1]}\n".encode() in open(path, "rb").read()
    model, optimizer = tiny()
    for load in (lambda: checkpoints.load_checkpoint(path), lambda: checkpoints.load_weights_file(path),
                 lambda: checkpoints.resume(path, model, optimizer)):
        with pytest.raises(checkpoints.UntrustedCheckpointError) as err:
            load()
        message = str(err.value)
        assert path in message and name in message and "--trust-checkpoint" in message and "\n" not in message
        assert not marker.exists()
    assert sorted(os.listdir(tmp_path)) == ["evil.pth.tar"]


def test_trust_checkpoint_loads_a_python2_pickle_with_latin1_strings(tmp_path):
    """A Python 2 checkpoint with a non-ASCII byte string (read as latin1) and an unlisted type: refused by
    default, loaded as written with --trust-checkpoint."""
    model, _ = tiny()
    path = str(tmp_path / "py2.pth.tar")
    save_like_python2({"epoch": 2, "note": "caf\xe9 \xb5", "args": argparse.Namespace(lr=0.1),
                       "state_dict": model.state_dict()}, path)
    assert b"caf\xe9 \xb5" in open(path, "rb").read()  # one byte per character, as Python 2 wrote it
    with pytest.raises(checkpoints.UntrustedCheckpointError, match="argparse.Namespace"):
        checkpoints.load_checkpoint(path)
    loaded = checkpoints.load_checkpoint(path, trusted=True)
    assert loaded["note"] == "caf\xe9 \xb5" and loaded["args"].lr == 0.1 and loaded["epoch"] == 2
    assert torch.equal(loaded["state_dict"]["1.mA.weight"], model.state_dict()["1.mA.weight"])
    assert checkpoints.resume(path, model, trusted=True)["start_epoch"] == 2


def test_what_torchs_own_safe_load_builds_loads_safely(tmp_path):
    """A current (zip) file with values torch's weights_only load builds besides tensors and numbers."""
    path = str(tmp_path / "modern.pth.tar")
    saved = {"dtype": torch.bfloat16, "tags": {"a", "b"}, "z": complex(1, 2), "device": torch.device("cpu"),
             "raw": bytearray(b"x"), "w": torch.ones(2, dtype=torch.bfloat16)}
    torch.save(saved, path)
    loaded = checkpoints.load_checkpoint(path)
    assert loaded.keys() == saved.keys() and torch.equal(loaded.pop("w"), saved.pop("w")) and loaded == saved
    # and in a Python 2 file with a latin1 string (torch's safe unpickler, latin1, reads it)
    save_like_python2({"dtype": torch.float32, "tags": {"a"}, "note": "caf\xe9"}, path)
    assert checkpoints.load_checkpoint(path) == {"dtype": torch.float32, "tags": {"a"}, "note": "caf\xe9"}


@pytest.mark.parametrize("trusted", [False, True])
@pytest.mark.parametrize("int_opcode", [False, True])  # True: torch's safe unpickler gives up, the restricted one reads it
def test_python2_strings_are_read_as_utf8_first_then_latin1(tmp_path, trusted, int_opcode):
    """Python 2 wrote ``str`` as bytes: a file whose bytes are UTF-8 reads as that text; one with a byte
    that is not UTF-8 reads as latin1 (every byte a character), on every path of the loader."""
    extra = {"ids": [2 ** 40]} if int_opcode else {}
    if trusted:  # a type outside the allowlist too: only the trusted attempts can read these files
        extra["args"] = argparse.Namespace(lr=0.1)
    utf8, latin1 = str(tmp_path / "utf8.pth.tar"), str(tmp_path / "latin1.pth.tar")
    save_like_python2({"note": "caf\xe9".encode("utf-8"), "w": torch.ones(2)} | extra, utf8)
    save_like_python2({"note": "caf\xe9".encode("latin1"), "w": torch.ones(2)} | extra, latin1)
    assert checkpoints.load_checkpoint(utf8, trusted=trusted)["note"] == "caf\xe9"
    assert checkpoints.load_checkpoint(latin1, trusted=trusted)["note"] == "caf\xe9"


@pytest.fixture(params=["python2", "pytorch 0.4 format"])
def small_old_file(request, tmp_path):
    """A small old-format (non-zip) checkpoint with every kind of thing the released one holds."""
    obj = {"mAP": np.float64(0.261), "ids": [2 ** 40], "p": torch.nn.Parameter(torch.ones(2))}
    path = tmp_path / "old.pth.tar"
    if request.param == "python2":
        save_like_python2(obj, str(path))
    else:
        torch.save(obj, str(path), _use_new_zipfile_serialization=False)
    assert checkpoints.load_checkpoint(str(path))["mAP"] == 0.261
    return path


def test_empty_or_truncated_old_format_file_is_an_error_naming_it(small_old_file):
    """At every length from 0 (empty) to one byte short: a CheckpointError naming the file (torch's safe
    unpickler raised a bare struct.error for some; others, cut inside a global's name, were refused as
    naming an unknown global); with --trust-checkpoint too (every 4th length: that path had no gap)."""
    data = small_old_file.read_bytes()
    cut = small_old_file.with_name("cut.pth.tar")
    for n in range(len(data)):
        cut.write_bytes(data[:n])
        for trusted in (False, True)[:1 + (n % 4 == 0)]:
            with pytest.raises(checkpoints.CheckpointError) as err:
                checkpoints.load_checkpoint(str(cut), trusted=trusted)
            assert type(err.value) is checkpoints.CheckpointError and str(cut) in str(err.value), (n, trusted)


def test_whole_plain_pickle_naming_a_global_is_refused_for_it(tmp_path):
    """One complete pickle (no torch layout after it) is not a truncated file: the refusal names its global."""
    marker, path = tmp_path / "marker", tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"x": Calls(os.makedirs, str(marker))}, protocol=2))
    with pytest.raises(checkpoints.UntrustedCheckpointError, match="names os.makedirs"):
        checkpoints.load_checkpoint(str(path))
    assert not marker.exists()


def test_damaged_old_format_file_is_an_error_naming_it(small_old_file):
    """A changed storage key (torch's legacy loader asserts) or encoding name (LookupError)."""
    data = small_old_file.read_bytes()
    key = re.findall(rb"\d{6,}", data)[-1]  # the last storage key, written once more in the key list
    damaged = [data[:data.rindex(key)] + key[::-1] + data[data.rindex(key) + len(key):]]
    if b"latin1" in data:
        damaged.append(data.replace(b"latin1", b"latinX", 1))
    for k, bad in enumerate(damaged):
        path = small_old_file.with_name(f"damaged{k}.pth.tar")
        path.write_bytes(bad)
        for trusted in (False, True):
            with pytest.raises(checkpoints.CheckpointError, match=re.escape(str(path))):
                checkpoints.load_checkpoint(str(path), trusted=trusted)


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
