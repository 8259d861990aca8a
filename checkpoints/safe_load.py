"""Reading checkpoint files without running code from them (SPEC sections 10 and 12).

A pickle can call any function it names.  Every file is read with ``torch.load(weights_only=True)``,
which builds only tensors, containers and numbers, plus exactly the extra types the released
``asynctf_rgb.pth.tar`` needs: its ``mAP`` is a numpy float64 (``numpy.core.multiarray.scalar`` and the
float64 dtype).  That model was pickled by Python 2: its ``str`` are bytes (retried with
``encoding='latin1'``), and its PyTorch 0.4 optimiser state holds 64-bit ``id()`` numbers, written with
Python 2's text ``INT`` opcode, which torch's safe unpickler does not parse.  For such files the load is
retried with the standard unpickler restricted to the same allowlist (Python's documented way to
restrict globals), so they load safely too.  Anything else is refused with one error naming the file
and ``--trust-checkpoint``, which loads a file the user trusts with full unpickling.
"""
from __future__ import annotations

import codecs
import os
import pickle
import pickletools
import re
import struct
import types
import warnings
import zipfile
from collections import OrderedDict

import numpy as np
import torch

from utils.cli import MissingInputError, UserError

TRUST_FLAG = "--trust-checkpoint"

_scalar = getattr(getattr(np, "_core", None), "multiarray", np.core.multiarray).scalar
_float64_dtype = type(np.dtype(np.float64))
# (object, the name a pickle may use for it): numpy 1 (and Python 2) and numpy 2 spell the module apart
EXTRA_SAFE_GLOBALS = [(_scalar, "numpy.core.multiarray.scalar"), (_scalar, "numpy._core.multiarray.scalar"),
                      (np.dtype, "numpy.dtype"),
                      (_float64_dtype, f"{_float64_dtype.__module__}.{_float64_dtype.__qualname__}")]
# The restricted unpickler's allowlist: the extra types and what torch's own safe unpickler allows for
# plain tensors and state dicts (legacy storages are mapped by torch.load itself).
_RESTRICTED = {name: obj for obj, name in EXTRA_SAFE_GLOBALS} | {
    "collections.OrderedDict": OrderedDict, "_codecs.encode": codecs.encode, "torch.Size": torch.Size,
    "torch.device": torch.device, "torch._utils._rebuild_tensor": torch._utils._rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
    "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter}
_REFUSED = re.compile(r"(?:Unsupported global|unsupported GLOBAL|not an allowed global)\W*(?:GLOBAL )?([\w.]+)")


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file that cannot be read (corrupt, truncated, not a checkpoint)."""


class UntrustedCheckpointError(CheckpointError):
    """A file that a safe load refuses: it names functions or classes that unpickling would run."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        full = f"{module}.{name}"
        if full in _RESTRICTED:
            return _RESTRICTED[full]
        raise pickle.UnpicklingError(f"Unsupported global: GLOBAL {full}")


_restricted_pickle = types.SimpleNamespace(
    __name__=__name__, Unpickler=_RestrictedUnpickler,
    load=lambda f, **kwargs: _RestrictedUnpickler(f, **kwargs).load())

# What a damaged file raises.  Old-format (non-zip) files also give: struct.error (torch's safe unpickler
# reading a length past the end of a truncated file), AssertionError (torch's legacy loader checking the
# storage keys) and LookupError (an unknown encoding name where a byte changed).
_READ_ERRORS = (pickle.UnpicklingError, EOFError, RuntimeError, zipfile.BadZipFile, UnicodeDecodeError,
                ValueError, AttributeError, ImportError, LookupError, TypeError, OSError, struct.error,
                AssertionError)


def _attempts(path: str, trusted: bool):
    """The ways to try a file, in order (keyword arguments of ``torch.load``)."""
    if trusted:
        yield {"weights_only": False}
        yield {"weights_only": False, "encoding": "latin1"}
        return
    if hasattr(torch.serialization, "safe_globals"):  # torch >= 2.5
        yield {"weights_only": True}
        yield {"weights_only": True, "encoding": "latin1"}
    yield {"weights_only": False, "pickle_module": _restricted_pickle}
    yield {"weights_only": False, "pickle_module": _restricted_pickle, "encoding": "latin1"}


def _cut_short(path: str) -> bool:
    """Whether an old-format (non-zip) file is not made of whole pickles where torch's legacy layout has
    them (magic number, protocol, system info, the object): a file truncated inside a global's name
    would otherwise be refused for naming, say, ``numpy.core.multiarray.sc``.  Reads opcodes only."""
    if zipfile.is_zipfile(path):
        return False
    with open(path, "rb") as f:
        for _ in range(4):
            if not f.read(1):
                return False  # the file ends between two pickles (a plain pickle is one): not inside one
            f.seek(-1, os.SEEK_CUR)
            try:
                for _ in pickletools.genops(f):
                    pass
            except ValueError:  # the file ends inside this pickle, or an unknown opcode
                return True
    return False


def load_checkpoint(path: str, map_location="cpu", trusted: bool = False):
    """Read a checkpoint, state file or weights file: current zip files, legacy (PyTorch 0.4) pickles and
    Python 2 pickles.  ``trusted`` (``--trust-checkpoint``) allows any pickle, as ``torch.load`` did
    before PyTorch 2.6.  Raises ``FileNotFoundError``, ``UntrustedCheckpointError`` (the file needs more
    than a safe load allows) or ``CheckpointError`` (corrupt, truncated), each naming the file."""
    if not os.path.isfile(path):
        raise MissingInputError(f"checkpoint not found: {path}")
    errors = []
    for kwargs in _attempts(path, trusted):
        try:
            with warnings.catch_warnings():  # torch's notes on pickle protocols and load arguments
                warnings.simplefilter("ignore", UserWarning)
                if kwargs["weights_only"]:
                    with torch.serialization.safe_globals(EXTRA_SAFE_GLOBALS):
                        return torch.load(path, map_location=map_location, **kwargs)
                return torch.load(path, map_location=map_location, **kwargs)
        except _READ_ERRORS as err:
            refused = None if trusted else _REFUSED.search(str(err))
            if refused and _cut_short(path):  # a name cut off by the end of the file: no global to refuse
                errors.append("its pickle ends early")
                break
            if refused:
                raise UntrustedCheckpointError(
                    f"refused to load {path}: it names {refused.group(1)}, which a safe load does not allow "
                    f"(unpickling it could run code). Only if you trust where this file comes from, pass "
                    f"{TRUST_FLAG} to load it with full unpickling.") from None
            errors.append(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    raise CheckpointError(f"cannot read checkpoint {path}: it is corrupt, truncated or not a checkpoint "
                          f"({errors[-1]})")
