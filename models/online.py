"""Causal (online) AsyncTF scoring: a frame's scores use the frames scored before it, never later ones.

The offline synchronous mode (``AsyncTFCriterion(..., synchronous=True)``, SPEC section 4) runs six passes
over all of a video's frames, so every frame reads messages of frames on both sides, and smooths over a
centred window: a frame's score changes when a later frame changes.  ``CausalField`` scores the frames of
one video in time order, as a stream would deliver them.  For the scored frames ``t_1 <= t_2 <= ...``, the
pass of frame ``t_k`` is exactly one non-synchronous criterion pass of a batch of one on a buffer that holds
the frames scored before it:

1. read its messages from the video's FIFO, which holds ``sigmoid(a)`` of the last ``memory_size`` frames
   scored before it (``t_{k-M} .. t_{k-1}``, stored in time order): the past message ``msg`` by the
   buffer's kernel and decay weights (SPEC 4; an item at the same time is neither past nor future, as
   always); the future message is zero, since nothing later has been scored;
2. ``q = a_k + msg^T aa``, ``qa_k = sigmoid(q)`` (``models.field.field_loss``, as the criterion);
3. store ``sigmoid(a_k)`` at ``t_k`` (the FIFO drops its oldest item beyond ``memory_size``);
4. one-sided smoothing: the score of frame ``k`` is the mean of ``qa`` over frames ``max(1, k-w) .. k``
   (``w = window_smooth``; the offline mode's window ``k-w .. k+w`` cut to the frames already scored).

As stored messages are ``sigmoid(a)``, which no message changes, a whole chunk of frames is scored at once:
the messages of all its rows are one product with a causal mask (row ``k`` sees the ``memory_size`` items
stored before it).  Any split of a video into chunks gives the same scores (up to float rounding).
"""
from __future__ import annotations

import argparse

import torch

from models.field import field_loss, window_mean
from models.message_buffer import decay_weights, message_weights


class CausalField:
    """Online scoring of one video: ``step(a, aa, times)`` per chunk of frames in time order."""

    def __init__(self, nclass: int, memory_size: int, memory_decay: float, sigma: float, temporal_weight: float,
                 window_smooth: int):
        self.nclass, self.memory_size, self.memory_decay = nclass, memory_size, memory_decay
        self.sigma, self.temporal_weight, self.window_smooth = sigma, temporal_weight, window_smooth
        self.times = torch.zeros(0, dtype=torch.long)  # the FIFO: the last memory_size stored items, oldest first
        self.values = torch.zeros(0, nclass)
        self.recent = torch.zeros(0, nclass)           # the last window_smooth unsmoothed scores
        self.scored = 0

    @classmethod
    def from_opts(cls, opts: argparse.Namespace) -> "CausalField":
        """The field of a run's options (``nclass``, ``memory_size``, ``memory_decay``, ``sigma``,
        ``temporal_weight``, ``window_smooth``)."""
        return cls(opts.nclass, opts.memory_size, opts.memory_decay, opts.sigma, opts.temporal_weight,
                   opts.window_smooth)

    def past_messages(self, times: torch.Tensor, stored_t: torch.Tensor, stored_v: torch.Tensor) -> torch.Tensor:
        """Past message of each of the ``K`` new rows (times ``times``), whose items are ``stored_*``: the
        ``h`` items in the FIFO followed by the ``K`` new rows themselves (storing order).  Row ``k`` reads
        items ``h+k-M .. h+k-1``, those strictly before its time, as ``MessageBuffer.read_joint`` does."""
        K, total = len(times), len(stored_t)
        h = total - K
        p = torch.arange(total, device=times.device)
        upto = h + torch.arange(K, device=times.device)[:, None]  # items stored before row k: p < h + k
        d = (stored_t[None, :] - times[:, None]).to(stored_v.dtype)
        keep = (p[None, :] < upto) & (p[None, :] >= upto - self.memory_size) & (d < 0)
        c = keep.to(stored_v.dtype) if self.memory_decay == 1.0 else \
            decay_weights(keep.long(), self.memory_decay, stored_v.dtype)   # items oldest first
        return message_weights(c, d, self.sigma, self.temporal_weight) @ stored_v

    def step(self, a: torch.Tensor, aa: torch.Tensor, times) -> tuple[torch.Tensor, torch.Tensor]:
        """Score the next ``K`` frames (``a``: K x C, ``aa``: C x C or K x C x C, ``times``: their frame
        numbers, not earlier than those scored before): ``(qa, smoothed)``, both K x C probabilities."""
        a = a.detach().float()
        aa = aa.detach().float()
        if aa.dim() == 3 and aa.shape[0] and aa.stride(0) == 0:
            aa = aa[0]  # the head's one matrix, expanded over the batch
        times = torch.as_tensor(times, dtype=torch.long).to(a.device).reshape(-1)
        if len(times) != len(a):
            raise ValueError(f"{len(a)} rows of scores but {len(times)} times")
        if len(times) == 0:
            return a.new_zeros(0, self.nclass), a.new_zeros(0, self.nclass)
        last = self.times[-1:].to(a.device)
        if bool((torch.diff(torch.cat([last, times])) < 0).any()):
            raise ValueError("online frames must come in time order: a frame earlier than one already scored "
                             f"(times {times.tolist()} after {self.times[-1:].tolist()})")
        self.times, self.values, self.recent = (x.to(a.device) for x in (self.times, self.values, self.recent))
        sa = torch.sigmoid(a)
        stored_t, stored_v = torch.cat([self.times, times]), torch.cat([self.values, sa])
        msg = self.past_messages(times, stored_t, stored_v)
        msg2 = torch.cat([msg, torch.zeros_like(msg)], 1)  # nothing later is stored: the future message is 0
        qa, _ = field_loss(a, aa, msg2, torch.zeros_like(a), sa=sa)
        self.times, self.values = stored_t[-self.memory_size:], stored_v[-self.memory_size:]
        smoothed = causal_smooth(qa, self.window_smooth, self.recent)
        w = self.window_smooth
        self.recent = torch.cat([self.recent, qa])[-w:] if w > 0 else self.recent
        self.scored += len(a)
        return qa, smoothed


def causal_smooth(scores: torch.Tensor, window: int, before: torch.Tensor | None = None) -> torch.Tensor:
    """Row ``m`` becomes the mean of rows ``m-window .. m`` (as many as there are), where ``before`` holds
    the rows that came before ``scores`` (the offline smoothing's window, cut at the present)."""
    return window_mean(scores, window, 0, before) if window > 0 else scores
