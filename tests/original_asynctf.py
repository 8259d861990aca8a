"""The original's AsyncTF criterion, rewritten from its behaviour as a slow, independent reference for
tests/test_asynctf_original.py (not a port of its code: per-video Python lists and explicit sums, where our
criterion uses a vectorised ring buffer).

What the original's ``AsyncTFCriterion`` and ``BalanceLabels`` (gsig/temporal-fields,
``pytorch/models/layers/``) compute for a batch of frames ``b`` (video ``v_b``, time ``t_b``), unary scores
``a`` (B x C) and pairwise matrices ``aa`` (B x C x C):

1. **Messages.** Each video keeps a FIFO of its last ``memory_size`` stored ``(time, vector)`` items, in
   storing order.  The past message of frame ``b`` is taken over the stored items of ``v_b`` with a time
   ``< t_b`` (the future one: ``> t_b``), the ``i``-th of them in storing order (i = 0, 1, ...) weighted by
   ``(1/decay)^i``, its vector also by the kernel ``exp(-(t - t_b)^2 / (2 sigma^2))``:
   ``msg = w_time * sum_i (1/decay)^i k_i y_i / sum_i (1/decay)^i`` (the kernel is not in the
   denominator), zero without such an item.  Messages are read before the batch is stored.
2. **The field.** ``q[b, c] = sigmoid(a[b, c] + sum_i aa[b, i, c] msg[b, i] + sum_j aa[b, c, j] fmsg[b, j])``.
3. **Balance** (training, ``--balanceloss``): counts of positives and negatives per class, over every
   training batch so far including this one; ``q`` passes unchanged forward, and its gradient is
   multiplied by ``floor(total / 2) / count`` (the count of the target's own value in that class).
4. **Loss.** PyTorch 0.4's mean BCE of ``q`` plus ``originalloss_weight`` times that of ``sigmoid(a)``.
   Then ``sigmoid(a)`` of each frame is stored (the batch in a shuffled order).  In training with
   ``--adjustment``, the targets are stored too (their own store, another shuffle), ground-truth messages
   are read from that store *after* this storing, and two terms are added:
   ``0.5 * mean_b((gmsg - msg)^T aa target)^2 * w / C^2`` and ``0.5 * mean_b(target^T aa (gfmsg - fmsg))^2
   * w / C^2``; in training the sum of the three is divided by 3 (the two terms are zero without
   adjustment).
5. **Synchronous** (val_video): the whole call is made 6 times in a row on the same batch, each storing
   its messages; the last one's scores are smoothed over ``window_smooth`` frames on each side (the mean
   of the rows within reach), and its loss returned.
6. Class-index targets (charadesrgbsubset) become one-hot rows first.

The storing order: the original shuffled each batch with Python's ``random()``; here each shuffle is
``torch.randperm`` of ``self.generator``, so that the test can feed it our criterion's draws.  The BCE is
PyTorch 0.4's (its ``1e-12`` inside the logs and its own backward), as the original ran on it.
"""
from __future__ import annotations

import math

import torch

EPS = 1e-12     # PyTorch 0.4's BCE: log(p + 1e-12), log(1 - p + 1e-12)
PASSES = 6      # synchronous scoring: calls made on a val_video batch


class _Bce04(torch.autograd.Function):
    """Mean binary cross-entropy as PyTorch 0.4 computed it, with its own gradient."""

    @staticmethod
    def forward(ctx, p, t):
        ctx.save_for_backward(p, t)
        terms = t * torch.log(p + EPS) + (1.0 - t) * torch.log(1.0 - p + EPS)
        return -terms.sum() / p.numel()

    @staticmethod
    def backward(ctx, grad):
        p, t = ctx.saved_tensors
        return (p - t) / ((p + EPS) * (1.0 - p + EPS)) * (grad / p.numel()), None


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; the gradient multiplied by fixed weights."""

    @staticmethod
    def forward(ctx, x, weights):
        ctx.weights = weights
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.weights, None


class Balance:
    """Per-class counts of positive and negative targets over the training batches seen (step 3)."""

    def __init__(self):
        self.positives: dict[int, float] = {}
        self.negatives: dict[int, float] = {}
        self.total = 0

    def __call__(self, q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        rows, classes = target.shape
        for c in range(classes):
            pos = float(target[:, c].sum())
            self.positives[c] = self.positives.get(c, 0) + pos
            self.negatives[c] = self.negatives.get(c, 0) + rows - pos
        self.total += rows
        counts = torch.tensor([[self.positives[c] if target[r, c] != 0 else self.negatives[c]
                                for c in range(classes)] for r in range(rows)])
        return _ScaleGrad.apply(q, (self.total // 2) / counts)


def message(fifo: list, t0: int, later: bool, sigma: float, decay: float, size: int) -> torch.Tensor:
    """Step 1 for one frame: the decayed, kernel-weighted average of the items on one side of ``t0``."""
    chosen = [(t, y) for t, y in fifo if (t > t0 if later else t < t0)]
    if not chosen:
        return torch.zeros(size)
    num, den = torch.zeros(size), 0.0
    for i, (t, y) in enumerate(chosen):
        rank = (1.0 / decay) ** i
        num = num + y * (rank * math.exp(-float(t - t0) ** 2 / (2 * sigma ** 2)))
        den += rank
    return num / den


def smooth(rows: torch.Tensor, reach: int) -> torch.Tensor:
    """Each row replaced by the mean of the rows at most ``reach`` away (step 5)."""
    n = rows.shape[0]
    return torch.stack([rows[max(0, m - reach):min(n, m + reach + 1)].mean(0) for m in range(n)])


def quad(u: torch.Tensor, aa: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``u_b^T aa_b w_b`` for each frame ``b``."""
    return torch.einsum("bi,bij,bj->b", u, aa, w)


class AsyncTFCriterion(torch.nn.Module):
    """Steps 1-6 above; ``generator`` gives the storing orders."""

    def __init__(self, args, generator: torch.Generator):
        super().__init__()
        self.memory, self.w_time, self.decay, self.sigma = args.memory_size, args.temporal_weight, \
            args.memory_decay, args.sigma
        self.w_temporal, self.w_original = args.temporalloss_weight, args.originalloss_weight
        self.adjustment, self.balanceloss, self.reach = args.adjustment, args.balanceloss, args.window_smooth
        self.generator = generator
        self.storage: dict[str, list] = {}      # video -> FIFO of (time, sigmoid(a) row)
        self.storage_gt: dict[str, list] = {}   # video -> FIFO of (time, target row)
        self.BalanceLabels = Balance()

    def _read(self, store: dict, keys: list, later: bool, size: int) -> torch.Tensor:
        rows = [message(store.get(v, []), t, later, self.sigma, self.decay, size) for v, t in keys]
        return torch.stack(rows) * self.w_time

    def _store(self, store: dict, rows: torch.Tensor, keys: list) -> None:
        for j in torch.randperm(len(keys), generator=self.generator).tolist():
            v, t = keys[j]
            fifo = store.setdefault(v, [])
            fifo.append((t, rows[j].detach().clone()))
            del fifo[:-self.memory]

    def _pass(self, a, aa, target, keys):
        size = a.shape[1]
        past, future = self._read(self.storage, keys, False, size), self._read(self.storage, keys, True, size)
        q = torch.sigmoid(a + torch.einsum("bic,bi->bc", aa, past) + torch.einsum("bcj,bj->bc", aa, future))
        if self.balanceloss and self.training:
            q = self.BalanceLabels(q, target)
        loss = _Bce04.apply(q, target) + self.w_original * _Bce04.apply(torch.sigmoid(a), target)
        self._store(self.storage, torch.sigmoid(a), keys)
        if not self.training:
            return q, loss
        extra = 0.0
        if self.adjustment:
            self._store(self.storage_gt, target, keys)
            g_past = self._read(self.storage_gt, keys, False, size)
            g_future = self._read(self.storage_gt, keys, True, size)
            scale = 0.5 * self.w_temporal / size ** 2
            extra = scale * (quad(g_past - past, aa, target).pow(2).mean()
                             + quad(target, aa, g_future - future).pow(2).mean())
        return q, (loss + extra) / 3

    def forward(self, a, aa, target, id_time, synchronous=False):
        if target.dim() == 1:
            target = torch.nn.functional.one_hot(target.long(), a.shape[1])
        target = target.float()
        keys = list(zip(id_time["id"], id_time["time"]))
        for _ in range(PASSES if synchronous else 1):
            q, loss = self._pass(a, aa, target, keys)
        return (smooth(q, self.reach) if synchronous else q.clone()), loss
