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
import torch.nn.functional as F

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
        self.generator = torch.Generator().manual_seed(opts.manual_seed)  # storing order
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))           # N
        self.register_buffer("positives", torch.zeros(C, dtype=torch.long))       # per-class count
        self.gather: Callable | None = None

    # -- pieces ---------------------------------------------------------------------------------
    def _global(self, ids: list[str], times: torch.Tensor, *values: torch.Tensor, local: bool = False):
        """The batch as every process must store it (identity unless distributed)."""
        if self.gather is None or local:
            return (ids, times) + values
        return self.gather(ids, times, *values)

    def _balance(self, qa: torch.Tensor, target: torch.Tensor, seen_target: torch.Tensor) -> torch.Tensor:
        """Forward ``qa`` unchanged; scale its gradient by ``(N/2)/count`` (count of the sample's label).

        ``seen_target`` is the batch counted (the global batch when distributed)."""
        self.seen, self.positives = self.seen.to(qa.device), self.positives.to(qa.device)
        self.seen += seen_target.shape[0]
        self.positives += (seen_target > 0.5).sum(0)
        pos = self.positives.to(qa.dtype)
        count = torch.where(target > 0.5, pos, self.seen.to(qa.dtype) - pos)
        w = (self.seen.to(qa.dtype) / 2) / count
        return qa.detach() + (qa - qa.detach()) * w

    # The head's aa is one C x C matrix expanded over the batch (stride 0): then x^T aa is a plain
    # matrix product, ~10x cheaper (forward and backward) than a batched one; a per-sample aa also works.
    @staticmethod
    def _left(x: torch.Tensor, aa: torch.Tensor) -> torch.Tensor:
        """``(x_b^T aa_b)_k = sum_j x_bj aa_b[j, k]``."""
        return x @ aa[0] if aa.stride(0) == 0 else torch.einsum("bj,bjk->bk", x, aa)

    @staticmethod
    def _right(aa: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(aa_b y_b)_k = sum_j aa_b[k, j] y_bj``."""
        return y @ aa[0].T if aa.stride(0) == 0 else torch.einsum("bkj,bj->bk", aa, y)

    def smooth(self, scores: torch.Tensor) -> torch.Tensor:
        """Row m becomes the mean of rows ``max(0, m-w) .. min(B-1, m+w)`` (a video in time order)."""
        w, B = self.window_smooth, scores.shape[0]
        if w <= 0:
            return scores
        csum = F.pad(scores.cumsum(0), (0, 0, 1, 0))
        m = torch.arange(B, device=scores.device)
        lo, hi = (m - w).clamp(min=0), (m + w).clamp(max=B - 1) + 1
        return (csum[hi] - csum[lo]) / (hi - lo).unsqueeze(1).to(scores.dtype)

    # -- forward --------------------------------------------------------------------------------
    def _pass(self, a: torch.Tensor, aa: torch.Tensor, target: torch.Tensor, ids: list[str],
              times: torch.Tensor, generator: torch.Generator, local: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor]:
        gids, gtimes, gvalues, gtarget = self._global(ids, times, torch.sigmoid(a).detach(), target.detach(),
                                                      local=local)
        self.messages.to(a.device)
        rows = self.messages.lookup(ids)
        msg, fmsg = self.messages.read(rows, times)
        # q_k = a_k + sum_j aa[j,k] msg_j + sum_j aa[k,j] fmsg_j
        q = a + self._left(msg, aa) + self._right(aa, fmsg)
        qa = torch.sigmoid(q)
        if self.training and self.balanceloss:
            qa = self._balance(qa, target, gtarget)
        loss = F.binary_cross_entropy(qa, target) + \
            self.originalloss_weight * F.binary_cross_entropy(torch.sigmoid(a), target)

        grows = rows if gids is ids else self.messages.lookup(gids)
        order = torch.randperm(len(gids), generator=generator)
        self.messages.store(grows, gtimes, gvalues, order)
        if not self.training:
            return qa, loss

        pastloss = futureloss = torch.zeros((), device=a.device)
        if self.adjustment:
            self.targets.to(a.device)
            self.targets.store(self.targets.lookup(gids), gtimes, gtarget, order)
            trows = self.targets.lookup(ids)
            gmsg, gfmsg = self.targets.read(trows, times)
            scale = 0.5 * self.temporalloss_weight / self.nclass ** 2
            pastloss = scale * ((self._left(gmsg - msg, aa) * target).sum(1) ** 2).mean()
            futureloss = scale * ((self._left(target, aa) * (gfmsg - fmsg)).sum(1) ** 2).mean()
        return qa, (loss + pastloss + futureloss) / 3

    def forward(self, a: torch.Tensor, aa: torch.Tensor, target: torch.Tensor, meta: dict,
                synchronous: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (probabilities, B x C) and the loss of one batch; SPEC section 4."""
        # the field is computed in fp32 whatever the network ran in, so scores match the equations
        a, aa, target = a.float(), aa.float(), target.float()
        ids = list(meta["id"])
        times = torch.as_tensor(meta["time"]).long()
        if not synchronous:
            return self._pass(a, aa, target, ids, times, self.generator)
        # One video, scored alone: its storing orders come from a stream of its own (run seed, video id),
        # so a video's scores do not depend on which videos were scored before it or on which process.
        video_stream = torch.Generator().manual_seed(self.seed * 1000003 + zlib.crc32(ids[0].encode()))
        for _ in range(SYNCHRONOUS_PASSES):
            qa, loss = self._pass(a, aa, target, ids, times, video_stream, local=True)
        return self.smooth(qa), loss

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
