"""The temporal message buffer of AsyncTF (SPEC section 4), vectorised on the device.

For every video id it keeps a FIFO of the last ``memory_size`` stored messages ``(t, m)``.  Storage is
one ring buffer per video in three dense tensors (``seq``, ``times``, ``values``: V x M [x C]); ``seq``
holds each item's insertion number for that video (-1 = empty), which gives the FIFO order without ever
moving data.  Reading and storing are a handful of batched tensor ops: no Python loop over samples or
over stored messages.  The only per-sample Python is the id -> row lookup in a dict.
"""
from __future__ import annotations

import torch


def decay_weights(kept: torch.Tensor, decay: float, dtype: torch.dtype) -> torch.Tensor:
    """``c_i = (1/decay)**i`` of the kept items (``kept``: 0/1, oldest first along the last axis; ``i``: the
    kept items before this one), 0 for the others."""
    return torch.pow(1.0 / decay, (kept.cumsum(-1) - kept).to(dtype)) * kept


def message_weights(c: torch.Tensor, d: torch.Tensor, sigma: float, temporal_weight: float) -> torch.Tensor:
    """``w * c_i k_i / sum_i c_i`` over the last axis, ``k_i = exp(-d_i**2 / (2 sigma**2))`` (``d``: the items'
    times less the reader's, floating point).  The denominator holds only the ``c_i``: that is the published
    behaviour (the kernel is not normalised), kept on purpose; their sum is 0 (nothing kept) or >= 1."""
    k = torch.exp(-d * d / kernel_denominator(sigma, d.dtype))
    return c * (k * temporal_weight) / c.sum(-1, keepdim=True).clamp(min=1)


def kernel_denominator(sigma: float, dtype: torch.dtype) -> float:
    """``2 sigma**2``, at least the dtype's smallest normal number: below it (sigma < ~1e-19 in float32)
    it would round to 0 and an item at ``t0`` would give 0/0 = NaN (masked, but NaN * 0 is NaN).  The
    times are integers, so for every other item ``exp(-d**2 / denominator)`` is 0 either way, as the
    original's float64 ``exp(-d**2 / (2 sigma**2))`` is; above it nothing changes."""
    try:
        denominator = 2.0 * sigma ** 2
    except OverflowError:  # sigma > ~1e154: every kernel value is 1
        denominator = float("inf")
    return max(denominator, torch.finfo(dtype).tiny)


class MessageBuffer:
    """FIFO of ``(time, vector)`` messages per video id, read with the AsyncTF temporal kernel."""

    def __init__(self, nclass: int, memory_size: int, memory_decay: float, sigma: float,
                 temporal_weight: float, dtype: torch.dtype = torch.float32):
        self.nclass, self.memory_size = nclass, memory_size
        self.memory_decay, self.sigma, self.temporal_weight = memory_decay, sigma, temporal_weight
        self.dtype = dtype
        self.rows: dict[str, int] = {}
        self.device = torch.device("cpu")
        self._allocate(0)

    def _allocate(self, capacity: int) -> None:
        # one extra row at the end: the trash that ``store`` writes dropped items to (no data-dependent
        # shapes, so no host-device synchronisation); no id ever maps to it
        M, C, dev, n = self.memory_size, self.nclass, self.device, capacity + 1
        self.seq = torch.full((n, M), -1, dtype=torch.long, device=dev)
        self.times = torch.zeros((n, M), dtype=torch.long, device=dev)
        self.values = torch.zeros((n, M, C), dtype=self.dtype, device=dev)
        self.count = torch.zeros(n, dtype=torch.long, device=dev)  # items ever stored per video

    def to(self, device: torch.device | str) -> "MessageBuffer":
        """Move the stored messages to ``device`` (a no-op when they are already there)."""
        device = torch.device(device)
        if device != self.device:
            self.device = device
            self.seq, self.times = self.seq.to(device), self.times.to(device)
            self.values, self.count = self.values.to(device), self.count.to(device)
        return self

    def __len__(self) -> int:
        return len(self.rows)

    def lookup(self, ids: list[str]) -> torch.Tensor:
        """Row of each id (registering unknown ids with an empty FIFO, which reads as zeros)."""
        rows = [self.rows.setdefault(i, len(self.rows)) for i in ids]
        if len(self.rows) > self.seq.shape[0] - 1:
            self._grow(len(self.rows))
        return torch.tensor(rows, dtype=torch.long).to(self.device, non_blocking=True)

    def _grow(self, needed: int) -> None:
        old = (self.seq, self.times, self.values, self.count)
        n = old[0].shape[0] - 1  # without the trash row
        self._allocate(max(needed, 2 * n, 64))
        self.seq[:n], self.times[:n], self.values[:n], self.count[:n] = (t[:n] for t in old)

    def read(self, rows: torch.Tensor, t0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The past (``t < t0``) and future (``t > t0``) messages of each sample, two B x C tensors."""
        return self.read_joint(rows, t0).chunk(2, 1)

    def read_joint(self, rows: torch.Tensor, t0: torch.Tensor) -> torch.Tensor:
        """``[past | future]`` message of each sample, B x 2C (one product for both directions).

        Kept items are numbered i = 0, 1, ... from oldest to newest;
        ``msg = w * sum_i c_i k_i m_i / sum_i c_i`` with ``c_i = (1/decay)**i`` and
        ``k_i = exp(-(t_i - t0)**2 / (2 sigma**2))``.  The denominator holds only the ``c_i``: that is the
        published behaviour (the kernel is not normalised), kept on purpose.
        """
        seq, times, values = (x.index_select(0, rows) for x in (self.seq, self.times, self.values))
        d = times - t0.to(self.device).long()[:, None]
        stored = seq >= 0
        keep = torch.stack([stored & (d < 0), stored & (d > 0)], 1)  # B x 2 x M: past, future
        if self.memory_decay == 1.0:
            c = keep.to(self.dtype)  # every c_i is 1 (the experiments' setting): no ranks needed
        else:
            # Walk each ring from its oldest slot: i = kept items before this one (an exclusive cumsum).
            M = self.memory_size
            oldest_first = ((self.count[rows, None] + torch.arange(M, device=self.device)) % M)[:, None]
            kept = keep.gather(2, oldest_first.expand(-1, 2, -1)).long()
            c_ring = decay_weights(kept, self.memory_decay, self.dtype)
            c = torch.zeros_like(c_ring).scatter_(2, oldest_first.expand(-1, 2, -1), c_ring)
        w = message_weights(c, d.to(self.dtype)[:, None], self.sigma, self.temporal_weight)
        return torch.bmm(w, values).view(-1, 2 * self.nclass)

    def store(self, rows: torch.Tensor, times: torch.Tensor, values: torch.Tensor, order: torch.Tensor) -> None:
        """Append ``values`` (B x C) at ``times`` in the given order, each FIFO trimmed to ``memory_size``."""
        M = self.memory_size
        rows, times = rows[order], times.to(self.device).long()[order]
        values = values.detach().to(self.device, self.dtype)[order]
        same = rows[:, None] == rows[None, :]
        # position of each item among this batch's items of the same video, in storing order
        occ = torch.tril(same, diagonal=-1).sum(1)
        total = same.sum(1)
        before = self.count[rows]
        seq = before + occ
        # only the last M items of a video survive; writing just those makes every (row, slot) unique
        r = torch.where(occ >= total - M, rows, self.seq.shape[0] - 1)
        slot = seq % M
        self.seq[r, slot] = seq
        self.times[r, slot] = times
        self.values[r, slot] = values
        self.count[rows] = before + total  # duplicates of a row all write the same value

    def export_rows(self, ids: list[str]) -> dict:
        """The FIFOs of ``ids`` (CPU tensors), to hand to other processes."""
        rows = self.lookup(ids)
        return {"ids": list(ids), "seq": self.seq[rows].cpu(), "times": self.times[rows].cpu(),
                "values": self.values[rows].cpu(), "count": self.count[rows].cpu()}

    def import_rows(self, part: dict) -> None:
        """Overwrite the FIFOs of ``part['ids']`` with those exported by ``export_rows``."""
        if not part["ids"]:
            return
        rows = self.lookup(part["ids"])
        self.seq[rows], self.times[rows] = part["seq"].to(self.device), part["times"].to(self.device)
        self.values[rows] = part["values"].to(self.device, self.dtype)
        self.count[rows] = part["count"].to(self.device)

    def state_dict(self) -> dict:
        """Everything needed to restore the buffer exactly (tensors on the CPU)."""
        n = len(self.rows)
        # clone: a saved slice would drag the whole over-allocated storage into the file
        return {"ids": list(self.rows), "seq": self.seq[:n].cpu().clone(), "times": self.times[:n].cpu().clone(),
                "values": self.values[:n].cpu().clone(), "count": self.count[:n].cpu().clone()}

    def load_state_dict(self, state: dict) -> None:
        """Restore a buffer saved by ``state_dict`` (onto the current device)."""
        self.rows = {vid: i for i, vid in enumerate(state["ids"])}
        n = len(self.rows)
        self._allocate(n)
        self.seq[:n] = state["seq"].to(self.device)
        self.times[:n] = state["times"].to(self.device)
        self.values[:n] = state["values"].to(self.device, self.dtype)
        self.count[:n] = state["count"].to(self.device)
