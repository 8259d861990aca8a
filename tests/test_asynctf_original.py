"""Our AsyncTF criterion next to a slow reference of what the original's AsyncTFCriterion and
BalanceLabels compute (tests/original_asynctf.py, written from their behaviour, in float32 as the original ran,
fed our storing order and PyTorch 0.4's BCE).

Over several training batches whose videos overflow the FIFOs (eviction), with decay, adjustment and
balance on and off, then frame-level validation batches and a synchronous (val_video) pass: the scores
and the loss agree to 1e-5 relative, the gradients to 1e-4.  The one allowed difference is the storing
order, which the reference is fed (docs/differences.md, "Storing order"): the criterion's stream in training
and validation, a stream of the video's own in synchronous scoring.
"""
from __future__ import annotations

import zlib

import pytest
import torch

import opts as options
from models.asynctf import AsyncTFCriterion
from original_asynctf import AsyncTFCriterion as OriginalCriterion

C = 7


def make_opts(tmp_path, **kw):
    o = options.parse(["--cache-dir", str(tmp_path), "--nclass", str(C), "--memory-size", "3", "--sigma", "6",
                       "--temporal-weight", "0.8", "--temporalloss-weight", "40", "--originalloss-weight", "1.5",
                       "--window-smooth", "1", "--manual-seed", "5"])
    for k, v in kw.items():
        setattr(o, k, v)
    return o


def batches(n: int, B: int, seed: int, single_class: bool = False):
    """Batches over 3 videos (so each id gets several items per batch and the FIFOs of 3 overflow)."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        ids = [f"v{int(i)}" for i in torch.randint(0, 3, (B,), generator=g)]
        times = torch.randint(1, 30, (B,), generator=g).tolist()
        a = torch.randn(B, C, generator=g) * 2
        a[2, :2] = torch.tensor([40.0, -40.0])  # saturated: sigmoid is 1 (and 4e-18), where 0.4's BCE differs
        u, v = torch.randn(C, 2, generator=g), torch.randn(2, C, generator=g)
        if single_class:
            target = torch.randint(0, C, (B,), generator=g)
        else:
            target = (torch.rand(B, C, generator=g) < 0.35).float()
            target[0] = 1.0  # every class has a positive, and a negative, from the first batch on
            target[1] = 0.0
        yield ids, times, a, u @ v, target


def one_hot(target: torch.Tensor) -> torch.Tensor:
    return target if target.dim() == 2 else torch.nn.functional.one_hot(target, C).float()


def step(crit, a0, aa0, target, meta, expand: bool, **kw):
    """One criterion call; returns scores, loss and the gradients to a and to the C x C matrix."""
    a, m = a0.clone().requires_grad_(), aa0.clone().requires_grad_()
    aa = m.unsqueeze(0).expand(len(a0), -1, -1) if expand else m
    scores, loss = crit(a, aa, target, meta, **kw)
    if loss.requires_grad:
        loss.backward()
        return scores.detach(), loss.detach(), a.grad, m.grad
    return scores.detach(), loss.detach(), None, None


def close(ours, theirs, rtol):
    scale = theirs.abs().max().item()
    torch.testing.assert_close(ours, theirs, rtol=rtol, atol=rtol * 1e-2 * max(scale, 1e-12))


@pytest.mark.parametrize("decay,adjustment,balance,shared,single_class", [
    (0.8, True, True, True, False),     # everything on; aa one matrix expanded, as the head returns it
    (1.0, True, True, True, False),     # the experiments' decay (the buffer's no-rank path)
    (0.8, False, True, True, False),
    (0.8, True, False, True, False),
    (0.9, False, False, True, False),
    (0.8, True, True, False, False),    # a per-sample aa (B x C x C): our autograd path
    (0.8, True, True, True, True),      # class-index targets (charadesrgbsubset): the original's gtmat
])
def test_criterion_matches_the_original(tmp_path, decay, adjustment, balance, shared, single_class):
    o = make_opts(tmp_path, memory_decay=decay, adjustment=adjustment, balanceloss=balance)
    ours = AsyncTFCriterion(o)
    # the reference draws its storing orders from a copy of our criterion's stream: the same permutations
    theirs = OriginalCriterion(o, torch.Generator().manual_seed(o.manual_seed))
    seen = 0
    for phase, data in (("train", batches(5, 7, seed=1, single_class=single_class)),
                        ("val", batches(2, 7, seed=2, single_class=single_class))):
        ours.train(phase == "train")
        theirs.train(phase == "train")
        for ids, times, a, m, target in data:
            if not shared:
                m = m + 0.3 * torch.randn(len(ids), C, C, generator=torch.Generator().manual_seed(seen))
            meta = {"id": ids, "time": times}
            s1, l1, ga1, gm1 = step(ours, a, m, one_hot(target), meta, expand=shared)
            s2, l2, ga2, gm2 = step(theirs, a, m, target, meta, expand=shared)
            close(s1, s2, 1e-5)
            close(l1, l2, 1e-5)
            if phase == "train":
                close(ga1, ga2, 1e-4)
                close(gm1, gm2, 1e-4)
            seen += 1
    # the FIFOs overflowed (3 ids, 7 samples a batch, memory 3) and hold the same items
    assert sum(len(v) for v in theirs.storage.values()) == 9
    for vid, fifo in theirs.storage.items():
        row = ours.messages.rows[vid]
        order = ours.messages.seq[row].argsort()
        assert ours.messages.times[row][order].tolist() == [t for t, _ in fifo]
    if balance:
        assert theirs.BalanceLabels.total == int(ours.seen) == 35  # odd after batches 1, 3, 5: floor(N/2)

    # val_video: one video, synchronous (1 + 5 passes, smoothing); both store in that video's own order
    ours.eval()
    theirs.eval()
    g = torch.Generator().manual_seed(9)
    a, m = torch.randn(10, C, generator=g) * 2, torch.randn(C, C, generator=g)
    target = (torch.rand(C, generator=g) < 0.4).float().expand(10, C)
    meta = {"id": ["v1"] * 10, "time": list(range(2, 40, 4))}
    s1, l1, _, _ = step(ours, a, m, target, meta, expand=True, synchronous=True)
    theirs.generator = torch.Generator().manual_seed(o.manual_seed * 1000003 + zlib.crc32(b"v1"))
    s2, l2, _, _ = step(theirs, a, m, target, meta, expand=True, synchronous=True)
    close(s1, s2, 1e-5)
    close(l1, l2, 1e-5)
