"""predict.py's speed and memory (docs/predict.md): the model should be the only cost, the cost should follow
the frames scored rather than the video's length, and memory should stay flat in length.

    python benchmarks/bench_predict.py [--skip-long] [--videos DIR]

It writes H.264 videos of 854x480 at 30 fps with PyAV (cached in ``--videos``, default
``benchmarks/.videos/``): 30 s with a keyframe every 2 s, and 20 min 7 s with a keyframe every 2 s and every
10 s (as cameras and phones write them; 7 s past whole minutes, so the sampled times do not fall on
keyframes).  Then, on the CPU, in one run:

1. the 30-s video at the default sampling (val_video's 50 frames), end to end through ``predict.predict_clip``
   (measure, decode, transform, network, criterion) plus the JSON and the picture, against the bare forward
   of the same network on the same 50 frames already in memory (same batch, memory format, dtype): for
   ResNet-152 at 224 (random weights) and for the demo's resnet18 at 32 (where the decoder dominates);
   start-up (building the model, loading the checkpoint) apart;
2. decoding the 50 frames of each video: seconds and frames decoded, straight through and by seeking; for
   the 10-s keyframes, each sampled frame's decoded frames against the frames from the keyframe before it
   plus the decoder's reorder delay and one;
3. peak RSS of ``predict.py --fps 2`` (resnet18 at 32) on the 30-s and the 20-min video, each in its own process;
4-6. two streams, the labelled video and the online mode in real time (``benchmarks/bench_predict_streams.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.machine import calibration_step, describe  # noqa: E402

W, H, RATE = 854, 480, 30
VIDEOS = {"short_2s": (30, 2), "long_2s": (20 * 60 + 7, 2), "long_10s": (20 * 60 + 7, 10)}  # seconds, keyframe gap


def make_video(path: str, seconds: float, gop_s: int) -> None:
    """H.264 (x264 'superfast': B-frames, as devices encode) of moving texture, a keyframe every ``gop_s``."""
    import av
    rng = np.random.default_rng(0)
    texture = np.repeat(np.repeat(rng.integers(16, 236, (H // 8 + 9, W // 8 + 9), dtype=np.uint8), 8, 0), 8, 1)
    tmp = path + ".partial.mp4"
    with av.open(tmp, "w") as c:
        s = c.add_stream("libx264", rate=RATE, options={"preset": "superfast", "crf": "28", "g": str(gop_s * RATE),
                                                         "keyint_min": str(gop_s * RATE), "sc_threshold": "0"})
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        chroma = np.full((H // 2, W), 128, np.uint8)
        for i in range(int(seconds * RATE)):
            dx, dy = (3 * i) % 64, (i // 2) % 64
            y = texture[dy:dy + H, dx:dx + W].copy()
            y[(i * 4) % H:(i * 4) % H + 40] = 235  # a moving bar: each frame differs from the last
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.concatenate([y, chroma]), format="yuv420p")))
        c.mux(s.encode())
    os.replace(tmp, path)


def ensure_videos(folder: str, names) -> dict[str, str]:
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for name in names:
        seconds, gop = VIDEOS[name]
        paths[name] = os.path.join(folder, f"{name}.mp4")
        if not os.path.isfile(paths[name]):
            t = time.perf_counter()
            make_video(paths[name], seconds, gop)
            print(f"  wrote {paths[name]} ({seconds} s, keyframe every {gop} s) in {time.perf_counter() - t:.0f} s",
                  flush=True)
    return paths


def model_opts(arch: str, inputsize: int, out: str):
    import predict
    from checkpoints.settings import as_flags
    settings = {**predict.released_settings(), "arch": arch, "inputsize": inputsize}
    opts = predict.build_parser().parse_args(as_flags(settings) + ["x", "--device", "cpu", "-o", out])
    opts.cache = out
    return opts


REPEATS = 3   # runs of predict_clip and of the bare forward: one run of each moved by 5% between runs


def spread(times: list[float]) -> str:
    return " / ".join(f"{t:.2f}" for t in times) + " s"


def end_to_end(path: str, arch: str, inputsize: int, out: str, calib: float) -> dict:
    """Start-up, predict_clip + outputs, and the bare forward on the same frames; prints one block."""
    import torch

    import predict
    import train
    from datasets import video_input
    from models import create_model
    from utils.prediction_plot import draw_prediction
    from utils.predictions import write_json
    opts = model_opts(arch, inputsize, out)
    t0 = time.perf_counter()
    torch.manual_seed(0)
    model, _, _ = create_model(opts)
    ckpt = os.path.join(out, f"{arch}.pth.tar")
    torch.save({"arch": arch, "state_dict": model.state_dict()}, ckpt)
    loaded = predict.checkpoints.load_checkpoint(ckpt)
    opts.resume = ckpt
    stream = predict.rgb_stream(opts, loaded)
    draw_prediction.__globals__["figure"]((1, 1))  # matplotlib's import: start-up too
    startup = time.perf_counter() - t0
    clip = video_input.Clip("video", path, video_input.VIDEO)
    stats: dict = {}
    runs = []   # the first run is a new process's (cold); the median of REPEATS is the figure
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        pred, thumbs = predict.predict_clip(clip, [stream], [], opts, stats)
        runs.append(time.perf_counter() - t0)
    scored = statistics.median(runs)
    t0 = time.perf_counter()
    write_json(pred, out)
    draw_prediction(pred, thumbs, os.path.join(out, "video.png"))
    total = scored + time.perf_counter() - t0
    # the same frames in memory, through the bare network at the same batch size
    frames = video_input.sample_windows(clip.nframes, clip.duration, opts.test_frames)[0]
    t0 = time.perf_counter()
    x = torch.cat(list(video_input.batches(video_input.pictures(clip, frames), len(frames), stream.transform,
                                           opts.batch_size)))
    decode = time.perf_counter() - t0
    with torch.no_grad():
        bares = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            for i in range(0, len(x), opts.batch_size):
                train.forward(stream.model, x[i:i + opts.batch_size], opts)
            bares.append(time.perf_counter() - t0)
        bare = statistics.median(bares)
    ratio = total / bare
    print(f"  {arch} at {inputsize} px, {len(frames)} frames, batch {opts.batch_size}: start-up {startup:.2f} s; "
          f"end to end {total:.2f} s ({total / calib:.0f} steps) = predict_clip {scored:.2f} s + JSON and picture "
          f"{total - scored:.2f} s; bare forward {bare:.2f} s ({bare / calib:.0f} steps); end to end / bare "
          f"{ratio:.2f}x (predict_clip alone {scored / bare:.2f}x); decoding + transform of the 50 frames alone "
          f"{decode:.2f} s ({100 * decode / scored:.0f}% of predict_clip; {stats.get('frames_decoded')} frames "
          f"decoded; medians of {REPEATS}: predict_clip {spread(runs)}, bare {spread(bares)})", flush=True)
    return {"startup": startup, "total": total, "predict_clip": scored, "bare": bare, "ratio": ratio,
            "clip_ratio": scored / bare, "decode": decode}


def decoding(path: str, gop_s: int, calib: float) -> None:
    """The 50 val_video frames of a video: straight through and by seeking."""
    from datasets import video_input
    from utils.video_sample import measure, sampled
    t0 = time.perf_counter()
    length = measure(path, Fraction(24))
    counted = time.perf_counter() - t0
    frames = video_input.sample_windows(length.nframes, length.duration, 50)[0].tolist()
    for seek in (False, True):
        stats: dict = {}
        t0 = time.perf_counter()
        for _ in sampled(path, frames, length, threads=os.cpu_count() or 1, cheap=seek, stats=stats):
            pass
        took = time.perf_counter() - t0
        print(f"  {os.path.basename(path)}: frame count {length.nframes} in {counted:.2f} s "
              f"({'from the tail' if not length.decoded_all else 'full decode'}); 50 frames "
              f"{'by seeking' if seek else 'straight through'}: {took:.2f} s ({took / calib:.0f} steps), "
              f"{stats['frames_decoded']} frames decoded, {stats['seeks']} seeks", flush=True)
    if gop_s == 10:  # each sampled frame against the frames from its keyframe, + reorder delay + 1
        import av
        with av.open(path) as c:
            delay = int(c.streams.video[0].codec_context.has_b_frames)
        gop = gop_s * RATE
        costs = np.diff([0] + stats["marks"])
        shown = [(k - 1) * RATE // 24 for k in frames]
        bound = [j - (j // gop) * gop + 1 + delay for j in shown]
        over = [(k, int(c), b) for k, c, b in zip(frames, costs, bound) if c > b]
        print(f"  per sampled frame: decoded {int(costs.min())}..{int(costs.max())} (mean {costs.mean():.1f}); "
              f"bound (frames from the keyframe before it + reorder delay {delay} + 1) {min(bound)}..{max(bound)}; "
              f"over the bound: {len(over)} of 50 {over[:3]}", flush=True)


def peak_rss(path: str, ckpt: str, out: str) -> float:
    """Peak RSS (MB) of ``predict.py --fps 2`` on ``path`` in a process of its own."""
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across fork and exec, so a child would report this
    # process's peak when it is higher
    code = ("import runpy, sys; sys.argv = sys.argv[1:]\n"
            "try:\n    runpy.run_path('predict.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('RSS', next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))")
    done = subprocess.run([sys.executable, "-c", code, "predict.py", path, "--resume", ckpt, "-o", out, "--fps", "2",
                           "--device", "cpu", "--inputsize", "32", "--no-png"], cwd=REPO, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RSS ")]
    if not lines:
        raise RuntimeError(done.stderr[-2000:])
    return int(lines[-1].split()[1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", default=os.path.join(REPO, "benchmarks", ".videos"))
    ap.add_argument("--skip-long", action="store_true", help="only the 30-s video")
    ap.add_argument("--skip-152", action="store_true", help="no ResNet-152 figures")
    ap.add_argument("--skip-streams", action="store_true", help="no two-stream, labelled-video and online figures "
                    "(sections 4-6: benchmarks/bench_predict_streams.py)")
    ap.add_argument("--only-memory", action="store_true", help="only the peak RSS (part 3)")
    args = ap.parse_args()
    import torch
    print(describe(torch.device("cpu")), flush=True)
    calib = calibration_step()
    print(f"calibration step {calib:.3f} s (times below also in steps)", flush=True)
    names = ["short_2s"] + ([] if args.skip_long else ["long_2s", "long_10s"])
    paths = ensure_videos(args.videos, names)
    with tempfile.TemporaryDirectory() as out:
        print("1. end to end against the bare forward (30-s video, 50 frames)", flush=True)
        results = {}
        if not args.skip_152 and not args.only_memory:
            results["resnet152"] = end_to_end(paths["short_2s"], "resnet152", 224, out, calib)
        results["resnet18"] = end_to_end(paths["short_2s"], "resnet18", 32, out, calib)
        print("2. decoding the 50 frames", flush=True)
        for name in [] if args.only_memory else names:
            decoding(paths[name], VIDEOS[name][1], calib)
        if not args.skip_long:
            print("3. memory of predict.py --fps 2 (resnet18 at 32)", flush=True)
            ckpt = os.path.join(out, "resnet18.pth.tar")
            rss = {name: peak_rss(paths[name], ckpt, os.path.join(out, name)) for name in ("short_2s", "long_2s")}
            print(f"  peak RSS: 30 s {rss['short_2s']:.0f} MB, 20 min 7 s {rss['long_2s']:.0f} MB "
                  f"(+{rss['long_2s'] - rss['short_2s']:.0f} MB)", flush=True)
        print(json.dumps({k: {m: round(v, 3) for m, v in r.items()} for k, r in results.items()}))
    if not args.skip_streams and not args.only_memory:
        from benchmarks.bench_predict_streams import main as streams
        streams(paths["short_2s"], calib)


if __name__ == "__main__":
    main()
