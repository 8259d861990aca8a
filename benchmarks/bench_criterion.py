"""Time the vectorised AsyncTF criterion against a per-sample implementation with the original's structure.

Setting (exp/asynctf_rgb.py): B=50, C=157, memory_size 20, nhidden 3, temporal-weight 0.03,
temporalloss-weight 1.2, sigma 300, originalloss-weight 15, adjustment and balance on; memory-decay 1.0
(the experiment's value) and 0.9 (so the ``c_i = (1/decay)**i`` path is exercised).  Before timing, 400
videos x 25 frames (times 1..700) are stored in both implementations' buffers, so every video has a full
FIFO of 20 messages (and 20 targets).

Measured side by side in one run, on the same inputs and the same buffer state:

* training step: ``criterion(a, aa, target, meta)`` forward + ``loss.backward()`` (w.r.t. ``a`` and ``aa``;
  ``aa`` is one C x C matrix expanded to B x C x C, as the AsyncTF head gives it).  Headline: steady state,
  each implementation running the same batches back to back (as ``torch.utils.benchmark`` times a
  statement).  Then interleaved, step by step: there each ~1 ms vectorised step runs after a ~35 ms
  reference step and, on a shared VM, finds caches cold (any 10+ ms gap does that here, even a spin
  loop), which roughly doubles it; the reference hardly notices (see benchmarks/README.md);
* val_video scoring of one 50-frame video: synchronous mode (1 + 5 passes), eval, no grad.

The reference (``OriginalStyleCriterion``) follows gsig/temporal-fields' pytorch AsyncTFCriterion:
dict id -> Python list FIFO of ``(t, row tensor)`` items, messages read item by item in a Python loop
over samples, a Python loop storing, per-sample field and adjustment terms.  Both must give the same
loss (and scores) to 1e-4 on every step, so the comparison is of equal work.
Goal: speed-up >= 20x on the training step, aim 50x.

    python benchmarks/bench_criterion.py [--device cuda] [--steps 20] [--profile]
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
import zlib

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from anywhere

import opts as options  # noqa: E402
from benchmarks.machine import describe  # noqa: E402
from models.asynctf import SYNCHRONOUS_PASSES, AsyncTFCriterion  # noqa: E402

B, C, NVIDEOS, FRAMES_PER_VIDEO, TMAX = 50, 157, 400, 25, 700
GOAL, AIM = 20.0, 50.0
ASYNCTF_FLAGS = ["--nclass", str(C), "--nhidden", "3", "--temporal-weight", "0.03",
                 "--temporalloss-weight", "1.2", "--memory-size", "20", "--sigma", "300",
                 "--adjustment", "--originalloss-weight", "15", "--balanceloss", "--window-smooth", "1"]


# -- the reference: the original's structure ----------------------------------------------------------
def bce04(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """PyTorch 0.4's BCELoss (the original's nn.BCELoss()), mean."""
    return -(t * torch.log(p + 1e-12) + (1 - t) * torch.log(1 - p + 1e-12)).mean()


class ScaleGrad(torch.autograd.Function):
    """Identity forward; gradient multiplied by ``weights`` (the original's BalanceLabels)."""

    @staticmethod
    def forward(ctx, inputs, weights):
        ctx.save_for_backward(weights)
        return inputs.clone()

    @staticmethod
    def backward(ctx, grad):
        (weights,) = ctx.saved_tensors
        return grad * weights, None


class OriginalStyleCriterion:
    """SPEC section 4, written the way gsig/temporal-fields wrote it (lists, loops, per-sample terms)."""

    def __init__(self, o: argparse.Namespace, device: torch.device, per_element_balance: bool = False):
        self.o, self.device, self.training = o, device, True
        self.per_element, self.count_dicts = per_element_balance, None
        self.storage: dict[str, list] = {}      # id -> [(t, message row on the CPU)], oldest first
        self.storage_gt: dict[str, list] = {}   # id -> [(t, target row on the CPU)]
        self.generator = torch.Generator().manual_seed(o.manual_seed)
        self.total, self.counts = 0, torch.zeros(o.nclass)  # balance: N and positives per class

    # messages
    def get_msg(self, storage: dict, ids: list[str], times: list[int], future: bool) -> torch.Tensor:
        o, out = self.o, []
        for vid, t0 in zip(ids, times):
            total, n, i = None, 0.0, 0
            for t, m in storage.get(vid, ()):
                if (t > t0) if future else (t < t0):
                    w = (1.0 / o.memory_decay) ** i * math.exp(-float(t - t0) ** 2 / (2 * o.sigma ** 2))
                    total = m * w if total is None else total.add_(m, alpha=w)
                    n += (1.0 / o.memory_decay) ** i
                    i += 1
            out.append(total / n if total is not None else torch.zeros(o.nclass))
        return torch.stack(out, 0).to(self.device) * o.temporal_weight

    def set_msg(self, storage: dict, values: torch.Tensor, ids: list[str], times: list[int], order: list[int]):
        for j in order:
            fifo = storage.setdefault(ids[j], [])
            fifo.append((times[j], values[j].detach().cpu()))
            if len(fifo) > self.o.memory_size:
                del fifo[0]

    def balance(self, qa: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Gradient weights ``floor(N/2)/count``, one row per sample (``per_element``: the original's
        BalanceLabels, a Python loop over every sample and class)."""
        tcpu = target.cpu()
        if self.per_element:
            return ScaleGrad.apply(qa, self._balance_per_element(tcpu).to(qa.device))
        self.total += tcpu.shape[0]
        self.counts += (tcpu > 0.5).sum(0)
        half = self.total // 2  # Python 2's int division
        weights = torch.stack([torch.where(tt > 0.5, half / self.counts, half / (self.total - self.counts))
                               for tt in tcpu])
        return ScaleGrad.apply(qa, weights.to(qa.device))

    def _balance_per_element(self, target: torch.Tensor) -> torch.Tensor:
        if not self.count_dicts:  # the counts so far (the buffer fill), in the original's dicts
            self.count_dicts = ({j: int(self.total - c) for j, c in enumerate(self.counts.tolist())},
                                {j: int(c) for j, c in enumerate(self.counts.tolist())})
        zerocounts, counts = self.count_dicts
        for tt in target:
            for j, t in enumerate(tt):
                if (t == 0).all():
                    zerocounts[j] = zerocounts.get(j, 0) + 1
                else:
                    counts[j] = counts.get(j, 0) + 1
            self.total += 1
        weights = torch.zeros(*target.shape)
        for i, tt in enumerate(target):
            for j, t in enumerate(tt):
                avg = self.total // 2
                weights[i, j] = avg / float(zerocounts[j]) if (t == 0).all() else avg / float(counts[j])
        return weights

    def _pass(self, a, aa, target, ids, times, generator):
        o = self.o
        msg = self.get_msg(self.storage, ids, times, future=False)
        fmsg = self.get_msg(self.storage, ids, times, future=True)
        q = torch.stack([a[b] + msg[b] @ aa[b] + aa[b] @ fmsg[b] for b in range(len(ids))])
        qa = torch.sigmoid(q)
        if self.training and o.balanceloss:
            qa = self.balance(qa, target)
        loss = bce04(qa, target) + o.originalloss_weight * bce04(torch.sigmoid(a), target)
        order = torch.randperm(len(ids), generator=generator).tolist()
        self.set_msg(self.storage, torch.sigmoid(a), ids, times, order)
        if not self.training:
            return qa, loss
        if o.adjustment:
            gorder = torch.randperm(len(ids), generator=generator).tolist()  # each buffer its own order
            self.set_msg(self.storage_gt, target, ids, times, gorder)
            gmsg = self.get_msg(self.storage_gt, ids, times, future=False)
            gfmsg = self.get_msg(self.storage_gt, ids, times, future=True)
            s = 0.5 * o.temporalloss_weight / o.nclass ** 2
            past = s * torch.stack([((gmsg[b] - msg[b]) @ aa[b] @ target[b]) ** 2 for b in range(len(ids))]).mean()
            fut = s * torch.stack([(target[b] @ aa[b] @ (gfmsg[b] - fmsg[b])) ** 2 for b in range(len(ids))]).mean()
            loss = loss + past + fut
        return qa, loss / 3

    def __call__(self, a, aa, target, meta, synchronous=False):
        ids, times = list(meta["id"]), [int(t) for t in meta["time"]]
        if not synchronous:
            return self._pass(a, aa, target, ids, times, self.generator)
        stream = torch.Generator().manual_seed(self.o.manual_seed * 1000003 + zlib.crc32(ids[0].encode()))
        for _ in range(SYNCHRONOUS_PASSES):
            qa, loss = self._pass(a, aa, target, ids, times, stream)
        w, n = self.o.window_smooth, qa.shape[0]  # the original's winsmooth: a loop over rows
        out = qa.clone()
        for m in range(n):
            out[m] = qa[max(0, m - w):min(n - 1, m + w) + 1].mean(0)
        return out, loss


# -- inputs -------------------------------------------------------------------------------------------
def video_labels(g: torch.Generator) -> list[torch.Tensor]:
    """A few action classes per video (Charades has ~7 per video); a frame shows a subset of them."""
    return [torch.randint(0, C, (int(torch.randint(2, 9, (1,), generator=g)),), generator=g) for _ in range(NVIDEOS)]


def frame_target(labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    t = torch.zeros(C)
    t[labels[torch.rand(len(labels), generator=g) < 0.5]] = 1.0
    return t


def fill(fast: AsyncTFCriterion, ref: OriginalStyleCriterion, labels, g: torch.Generator) -> int:
    """Store 400 videos x 25 frames in both (messages and targets, same order), and count them for the
    balance term; returns the number of frames stored."""
    vids = [f"v{v:03d}" for v in range(NVIDEOS) for _ in range(FRAMES_PER_VIDEO)]
    perm = torch.randperm(len(vids), generator=g).tolist()
    vids = [vids[i] for i in perm]
    seen, pos = 0, torch.zeros(C, dtype=torch.long)
    for s in range(0, len(vids), B):
        ids = vids[s:s + B]
        times = torch.randint(1, TMAX + 1, (len(ids),), generator=g)
        values = torch.sigmoid(torch.randn(len(ids), C, generator=g) * 2)
        target = torch.stack([frame_target(labels[int(i[1:])], g) for i in ids])
        order = torch.randperm(len(ids), generator=g)
        for buf, x in ((fast.messages, values), (fast.targets, target)):
            buf.store(buf.lookup(ids), times, x, order)
        ref.set_msg(ref.storage, values, ids, times.tolist(), order.tolist())
        ref.set_msg(ref.storage_gt, target, ids, times.tolist(), order.tolist())
        seen, pos = seen + len(ids), pos + (target > 0.5).sum(0).long()
    fast.seen.fill_(seen)
    fast.positives.copy_(pos)
    ref.total, ref.counts = seen, pos.float()
    return len(vids)


def make_batch(labels, g: torch.Generator, device: torch.device):
    vids = torch.randint(0, NVIDEOS, (B,), generator=g).tolist()
    ids = [f"v{v:03d}" for v in vids]
    times = torch.randint(1, TMAX + 1, (B,), generator=g)
    a = torch.randn(B, C, generator=g) * 2
    u, v = torch.randn(C, 3, generator=g) * 0.3, torch.randn(3, C, generator=g) * 0.3
    target = torch.stack([frame_target(labels[i], g) for i in vids])
    return a.to(device), (u @ v).to(device), target.to(device), {"id": ids, "time": times}


def make_video(k: int, g: torch.Generator, device: torch.device, nframes: int = 50):
    a = torch.randn(nframes, C, generator=g) * 2
    u, v = torch.randn(C, 3, generator=g) * 0.3, torch.randn(3, C, generator=g) * 0.3
    target = frame_target(torch.randint(0, C, (5,), generator=g), g).expand(nframes, C).contiguous()
    times = torch.linspace(1, TMAX, nframes).long()
    aa = (u @ v).expand(nframes, C, C)
    return a.to(device), aa.to(device), target.to(device), {"id": [f"val{k:03d}"] * nframes, "time": times}


# -- timing -------------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step(crit, a0, w0, target, meta, device):
    """Forward + backward w.r.t. a and aa; returns (seconds, loss, scores, grad of a, grad of the C x C
    matrix)."""
    a, w = a0.clone().requires_grad_(), w0.clone().requires_grad_()
    sync(device)
    t0 = time.perf_counter()
    aa = w.expand(a.shape[0], C, C)  # the head's aa: one matrix for every sample
    scores, loss = crit(a, aa, target, meta)
    loss.backward()
    sync(device)
    return time.perf_counter() - t0, loss.item(), scores.detach(), a.grad, w.grad


def check_step(step: int, fast_run, ref_run, gradients: bool) -> float:
    """Assert that one step gave the same loss, scores (and gradients) in both; returns |loss diff|."""
    (_, lf, sf, gaf, gwf), (_, lr, sr, gar, gwr) = fast_run, ref_run
    assert abs(lf - lr) <= 1e-4, f"step {step}: loss {lf} (vectorised) vs {lr} (reference)"
    # the loss is dominated by originalloss_weight * BCE(sigmoid(a)); the scores show the messages
    assert torch.allclose(sf, sr, atol=1e-6), f"step {step}: scores differ"
    if gradients:
        assert torch.allclose(gaf, gar, atol=1e-5) and torch.allclose(gwf, gwr, atol=1e-5, rtol=1e-4), \
            f"step {step}: gradients differ"
    return abs(lf - lr)


def video_step(crit, a, aa, target, meta, device):
    sync(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        scores, _ = crit(a, aa, target, meta, synchronous=True)
    sync(device)
    return time.perf_counter() - t0, scores


def run(decay: float, args, device: torch.device) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        o = options.parse(ASYNCTF_FLAGS + ["--memory-decay", str(decay), "--cache-dir", tmp,
                                           "--device", str(device), "--manual-seed", "0"])
    fast = AsyncTFCriterion(o).to(device).train()
    ref = OriginalStyleCriterion(o, device, per_element_balance=args.original_balance)
    g = torch.Generator().manual_seed(1234)
    labels = video_labels(g)
    t0 = time.perf_counter()
    n = fill(fast, ref, labels, g)
    full = sum(len(f) == o.memory_size for f in ref.storage.values())
    print(f"\n== memory-decay {decay:g}"
          + (" (reference with the original's per-element BalanceLabels loop)" if args.original_balance else "")
          + f": {n} frames stored, {len(ref.storage)} videos buffered, "
          f"{full} with a full FIFO of {o.memory_size} ({time.perf_counter() - t0:.1f} s)")

    # Steady state (the headline, as torch.utils.benchmark would time it): each implementation runs the
    # same batches back to back from the same buffer state, so both stay in the same state step by step.
    batches = [make_batch(labels, g, device) for _ in range(args.check + args.warmup + args.steps)]
    fast_runs = [train_step(fast, *batch, device) for batch in batches]
    ref_runs = [train_step(ref, *batch, device) for batch in batches]
    worst = effect = 0.0
    for step, (batch, f, r) in enumerate(zip(batches, fast_runs, ref_runs)):
        worst = max(worst, check_step(step, f, r, step < args.check))
        effect = max(effect, (f[2] - torch.sigmoid(batch[0])).abs().max().item())
    assert effect > 1e-3, "the messages hardly change the scores: the score check would prove nothing"
    print(f"check: losses equal on all {len(batches)} steps (max |diff| {worst:.1e} <= 1e-4), scores to 1e-6 "
          f"(messages move them by up to {effect:.3f}), gradients of a and aa on the first {args.check}")
    timed = slice(args.check + args.warmup, None)
    mf, mr = (statistics.median(run[0] for run in runs[timed]) * 1e3 for runs in (fast_runs, ref_runs))
    speedup = mr / mf
    print(f"train step (forward + backward), steady state, median of {args.steps}: vectorised {mf:.2f} ms/step, "
          f"original-style {mr:.1f} ms/step")
    print(f"speed-up {speedup:.1f}x (goal >= {GOAL:g}x, aim {AIM:g}x) -> "
          f"{'aim met' if speedup >= AIM else 'goal met' if speedup >= GOAL else 'goal NOT met'}")

    # Interleaved step by step: each vectorised step now runs right after a ~35 ms original-style step
    # (and, in training, after the network): on a shared 2-core VM it then finds its code and data evicted.
    fi, ri = [], []
    for step in range(args.steps):
        batch = make_batch(labels, g, device)
        f, r = train_step(fast, *batch, device), train_step(ref, *batch, device)
        check_step(step, f, r, False)
        fi.append(f[0])
        ri.append(r[0])
    mfi, mri = statistics.median(fi) * 1e3, statistics.median(ri) * 1e3
    print(f"train step, interleaved (cold caches), median of {args.steps}: vectorised {mfi:.2f} ms/step, "
          f"original-style {mri:.1f} ms/step: {mri / mfi:.1f}x")

    fast.eval()
    ref.training = False
    videos = [make_video(k, g, device) for k in range(args.videos)]
    vf = [video_step(fast, *video, device) for video in videos]
    vr = [video_step(ref, *video, device) for video in videos]
    for k, (f, r) in enumerate(zip(vf, vr)):
        assert torch.allclose(f[1], r[1], atol=1e-4), f"video {k}: scores differ"
    mvf, mvr = (statistics.median(t for t, _ in runs) * 1e3 for runs in (vf, vr))
    print(f"val_video, one 50-frame video ({SYNCHRONOUS_PASSES} synchronous passes, eval), median of "
          f"{args.videos}: vectorised {mvf:.2f} ms, original-style {mvr:.1f} ms, speed-up {mvr / mvf:.1f}x "
          f"(scores equal to 1e-4)")
    fast.train()

    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        batches = [make_batch(labels, g, device) for _ in range(10)]
        with profile(activities=acts) as prof:
            for batch in batches:
                train_step(fast, *batch, device)
        key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(f"profile of 10 vectorised training steps (sorted by {key}):")
        print(prof.key_averages().table(sort_by=key, row_limit=25))
    return speedup


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=20, help="timed training steps per implementation")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--check", type=int, default=3, help="untimed steps checked first (loss and gradients)")
    p.add_argument("--videos", type=int, default=5, help="val_video scorings timed")
    p.add_argument("--decays", type=float, nargs="+", default=[1.0, 0.9])
    p.add_argument("--profile", action="store_true", help="torch.profiler table of the vectorised step")
    p.add_argument("--original-balance", action="store_true",
                   help="the reference balances labels as the original's BalanceLabels did (a Python loop over "
                        "every sample x class, ~70 ms a step) instead of one tensor op per sample")
    args = p.parse_args()
    device = torch.device(args.device)
    print(describe(device) + f"; B={B}, C={C}, memory_size 20")
    speedups = [run(d, args, device) for d in args.decays]
    print("\nsummary: training-step speed-up " + ", ".join(
        f"{s:.1f}x (decay {d:g})" for s, d in zip(speedups, args.decays)) + f"; goal >= {GOAL:g}x, aim {AIM:g}x")


if __name__ == "__main__":
    main()
