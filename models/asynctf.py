"""The AsyncTF head and criterion (SPEC sections 3 and 4).

The head gives the unary term ``a = mA(x)`` and a low-rank class-to-class compatibility ``aa = U V``
shared by every sample.  The criterion turns them into the temporal-field marginals
``q = a + msg^T aa + aa fmsg`` using messages (earlier per-frame predictions of the same video) read
from a buffer that persists for the whole run: this is the "asynchronous" part of the paper.
"""
from __future__ import annotations

import argparse
import zlib
from typing import Callable

import torch
import torch.nn as nn

from models.field import field_loss, window_mean
from models.message_buffer import MessageBuffer

SYNCHRONOUS_PASSES = 1 + 5  # val_video: one pass to fill the buffer, five to let messages settle


class AsyncTFBase(nn.Module):
    """Replaces a network's last linear layer: returns ``(a, aa)``, B x C and B x C x C.

    ``mAAa`` / ``mAAb`` are bias-free ``Linear(1, C*H)`` layers applied to the constant 1 (so their
    weights *are* U and V); the names and shapes match the released checkpoint.
    """

    def __init__(self, dim: int, nclass: int, nhidden: int):
        super().__init__()
        self.nclass, self.nhidden = nclass, nhidden
        self.mA = nn.Linear(dim, nclass)
        self.mAAa = nn.Linear(1, nclass * nhidden, bias=False)
        self.mAAb = nn.Linear(1, nhidden * nclass, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.mA(x)
        one = x.new_ones(1, 1)
        u = self.mAAa(one).view(self.nclass, self.nhidden)
        v = self.mAAb(one).view(self.nhidden, self.nclass)
        aa = (u @ v).unsqueeze(0).expand(x.shape[0], -1, -1)
        return a, aa


class AsyncTFCriterion(nn.Module):
    """The AsyncTF loss with its message buffers; one instance lives for the whole run.

    ``criterion(a, aa, target, meta, synchronous=False) -> (scores, loss)``;
    ``meta = {'id': [str], 'time': tensor or list of frame numbers}``.
    ``.train()`` enables the training-only terms (balance scaling, adjustment losses).
    ``gather`` (set for distributed runs) maps the local ``(values, targets, rows...)`` of a batch to the
    global batch before storing, so every process keeps the buffer of a single-process run.
    """

    def __init__(self, opts: argparse.Namespace):
        super().__init__()
        C = opts.nclass
        self.nclass = C
        self.temporalloss_weight = opts.temporalloss_weight
        self.originalloss_weight = opts.originalloss_weight
        self.adjustment, self.balanceloss = bool(opts.adjustment), bool(opts.balanceloss)
        self.window_smooth = opts.window_smooth
        buf = (C, opts.memory_size, opts.memory_decay, opts.sigma, opts.temporal_weight)
        self.messages = MessageBuffer(*buf)  # sigmoid(a) of every stored sample
        self.targets = MessageBuffer(*buf)   # ground truth of training samples (adjustment)
        self.seed = opts.manual_seed
        # storing orders: the messages', then (training with adjustment) the targets', from one stream as the
        # original's random(); its state is part of the exact-resume state
        self.generator = torch.Generator().manual_seed(opts.manual_seed)
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))           # N
        self.register_buffer("positives", torch.zeros(C, dtype=torch.long))       # per-class count
        self.gather: Callable | None = None
        self._undo: list | None = None  # what the batch since begin_batch() changed (see take_back)

    # -- pieces ---------------------------------------------------------------------------------
    def _global(self, ids: list[str], times: torch.Tensor, *values: torch.Tensor, local: bool = False):
        """The batch as every process must store it (identity unless distributed)."""
        if self.gather is None or local:
            return (ids, times) + values
        return self.gather(ids, times, *values)

    def _balance(self, target: torch.Tensor, seen_target: torch.Tensor) -> torch.Tensor:
        """The gradient scale of every score: ``floor(N/2)/count``, count of the sample's label for its class
        (the original's BalanceLabels: ``self.total / 2`` of an int total, Python 2 integer division).

        ``seen_target`` is the batch counted (the global batch when distributed)."""
        self.seen, self.positives = self.seen.to(target.device), self.positives.to(target.device)
        self.seen += seen_target.shape[0]
        self.positives += (seen_target > 0.5).sum(0)
        pos = self.positives.to(target.dtype)
        count = torch.where(target > 0.5, pos, self.seen.to(target.dtype) - pos)
        return (self.seen // 2).to(target.dtype) / count

    # The head's aa is one C x C matrix expanded over the batch (stride 0).  Using that matrix directly
    # makes x^T aa a plain matrix product, ~10x cheaper than a batched one, and, above all, keeps the
    # backward out of B x C x C: indexing aa[0] would allocate and sum a zero-filled B x C x C gradient
    # (5 MB at B=50, C=157) for every use.  A per-sample aa (any other tensor) takes the batched path.
    @staticmethod
    def shared_matrix(aa: torch.Tensor) -> torch.Tensor:
        """The C x C matrix itself when ``aa`` is one matrix broadcast over the batch, else ``aa``."""
        if aa.dim() != 3 or aa.shape[0] == 0 or aa.stride(0) != 0:
            return aa
        base = aa._base  # the tensor aa is a view of: the matrix the head expanded
        if (base is not None and base.shape == aa.shape[1:] and base.stride() == aa.stride()[1:]
                and base.storage_offset() == aa.storage_offset() and base.dtype == aa.dtype):
            return base  # every aa[b] is this very matrix: gradients reach it without the expand
        return aa[0]  # exact too (e.g. under torch.compile, whose outputs lose their view base)

    def smooth(self, scores: torch.Tensor) -> torch.Tensor:
        """Row m becomes the mean of rows ``max(0, m-w) .. min(B-1, m+w)`` (a video in time order)."""
        w = self.window_smooth
        return window_mean(scores, w, w) if w > 0 else scores

    # -- forward --------------------------------------------------------------------------------
    def _pass(self, a: torch.Tensor, aa: torch.Tensor, target: torch.Tensor, ids: list[str],
              times: torch.Tensor, generator: torch.Generator, local: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor]:
        sa = torch.sigmoid(a.detach())  # stored as the message; the field's original term reuses it
        gids, gtimes, gvalues, gtarget = self._global(ids, times, sa, target, local=local)
        self.messages.to(a.device)
        rows = self.messages.lookup(ids)
        msg2 = self.messages.read_joint(rows, times)  # [msg | fmsg], read before storing
        order = torch.randperm(len(gids), generator=generator)
        self._remember(self.messages, gids)
        self.messages.store(rows if gids is ids else self.messages.lookup(gids), gtimes, gvalues, order)
        g2 = None
        if self.training and self.adjustment:
            self.targets.to(a.device)
            grows = self.targets.lookup(gids)
            # an order of its own, as the original shuffled each buffer's rows separately (two calls of
            # mset, each sorting by random()): the two FIFOs can keep different items of a video
            self._remember(self.targets, gids)
            self.targets.store(grows, gtimes, gtarget, torch.randperm(len(gids), generator=generator))
            g2 = self.targets.read_joint(grows if gids is ids else self.targets.lookup(ids), times)  # after storing
        scale = self._balance(target, gtarget) if self.training and self.balanceloss else None
        return field_loss(a, aa, msg2, target, g2, scale, self.originalloss_weight,
                          0.5 * self.temporalloss_weight / self.nclass ** 2, 3.0 if self.training else 1.0, sa)

    def forward(self, a: torch.Tensor, aa: torch.Tensor, target: torch.Tensor, meta: dict,
                synchronous: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (probabilities, B x C) and the loss of one batch; SPEC section 4."""
        # the field is computed in fp32 whatever the network ran in, so scores match the equations
        a, aa, target = a.float(), self.shared_matrix(aa).float(), target.float()
        ids = list(meta["id"])
        times = torch.as_tensor(meta["time"]).long().to(a.device, non_blocking=True)
        if not synchronous:
            return self._pass(a, aa, target, ids, times, self.generator)
        # One video, scored alone: its storing orders come from a stream of its own (run seed, video id),
        # so a video's scores do not depend on which videos were scored before it or on which process.
        video_stream = torch.Generator().manual_seed(self.seed * 1000003 + zlib.crc32(ids[0].encode()))
        for _ in range(SYNCHRONOUS_PASSES):
            qa, loss = self._pass(a, aa, target, ids, times, video_stream, local=True)
        return self.smooth(qa), loss

    # -- taking a batch back (train's --max-nonfinite skips a batch whose loss is not finite) ----------
    def begin_batch(self) -> None:
        """Start recording what the next forward changes, so that ``take_back()`` can undo it."""
        self._undo = [(self.seen.clone(), self.positives.clone(), self.generator.get_state())]

    def _remember(self, buffer, ids: list[str]) -> None:
        if self._undo is not None:  # the FIFOs this store overwrites, as they are now
            self._undo.append((buffer, buffer.export_rows(ids)))

    def take_back(self) -> None:
        """Undo the forward since ``begin_batch()``: its stored messages and targets, its balance counts
        and its storing orders, as if the batch had never been seen (its ids stay known, reading zeros
        where they had nothing)."""
        (seen, positives, generator), *stores = self._undo
        for buffer, rows in reversed(stores):
            buffer.import_rows(rows)
        self.seen.copy_(seen)
        self.positives.copy_(positives)
        self.generator.set_state(generator)
        self._undo = None

    # -- state (exact resume) -------------------------------------------------------------------
    def state_dict_full(self) -> dict:
        """Buffers, balance counts and the storing-order random stream."""
        return {"messages": self.messages.state_dict(), "targets": self.targets.state_dict(),
                "seen": self.seen.cpu(), "positives": self.positives.cpu(),
                "generator": self.generator.get_state()}

    def load_state_dict_full(self, state: dict) -> None:
        """Restore what ``state_dict_full`` saved."""
        self.messages.load_state_dict(state["messages"])
        self.targets.load_state_dict(state["targets"])
        self.seen.copy_(state["seen"])
        self.positives.copy_(state["positives"])
        self.generator.set_state(state["generator"])
