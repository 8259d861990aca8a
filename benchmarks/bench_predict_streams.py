"""The figures of predict.py's two streams, labelled video and online mode (docs/predict.md), on the 30-s
854x480 H.264 video of ``bench_predict.py`` (which calls ``main`` after its own figures; alone:
``python benchmarks/bench_predict_streams.py``):

4. two streams (RGB ResNet-152 + flow VGG-16 at 224, random weights, the default 50 frames): the whole
   ``predict_clip``, and the flow computation alone (decode, flow, transforms: ``flow_batches`` consumed
   without a network), for Farneback and TV-L1 at the default ``--flow-short-side`` (and Farneback at full
   size); the flow network's bare forward on the same 50 stacks;
5. ``--out-video``: ``label_video`` (decode every frame, draw, encode with the chosen preset) against a
   ResNet-152 run (``predict_clip``) of the same video;
6. ``--online --realtime --fps 4`` with the demo's arch (resnet18 at 32 px): frames dropped and the latency
   from a picture decoded to its line printed, in a process of its own.
"""
from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


from benchmarks.bench_predict import REPEATS, spread  # noqa: E402


def stream_of(kind: str, arch: str, inputsize: int, out: str):
    """A ``predict.Stream`` of random weights (``kind``: rgb or flow), saved and loaded as a checkpoint."""
    import torch

    import predict
    from checkpoints.settings import as_flags
    from models import create_model
    settings = {**predict.released_settings(), "arch": arch, "inputsize": inputsize,
                "dataset": "charadesflow" if kind == "flow" else "charadesrgb"}
    opts = predict.build_parser().parse_args(as_flags(settings) + ["x", "--device", "cpu", "-o", out])
    opts.cache = out
    torch.manual_seed(0)
    model, _, _ = create_model(opts)
    path = os.path.join(out, f"{kind}_{arch}.pth.tar")
    torch.save({"arch": arch, "state_dict": model.state_dict()}, path)
    opts.resume = opts.flow_resume = path
    make = predict.flow_stream if kind == "flow" else predict.rgb_stream
    return make(opts, predict.checkpoints.load_checkpoint(path)), path


def two_streams(path: str, out: str, calib: float, methods: tuple[str, ...] = ("farneback", "tvl1")) -> dict:
    """Section 4; returns the seconds of the RGB-only run (for section 5)."""
    import numpy as np
    import torch

    import predict
    import train
    from datasets import video_flow, video_input
    from utils.video_frames import flow_method
    rgb, _ = stream_of("rgb", "resnet152", 224, out)
    flow, _ = stream_of("flow", "vgg16flow", 224, out)
    clip = video_input.measure_clip(video_input.Clip("video", path, video_input.VIDEO))
    frames = video_input.sample_windows(clip.nframes, clip.duration, 50)[0]
    starts = video_flow.stack_starts(frames, video_flow.flow_count(clip))
    t0 = time.perf_counter()
    predict.predict_clip(clip, [rgb], [], rgb.opts)
    rgb_run = time.perf_counter() - t0
    print(f"  RGB alone (ResNet-152): predict_clip {rgb_run:.1f} s ({rgb_run / calib:.0f} steps)", flush=True)
    stacks = torch.cat(list(video_flow.flow_batches(clip, starts, flow.transform, 10, "farneback", 20.0, 256, 1)))
    bares = []
    with torch.no_grad():
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            for i in range(0, len(stacks), flow.opts.batch_size):
                train.forward(flow.model, stacks[i:i + flow.opts.batch_size], flow.opts)
            bares.append(time.perf_counter() - t0)
    bare = statistics.median(bares)
    print(f"  flow network (VGG-16, 20 x 224 x 224) bare forward of the 50 stacks: {bare:.2f} s "
          f"({bare / calib:.0f} steps; median of {spread(bares)})", flush=True)
    cores = os.cpu_count() or 1
    runs = [("farneback", 256), ("farneback", 0)] if "farneback" in methods else []
    for method, side in runs + ([(flow_method("auto"), 256)] if "tvl1" in methods else []):
        stats: dict = {}
        alones = []
        for _ in range(REPEATS if method == "farneback" else 1):   # TV-L1 once: minutes a run
            t0 = time.perf_counter()
            for _ in video_flow.flow_batches(clip, starts, flow.transform, 50, method, 20.0, side, cores, stats):
                pass
            alones.append(time.perf_counter() - t0)
        alone = statistics.median(alones)
        flow.opts.flow_method, flow.opts.flow_short_side = method, side
        flow.inputs = predict.flow_inputs(flow.opts)
        t0 = time.perf_counter()
        predict.predict_clip(clip, [rgb, flow], [], rgb.opts)
        total = time.perf_counter() - t0
        print(f"  two streams, {method} at short side {side or 'full (480)'}: predict_clip {total:.1f} s "
              f"({total / calib:.0f} steps); flow computation alone (decode + {stats['flow_pairs']} pairs + "
              f"transforms, {cores} threads) {alone:.2f} s (median of {spread(alones)}) = "
              f"{100 * alone / total:.0f}% of the total, {alone / bare:.2f}x the flow network's forward", flush=True)
    return {"rgb_run": rgb_run, "flow_bare": bare, "pairs": int(np.unique(
        [f for s in starts for f in range(s, s + 10)]).size)}


def out_video(path: str, out: str, rgb_run: float, calib: float) -> None:
    """Section 5: writing the labelled video against a ResNet-152 run of the same video."""
    import numpy as np

    from utils.labelled_video import PRESET, label_video
    names = [f"action number {c}" for c in range(157)]
    scores = np.random.default_rng(0).random((50, 157)) ** 4
    t0 = time.perf_counter()
    n = label_video(path, os.path.join(out, "labelled.mp4"), np.arange(50) * 0.6, scores, names,
                    threads=os.cpu_count() or 1)
    took = time.perf_counter() - t0
    size = os.path.getsize(os.path.join(out, "labelled.mp4")) / 1e6
    print(f"  --out-video ({PRESET}): {n} frames in {took:.1f} s ({took / calib:.0f} steps), {size:.1f} MB; a "
          f"ResNet-152 run {rgb_run:.1f} s: with the video {(rgb_run + took) / rgb_run:.2f}x the run, the video "
          f"{100 * took / (rgb_run + took):.0f}% of it", flush=True)


def online_realtime(path: str, out: str) -> None:
    """Section 6: ``predict.py --online --realtime --fps 4`` with the demo's arch, in a process of its own."""
    _, ckpt = stream_of("rgb", "resnet18", 32, out)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "predict.py", path, "--resume", ckpt, "--online", "--realtime", "--fps",
                           "4", "--device", "cpu", "-o", os.path.join(out, "online"), "--no-png"], cwd=REPO,
                          capture_output=True, text=True)
    took = time.perf_counter() - t0
    found = re.search(r"online: .*", done.stdout)
    print(f"  --online --realtime --fps 4 (resnet18 at 32 px): {found.group(0) if found else done.stderr[-500:]} "
          f"(the whole command {took:.1f} s for a {30} s video)", flush=True)


def main(path: str | None = None, calib: float | None = None, methods: tuple[str, ...] = ("farneback", "tvl1"),
         sections: tuple[int, ...] = (4, 5, 6)) -> None:
    """Sections 4-6 on ``path`` (default: bench_predict.py's 30-s video); ``methods``: the flow methods of
    section 4 (TV-L1 takes about 10 minutes on 2 cores)."""
    from benchmarks.bench_predict import ensure_videos
    from benchmarks.machine import calibration_step
    if path is None:
        path = ensure_videos(os.path.join(REPO, "benchmarks", ".videos"), ["short_2s"])["short_2s"]
    calib = calib or calibration_step()
    with tempfile.TemporaryDirectory() as out:
        print("4. two streams (30-s video, 50 frames; RGB ResNet-152, flow VGG-16, both at 224)", flush=True)
        found = two_streams(path, out, calib, methods)
        if 5 in sections:
            print("5. the labelled video (--out-video) against a ResNet-152 run", flush=True)
            out_video(path, out, found["rgb_run"], calib)
        if 6 in sections:
            print("6. the online mode in real time", flush=True)
            online_realtime(path, out)


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flow-methods", nargs="+", default=["farneback", "tvl1"], choices=["farneback", "tvl1"])
    ap.add_argument("--sections", nargs="+", type=int, default=[4, 5, 6], choices=[4, 5, 6],
                    help="4 always runs (5 needs its RGB run)")
    args = ap.parse_args()
    main(methods=tuple(args.flow_methods), sections=tuple(args.sections))
