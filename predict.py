#!/usr/bin/env python
"""Your own video in, actions with time spans out.

    python predict.py INPUT... --resume CHECKPOINT [-o OUT] [--fps F | --frames N] [--device ...] [--amp]

INPUT: video files (any container FFmpeg reads, through PyAV), folders of them, or frame folders
``<id>/<id>-NNNNNN.jpg`` as ``extract_frames.py`` writes them.  The checkpoint decides the model: the
options it was trained with and its class names are recorded in it (``checkpoints/settings.py``); a
checkpoint without them (the released ``asynctf_rgb.pth.tar``, older ones) takes ``exp/asynctf_rgb.py``'s
settings, and flags on the command line override either.

By default each video is scored on the 50 frames ``get_alltest.py`` scores on the frame tree
``extract_frames.py`` makes of it, in the same synchronous mode (``--frames N``: N such frames; ``--fps F``:
F frames per second, in windows of 50 frames each scored as one video).  Writes into OUT
(``./predictions/``), atomically: ``<id>.json`` (class scores, per-frame scores, segments), ``<id>.png``
(the timeline), and for all inputs ``classify.txt`` / ``localize.txt`` (the Charades submission formats);
prints a table of each video's top actions with their time spans.  See docs/predict.md.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

import checkpoints
import opts as options
import train
from checkpoints.settings import MODEL_OPTIONS, SettingsError, as_flags, recorded_settings
from checkpoints.stream import checkpoint_stream
from datasets import class_names, video_flow, video_input
from datasets.transforms import flow_val_transform, val_transform
from models import create_model
from models.asynctf import AsyncTFCriterion
from utils import cli
from utils.cores import usable_cores
from utils.fused_prediction import FusedPrediction
from utils.fusion import FusionError, normalised
from utils.predictions import VideoPrediction, output_name, submission_id, table, write_json
from utils.segments import moving_average
from utils.submission import write_classification, write_localization

log = logging.getLogger("predict")
REPO = os.path.dirname(os.path.abspath(__file__))
RELEASED_EXPERIMENT = os.path.join(REPO, "exp", "asynctf_rgb.py")
FLOW_EXPERIMENT = os.path.join(REPO, "exp", "asynctf_flow.py")  # a flow checkpoint that records no settings
STREAM_OPTION = {"rgb": "--resume", "flow": "--flow-resume"}
THUMBNAILS = 8


def build_parser() -> argparse.ArgumentParser:
    """The training options (which shape the model) plus predict's own."""
    p = options.build_parser()
    p.prog, p.description = "predict.py", __doc__.split("\n\n")[0]
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video files, folders of videos, frame folders")
    p.add_argument("-o", "--out", default="predictions", help="output folder")
    every = p.add_mutually_exclusive_group()
    every.add_argument("--fps", type=float, default=None, help="score F frames per second, in windows of "
                       "--test-frames frames (default: val_video's --test-frames frames per video)")
    every.add_argument("--frames", type=int, default=None, help="score N frames per video, placed as val_video's")
    p.add_argument("--top", type=int, default=5, help="actions shown per video in the table (the picture: one more)")
    p.add_argument("--no-png", action="store_true", help="do not draw the timeline pictures")
    p.add_argument("--ext", default=None, help="video file extensions searched in folders (comma-separated)")
    two = p.add_argument_group("two streams (docs/predict.md)")
    two.add_argument("--flow-resume", default="", metavar="CHECKPOINT", help="the flow stream's checkpoint: "
                     "also score optical flow (computed as extract_frames.py --flow does) and fuse the two "
                     "streams as combine_rgb_flow.py")
    two.add_argument("--flow-method", choices=("auto", "tvl1", "farneback"), default="auto",
                     help="as extract_frames.py: auto is TV-L1 where OpenCV has it (seconds per frame pair on a "
                          "CPU), else Farneback")
    two.add_argument("--flow-bound", type=float, default=20.0, help="flow clipping bound in pixels, as "
                     "extract_frames.py")
    two.add_argument("--flow-short-side", type=int, default=256, help="compute the flow on frames scaled to this "
                     "shorter side, as extract_frames.py --short-side N --flow (0: full size); use the size of "
                     "the flow tree the model was trained on")
    two.add_argument("--weights", nargs=2, type=float, default=(0.5, 0.5), metavar=("W_RGB", "W_FLOW"),
                     help="weights of the two streams, normalised to sum to 1, as combine_rgb_flow.py")
    out = p.add_argument_group("labelled video and online mode (docs/predict.md)")
    out.add_argument("--out-video", action="store_true", help="also write <id>.mp4: the video with its top actions "
                     "drawn on it (H.264, audio kept); a frame folder is drawn at 24 fps")
    out.add_argument("--online", action="store_true", help="score frames in order, each from the frames before it "
                     "only (causal), printing each as it is decoded; --fps F sets the frames scored (default 4)")
    out.add_argument("--realtime", action="store_true", help="with --online: pace a file at its own speed and drop "
                     "frames rather than fall behind; INPUT may be a URL or a capture device (v4l2:/dev/video0)")
    p.set_defaults(batch_size=50, workers=0)
    return p


def experiment_settings(path: str = RELEASED_EXPERIMENT) -> dict:
    """The model options of an experiment file (``exp/asynctf_rgb.py``: the released model's), from its FLAGS."""
    spec = importlib.util.spec_from_file_location("_experiment_" + os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    with contextlib.redirect_stderr(io.StringIO()):  # its warnings are about training (exp/asynctf_flow.py's)
        spec.loader.exec_module(module)
    flags = vars(options.build_parser().parse_args(module.FLAGS))
    return {name: flags[name] for name in MODEL_OPTIONS}


def released_settings() -> dict:
    """The model options of ``exp/asynctf_rgb.py`` (the released model's experiment)."""
    return experiment_settings(RELEASED_EXPERIMENT)


def weights_of(ckpt, path: str, stream: str = "rgb") -> dict:
    """The state dict of a loaded checkpoint, checked to be an AsyncTF network of ``stream`` (rgb, flow): its
    first layer says which (``checkpoints.stream``)."""
    option = STREAM_OPTION[stream]
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise cli.UserError(f"{option} {path}: not a checkpoint of a network (no weights in it)")
    heads = [k for k in state if k.endswith("mA.weight")]
    if not heads or not any(k.endswith("mAAa.weight") for k in state):
        raise cli.UserError(f"{option} {path}: not an AsyncTF checkpoint (no AsyncTF head: no fc.mA / fc.mAAa "
                            f"weights); give one that main.py wrote, or the released asynctf_rgb.pth.tar")
    found = checkpoint_stream(state)
    if found == "flow" and stream == "rgb":
        raise cli.UserError(f"--resume {path}: a flow-stream checkpoint (its first layer takes 20 flow channels); "
                            f"give it as --flow-resume, and the RGB stream's checkpoint as --resume")
    if found == "rgb" and stream == "flow":
        raise cli.UserError(f"--flow-resume {path}: an RGB checkpoint (its first layer takes 3 colour channels); "
                            f"give the flow stream's checkpoint (20 input channels) as --flow-resume")
    return state


def checkpoint_settings(path: str, trusted: bool, stream: str, experiment: str) -> tuple[dict, dict | None, dict]:
    """``(checkpoint, recorded settings or None, settings)`` of a checkpoint file of ``stream``: the settings
    it records, else the ``experiment`` file's with the class count, hidden size and arch its weights say."""
    option = STREAM_OPTION[stream]
    if not os.path.isfile(path):
        raise cli.UserError(f"{option} {path}: no such file")
    try:
        ckpt = checkpoints.load_checkpoint(path, trusted=trusted)
        recorded = recorded_settings(ckpt, path)
    except (checkpoints.CheckpointError, SettingsError) as e:
        raise cli.UserError(str(e)) from None
    state = weights_of(ckpt, path, stream)
    settings = dict(recorded or experiment_settings(experiment))
    if recorded is None:  # what the weights themselves say wins over the experiment's file
        head = next(k for k in state if k.endswith("mA.weight"))
        nclass = state[head].shape[0]
        settings.update(nclass=nclass, nhidden=state[head[:-len("mA.weight")] + "mAAa.weight"].shape[0] // nclass)
        if isinstance(ckpt, dict) and isinstance(ckpt.get("arch"), str):
            settings["arch"] = ckpt["arch"]
    return ckpt, recorded, settings


def resolve(argv: list[str]) -> tuple[argparse.Namespace, dict, list[str]]:
    """The options (exp/asynctf_rgb.py's, or the checkpoint's recorded ones; then the command line), the
    loaded checkpoint and the class names."""
    parser = build_parser()
    first = parser.parse_args(argv)
    if not first.resume:
        parser.error("--resume CHECKPOINT is required (the released model: asynctf_rgb.pth.tar)")
    if not os.path.isfile(first.resume):  # the message names the released model's address for its name
        found = [e for e in options._cross_checks(first) if e.startswith("argument --resume")]
        raise cli.UserError(found[0] if found else f"argument --resume: {first.resume}: no such file")
    ckpt, recorded, settings = checkpoint_settings(first.resume, first.trust_checkpoint, "rgb", RELEASED_EXPERIMENT)
    opts = parser.parse_args(as_flags(settings) + argv)
    errors = options.validate(opts)
    if opts.fps is not None and not 0 < opts.fps <= 24:
        errors.append(f"argument --fps: {opts.fps} is out of range (valid: > 0 and <= 24, the frame tree's rate)")
    if opts.frames is not None and opts.frames < 1:
        errors.append(f"argument --frames: {opts.frames} is out of range (valid: >= 1)")
    errors += mode_errors(opts)
    if errors:
        parser.exit(2, f"{parser.prog}: error: " + "\n".join(errors) + "\n")
    opts.device = opts.device or options._default_device()
    opts.cache = opts.out
    names = (recorded or {}).get("class_names") if not opts.labels_file else None
    if names is None:
        try:
            names = class_names(opts) or []
        except (OSError, ValueError) as e:
            raise cli.UserError(f"{e} (the class names of a {opts.dataset} checkpoint: --labels-file FILE)") from None
    if names and len(names) != opts.nclass:
        raise cli.UserError(f"the class names ({opts.labels_file or 'recorded'}) are {len(names)} but the checkpoint "
                            f"{opts.resume} has {opts.nclass} classes: give the labels file it was trained with")
    return opts, ckpt, list(names)


def mode_errors(opts: argparse.Namespace) -> list[str]:
    """The options of the two-stream, labelled-video and online modes that do not fit together."""
    errors = []
    if opts.realtime and not opts.online:
        errors.append("argument --realtime: paces the online mode; add --online")
    if opts.online and opts.frames is not None:
        errors.append("argument --frames: the online mode scores --fps F frames per second (a stream has no length "
                      "to place N frames on)")
    if opts.flow_bound <= 0 or opts.flow_short_side < 0:
        errors.append("argument --flow-bound must be positive and --flow-short-side >= 0")
    try:
        normalised(opts.weights)
    except FusionError as e:
        errors.append(f"argument {e}")
    return errors


def resolve_flow(opts: argparse.Namespace, argv: list[str]) -> tuple[argparse.Namespace, dict]:
    """The flow stream's options (its checkpoint's recorded ones, else ``exp/asynctf_flow.py``'s; then the
    command line) and its loaded checkpoint; it must score the RGB checkpoint's classes."""
    ckpt, _, settings = checkpoint_settings(opts.flow_resume, opts.trust_checkpoint, "flow", FLOW_EXPERIMENT)
    flow = build_parser().parse_args(as_flags(settings) + argv)
    flow.dataset = "charadesflow"  # a torchvision arch is widened to 20 input channels
    if flow.nclass != opts.nclass:
        raise cli.UserError(f"--flow-resume {opts.flow_resume} scores {flow.nclass} classes but --resume {opts.resume} "
                            f"scores {opts.nclass}: the two streams must be trained on the same classes")
    flow.device, flow.cache = opts.device, opts.cache
    return flow, ckpt


@dataclass
class Stream:
    """One scored stream: its network (on ``opts.device``) and options, the transform of its inputs, and how a
    clip's frames become its inputs: ``inputs(clip, frames, stats, thumbs) -> (batches, frame numbers)``."""

    name: str
    model: torch.nn.Module
    opts: argparse.Namespace
    transform: Callable
    inputs: Callable

    def score(self, clip: video_input.Clip, windows: list[np.ndarray], stats: dict, thumbs: dict | None
              ) -> tuple[np.ndarray, np.ndarray]:
        """``(frame numbers, T x C scores)`` of ``clip``'s frames: the inputs of all ``windows`` in one pass
        through the network, then each window scored synchronously from an empty message buffer."""
        batches, numbers = self.inputs(clip, np.concatenate(windows), stats, thumbs)
        a, aa = train.network_outputs(self.model, batches, self.opts)
        probs, at = [], 0
        for w in windows:
            criterion = AsyncTFCriterion(self.opts).to(self.opts.device)
            part = slice(at, at + len(w))
            probs.append(train.synchronous_scores(criterion, a[part], aa, clip.id, numbers[part]).cpu().numpy())
            at += len(w)
        return numbers, np.concatenate(probs)


def load_network(opts: argparse.Namespace, ckpt: dict, path: str) -> torch.nn.Module:
    """The network of ``opts`` with the checkpoint's weights, in eval mode."""
    model, _, _ = create_model(argparse.Namespace(**{**vars(opts), "pretrained": False, "pretrained_weights": ""}))
    checkpoints.load_into(path, ckpt, model)  # a CheckpointError is a user error: cli.run prints its line
    if opts.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.eval()


def rgb_stream(opts: argparse.Namespace, ckpt: dict) -> Stream:
    """The RGB stream: the checkpoint's network on the frames as ``get_alltest.py`` sees them."""
    transform = val_transform(opts)

    def inputs(clip, frames, stats, thumbs):
        images = video_input.pictures(clip, frames, usable_cores(), stats)  # decoded once, streaming
        return video_input.batches(images, len(frames), transform, opts.batch_size, thumbs), frames
    return Stream("rgb", load_network(opts, ckpt, opts.resume), opts, transform, inputs)


def flow_inputs(opts: argparse.Namespace) -> Callable:
    """How a clip's frames become flow stacks: 10 flow pairs from each scored frame (moved back to fit at the
    end), read from a frame folder's flow files or computed while the video decodes (``datasets.video_flow``,
    ``--flow-method``, ``--flow-bound``, ``--flow-short-side``); says beforehand how long TV-L1 will take."""
    from utils.video_frames import flow_method
    try:
        method = flow_method(opts.flow_method)
    except ImportError as e:
        raise cli.UserError(str(e)) from None
    transform = flow_val_transform(opts)

    def inputs(clip, frames, stats, thumbs):
        starts = video_flow.stack_starts(frames, video_flow.flow_count(clip))
        if clip.kind == video_input.VIDEO:
            pairs, size, seconds = video_flow.expected_cost(clip, starts, method, opts.flow_short_side, usable_cores())
            (log.warning if seconds > 30 else log.info)(
                "%s: %d flow frame pairs by %s at %dx%d: expect about %.0f s", clip.id, pairs, method, *size, seconds)
        batches = video_flow.flow_batches(clip, starts, transform, opts.batch_size, method, opts.flow_bound,
                                          opts.flow_short_side, usable_cores(), stats)
        return batches, starts
    return inputs


def flow_stream(opts: argparse.Namespace, ckpt: dict) -> Stream:
    """The flow stream: the checkpoint's network (20 input channels) on ``flow_inputs``."""
    inputs = flow_inputs(opts)
    return Stream("flow", load_network(opts, ckpt, opts.flow_resume), opts, flow_val_transform(opts), inputs)


def predict_clip(clip: video_input.Clip, streams: list[Stream], names: list[str], opts: argparse.Namespace,
                 stats: dict | None = None) -> tuple[VideoPrediction, list]:
    """Score one clip: its windows of frames through every stream, fused as ``combine_rgb_flow.py`` fuses
    two submission files (``FusedPrediction``); returns the prediction and the thumbnails ``(time, image)``."""
    video_input.measure_clip(clip, usable_cores())
    windows = video_input.sample_windows(clip.nframes, clip.duration, opts.test_frames, opts.fps, opts.frames)
    frames = np.concatenate(windows)
    thumbs = dict.fromkeys(video_input.thumbnail_frames(frames, THUMBNAILS))
    preds = []
    for s in streams:
        numbers, probs = s.score(clip, windows, stats if stats is not None else {}, thumbs if s.name == "rgb" else None)
        preds.append(VideoPrediction(clip.id, clip.duration, numbers, video_input.frame_times(numbers), probs, names,
                                     even=opts.fps is None, notes=clip.notes))
    pred = preds[0] if len(preds) == 1 else FusedPrediction.of(preds[0], preds[1], tuple(opts.weights))
    return pred, [((k - 1) / 24, img) for k, img in sorted(thumbs.items()) if img is not None]


def write_video(clip: video_input.Clip, pred: VideoPrediction, opts: argparse.Namespace) -> str:
    """``<out>/<id>.mp4``: the clip with its top actions, labelled at the scored frames with the scores the
    segments are made from (``utils.segments``' smoothing); a frame folder is drawn at 24 fps."""
    from utils.labelled_video import label_pictures, label_video
    path = os.path.join(opts.out, output_name(pred.id) + ".mp4")
    shown = moving_average(pred.probs, pred.rule.smooth)
    if clip.kind == video_input.FRAMES:
        log.info("%s: a frame folder has no source video: the labelled video shows its frames at 24 fps",
                 clip.path)
        frames = (np.asarray(img) for _, img in video_input.pictures(clip, range(1, clip.nframes + 1)))
        label_pictures(frames, video_input.TREE_FPS, path, pred.times, shown, pred.names)
    else:
        label_video(clip.path, path, pred.times, shown, pred.names, threads=usable_cores())
    return path


def writable(out: str) -> None:
    """Create ``out``; a ``UserError`` naming it when it cannot be written."""
    try:
        os.makedirs(out, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise cli.UserError(f"cannot write to the output folder {out}: {e.strerror or e}; give -o a folder you "
                            f"can write") from None


def write_outputs(pred: VideoPrediction, thumbs: list, opts: argparse.Namespace) -> None:
    """``<id>.json`` and (unless ``--no-png``) ``<id>.png`` of one video."""
    write_json(pred, opts.out)
    if not opts.no_png:
        from utils.prediction_plot import draw_prediction
        draw_prediction(pred, thumbs, os.path.join(opts.out, output_name(pred.id) + ".png"), opts.top + 1)


def main(argv: list[str] | None = None) -> int:
    """Predict every input; returns 0, or 2 when some inputs could not be scored (listed at the end)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    opts, ckpt, names = resolve(argv)
    writable(opts.out)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from extract_frames import VIDEO_EXTENSIONS, find_videos  # one video search for both scripts
    if opts.online:
        from predict_online import online_inputs, run_online
        clips = online_inputs(opts.inputs, opts.ext or VIDEO_EXTENSIONS, find_videos)
    else:
        clips = video_input.find_inputs(opts.inputs, opts.ext or VIDEO_EXTENSIONS, find_videos)
    streams = [rgb_stream(opts, ckpt)]
    if opts.flow_resume:
        streams.append(flow_stream(*resolve_flow(opts, argv)))
    if opts.online:
        return run_online(opts, streams, names, clips)
    done, failed = [], []
    for clip in clips:
        start = time.perf_counter()
        try:
            pred, thumbs = predict_clip(clip, streams, names, opts)
        except cli.UserError as e:
            failed.append((clip, str(e)))
            log.warning("not scored: %s", e)
            continue
        write_outputs(pred, thumbs, opts)
        if opts.out_video:
            write_video(clip, pred, opts)
        print(table(pred, opts.top) + f"\n  ({time.perf_counter() - start:.1f} s)\n", flush=True)
        done.append(pred)
    return write_submissions(done, failed, len(clips), opts)


def write_submissions(done: list[VideoPrediction], failed: list, count: int, opts: argparse.Namespace) -> int:
    """``classify.txt`` and ``localize.txt`` of the videos scored, and the summary; returns 0, or 2 when some
    inputs could not be scored (a ``UserError`` when none could)."""
    if done:
        ids = [submission_id(p.id) for p in done]
        write_classification(os.path.join(opts.out, "classify.txt"), ids, np.stack([p.scores for p in done]))
        write_localization(os.path.join(opts.out, "localize.txt"), ids, np.stack([p.localization() for p in done]))
    print(f"{len(done)} of {count} inputs scored; outputs in {opts.out}", flush=True)
    for clip, why in failed:
        print(f"  not scored: {why}", file=sys.stderr)
    if failed and not done:
        raise cli.UserError(f"none of the {count} inputs could be scored (above)")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
