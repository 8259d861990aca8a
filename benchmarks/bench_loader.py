"""Per-core CPU cost of one RGB training sample: plain PIL + torchvision vs ``--fast-loader`` and
``--gpu-decode``, on 480p frames and on the same frames at ``--short-side 256``.

Renders a few 480p JPEG frames (the demo renderer's frames of a real Charades annotation, and smooth
"video-like" synthetic frames: compressed video has little pixel noise, so its JPEGs are much smaller,
and JPEG decoding - which both paths pay - costs roughly in proportion to the file size), and a copy of
each scaled to a shorter side of 256 as ``extract_frames.py --short-side 256`` writes it (area-averaged),
then times in one thread (``torch.set_num_threads(1)``), all variants interleaved (see ``timed``):

- plain: ``open_frame`` + ``datasets.transforms.train_transform`` (RandomResizedCrop, ColorJitter,
  flip, ToTensor, Normalize), as a DataLoader worker runs it;
- fast: ``datasets.fast_frames.FastTrainFrame`` (worker side) + ``BatchTransform`` (jitter and
  normalisation, device side, measured here on the CPU on batches of ``--batch``, amortised per sample);
- gpu-decode: ``datasets.device_decode.EncodedTrainFrame`` (worker: read the bytes, draw the crop) +
  ``DeviceDecode`` on ``--device`` (decode, crop, resize, flip, jitter, normalise per batch).  On CUDA
  its CPU cost is the worker plus this thread's CPU time during the batch decode; without a GPU the
  batch decode runs on the CPU and is reported as such.

Every ratio is against plain PIL on the 480p frames.  Goal: the fast path on short-side frames >= 3x.
Also the val transforms, and JPEG decoding alone at both sizes (every CPU path pays it, so plain /
decode bounds the speed-up of any CPU-decoding path).  ~1 minute with the defaults.

    python benchmarks/bench_loader.py [--n 300] [--batch 50] [--size 854x480] [--short-side 256] [--device cuda]
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
    """Frames of the first demo video at ``size`` (w, h) from ``datasets.demo``."""
    from datasets import demo
    from utils.charades_csv import read_annotations
    video = read_annotations(os.path.join(demo.REPO_ROOT, "data", "demo", "Charades_demo_train.csv"))[0]
    return demo.render_frames(video, [1, 25, 49][:NFRAMES], seed=0, size=size)


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


def timed(fns: dict[str, Callable[[int], object]], n: int, repeats: int,
          clock: Callable[[], float] = time.thread_time) -> dict[str, float]:
    """Best-of-``repeats`` seconds per call of each ``fn(k)`` over ``n`` calls, by default CPU seconds of
    this thread (the cost per core, all of it in this thread with one torch thread; time spent waiting for
    a core that other processes hold is not counted).  The variants are interleaved: each repeat runs
    every variant's block in turn (starting one further each time), so a busy spell of this shared
    machine (cache and memory contention) slows them alike.  Each block starts from the same torch seed:
    variants on frames of one size draw the same crops."""
    for fn in fns.values():
        fn(0)  # warm-up
    best, names = dict.fromkeys(fns, float("inf")), list(fns)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn = fns[name]
            torch.manual_seed(r)
            t0 = clock()
            for k in range(n):
                fn(k)
            best[name] = min(best[name], (clock() - t0) / n)
    return best


def short_side_copy(path: str, short: int, quality: int) -> str:
    """The frame as ``extract_frames.py --short-side`` writes it (area-averaged down to the short side)."""
    img = Image.open(path)
    w, h = img.size
    size = (round(w * short / h), short) if w >= h else (short, round(h * short / w))
    out = path[:-4] + f"_s{short}.jpg"
    img.resize(size, Image.BOX).save(out, quality=quality)
    return out


def bench(name: str, paths: list[str], args: argparse.Namespace) -> tuple[float, float, float | None]:
    """Print the train and val comparison for one set of frames, full size and short side; return the
    train speed-ups over plain PIL at full size of --fast-loader at full size, at the short side, and
    of --gpu-decode."""
    opts = argparse.Namespace(inputsize=args.inputsize)
    small = [short_side_copy(q, args.short_side, args.quality) for q in paths]
    big_p, small_p = (lambda k: paths[k % len(paths)]), (lambda k: small[k % len(small)])
    plain_train, plain_val = frame_transforms.train_transform(opts), frame_transforms.val_transform(opts)
    fast_train, fast_val = fast_frames.FastTrainFrame(args.inputsize), fast_frames.FastEvalFrame(args.inputsize)
    jitter, normalize = fast_frames.BatchTransform(), fast_frames.BatchTransform(None)
    enc = device_decode.EncodedTrainFrame(args.inputsize)
    torch.manual_seed(0)
    train_batch = torch.stack([fast_train(big_p(k)) for k in range(args.batch)])
    val_batch = torch.stack([fast_val(big_p(k)) for k in range(args.batch)])

    sizes = {"full": big_p, "short": small_p}
    fns = {}
    for tag, p in sizes.items():
        fns |= {f"train plain {tag}": lambda k, p=p: plain_train(open_frame(p(k), "RGB")),
                f"train fast {tag}": lambda k, p=p: fast_train(p(k)),
                f"val plain {tag}": lambda k, p=p: plain_val(open_frame(p(k), "RGB")),
                f"val fast {tag}": lambda k, p=p: fast_val(p(k)),
                f"decode {tag}": lambda k, p=p: decode_jpeg(read_file(p(k)))}  # the floor of CPU decoding
    fns["gpu-decode worker"] = lambda k: enc(big_p(k))  # --gpu-decode: read the bytes, draw the crop
    # the fast path's per-batch work, one batch every --batch calls: amortised per sample, and timed in
    # the same interleaved blocks as the per-sample work
    fns["train batch"] = lambda k: None if k % args.batch else jitter(train_batch)
    fns["val batch"] = lambda k: None if k % args.batch else normalize(val_batch)
    t = timed(fns, max(args.n, args.batch), args.repeats)
    t_batch, v_batch = t["train batch"], t["val batch"]

    # --gpu-decode: decoding and the rest happen per batch on args.device (on the CPU here when there is
    # no GPU: then that work is CPU work too)
    device = torch.device(args.device)
    encoded = device_decode.EncodedFrames([enc(big_p(k)) for k in range(args.batch)])
    decoder = device_decode.DeviceDecode(args.inputsize, device, train=True, jitter=fast_frames.JITTER)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def device_side(_: int) -> None:
        decoder(encoded)
        sync()
    g_wall = timed({"g": device_side}, max(2, args.n // args.batch), args.repeats,  # GPU: wall time
                   time.perf_counter if device.type == "cuda" else time.thread_time)["g"] / args.batch
    c0 = time.thread_time()
    for k in range(max(2, args.n // args.batch)):
        device_side(k)
    g_host = (time.thread_time() - c0) / (max(2, args.n // args.batch) * args.batch)  # this thread's CPU time
    g_worker, base = t["gpu-decode worker"], t["train plain full"]

    def kb(ps: list[str]) -> str:
        w, h = Image.open(ps[0]).size
        return f"{w}x{h} {np.mean([os.path.getsize(q) for q in ps]) / 1024:.0f} KB"
    print(f"\n{name}: {len(paths)} frames, full size {kb(paths)} per JPEG, short side {kb(small)}")
    print("  samples/s per core (ratio to plain PIL at full size; fast = worker + batch work on CPU)")
    for split, batch in (("train", t_batch), ("val", v_batch)):
        ref = t[f"{split} plain full"]
        row = []
        for tag in sizes:
            plain, worker = t[f"{split} plain {tag}"], t[f"{split} fast {tag}"]
            row.append(f"{tag}: plain {1 / plain:5.0f} ({ref / plain:.2f}x), fast {1 / (worker + batch):5.0f} "
                       f"({ref / (worker + batch):.2f}x; worker {worker * 1e3:.2f} ms + batch {batch * 1e3:.2f} ms)")
        print(f"  {split:5s} " + " | ".join(row))
    for tag in sizes:
        print(f"  JPEG decode alone, {tag}: {t[f'decode {tag}'] * 1e3:.3f} ms: no CPU-decoding path on these "
              f"frames can beat {base / t[f'decode {tag}']:.2f}x plain-at-full-size on train")
    fast_full = base / (t["train fast full"] + t_batch)
    fast_short = base / (t["train fast short"] + t_batch)
    if device.type == "cuda":
        print(f"  train --gpu-decode on {torch.cuda.get_device_name(device)}: worker {g_worker * 1e3:.3f} ms + "
              f"host CPU of the batch decode {g_host * 1e3:.3f} ms/sample (GPU wall {g_wall * 1e3:.3f} ms/sample) "
              f"| CPU cost ratio {base / (g_worker + g_host):.2f}x")
        return fast_full, fast_short, base / (g_worker + g_host)
    print(f"  train --gpu-decode, no GPU here: worker {g_worker * 1e3:.3f} ms/sample (CPU ratio of the worker "
          f"alone {base / g_worker:.1f}x); the batch decode ran on the CPU: {g_wall * 1e3:.3f} ms/sample, "
          f"so on a CPU device it is {base / (g_worker + g_wall):.2f}x (use --fast-loader there)")
    return fast_full, fast_short, None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="samples per timing")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=50, help="batch of the per-batch (device side) work")
    ap.add_argument("--size", default="854x480", help="frame WxH")
    ap.add_argument("--inputsize", type=int, default=224)
    ap.add_argument("--short-side", type=int, default=256, help="the extract_frames.py --short-side copy")
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="where --gpu-decode decodes")
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    torch.set_num_threads(1)
    try:
        demo = demo_frames(size)
    except Exception as e:  # the renderer is optional here: its absence must not stop the benchmark
        print(f"datasets.demo unavailable ({type(e).__name__}: {e}); synthetic frames only")
        demo = []
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, frames in (("demo frames", demo), ("video-like synthetic frames", video_like_frames(size))):
            if not frames:
                continue
            paths = []
            for k, f in enumerate(frames):
                paths.append(os.path.join(tmp, f"{len(ratios)}-{k}.jpg"))
                Image.fromarray(f).save(paths[-1], quality=args.quality)
            ratios[name] = bench(name, paths, args)
    print()
    for name, (full, short, gpu) in ratios.items():
        print(f"train speed-up over plain PIL at full size, {name}: --fast-loader {full:.2f}x; "
              f"--fast-loader on --short-side {args.short_side} frames {short:.2f}x (goal >= {GOAL:.0f}x: "
              f"{'met' if short >= GOAL else 'NOT met'}); --gpu-decode "
              + (f"{gpu:.2f}x ({'met' if gpu >= GOAL else 'NOT met'})" if gpu else "not measured (no GPU)"))

if __name__ == "__main__":
    main()
