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
import importlib.util
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import torch

import checkpoints
import opts as options
import train
from checkpoints.settings import MODEL_OPTIONS, SettingsError, as_flags, recorded_settings
from datasets import class_names, video_input
from datasets.transforms import val_transform
from models import create_model
from models.asynctf import AsyncTFCriterion
from utils import cli
from utils.cores import usable_cores
from utils.predictions import VideoPrediction, output_name, submission_id, table, write_json
from utils.submission import write_classification, write_localization

log = logging.getLogger("predict")
REPO = os.path.dirname(os.path.abspath(__file__))
RELEASED_EXPERIMENT = os.path.join(REPO, "exp", "asynctf_rgb.py")
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
    p.set_defaults(batch_size=50, workers=0)
    return p


def released_settings() -> dict:
    """The model options of ``exp/asynctf_rgb.py`` (the released model's experiment), read from its FLAGS."""
    spec = importlib.util.spec_from_file_location("_asynctf_rgb_experiment", RELEASED_EXPERIMENT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    flags = vars(options.build_parser().parse_args(module.FLAGS))
    return {name: flags[name] for name in MODEL_OPTIONS}


def weights_of(ckpt, path: str) -> dict:
    """The state dict of a loaded checkpoint, checked to be an RGB AsyncTF network."""
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise cli.UserError(f"--resume {path}: not a checkpoint of a network (no weights in it)")
    heads = [k for k in state if k.endswith("mA.weight")]
    if not heads or not any(k.endswith("mAAa.weight") for k in state):
        raise cli.UserError(f"--resume {path}: not an AsyncTF checkpoint (no AsyncTF head: no fc.mA / fc.mAAa "
                            f"weights); give one that main.py wrote, or the released asynctf_rgb.pth.tar")
    first = next((v for v in state.values() if isinstance(v, torch.Tensor) and v.dim() == 4), None)
    if first is not None and first.shape[1] == 20:
        raise cli.UserError(f"--resume {path}: a flow-stream checkpoint (its first layer takes 20 flow channels); "
                            f"predict.py scores RGB frames: give the RGB stream's checkpoint")
    return state


def resolve(argv: list[str]) -> tuple[argparse.Namespace, dict, list[str]]:
    """The options (exp/asynctf_rgb.py's, or the checkpoint's recorded ones; then the command line), the
    loaded checkpoint and the class names."""
    parser = build_parser()
    first = parser.parse_args(argv)
    if not first.resume:
        parser.error("--resume CHECKPOINT is required (the released model: asynctf_rgb.pth.tar)")
    if not os.path.isfile(first.resume):
        raise cli.UserError(options.validate(first)[-1] if options.validate(first) else
                            f"--resume {first.resume}: no such file")
    try:
        ckpt = checkpoints.load_checkpoint(first.resume, trusted=first.trust_checkpoint)
        recorded = recorded_settings(ckpt, first.resume)
    except (checkpoints.CheckpointError, SettingsError) as e:
        raise cli.UserError(str(e)) from None
    state = weights_of(ckpt, first.resume)
    settings = dict(recorded or released_settings())
    if recorded is None:  # what the weights themselves say wins over the experiment's file
        head = next(k for k in state if k.endswith("mA.weight"))
        nclass = state[head].shape[0]
        settings.update(nclass=nclass, nhidden=state[head[:-len("mA.weight")] + "mAAa.weight"].shape[0] // nclass)
        if isinstance(ckpt, dict) and isinstance(ckpt.get("arch"), str):
            settings["arch"] = ckpt["arch"]
    opts = parser.parse_args(as_flags(settings) + argv)
    errors = options.validate(opts)
    if opts.fps is not None and not 0 < opts.fps <= 24:
        errors.append(f"argument --fps: {opts.fps} is out of range (valid: > 0 and <= 24, the frame tree's rate)")
    if opts.frames is not None and opts.frames < 1:
        errors.append(f"argument --frames: {opts.frames} is out of range (valid: >= 1)")
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


@dataclass
class Stream:
    """One scored stream: its network (on ``opts.device``) and options, how a frame becomes its input, and
    its weight when streams are fused (as ``combine_rgb_flow.py``: weights normalised to sum to 1)."""

    name: str
    model: torch.nn.Module
    opts: argparse.Namespace
    transform: object
    weight: float = 1.0

    def score(self, clip: video_input.Clip, frames: np.ndarray, stats: dict, thumbs: dict | None) -> np.ndarray:
        """(T x C) synchronous scores of ``frames`` of ``clip``, from an empty message buffer."""
        criterion = AsyncTFCriterion(self.opts).to(self.opts.device)
        batches = video_input.batches(clip, frames, self.transform, self.opts.batch_size, usable_cores(), stats,
                                      thumbs)
        return train.score_frames(self.model, criterion, batches, clip.id, frames, self.opts).cpu().numpy()


def rgb_stream(opts: argparse.Namespace, ckpt: dict) -> Stream:
    """The RGB network of ``opts`` with the checkpoint's weights, in eval mode."""
    model, _, _ = create_model(argparse.Namespace(**{**vars(opts), "pretrained": False, "pretrained_weights": ""}))
    try:
        checkpoints.load_into(opts.resume, ckpt, model)
    except checkpoints.CheckpointError as e:
        raise cli.UserError(str(e)) from None
    if opts.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return Stream("rgb", model.eval(), opts, val_transform(opts))


def predict_clip(clip: video_input.Clip, streams: list[Stream], names: list[str], opts: argparse.Namespace,
                 stats: dict | None = None) -> tuple[VideoPrediction, list]:
    """Score one clip: its windows of frames through every stream, fused; returns the prediction and the
    thumbnails ``(time, image)``."""
    video_input.measure_clip(clip, usable_cores())
    windows = video_input.sample_windows(clip.nframes, clip.duration, opts.test_frames, opts.fps, opts.frames)
    frames = np.concatenate(windows)
    thumbs = dict.fromkeys(video_input.thumbnail_frames(frames, THUMBNAILS))
    total = sum(s.weight for s in streams)
    probs = np.concatenate([sum(s.weight / total * s.score(clip, w, stats if stats is not None else {}, thumbs)
                                for s in streams) for w in windows])
    pred = VideoPrediction(clip.id, clip.duration, frames, video_input.frame_times(frames), probs, names,
                           even=opts.fps is None, notes=clip.notes)
    return pred, [((k - 1) / 24, img) for k, img in sorted(thumbs.items()) if img is not None]


def writable(out: str) -> None:
    """Create ``out``; a ``UserError`` naming it when it cannot be written."""
    try:
        os.makedirs(out, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise cli.UserError(f"cannot write to the output folder {out}: {e.strerror or e}; give -o a folder you "
                            f"can write") from None


def main(argv: list[str] | None = None) -> int:
    """Predict every input; returns 0, or 2 when some inputs could not be scored (listed at the end)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    opts, ckpt, names = resolve(argv)
    writable(opts.out)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from extract_frames import VIDEO_EXTENSIONS, find_videos  # one video search for both scripts
    clips = video_input.find_inputs(opts.inputs, opts.ext or VIDEO_EXTENSIONS, find_videos)
    streams = [rgb_stream(opts, ckpt)]
    done, failed = [], []
    for clip in clips:
        start = time.perf_counter()
        try:
            pred, thumbs = predict_clip(clip, streams, names, opts)
        except cli.UserError as e:
            failed.append((clip, str(e)))
            log.warning("skipped %s: %s", clip.path, e)
            continue
        write_json(pred, opts.out)
        if not opts.no_png:
            from utils.prediction_plot import draw_prediction
            draw_prediction(pred, thumbs, os.path.join(opts.out, output_name(pred.id) + ".png"), opts.top + 1)
        print(table(pred, opts.top) + f"\n  ({time.perf_counter() - start:.1f} s)\n", flush=True)
        done.append(pred)
    if done:
        ids = [submission_id(p.id) for p in done]
        write_classification(os.path.join(opts.out, "classify.txt"), ids, np.stack([p.scores for p in done]))
        write_localization(os.path.join(opts.out, "localize.txt"), ids, np.stack([p.localization() for p in done]))
    print(f"{len(done)} of {len(clips)} inputs scored; outputs in {opts.out}", flush=True)
    for clip, why in failed:
        print(f"  not scored: {clip.path}: {why}", file=sys.stderr)
    if failed and not done:
        raise cli.UserError(f"none of the {len(clips)} inputs could be scored (above)")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
