"""Every option of the project, with the original's defaults (SPEC section 9).

``parse(argv=None)`` returns one namespace that is passed down explicitly; nothing reads options
from anywhere else.  ``opts.cache`` is ``<cache-dir>/<name>/``, created on demand.  ``parse`` checks every
value against ``RULES`` (and the few rules that involve several options) before anything runs: a value
out of range is a usage error that names the option and its valid range.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

from utils import cli

DATASETS = ("charadesrgb", "charadesflow", "charadesrgbsubset", "jesterrgb", "somethingrgb", "fake", "testdata1")
FLIP_MODES = ("auto", "none", "original", "mirror")  # datasets/mirror.py
FRAME_GAPS = ("skip", "present", "error")             # datasets/frame_index.py


def _default_device() -> str:
    try:
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # opts must parse even where torch is absent (e.g. the evaluator's machine)
        return "cpu"


def _bool(text: str) -> bool:
    """Accept the spellings people type for a switch that also takes a value (``--adjustment false``)."""
    low = str(text).lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")


IMAGENET_V1 = "IMAGENET1K_V1"  # torchvision's first ImageNet weights: the original's pretrained=True


def _pretrained(text: str) -> str | bool:
    """``--pretrained [TAG]``: a torchvision weights tag (bare or true: ``IMAGENET1K_V1``), or false."""
    try:
        return IMAGENET_V1 if _bool(text) else False
    except argparse.ArgumentTypeError:
        return str(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed so scripts can add their own flags)."""
    p = cli.ArgumentParser(description="Asynchronous Temporal Fields (AsyncTF) on Charades")
    switch = dict(nargs="?", const=True, default=False, type=_bool)
    # data
    p.add_argument("--data", default="", help="root of the frame tree <data>/<id>/<id>-NNNNNN.jpg")
    p.add_argument("--dataset", default="charadesrgb", help="one of " + ", ".join(DATASETS))
    p.add_argument("--train-file", default="", help="training annotation CSV")
    p.add_argument("--val-file", default="", help="validation/test annotation CSV")
    p.add_argument("--labels-file", default="",
                   help="jesterrgb / somethingrgb: the class list (default: jester-v1-labels.csv or "
                        "something-something-v2-labels.json next to --train-file)")
    p.add_argument("--flip", default="auto", choices=FLIP_MODES,
                   help="training flips: auto = the dataset's default (Charades RGB: original, Charades flow: "
                        "none, Jester: none, Something-Something: mirror); none; original = the original's "
                        "(RGB: RandomHorizontalFlip whatever the class; flow: none); mirror = flip and swap "
                        "left/right classes, never flip a direction class without a mirror (flow: flip the stack "
                        "and negate horizontal motion)")
    p.add_argument("--frame-gaps", default="skip", choices=FRAME_GAPS,
                   help="a video with gaps in its frame numbering: skip it (logged per video), use the frames "
                        "present, or stop with an error")
    p.add_argument("--test-frames", default=50, type=int, help="frames scored per video in val_video")
    p.add_argument("--inputsize", default=224, type=int)
    p.add_argument("--nclass", default=157, type=int)
    # model
    p.add_argument("--arch", default="resnet152", help="a torchvision classification model, or vgg16flow")
    p.add_argument("--pretrained", nargs="?", const=IMAGENET_V1, default=False, type=_pretrained, metavar="TAG",
                   help="torchvision ImageNet weights: bare, IMAGENET1K_V1 (the original's pretrained=True, "
                        "the published run); or a torchvision weights tag, e.g. IMAGENET1K_V2 or DEFAULT")
    p.add_argument("--pretrained-weights", default="", help="a local state dict to start from")
    p.add_argument("--nhidden", default=10, type=int, help="rank H of the pairwise term aa = U V")
    # optimisation
    p.add_argument("-j", "--workers", default=4, type=int)
    p.add_argument("--epochs", default=20, type=int)
    p.add_argument("--start-epoch", default=0, type=int)
    p.add_argument("-b", "--batch-size", default=256, type=int)
    p.add_argument("--lr", default=1e-3, type=float)
    p.add_argument("--lr-decay-rate", default=6, type=int, help="lr * 0.1 ** (epoch // lr_decay_rate)")
    p.add_argument("--momentum", default=0.9, type=float)
    p.add_argument("--weight-decay", default=1e-4, type=float)
    p.add_argument("--accum-grad", default=1, type=int, help="optimiser step every N batches")
    p.add_argument("--max-nonfinite", default=0, type=int, metavar="N",
                   help="training batches with a non-finite loss (NaN, inf) skipped before the run stops as "
                        "diverged; 0: stop at the first (nothing of that epoch is saved)")
    p.add_argument("--train-size", default=1.0, type=float, help="fraction of the train loader per epoch")
    p.add_argument("--val-size", default=1.0, type=float, help="fraction of the val loader per epoch")
    # AsyncTF criterion (SPEC section 4)
    p.add_argument("--temporal-weight", default=1.0, type=float)
    p.add_argument("--temporalloss-weight", default=1.0, type=float)
    p.add_argument("--memory-decay", default=0.9, type=float)
    p.add_argument("--memory-size", default=20, type=int)
    p.add_argument("--sigma", default=150, type=float)
    p.add_argument("--adjustment", **switch)
    p.add_argument("--originalloss-weight", default=1.0, type=float)
    p.add_argument("--balanceloss", **switch)
    p.add_argument("--window-smooth", default=3, type=int)
    # run
    p.add_argument("--print-freq", default=10, type=int)
    p.add_argument("--resume", default="", help="checkpoint to resume from")
    p.add_argument("-e", "--evaluate", **switch, help="only validate and validate_video")
    p.add_argument("--manual-seed", default=0, type=int)
    p.add_argument("--cache-dir", default="./cache/")
    p.add_argument("--name", default="test")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--localize", **switch, help="also write localize_NNN.txt submissions")
    p.add_argument("--plot", **switch, help="refresh <cache>/curves.png after every epoch (needs matplotlib)")
    p.add_argument("--ignore-bad-state", **switch,
                   help="a corrupt criterion-state file only warns and the buffer starts empty")
    p.add_argument("--trust-checkpoint", **switch,
                   help="load --resume / --pretrained-weights files with full unpickling (can run code: only "
                        "for files you trust); by default only tensors, numbers and containers load")
    # speed (all off by default: the plain path is the reference)
    p.add_argument("--amp", **switch, help="bf16 autocast (fp16 + grad scaler where bf16 is unavailable)")
    p.add_argument("--channels-last", **switch, help="channels_last memory format for the model and inputs")
    p.add_argument("--compile", **switch, help="torch.compile the model (not the criterion)")
    p.add_argument("--fast-loader", **switch,
                   help="reduced-size JPEG decoding, uint8 samples, colour jitter and normalisation per batch")
    p.add_argument("--gpu-decode", **switch,
                   help="RGB: workers only read the JPEG bytes; decode (nvJPEG), crop, resize, jitter and "
                        "normalisation per batch on --device (meant for CUDA)")
    # distributed (torchrun sets RANK/WORLD_SIZE/MASTER_ADDR; these are the original's flags)
    p.add_argument("--world-size", default=1, type=int)
    p.add_argument("--dist-url", default="env://")
    p.add_argument("--dist-backend", default="nccl")
    p.add_argument("--sync-bn", nargs="?", const=True, default=True, type=_bool,
                   help="with several CUDA processes, BatchNorm over the global batch (SyncBatchNorm), so "
                        "the run equals a single process's; --sync-bn false keeps per-process statistics")
    return p


def _number(low: float | None = None, high: float | None = None, low_open: bool = False) -> tuple:
    """A rule for a finite number in [low, high] ((low, high] with ``low_open``): (check, the range in words)."""
    def check(v) -> bool:
        return math.isfinite(v) and (low is None or (v > low if low_open else v >= low)) and (high is None or v <= high)
    text = lambda x: str(int(x)) if float(x).is_integer() else f"{x:g}"  # noqa: E731
    words = [f"> {text(low)}" if low_open else f">= {text(low)}"] if low is not None else []
    words += [f"<= {text(high)}"] if high is not None else []
    return check, " and ".join(words) or "a finite number"


# option (dest) -> (check, valid range).  Options that a rule does not name are not checked; add yours.
RULES: dict[str, tuple] = {
    "epochs": _number(1), "start_epoch": _number(0), "batch_size": _number(1), "workers": _number(0),
    "lr": _number(0), "lr_decay_rate": _number(1), "momentum": _number(0), "weight_decay": _number(0),
    "accum_grad": _number(1), "train_size": _number(0, 1, low_open=True), "val_size": _number(0, 1, low_open=True),
    "test_frames": _number(1), "inputsize": _number(1), "nclass": _number(1), "nhidden": _number(1),
    "temporal_weight": _number(0), "temporalloss_weight": _number(0), "originalloss_weight": _number(0),
    "memory_decay": _number(0, low_open=True), "memory_size": _number(1), "sigma": _number(0, low_open=True),
    "window_smooth": _number(0), "print_freq": _number(1), "world_size": _number(1),
    "manual_seed": _number(0, 2 ** 32 - 1), "max_nonfinite": _number(0),
}
RELEASED_MODELS = {"asynctf_rgb.pth.tar": "https://www.dropbox.com/s/1jqythww7fofyg3/asynctf_rgb.pth.tar?dl=1"}


def _cross_checks(opts: argparse.Namespace) -> list[str]:
    """Rules that involve several options or the file system; each message names the options."""
    errors = []
    if opts.start_epoch >= opts.epochs and not opts.evaluate:
        errors.append(f"argument --start-epoch: {opts.start_epoch} leaves nothing to train with --epochs "
                      f"{opts.epochs} (valid: < --epochs)")
    if opts.resume and not os.path.isfile(opts.resume):
        what = "is a directory, not a checkpoint file" if os.path.isdir(opts.resume) else "no such file"
        url = RELEASED_MODELS.get(os.path.basename(opts.resume))
        errors.append(f"argument --resume: {opts.resume}: {what}" +
                      (f" (the released model: download it from {url} into the current folder, or give its path)"
                       if url else ""))
    if opts.evaluate and not (opts.resume or opts.pretrained or opts.pretrained_weights):
        errors.append("argument --evaluate: needs weights to evaluate: --resume CHECKPOINT (or --pretrained / "
                      "--pretrained-weights FILE); without them it would score a random network")
    return errors


def validate(opts: argparse.Namespace) -> list[str]:
    """Every problem with ``opts`` (empty when they are fine): one message per option, naming it, its
    value and the valid range."""
    errors = []
    for dest, (check, valid) in RULES.items():
        value = getattr(opts, dest, None)
        if value is not None and not check(value):
            what = "is out of range" if math.isfinite(value) else "is not a finite number"
            errors.append(f"argument --{dest.replace('_', '-')}: {value!r} {what} (valid: {valid})")
    return errors or _cross_checks(opts)


def parse(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Parse ``argv`` (``sys.argv[1:]`` when None) into the run's options (``parser``: ``build_parser()``
    with a script's own flags added).  Invalid values are a usage error (exit status 2) naming them."""
    parser = parser or build_parser()
    opts = parser.parse_args(sys.argv[1:] if argv is None else argv)
    errors = validate(opts)
    if errors:  # the option and its range say it all: no usage block of every option
        parser.exit(2, f"{parser.prog}: error: " + "\n".join(errors) + "\n")
    if opts.device is None:
        opts.device = _default_device()
    opts.cache = os.path.join(opts.cache_dir, opts.name)
    os.makedirs(opts.cache, exist_ok=True)
    return opts
