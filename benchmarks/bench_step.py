"""Whole-step overhead of the AsyncTF criterion: a full training step against the bare network step.

* full step: the project's code path of ``train._run_frames`` for one batch, loader excluded (batches are
  pre-generated on the device, so ``train.prepare``'s transfer is skipped): ``train.forward`` ->
  ``criterion(a, aa, target, meta)`` (adjustment + balance on, a message buffer already holding 400
  videos x 25 frames) -> ``loss.backward()`` -> ``optimizer.step()`` -> ``zero_grad`` -> prec@1/prec@5;
* bare step: the same network (with its AsyncTF head) and optimiser, ``train.forward`` ->
  ``binary_cross_entropy_with_logits(a, target)`` -> backward -> step -> zero_grad.

Both run alternately on the same batches (warm-up first, then N timed steps each); the script prints mean
and median ms/step and the overhead of the full step.  Goal: within 10%.
Defaults: resnet18, inputsize 112, batch 50 (exp/asynctf_rgb.py's AsyncTF options).  On CUDA it also
measures resnet152, B=50, 224 px, images/s of the full step with ``--amp`` (bf16 autocast) +
``--channels-last`` against fp32, as main.py / train.forward / train.prepare set them up.

    python benchmarks/bench_step.py [--device cuda] [--arch resnet18] [--steps 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from anywhere

import opts as options  # noqa: E402
from benchmarks.machine import describe  # noqa: E402
import train  # noqa: E402
from models import create_model  # noqa: E402
from utils.meters import precision_at_k  # noqa: E402

C, NVIDEOS, FRAMES_PER_VIDEO, TMAX = 157, 400, 25, 700
GOAL_PCT = 10.0
ASYNCTF_FLAGS = ["--nclass", str(C), "--nhidden", "3", "--temporal-weight", "0.03",
                 "--temporalloss-weight", "1.2", "--memory-decay", "1.0", "--memory-size", "20",
                 "--sigma", "300", "--adjustment", "--originalloss-weight", "15", "--balanceloss",
                 "--window-smooth", "1", "--lr", "2.5e-3"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_opts(arch: str, inputsize: int, batch: int, device: str, extra: list[str]) -> argparse.Namespace:
    with tempfile.TemporaryDirectory() as tmp:
        return options.parse(ASYNCTF_FLAGS + ["--arch", arch, "--inputsize", str(inputsize), "--batch-size",
                                              str(batch), "--device", device, "--cache-dir", tmp] + extra)


def build(o: argparse.Namespace):
    """Model, criterion, optimiser as main.py builds them (channels_last when asked)."""
    torch.manual_seed(0)
    net, criterion, optimizer = create_model(o)
    if o.channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net, criterion, optimizer


def fill_buffer(criterion, o: argparse.Namespace, g: torch.Generator) -> int:
    """400 videos x 25 frames through the criterion itself (training mode, no grad): full FIFOs."""
    dev, B = torch.device(o.device), o.batch_size
    vids = [f"v{v:03d}" for v in range(NVIDEOS) for _ in range(FRAMES_PER_VIDEO)]
    vids = [vids[i] for i in torch.randperm(len(vids), generator=g).tolist()]
    criterion.train()
    with torch.no_grad():
        for s in range(0, len(vids), B):
            ids = vids[s:s + B]
            n = len(ids)
            a = (torch.randn(n, C, generator=g) * 2).to(dev)
            aa = (torch.randn(C, 3, generator=g) @ torch.randn(3, C, generator=g) * 0.1).to(dev).expand(n, C, C)
            target = (torch.rand(n, C, generator=g) < 0.03).float().to(dev)
            criterion(a, aa, target, {"id": ids, "time": torch.randint(1, TMAX + 1, (n,), generator=g)})
    return len(vids)


def make_batches(o: argparse.Namespace, n: int, g: torch.Generator) -> list:
    """Random frames, multi-hot targets and meta, already on the device in the model's memory format."""
    dev, B, S = torch.device(o.device), o.batch_size, o.inputsize
    out = []
    for _ in range(n):
        x = torch.randn(B, 3, S, S, generator=g).to(dev)
        if o.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        target = (torch.rand(B, C, generator=g) < 0.03).float().to(dev)
        ids = [f"v{v:03d}" for v in torch.randint(0, NVIDEOS, (B,), generator=g).tolist()]
        out.append((x, target, {"id": ids, "time": torch.randint(1, TMAX + 1, (B,), generator=g)}))
    return out


def full_step(model, criterion, optimizer, batch, o, scaler=None):
    inputs, target, meta = batch
    a, aa = train.forward(model, inputs, o)
    scores, loss = criterion(a, aa, target, meta)
    (scaler.scale(loss) if scaler else loss).backward()
    train.optimizer_step(optimizer, scaler)
    return precision_at_k(scores.detach(), target), loss.detach()


def bare_step(model, criterion, optimizer, batch, o, scaler=None):
    inputs, target, _ = batch
    a, _ = train.forward(model, inputs, o)
    loss = F.binary_cross_entropy_with_logits(a.float(), target)
    (scaler.scale(loss) if scaler else loss).backward()
    train.optimizer_step(optimizer, scaler)
    return loss.detach()


def criterion_only(criterion, a0, w0, batch) -> None:
    """The criterion's own share of a full step: its forward and the backward to ``a`` and ``aa``."""
    _, target, meta = batch
    a, w = a0.detach().requires_grad_(), w0.detach().requires_grad_()
    _, loss = criterion(a, w.expand(a.shape[0], -1, -1), target, meta)
    loss.backward()


def timed(fn, device, *args) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn(*args)
    sync(device)
    return time.perf_counter() - t0


def overhead(args, device: torch.device) -> None:
    o = make_opts(args.arch, args.inputsize, args.batch, str(device), [])
    model, criterion, optimizer = build(o)
    model.train()
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    n = fill_buffer(criterion, o, g)
    print(f"\n== step overhead: {args.arch}, inputsize {args.inputsize}, batch {args.batch}, {device}, fp32; "
          f"buffer: {n} frames of {len(criterion.messages)} videos ({time.perf_counter() - t0:.1f} s to fill)")
    batches = make_batches(o, args.warmup + args.steps, g)
    criterion.train()
    a0 = torch.randn(args.batch, C, generator=g).to(device) * 2
    w0 = (torch.randn(C, 3, generator=g) @ torch.randn(3, C, generator=g) * 0.1).to(device)
    full_t, bare_t, crit_t = [], [], []
    for i, batch in enumerate(batches):  # alternate (and swap which goes first): same machine load for both
        if i % 2 == 0:
            tb = timed(bare_step, device, model, criterion, optimizer, batch, o)
            tf = timed(full_step, device, model, criterion, optimizer, batch, o)
        else:
            tf = timed(full_step, device, model, criterion, optimizer, batch, o)
            tb = timed(bare_step, device, model, criterion, optimizer, batch, o)
        tc = [timed(criterion_only, device, criterion, a0, w0, batch) for _ in range(5)]
        if i >= args.warmup:
            bare_t.append(tb)
            full_t.append(tf)
            crit_t.extend(tc)
    ms = lambda xs, f: f(xs) * 1e3  # noqa: E731
    mb, mf, mc = ms(bare_t, statistics.mean), ms(full_t, statistics.mean), ms(crit_t, statistics.mean)
    db, df, dc = ms(bare_t, statistics.median), ms(full_t, statistics.median), ms(crit_t, statistics.median)
    spread = 100 * (max(bare_t) - min(bare_t)) / min(bare_t)
    print(f"bare step (forward/backward + SGD): mean {mb:.1f} ms, median {db:.1f} ms over {args.steps} steps "
          f"(min..max spread {spread:.0f}% of the min: machine noise)")
    print(f"full step (+ AsyncTF criterion, buffer of {len(criterion.messages)} videos): mean {mf:.1f} ms, "
          f"median {df:.1f} ms")
    print(f"overhead: {100 * (mf - mb) / mb:+.1f}% by the means, {100 * (df - db) / db:+.1f}% by the medians")
    print(f"criterion alone (forward + backward to a and aa, {len(crit_t)} runs between the steps): mean "
          f"{mc:.2f} ms, median {dc:.2f} ms = {100 * dc / db:.1f}% of the bare step's median")
    pct = 100 * (df - db) / db
    print(f"goal within {GOAL_PCT:g}% (judged on the medians): {'met' if pct <= GOAL_PCT else 'NOT met'}")


def gpu_throughput(args, device: torch.device) -> None:
    print(f"\n== {args.gpu_arch}, batch {args.gpu_batch}, 224 px, full training step on "
          f"{torch.cuda.get_device_name(device)} (cudnn.benchmark on, as main.py sets it)")
    torch.backends.cudnn.benchmark = True
    rates = {}
    for label, extra in (("fp32", []), ("bf16 autocast + channels_last", ["--amp", "--channels-last"])):
        o = make_opts(args.gpu_arch, 224, args.gpu_batch, str(device), extra)
        model, criterion, optimizer = build(o)
        model.train()
        scaler = train.make_scaler(o)
        g = torch.Generator().manual_seed(0)
        fill_buffer(criterion, o, g)
        batches = make_batches(o, 2, g)
        criterion.train()
        for i in range(args.gpu_warmup):
            full_step(model, criterion, optimizer, batches[i % 2], o, scaler)
        sync(device)
        t0 = time.perf_counter()
        for i in range(args.gpu_steps):
            full_step(model, criterion, optimizer, batches[i % 2], o, scaler)
        sync(device)
        dt = (time.perf_counter() - t0) / args.gpu_steps
        rates[label] = args.gpu_batch / dt
        print(f"{label}: {dt * 1e3:.1f} ms/step, {rates[label]:.0f} images/s (amp dtype {train.amp_dtype(o)}, "
              f"{args.gpu_steps} steps after {args.gpu_warmup} warm-up)")
        del model, criterion, optimizer, batches
        torch.cuda.empty_cache()
    vals = list(rates.values())
    print(f"bf16 + channels_last vs fp32: {vals[1] / vals[0]:.2f}x images/s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--inputsize", type=int, default=112)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=10, help="timed steps of each kind")
    p.add_argument("--gpu-arch", default="resnet152")
    p.add_argument("--gpu-batch", type=int, default=50)
    p.add_argument("--gpu-warmup", type=int, default=5)
    p.add_argument("--gpu-steps", type=int, default=20)
    args = p.parse_args()
    device = torch.device(args.device)
    print(describe(device))
    overhead(args, device)
    if device.type == "cuda":
        gpu_throughput(args, device)
    else:
        print(f"\nGPU figures ({args.gpu_arch}, bf16 + channels_last vs fp32 images/s) were NOT measured: "
              "no CUDA device here (run with --device cuda on a GPU machine).")


if __name__ == "__main__":
    main()
