"""Multi-process helpers for ``torchrun`` (env:// rendezvous; no hard-coded address).

A thin layer over ``torch.distributed``; with one process every function is the identity.
"""
from __future__ import annotations

import argparse
import logging
import os

import torch
import torch.distributed as dist
import torch.nn as nn

from utils.cli import UserError

log = logging.getLogger(__name__)


def init(opts: argparse.Namespace) -> None:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1); sets ``opts.rank``,
    ``opts.local_rank``, ``opts.world_size`` and, on CUDA, one device per local process.  ``--world-size N``
    that no launcher of N processes stands behind is a ``UserError`` (it was silently ignored)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    asked = getattr(opts, "world_size", 1)
    if asked > 1 and asked != world:  # the processes are the launcher's to start: the flag alone starts none
        raise UserError(
            f"--world-size {asked}: " + (f"this process was started by a launcher of {world} processes "
                                         f"(WORLD_SIZE={world}); leave --world-size out" if "WORLD_SIZE" in os.environ
                                         else f"nothing starts the other {asked - 1} processes; launch them with "
                                         f"torchrun --nproc_per_node {asked} main.py ... (or exp/...py), which "
                                         f"sets WORLD_SIZE (then --world-size can be left out)"))
    opts.rank, opts.local_rank, opts.world_size = 0, 0, max(world, 1)
    if world <= 1:
        return
    opts.rank, opts.local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if str(opts.device).startswith("cuda"):
        opts.device = f"cuda:{opts.local_rank}"
        torch.cuda.set_device(opts.local_rank)
        backend = opts.dist_backend
    else:
        backend = "gloo"  # nccl needs GPUs
    if not dist.is_initialized():
        dist.init_process_group(backend, init_method=opts.dist_url)


def sync_batchnorm(net: nn.Module, opts: argparse.Namespace) -> nn.Module:
    """``net`` with SyncBatchNorm layers when several CUDA processes train it (``--sync-bn``, the default).

    With per-process BatchNorm each process normalises over its own part of the batch, so the network's
    outputs, and with them every stored message, differ from the single-process run with the whole batch;
    SyncBatchNorm normalises over the global batch, as that run does.  It is CUDA-only: on the CPU (gloo)
    the statistics stay per process, and a warning says so."""
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    if opts.world_size <= 1 or not has_bn or not opts.sync_bn:
        return net
    if torch.device(opts.device).type != "cuda":
        log.warning("BatchNorm statistics stay per process: SyncBatchNorm needs CUDA, so this run's network "
                    "outputs differ from a single-process run's with the whole batch")
        return net
    return nn.SyncBatchNorm.convert_sync_batchnorm(net)


def shutdown() -> None:
    """Leave the process group once every rank is done: a rank that exits while another still has gloo
    connections open can abort it at interpreter exit ("terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def active() -> bool:
    """Whether this process is one of several."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when alone)."""
    return dist.get_rank() if active() else 0


def is_main(opts: argparse.Namespace) -> bool:
    """Rank 0 writes the logs, files and checkpoints."""
    return getattr(opts, "rank", 0) == 0


def all_objects(obj) -> list:
    """``obj`` of every rank, in rank order."""
    if not active():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj, src: int = 0):
    """Rank ``src``'s ``obj`` on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum over ranks of a short list of numbers (end-of-epoch meters)."""
    if not active():
        return values
    t = torch.tensor(values, dtype=torch.float64,
                     device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return t.tolist()


def gather_rows(ids: list[str], times: torch.Tensor, *tensors: torch.Tensor):
    """The global batch from every rank's rows, in the order of a single process's batch.

    Rank r holds global positions ``r, r+W, r+2W, ...`` of each batch (``EpochSampler``), so the rows are
    interleaved back: row k of rank r is global row ``k*W + r``.
    """
    world = dist.get_world_size()
    all_ids = all_objects(list(ids))
    sizes = {len(x) for x in all_ids}
    if len(sizes) != 1:  # EpochSampler pads every rank to the same count, so this is a caller's bug
        raise RuntimeError(f"ranks hold batches of different sizes {sorted(sizes)}: the interleaved global "
                           "batch needs equal ones (use datasets.samplers.EpochSampler)")
    out_ids = [all_ids[r][k] for k in range(len(ids)) for r in range(world)]
    out = []
    for t in (times.to(tensors[0].device if tensors else times.device),) + tensors:
        parts = [torch.empty_like(t) for _ in range(world)]
        dist.all_gather(parts, t.contiguous())
        out.append(torch.stack(parts, 1).flatten(0, 1))  # row k*W + r = row k of rank r
    return (out_ids, *out)
