"""Per-core CPU cost of one RGB training sample: plain PIL + torchvision vs ``--fast-loader`` and
``--gpu-decode``.

Renders a few 480p JPEG frames (the demo renderer's frames of a real Charades annotation, and smooth
"video-like" synthetic frames: compressed video has little pixel noise, so its JPEGs are much smaller,
and JPEG decoding - which both paths pay - costs roughly in proportion to the file size), then times in
one thread (``torch.set_num_threads(1)``):

- plain: ``open_frame`` + ``datasets.transforms.train_transform`` (RandomResizedCrop, ColorJitter,
  flip, ToTensor, Normalize), as a DataLoader worker runs it;
- fast: ``datasets.fast_frames.FastTrainFrame`` (worker side) + ``BatchTransform`` (jitter and
  normalisation, device side, measured here on the CPU on batches of ``--batch``, amortised per sample);
- gpu-decode: ``datasets.device_decode.EncodedTrainFrame`` (worker: read the bytes, draw the crop) +
  ``DeviceDecode`` on ``--device`` (decode, crop, resize, flip, jitter, normalise per batch).  On CUDA
  its CPU cost is the worker plus this thread's CPU time during the batch decode; without a GPU the
  batch decode runs on the CPU and is reported as such.

Goal: >= 3x plain samples/s per core.  Also the val transforms, and full-size JPEG decoding alone (both
paths pay it, so plain / decode bounds the speed-up of any CPU-decoding path).  ~40 s with the defaults.

    python benchmarks/bench_loader.py [--n 300] [--batch 50] [--size 854x480] [--device cuda]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torchvision.io import decode_jpeg, read_file

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from anywhere

from datasets import device_decode, fast_frames  # noqa: E402
from datasets import transforms as frame_transforms  # noqa: E402
from datasets.charadesrgb import open_frame  # noqa: E402

GOAL = 3.0
NFRAMES = 3


def demo_frames(size: tuple[int, int]) -> list[np.ndarray]:
    """Frames of the first demo video at ``size`` (w, h) from ``datasets.demo_render``."""
    from datasets import demo as demo_render
    from utils.charades_csv import read_annotations
    video = read_annotations(os.path.join(demo_render.REPO_ROOT, "data", "demo", "Charades_demo_train.csv"))[0]
    return demo_render.render_frames(video, [1, 25, 49][:NFRAMES], seed=0, size=size)


def video_like_frames(size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """Smooth indoor-like frames: lit gradient, soft-edged furniture-like shapes, low-frequency texture,
    rendered at half size and upsampled (video softness), plus mild sensor noise."""
    rng = np.random.default_rng(seed)
    w, h = size[0] // 2, size[1] // 2
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for _ in range(NFRAMES):
        c0, c1 = rng.uniform(0.2, 0.8, 3), rng.uniform(0.2, 0.8, 3)
        a = rng.uniform(0, 2 * np.pi)
        img = c0 + (np.cos(a) * x / w + np.sin(a) * y / h)[..., None] * (c1 - c0)
        for k in range(10):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(10, 80)
            d = np.hypot(x - cx, y - cy) - r if k % 2 else np.maximum(abs(x - cx) - r, abs(y - cy) - 0.6 * r)
            alpha = np.clip(0.5 - d / 2, 0, 1)[..., None]  # 2-pixel soft edge
            texture = (0.8 + 0.2 * np.sin(x / rng.uniform(2, 6)))[..., None]
            img = img * (1 - alpha) + alpha * rng.uniform(0, 1, 3) * texture
        small = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
        big = np.asarray(small.resize(size, Image.BICUBIC), dtype=np.float32)
        out.append(np.clip(big + rng.normal(0, 2.0, big.shape), 0, 255).astype(np.uint8))
    return out


def per_sample(fn: Callable[[int], object], n: int, repeats: int) -> float:
    """Best-of-``repeats`` seconds per call of ``fn(k)`` over ``n`` calls (after one warm-up)."""
    fn(0)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for k in range(n):
            fn(k)
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def bench(name: str, paths: list[str], args: argparse.Namespace) -> float:
    """Print the train and val comparison for one set of frames; return the train speed-up."""
    opts = argparse.Namespace(inputsize=args.inputsize)
    n, r, p = args.n, args.repeats, lambda k: paths[k % len(paths)]
    kb = np.mean([os.path.getsize(q) for q in paths]) / 1024
    plain_train, plain_val = frame_transforms.train_transform(opts), frame_transforms.val_transform(opts)
    fast_train, fast_val = fast_frames.FastTrainFrame(args.inputsize), fast_frames.FastEvalFrame(args.inputsize)
    jitter, normalize = fast_frames.BatchTransform(), fast_frames.BatchTransform(None)
    torch.manual_seed(0)
    train_batch = torch.stack([fast_train(p(k)) for k in range(args.batch)])
    val_batch = torch.stack([fast_val(p(k)) for k in range(args.batch)])

    t_plain = per_sample(lambda k: plain_train(open_frame(p(k), "RGB")), n, r)
    t_decode = per_sample(lambda k: decode_jpeg(read_file(p(k))), n, r)  # the floor of any CPU-decoding path
    t_worker = per_sample(lambda k: fast_train(p(k)), n, r)
    t_batch = per_sample(lambda k: jitter(train_batch), max(2, n // args.batch), r) / args.batch
    v_plain = per_sample(lambda k: plain_val(open_frame(p(k), "RGB")), n, r)
    v_worker = per_sample(lambda k: fast_val(p(k)), n, r)
    v_batch = per_sample(lambda k: normalize(val_batch), max(2, n // args.batch), r) / args.batch

    t_fast, v_fast = t_worker + t_batch, v_worker + v_batch

    # --gpu-decode: the worker reads bytes and draws the crop; decoding and the rest happen per batch on
    # args.device (on the CPU here when there is no GPU: then that work is CPU work too)
    device = torch.device(args.device)
    enc = device_decode.EncodedTrainFrame(args.inputsize)
    g_worker = per_sample(lambda k: enc(p(k)), n, r)
    encoded = device_decode.EncodedFrames([enc(p(k)) for k in range(args.batch)])
    decoder = device_decode.DeviceDecode(args.inputsize, device, train=True, jitter=fast_frames.JITTER)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def device_side(_: int) -> None:
        decoder(encoded)
        sync()
    g_wall = per_sample(device_side, max(2, n // args.batch), r) / args.batch
    c0 = time.thread_time()
    for k in range(max(2, n // args.batch)):
        device_side(k)
    g_host = (time.thread_time() - c0) / (max(2, n // args.batch) * args.batch)  # this thread's CPU time
    print(f"\n{name}: {len(paths)} frames {args.size}, {kb:.0f} KB per JPEG")
    for split, plain, worker, batch, fast in (("train", t_plain, t_worker, t_batch, t_fast),
                                              ("val", v_plain, v_worker, v_batch, v_fast)):
        print(f"  {split:5s} plain {1 / plain:7.0f} samples/s | fast {1 / fast:7.0f} samples/s "
              f"(worker {worker * 1e3:.3f} ms + batch work on CPU {batch * 1e3:.3f} ms/sample) | "
              f"ratio {plain / fast:.2f}x (worker only {plain / worker:.2f}x)")
    print(f"  full-size JPEG decode alone {t_decode * 1e3:.3f} ms: no CPU-decoding path can beat "
          f"{t_plain / t_decode:.2f}x on train here")
    if device.type == "cuda":
        print(f"  train --gpu-decode on {torch.cuda.get_device_name(device)}: worker {g_worker * 1e3:.3f} ms + "
              f"host CPU of the batch decode {g_host * 1e3:.3f} ms/sample (GPU wall {g_wall * 1e3:.3f} ms/sample) "
              f"| CPU cost ratio {t_plain / (g_worker + g_host):.2f}x")
        return t_plain / t_fast, t_plain / (g_worker + g_host)
    print(f"  train --gpu-decode, no GPU here: worker {g_worker * 1e3:.3f} ms/sample (CPU ratio of the worker "
          f"alone {t_plain / g_worker:.1f}x); the batch decode ran on the CPU: {g_wall * 1e3:.3f} ms/sample, "
          f"so on a CPU device it is {t_plain / (g_worker + g_wall):.2f}x (use --fast-loader there)")
    return t_plain / t_fast, None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="samples per timing")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=50, help="batch of the per-batch (device side) work")
    ap.add_argument("--size", default="854x480", help="frame WxH")
    ap.add_argument("--inputsize", type=int, default=224)
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="where --gpu-decode decodes")
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    torch.set_num_threads(1)
    try:
        demo = demo_frames(size)
    except Exception as e:  # the renderer is optional here: its absence must not stop the benchmark
        print(f"demo_render unavailable ({type(e).__name__}: {e}); synthetic frames only")
        demo = []
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, frames in (("demo_render frames", demo), ("video-like synthetic frames", video_like_frames(size))):
            if not frames:
                continue
            paths = []
            for k, f in enumerate(frames):
                paths.append(os.path.join(tmp, f"{len(ratios)}-{k}.jpg"))
                Image.fromarray(f).save(paths[-1], quality=args.quality)
            ratios[name] = bench(name, paths, args)
    print()
    for name, (ratio, gpu) in ratios.items():
        print(f"train speed-up on {name}: --fast-loader {ratio:.2f}x (goal: >= {GOAL:.0f}x) -> "
              f"{'met' if ratio >= GOAL else 'NOT met'}; --gpu-decode "
              + (f"{gpu:.2f}x -> {'met' if gpu >= GOAL else 'NOT met'}" if gpu else "not measured (no GPU)"))


if __name__ == "__main__":
    main()
