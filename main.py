"""Train and evaluate AsyncTF: the epoch loop, read top to bottom (SPEC section 5).

``python main.py --flags`` or, more usually, ``python exp/asynctf_rgb.py [overrides]``.
"""
from __future__ import annotations

import logging
import os
import random
import sys
import time

import numpy as np
import torch

import checkpoints
import opts as options
from checkpoints.run_state import load_run_state, remove_stale_states, save_run_state
import train
from datasets import get_dataset
from models import create_model
from utils import charades_eval
from utils.logger import setup_logging
from utils.metrics_log import append_metrics

log = logging.getLogger("main")


def seed_everything(seed: int) -> None:
    """Python, numpy and torch (CPU and CUDA) from ``--manual-seed``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def localization_map(opts, epoch: int) -> float | None:
    """Localisation mAP (classes with positives) of the epoch's ``localize_NNN.txt`` on Charades."""
    if not (opts.localize and opts.dataset.startswith("charades")):
        return None  # the synthetic datasets have no annotation CSV
    path = os.path.join(opts.cache, "localize_{:03d}.txt".format(epoch + 1))
    ap, _, _ = charades_eval.localize(path, opts.val_file, opts.nclass)
    return float(np.nanmean(ap))


def main(argv: list[str] | None = None) -> dict:
    """Run training (or ``--evaluate``) and return the last epoch's metrics."""
    opts = options.parse(argv)
    setup_logging(opts.cache)
    log.info("options: %s", " ".join(f"{k}={v}" for k, v in sorted(vars(opts).items())))
    seed_everything(opts.manual_seed)
    if str(opts.device).startswith("cuda"):
        torch.backends.cudnn.benchmark = True

    model, criterion, optimizer = create_model(opts)
    train_loader, val_loader, video_loader = get_dataset(opts)
    shuffle = train_loader.generator  # the train and val loaders' shuffling stream (and worker seeds)
    best_mAP, best_state = 0.0, None
    if opts.resume:
        state = checkpoints.resume(opts.resume, model, optimizer)
        best_mAP = state["best_mAP"]
        if state["start_epoch"] is not None:
            opts.start_epoch = state["start_epoch"]
        ckpt = state["checkpoint"] if isinstance(state["checkpoint"], dict) else {}
        if ckpt.get("run_state"):
            load_run_state(ckpt["run_state"], os.path.dirname(os.path.abspath(opts.resume)), criterion, shuffle,
                           opts.ignore_bad_state)
            best_state = ckpt.get("best_run_state")
        elif state["checkpoint"] is not None:
            log.info("=> %s has no criterion state: the message buffer starts empty", opts.resume)

    if opts.evaluate:
        val = train.validate(val_loader, model, criterion, opts.start_epoch - 1, opts)
        video = train.validate_video(video_loader, model, criterion, opts.start_epoch - 1, opts)
        return {"top1val": val["top1"], "top5val": val["top5"], "mAP": video["mAP"]}

    if opts.plot:
        import plot_results  # numpy only at import; matplotlib loads at the first figure
        plot_results.require_matplotlib()  # fail now, not after the first epoch

    metrics: dict = {}
    for epoch in range(opts.start_epoch, opts.epochs):
        start = time.time()
        lr = train.adjust_learning_rate(opts, optimizer, epoch)
        log.info("epoch %d/%d, lr %g", epoch + 1, opts.epochs, lr)
        tr = train.train(train_loader, model, criterion, optimizer, epoch, opts)
        val = train.validate(val_loader, model, criterion, epoch, opts)
        video = train.validate_video(video_loader, model, criterion, epoch, opts)
        metrics = {"top1train": tr["top1"], "top5train": tr["top5"], "top1val": val["top1"],
                   "top5val": val["top5"], "mAP": video["mAP"], "videoprec1": video["prec1"],
                   "videoprec5": video["prec5"], "loss": tr["loss"]}
        is_best = video["mAP"] > best_mAP
        best_mAP = max(video["mAP"], best_mAP)
        run_state = save_run_state(opts.cache, epoch + 1, criterion, shuffle)  # first: see run_state.py
        best_state = run_state if is_best else best_state
        state = {"epoch": epoch + 1, "arch": opts.arch, "state_dict": model.state_dict(), "mAP": best_mAP,
                 "optimizer": optimizer.state_dict(), "run_state": run_state, "best_run_state": best_state}
        checkpoints.save_checkpoint(state, is_best, metrics, opts.cache)
        remove_stale_states(opts.cache, {run_state["file"], (best_state or run_state)["file"]})
        append_metrics(opts.cache, {
            "epoch": epoch + 1, "lr": lr, "train_loss": tr["loss"], "top1train": tr["top1"],
            "top5train": tr["top5"], "top1val": val["top1"], "top5val": val["top5"], "mAP": video["mAP"],
            "loc_mAP": localization_map(opts, epoch), "epoch_time_s": time.time() - start,
            "samples_per_s": tr["samples"] / max(tr["seconds"], 1e-9)})
        if opts.plot:
            try:
                plot_results.plot_curves(opts.cache, os.path.join(opts.cache, "curves.png"))
            except Exception as err:  # a figure must never stop a training run
                log.warning("could not refresh curves.png: %s", err)
        log.info("epoch %d done: train prec@1 %.2f, val prec@1 %.2f, video mAP %.4f (best %.4f)", epoch + 1,
                 tr["top1"], val["top1"], video["mAP"], best_mAP)
    return metrics


def experiment(flags: list[str], argv: list[str] | None = None) -> dict:
    """Run an ``exp/*.py`` file: its flags, then the command line's (which override them).  Like the
    original, an experiment resumes from its own ``<cache>/<name>/model.pth.tar`` when that exists, so
    the same command continues an interrupted run."""
    args = list(flags) + list(sys.argv[1:] if argv is None else argv)
    opts = options.parse(args)
    own = os.path.join(opts.cache, "model.pth.tar")
    if not opts.resume and os.path.isfile(own):
        args += ["--resume", own]
    return main(args)


if __name__ == "__main__":
    main()
