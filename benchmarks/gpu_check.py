"""The GPU figures of ``benchmarks/gpu_check.sh``, printed as one table, and the time they project for the
published schedule.

Measured on one CUDA device:
- ResNet-152 training step at B=50, 224 px (``train.forward`` + AsyncTF criterion + backward + SGD, as
  ``benchmarks/bench_step.py`` runs it): fp32 vs ``--amp`` (bf16) + ``--channels-last``, images/s, and the
  criterion's share of the step (its forward and backward alone, between steps);
- val_video scoring of one 50-frame video (network forward + the synchronous criterion, 6 passes);
- the ``--gpu-decode`` training loader on rendered 854x480 JPEG frames, through ``datasets.get_dataset``
  and ``train.prepare``: frames/s with worker processes, and host CPU ms per frame with the work in this
  process (file reads, nvJPEG submission, crop/resize/jitter launches).

Projection (the published run: 5 epochs, ``--train-size 0.2 --val-size 0.2``, batch 50, GAP 4; then
val_video on the 1,863 test videos each epoch): per training batch the slower of the GPU step and the
loader (workers prefetch while the GPU computes), frame-level val batches at the forward cost, and one
val_video batch per test video.

    python benchmarks/gpu_check.py [--dry-run]     # --dry-run: tiny sizes on the CPU, to catch errors
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from anywhere

import train  # noqa: E402
from benchmarks.bench_step import (C, build, criterion_only, fill_buffer, full_step,  # noqa: E402
                                   make_batches, make_opts, sync, timed)
from benchmarks.machine import describe  # noqa: E402
from utils.cores import usable_cores  # noqa: E402

# Sample counts of the published schedule, from the real annotations (computed once with
# utils.charades_csv.read_annotations on Charades_v1_train.csv: 7,985 videos, n = floor(24 * length)
# frames each, training samples i = 0, 4, 8, ... < n - 1 per video, i.e. sum(len(range(0, n - 1, 4)))).
TRAIN_VIDEOS, TRAIN_SAMPLES = 7985, 1_432_175
# val (frame level) on the 1,863 test videos: the same rule on the 199-video test subset gives 172.6
# samples per video on average; val_video scores every test video once (one batch of 50 frames).
TEST_VIDEOS, VAL_SAMPLES_PER_VIDEO = 1863, 172.6
EPOCHS, TRAIN_SIZE, VAL_SIZE, BATCH = 5, 0.2, 0.2, 50


def step_figures(arch: str, size: int, batch: int, device: torch.device, steps: int, warmup: int) -> dict:
    """ms per full training step, images/s, criterion ms, forward-only ms (eval) and val_video ms per video,
    for fp32 and for bf16 autocast + channels_last."""
    out = {}
    for label, extra in (("fp32", []), ("bf16+cl", ["--amp", "--channels-last"])):
        o = make_opts(arch, size, batch, str(device), extra)
        model, criterion, optimizer = build(o)
        scaler = train.make_scaler(o)
        g = torch.Generator().manual_seed(0)
        fill_buffer(criterion, o, g)
        batches = make_batches(o, 2, g)
        model.train()
        criterion.train()
        for i in range(warmup):
            full_step(model, criterion, optimizer, batches[i % 2], o, scaler)
        step = [timed(full_step, device, model, criterion, optimizer, batches[i % 2], o, scaler)
                for i in range(steps)]
        a0 = torch.randn(batch, C, generator=g).to(device)
        w0 = (torch.randn(C, 3, generator=g) @ torch.randn(3, C, generator=g) * 0.1).to(device)
        crit = [timed(criterion_only, device, criterion, a0, w0, batches[i % 2]) for i in range(steps)]
        model.eval()
        criterion.eval()
        video = make_batches(o, 1, g)[0]
        frames = video[0][:min(50, batch)]
        meta = {"id": ["val0"] * len(frames), "time": torch.arange(1, len(frames) + 1) * 8}
        target = video[1][:len(frames)]

        @torch.no_grad()
        def forward_only():
            train.forward(model, video[0], o)

        @torch.no_grad()
        def score_video():
            a, aa = train.forward(model, frames, o)
            criterion(a, aa, target, meta, synchronous=True)
        for _ in range(2):  # warm-up (cudnn.benchmark picks its algorithms for these shapes)
            forward_only()
            score_video()
        fwd = [timed(forward_only, device) for _ in range(steps)]
        vid = [timed(score_video, device) for _ in range(steps)]
        med = lambda xs: statistics.median(xs) * 1e3  # noqa: E731
        out[label] = {"step_ms": med(step), "img_s": batch / (med(step) / 1e3), "crit_ms": med(crit),
                      "fwd_ms": med(fwd), "video_ms": med(vid)}
        del model, criterion, optimizer, batches
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def loader_figures(device: torch.device, size: tuple[int, int], nvideos: int, inputsize: int, batch: int,
                   workers: int, nbatches: int) -> dict:
    """--gpu-decode training loader on rendered frames: frames/s (``workers`` processes) and host CPU ms
    per frame (no workers: everything on this process's clock)."""
    import csv

    import opts as options
    from datasets import get_dataset
    from datasets.demo import DEMO_TRAIN_CSV, ensure_demo_data
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = os.path.join(tmp, "train.csv")
        with open(DEMO_TRAIN_CSV, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        with open(csv_path, "w", newline="", encoding="utf-8") as f:  # the first few demo videos
            csv.writer(f).writerows(rows[:nvideos + 1])
        t0 = time.perf_counter()
        root = ensure_demo_data(os.path.join(tmp, "demo"), size=size, flow=False, csv_files=[csv_path])
        render_s = time.perf_counter() - t0
        out = {"render_s": render_s}
        for w in (workers, 0):
            o = options.parse(["--dataset", "charadesrgb", "--data", os.path.join(root, "rgb"), "--train-file",
                               csv_path, "--val-file", csv_path, "--inputsize", str(inputsize), "--batch-size",
                               str(batch), "--workers", str(w), "--device", str(device), "--gpu-decode",
                               "--cache-dir", os.path.join(tmp, "cache")])
            loader = get_dataset(o)[0]
            n = seen = 0
            epoch = 0
            wall = cpu = 0.0
            while n < nbatches + 1:
                loader.sampler.set_epoch(epoch)
                epoch += 1
                it = iter(loader)
                while n < nbatches + 1:
                    t, c = time.perf_counter(), time.process_time()
                    try:
                        b = next(it)
                    except StopIteration:
                        break
                    x = train.prepare(b, loader, o)[0]
                    sync(device)
                    if n > 0:  # the first batch pays the workers' start
                        wall += time.perf_counter() - t
                        cpu += time.process_time() - c
                        seen += x.shape[0]
                    n += 1
            if w:
                out["frames_s"], out["workers"] = seen / wall, w
            else:
                out["cpu_ms_frame"] = cpu / seen * 1e3
            del loader
    return out


def projection(step_ms: float, fwd_ms: float, video_ms: float, loader_fps: float) -> dict:
    """Seconds of the published schedule from per-batch figures."""
    train_batches = int(math.ceil(TRAIN_SAMPLES / BATCH) * TRAIN_SIZE)
    val_batches = int(math.ceil(TEST_VIDEOS * VAL_SAMPLES_PER_VIDEO / BATCH) * VAL_SIZE)
    per_batch = max(step_ms / 1e3, BATCH / loader_fps)
    train_s = EPOCHS * train_batches * per_batch
    val_s = EPOCHS * val_batches * max(fwd_ms / 1e3, BATCH / loader_fps)
    video_s = EPOCHS * TEST_VIDEOS * max(video_ms / 1e3, 50 / loader_fps)
    return {"train_batches": train_batches, "val_batches": val_batches, "train_s": train_s, "val_s": val_s,
            "video_s": video_s, "total_s": train_s + val_s + video_s}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: checks the script, not the GPU")
    p.add_argument("--workers", type=int, default=min(8, usable_cores()))
    args = p.parse_args(argv)
    if args.dry_run:
        from benchmarks import bench_step
        bench_step.NVIDEOS = 8  # a small buffer: this run checks the script, not the speed
        device, arch, size, batch, steps, warmup = torch.device("cpu"), "resnet18", 32, 8, 2, 1
        frame_size, nvideos, nbatches, workers = (96, 64), 2, 3, 2
    elif torch.cuda.is_available():
        device, arch, size, batch, steps, warmup = torch.device("cuda"), "resnet152", 224, BATCH, 20, 5
        frame_size, nvideos, nbatches, workers = (854, 480), 5, 30, args.workers
        torch.backends.cudnn.benchmark = True  # as main.py sets it on CUDA
    else:
        sys.exit("gpu_check: no CUDA device (torch.cuda.is_available() is False); use --dry-run to test the script")
    print(describe(device))
    t0 = time.perf_counter()
    steps_fig = step_figures(arch, size, batch, device, steps, warmup)
    load = loader_figures(device, frame_size, nvideos, size, batch, workers, nbatches)
    rows = []
    for label, f in steps_fig.items():
        rows.append((f"{arch} train step, B={batch}, {size} px, {label}", f"{f['step_ms']:.1f} ms",
                     f"{f['img_s']:.0f} images/s"))
        rows.append((f"  criterion's share of that step ({label})", f"{f['crit_ms']:.2f} ms",
                     f"{100 * f['crit_ms'] / f['step_ms']:.1f}%"))
        rows.append((f"  forward only, eval, B={batch} ({label})", f"{f['fwd_ms']:.1f} ms", ""))
        rows.append((f"  val_video: one {min(50, batch)}-frame video ({label})", f"{f['video_ms']:.1f} ms", ""))
    speed = steps_fig["bf16+cl"]["img_s"] / steps_fig["fp32"]["img_s"]
    rows.append(("bf16 + channels_last vs fp32", f"{speed:.2f}x", "images/s"))
    w, h = frame_size
    rows.append((f"--gpu-decode loader, {w}x{h} JPEGs, {load['workers']} workers", f"{load['frames_s']:.0f} frames/s",
                 f"render {load['render_s']:.0f} s"))
    rows.append(("  host CPU per frame (no workers: all on this clock)", f"{load['cpu_ms_frame']:.2f} ms", ""))
    for label, f in steps_fig.items():
        pr = projection(f["step_ms"], f["fwd_ms"], f["video_ms"], load["frames_s"])
        rows.append((f"published schedule, {label}: {EPOCHS} x ({pr['train_batches']} train + {pr['val_batches']} "
                     f"val batches + {TEST_VIDEOS} videos)", f"{pr['total_s'] / 3600:.2f} h",
                     f"train {pr['train_s'] / 60:.0f} min, val {pr['val_s'] / 60:.0f} min, "
                     f"val_video {pr['video_s'] / 60:.0f} min"))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measured' if not args.dry_run else 'DRY RUN on the CPU (tiny sizes: not GPU figures)'}:")
    for name, value, more in rows:
        print(f"{name:<{width}}  {value:>16}  {more}")
    print(f"\n(figures measured in {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
