"""Everything besides the weights that decides how a run continues (exact resume).

Saved next to ``model.pth.tar`` as ``state_NNN.pt``: the criterion's two message buffers (times, FIFO
order, values), its balance counts and storing-order random stream, and the global random states
(Python, numpy, torch CPU and CUDA).  The loaders keep no state of their own: their order and per-sample
augmentation seeds are functions of (seed, epoch) (``datasets/samplers.py``).  ``model.pth.tar`` only gains
a small reference ``{'file', 'sha1', 'bytes'}`` to it, so the model file keeps the released checkpoint's
shape and size; the state file is written first and the checkpoint that names it second, so a crash at
any instant leaves a consistent pair.  Everything in it is a tensor, a number, a string or a container
of those (the numpy random state is stored as a tensor), so it loads with ``weights_only=True``.  The
file a checkpoint names must be a plain file name in the checkpoint's own folder.
"""
from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch

from checkpoints import CheckpointError, UntrustedCheckpointError, atomic_torch_save, load_checkpoint
from utils.file_hash import file_digest

log = logging.getLogger(__name__)


class StateFileError(CheckpointError):
    """A criterion-state file that is missing, corrupt or does not match its checkpoint."""


def _narrow(t: torch.Tensor) -> torch.Tensor:
    """int64 -> int32 when every value fits (times are frame numbers), else unchanged."""
    info = torch.iinfo(torch.int32)
    if t.numel() and (t.min() < info.min or t.max() > info.max):
        return t
    return t.to(torch.int32)


def compact_buffer(state: dict) -> dict:
    """A buffer's state with narrower integers and 0/1 values packed to bits (every value unchanged)."""
    out = dict(state, seq=_narrow(state["seq"]), times=_narrow(state["times"]))
    values = state["values"]
    if values.numel() and bool(((values == 0) | (values == 1)).all()):  # the target buffer
        out["values"] = torch.from_numpy(np.packbits(values.numpy().astype(np.uint8).ravel()))
        out["values_shape"], out["values_dtype"] = tuple(values.shape), str(values.dtype)
    return out


def expand_buffer(state: dict) -> dict:
    """Inverse of ``compact_buffer``."""
    out = dict(state, seq=state["seq"].long(), times=state["times"].long())
    if "values_shape" in out:
        shape = out.pop("values_shape")
        dtype = getattr(torch, out.pop("values_dtype").replace("torch.", ""))
        bits = np.unpackbits(out["values"].numpy(), count=int(np.prod(shape)))
        out["values"] = torch.from_numpy(bits.reshape(shape)).to(dtype)
    return out


def random_states() -> dict:
    """The global random streams (dropout masks, the fast loader's per-batch jitter, user code).  The
    loaders need none: their order and augmentation seeds are functions of (seed, epoch).  Only types
    that a safe load accepts: numpy's key array becomes an int64 tensor."""
    state = np.random.get_state(legacy=False)
    numpy_state = dict(state, state=dict(state["state"], key=torch.from_numpy(state["state"]["key"].astype(np.int64))))
    return {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_random_states(states: dict) -> None:
    """Restore what ``random_states`` captured (also the numpy tuple of earlier state files)."""
    random.setstate(states["python"])
    numpy_state = states["numpy"]
    if isinstance(numpy_state, dict):
        key = np.asarray(numpy_state["state"]["key"], dtype=np.int64).astype(np.uint32)
        numpy_state = dict(numpy_state, state=dict(numpy_state["state"], key=key))
    np.random.set_state(numpy_state)
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_run_state(cache: str, epoch: int, criterion) -> dict:
    """Write ``<cache>/state_NNN.pt`` atomically; return the reference to store in the checkpoint."""
    full = criterion.state_dict_full()
    full["messages"] = compact_buffer(full["messages"])
    full["targets"] = compact_buffer(full["targets"])
    name = "state_{:03d}.pt".format(epoch)
    path = os.path.join(cache, name)
    atomic_torch_save({"criterion": full, "random": random_states(), "epoch": epoch}, path)
    return {"file": name, "sha1": file_digest(path), "bytes": os.path.getsize(path)}


def state_path(ref: dict, folder: str, checkpoint: str = "the checkpoint") -> str:
    """The path of the state file ``ref`` names, which must be a plain file name inside ``folder`` (the
    checkpoint's own folder; a symbolic link may not lead out of it): ``UntrustedCheckpointError``
    otherwise, whatever the other options say."""
    name = ref.get("file") if isinstance(ref, dict) else None
    plain = isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name \
        and "\0" not in name and not os.path.isabs(name)
    path = os.path.join(folder, name) if plain else ""
    if plain and os.path.lexists(path):
        plain = os.path.dirname(os.path.realpath(path)) == os.path.realpath(folder)
    if not plain:
        raise UntrustedCheckpointError(f"{checkpoint} names the state file {name!r}, which is not a file of its "
                                       f"own folder {folder}: refused")
    return path


def load_run_state(ref: dict, folder: str, criterion, ignore_bad: bool = False, trusted: bool = False,
                   checkpoint: str = "the checkpoint") -> bool:
    """Restore the state a checkpoint refers to.  A missing, truncated or corrupt file (its SHA-1 differs
    from the checkpoint's record) raises ``StateFileError`` naming it, or with ``ignore_bad`` logs a
    warning and leaves the buffer empty.  A file outside the checkpoint's folder, or one a safe load
    refuses (unless ``trusted``), is always an error.  Returns whether the state was restored."""
    path = state_path(ref, folder, checkpoint)
    try:
        if not os.path.isfile(path):
            raise StateFileError(f"criterion-state file {path} named by the checkpoint is missing")
        if file_digest(path) != ref["sha1"]:
            raise StateFileError(f"criterion-state file {path} is corrupt or truncated "
                                 f"({os.path.getsize(path)} bytes, expected {ref['bytes']}; SHA-1 differs)")
        state = load_checkpoint(path, trusted=trusted)
        crit = dict(state["criterion"])
        crit["messages"] = expand_buffer(crit["messages"])
        crit["targets"] = expand_buffer(crit["targets"])
    except UntrustedCheckpointError:
        raise
    except (CheckpointError, KeyError, TypeError) as err:
        if not ignore_bad:
            raise StateFileError(f"{err} (pass --ignore-bad-state to start with an empty buffer)") from None
        log.warning("WARNING: %s; --ignore-bad-state: the message buffer starts empty", err)
        return False
    criterion.load_state_dict_full(crit)
    set_random_states(state["random"])
    log.info("=> restored the message buffers (%d videos), balance counts and random states from %s",
             len(criterion.messages), path)
    return True


def remove_stale_states(cache: str, keep: set[str]) -> None:
    """Delete ``state_NNN.pt`` files besides ``keep``: call it only once ``model.pth.tar`` and
    ``model_best.pth.tar`` both name files of ``keep``."""
    for name in os.listdir(cache):
        if name.startswith("state_") and name.endswith(".pt") and name not in keep:
            os.remove(os.path.join(cache, name))
