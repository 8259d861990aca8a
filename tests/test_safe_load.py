"""Reading files without running code (checkpoints/safe_load.py): the released model's legacy format (Python 2
/ PyTorch 0.4) loaded safely, every global outside the restricted unpickler's allowlist refused with no code
run, --trust-checkpoint, Python 2 strings, and truncated or damaged old-format files named as such."""
import argparse
import collections
import os
import pickle
import pickletools
import re
import struct
import subprocess
import types
import warnings

import numpy as np
import pytest
import torch

import checkpoints
from models import create_model



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


def test_whole_object_naming_a_global_is_refused_for_it(tmp_path):
    """Not truncated where it matters, so the refusal names the global: one complete plain pickle (no torch
    layout after it), an old-format file of pickle protocol 1, one cut off after its object (in the
    storage keys that follow it)."""
    marker, path = tmp_path / "marker", tmp_path / "file.pkl"
    evil = {"x": Calls(os.makedirs, str(marker)), "w": torch.ones(2)}
    path.write_bytes(pickle.dumps({"x": evil["x"]}, protocol=2))
    with pytest.raises(checkpoints.UntrustedCheckpointError, match="names os.makedirs"):
        checkpoints.load_checkpoint(str(path))
    torch.save(evil, str(path), pickle_protocol=1, _use_new_zipfile_serialization=False)
    with pytest.raises(checkpoints.UntrustedCheckpointError, match="names os.makedirs"):
        checkpoints.load_checkpoint(str(path))
    torch.save(evil, str(path), _use_new_zipfile_serialization=False)
    with open(path, "rb") as f:
        for _ in range(4):  # magic number, protocol, system info, the object
            for _ in pickletools.genops(f):
                pass
        keys_start = f.tell()
    path.write_bytes(path.read_bytes()[:keys_start + 3])
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
