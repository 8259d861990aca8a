"""A port of the original's criterion to today's PyTorch, as a reference for tests/test_asynctf_original.py.

Source: gsig/temporal-fields, ``pytorch/models/layers/AsyncTFCriterion.py`` (cited as ``C:<line>``) and
``pytorch/models/layers/BalanceLabels.py`` (``B:<line>``), commit 924e66f.  Each function keeps the
original's structure, loop for loop: Python dicts of lists of ``(time, message)``, messages averaged by
the ``avg`` generator walk, the balance weights filled element by element, the synchronous passes by
recursion.  What changes, and why:

- today's PyTorch: no ``Variable``, no ``.cuda()`` (CPU tensors), ``.item()`` for ``.data[0]``, Python 3
  division written ``//`` where the original relied on Python 2's integer ``/`` (``B:48``);
- the storing order: the original sorted each batch by ``random()`` (``C:127``); this port takes the
  permutation from ``self.generator`` (``torch.randperm``) so that it can be fed the order our criterion
  draws: one permutation for the messages, then (training with ``adjustment``) one for the targets;
- ``nn.BCELoss`` is PyTorch 0.4's (``bce04``: ``log(p + 1e-12)`` and its own backward), not today's;
- the debug prints (``C:49``, ``C:158``, ``C:182``, ``C:192``) and ``VerboseGradients`` (``C:163``, an
  identity that printed gradient norms) are left out: they change no number.
"""
from __future__ import annotations

import math

import torch

EPS = 1e-12  # PyTorch 0.4, THNN BCECriterion.c: #define EPS 1e-12


class BCE04(torch.autograd.Function):
    """``nn.BCELoss()`` (mean) of PyTorch 0.4: forward ``-(t log(p+eps) + (1-t) log(1-p+eps))``, backward
    ``-(t - p) / ((1 - p + eps) (p + eps)) / N`` (THNN BCECriterion_updateGradInput, sizeAverage)."""

    @staticmethod
    def forward(ctx, p, t):
        ctx.save_for_backward(p, t)
        return -(torch.log(p + EPS) * t + torch.log(1. - p + EPS) * (1. - t)).sum() / p.numel()

    @staticmethod
    def backward(ctx, g):
        p, t = ctx.saved_tensors
        return -(t - p) / ((1. - p + EPS) * (p + EPS)) * (g / p.numel()), None


def bce04(p, t):
    return BCE04.apply(p, t)


# ---------------------------------------------------------------------------------- AsyncTFCriterion.py
def axb(a, x, b):  # C:29-33: a^T X b for batched vectors a, b and batched matrix X
    xb = torch.bmm(x, b[:, :, None])
    return (a * xb.squeeze()).sum(1)


def avg(iterator, weight=1.):  # C:36-45: compounding weight; the denominator holds only the weights
    item, w = next(iterator)
    total = item.clone() * w
    n = 1.
    for i, (item, w) in enumerate(iterator):
        w1 = 1. * weight ** (i + 1)
        total += item * w1 * w
        n += w1
    return total / n


def winsmooth(mat, kernelsize=1):  # C:48-57
    n = mat.shape[0]
    out = mat.clone()
    for m in range(n):
        a = max(0, m - kernelsize)
        b = min(n - 1, m + kernelsize)
        out[m, :] = mat[a:b + 1, :].mean(0)
    return out


def gtmat(sizes, target):  # C:60-72: a vector of class indices -> one-hot rows
    out = torch.zeros(*sizes)
    for i, t in enumerate(target):
        out[i, int(t)] = 1
    return out


class MessagePassing:  # C:90-140
    def __init__(self, maxsize, w_time, decay, sigma, generator):
        self.maxsize = maxsize
        self.w_time = w_time
        self.decay = decay
        self.sigma = sigma
        self.storage = {}
        self.storage_gt = {}
        self.nc = None
        self.generator = generator  # replaces random() of C:127 (see the module docstring)

    def mget(self, idtime, size, storage, cond=lambda t, t0: True, kernel=lambda t, t0: 1):  # C:103-112
        def meta(ids, t0):
            try:
                return avg(((y, kernel(t, t0)) for t, y in storage[ids] if cond(t, t0)), 1. / self.decay)
            except (StopIteration, KeyError):
                return torch.zeros(size)
        out = [meta(ids, time) for ids, time in idtime]
        return torch.stack(out, 0)

    def get_msg(self, idtime, time='past', storage=None):  # C:114-118
        storage = self.storage if storage is None else storage
        cond = (lambda t, t0: t < t0) if time == 'past' else (lambda t, t0: t > t0)
        kernel = lambda t, t0: math.exp(-float(t - t0) ** 2 / (2 * self.sigma ** 2))  # noqa: E731
        return self.mget(idtime, self.nc, storage, cond, kernel) * self.w_time

    def get_gt_msg(self, idtime, time='past'):  # C:120-121
        return self.get_msg(idtime, time, self.storage_gt)

    def mset(self, msg, idtime, storage):  # C:123-133: a FIFO of maxsize per id, in storing order
        pairs = list(zip(msg, idtime))
        for j in torch.randperm(len(pairs), generator=self.generator).tolist():  # C:127's shuffle
            m, (ids, time) = pairs[j]
            if ids not in storage:
                storage[ids] = []
            data = m.detach().clone()  # C:130: m.data.cpu()
            storage[ids].append((time, data))
            if len(storage[ids]) > self.maxsize:
                del storage[ids][0]

    def set_msg(self, qa, idtime):  # C:135-136
        self.mset(qa, idtime, self.storage)

    def set_gt_msg(self, qa, target, idtime):  # C:138-140
        self.mset(target.detach(), idtime, self.storage_gt)


class AsyncTFCriterion(torch.nn.Module, MessagePassing):  # C:143-202
    def __init__(self, args, generator):
        MessagePassing.__init__(self, args.memory_size, args.temporal_weight, args.memory_decay, args.sigma,
                                generator)
        torch.nn.Module.__init__(self)
        self.msg_n = 5
        self.w_tloss = args.temporalloss_weight
        self.orig_loss = args.originalloss_weight
        self.adjustment = args.adjustment
        self.balanceloss = args.balanceloss
        self.BalanceLabels = BalanceLabels()
        self.winsmooth = args.window_smooth

    def forward(self, a, aa, target, id_time, n=1, synchronous=False):  # C:156-202
        if target.dim() == 1:
            target = gtmat(a.shape, target.long())
        target = target.float()
        idtime = list(zip(id_time['id'], id_time['time']))  # Python 2's zip is a list: read more than once
        self.nc = a.shape[1]
        msg = self.get_msg(idtime, 'past')
        fmsg = self.get_msg(idtime, 'future')
        qa = a.clone()
        qa += (aa * msg[:, :, None]).sum(1)
        qa += (aa * fmsg[:, None, :]).sum(2)
        qa = torch.sigmoid(qa)
        if self.balanceloss and self.training:
            qa = self.BalanceLabels(qa, target)
        loss = bce04(qa, target)
        loss += bce04(torch.sigmoid(a), target) * self.orig_loss
        self.set_msg(torch.sigmoid(a), idtime)

        if self.training:
            if self.adjustment:
                self.set_gt_msg(qa, target, idtime)
                gt_msg = self.get_gt_msg(idtime, time='past')
                gt_fmsg = self.get_gt_msg(idtime, time='future')
                pastloss = .5 * axb(gt_msg - msg, aa, target).pow(2).mean() * self.w_tloss / self.nc ** 2
                futureloss = .5 * axb(target, aa, gt_fmsg - fmsg).pow(2).mean() * self.w_tloss / self.nc ** 2
            else:
                pastloss = loss * 0
                futureloss = loss * 0
            loss = (loss + pastloss + futureloss) / 3

        if not synchronous or n > self.msg_n:
            out = qa.clone()
            if synchronous:
                out = winsmooth(out, kernelsize=self.winsmooth)
            return out, loss
        return self.forward(a, aa, target, id_time, n=n + 1, synchronous=synchronous)


# ------------------------------------------------------------------------------------- BalanceLabels.py
def populate(dict, ind, val=0):  # B:6-8
    if ind not in dict:
        dict[ind] = val


class ScaleGrad(torch.autograd.Function):  # B:11-20: identity forward, gradient times the weights
    @staticmethod
    def forward(ctx, inputs, weights):
        ctx.save_for_backward(inputs, weights)
        return inputs.clone()

    @staticmethod
    def backward(ctx, grad_output):
        _, weights = ctx.saved_tensors
        return grad_output * weights, None


class BalanceLabels(torch.nn.Module):  # B:23-54
    def __init__(self):
        super().__init__()
        self.zerocounts = {}
        self.counts = {}
        self.total = 0

    def update_counts(self, target):  # B:30-38
        n = target.shape[0]
        tt = target.sum(0)
        for j, t in enumerate(tt):
            populate(self.counts, j)
            populate(self.zerocounts, j)
            self.counts[j] += t.item()
            self.zerocounts[j] += n - t.item()
        self.total += n

    def get_weights(self, target):  # B:40-49
        weights = torch.zeros(*target.shape)
        for i in range(target.shape[0]):
            for j in range(target.shape[1]):
                if target[i, j].item() == 0:
                    weights[i, j] = self.zerocounts[j]
                else:
                    weights[i, j] = self.counts[j]
        avg = self.total // 2  # B:48: self.total / 2 of an int, Python 2's floor division
        return avg / weights

    def forward(self, inputs, target):  # B:51-54
        self.update_counts(target)
        weights = self.get_weights(target)
        return ScaleGrad.apply(inputs, weights)
