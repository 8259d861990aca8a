"""Train and evaluate AsyncTF: the epoch loop, read top to bottom (SPEC section 5).

``python main.py --flags``, or more usually ``python exp/asynctf_rgb.py [overrides]``; on several GPUs
or nodes, ``torchrun --nproc_per_node N exp/asynctf_rgb.py ...``.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import random
import sys
import time

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

import checkpoints
import opts as options
import train
from checkpoints.run_state import load_run_state, remove_stale_states, save_run_state, state_path
from checkpoints.settings import model_settings
from datasets import class_names, get_dataset
from models import create_model
from utils import distributed
from utils.atomic import remove_leftovers
from utils.logger import setup_logging
from utils.metrics_log import append_metrics

log = logging.getLogger("main")


def seed_everything(seed: int) -> None:
    """Python, numpy and torch (CPU and CUDA) from ``--manual-seed``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def restore(opts: argparse.Namespace, net: torch.nn.Module, criterion, optimizer) -> dict:
    """``--resume``: weights, optimiser, start epoch, the best so far, and the run state (buffers, random
    streams) when the checkpoint names one.  Returns ``{'best_mAP', 'best_epoch', 'best_state',
    'checkpoint'}`` (None where the checkpoint does not say)."""
    state = checkpoints.resume(opts.resume, net, optimizer, trusted=opts.trust_checkpoint)
    if state["start_epoch"] is not None:
        opts.start_epoch = state["start_epoch"]
    ckpt = state["checkpoint"] if isinstance(state["checkpoint"], dict) else {}
    folder = os.path.dirname(os.path.abspath(opts.resume))
    best_state = ckpt.get("best_run_state")
    if best_state:  # kept safe from deletion later: it too must be a file of the checkpoint's folder
        state_path(best_state, folder, opts.resume)
    if ckpt.get("run_state"):
        load_run_state(ckpt["run_state"], folder, criterion, opts.ignore_bad_state, opts.trust_checkpoint,
                       opts.resume)
    else:
        log.info("=> %s has no criterion state: the message buffer starts empty", opts.resume)
    return {"best_mAP": state["best_mAP"], "best_epoch": ckpt.get("best_epoch"), "best_state": best_state,
            "checkpoint": ckpt}


def is_better(mAP: float, best: float | None) -> bool:
    """Whether an epoch's mAP beats the best so far (the first epoch of a run always does; NaN never
    beats a number)."""
    return best is None or math.isnan(best) or mAP > best


def finish_epoch(ckpt: dict, cache: str) -> None:
    """Every file of an epoch that comes after its commit (``model.pth.tar`` = ``ckpt``):
    ``model_NNN.txt``, ``model_best.*``, the ``metrics.csv`` row, and the state files no checkpoint
    names any more.  All of it is rebuilt from ``ckpt``, so a run killed in between completes it when
    started again; the state files are removed last, when ``model_best.pth.tar`` names the kept one."""
    epoch = ckpt["epoch"]
    checkpoints.write_companions(epoch, ckpt["best_epoch"] == epoch, ckpt["metrics"], cache)
    append_metrics(cache, ckpt["metrics_row"])
    named = {ref["file"] for ref in (ckpt.get("run_state"), ckpt.get("best_run_state")) if ref}
    if named:  # (a checkpoint stripped of its state names none: then nothing is known to be stale)
        remove_stale_states(cache, named)


def main(argv: list[str] | None = None) -> dict:
    """Run training (or ``--evaluate``) and return the last epoch's metrics (and ``cache``, the run's
    directory).  Ctrl-C stops with one line saying what was kept (``SystemExit`` 130)."""
    opts = options.parse(argv)
    distributed.init(opts)
    setup_logging(opts.cache, enabled=distributed.is_main(opts))
    kept: dict = {"epoch": None, "best_epoch": None}
    try:
        return run(opts, kept)
    except KeyboardInterrupt:
        own = os.path.join(opts.cache, "model.pth.tar")
        log.warning("interrupted: " + ("no epoch ended in this run, so nothing new was saved" if kept["epoch"] is None
                    else f"kept {own} at epoch {kept['epoch']} (model_best.pth.tar: epoch {kept['best_epoch']}); "
                    f"to continue, run the same exp/ command again, or main.py with --resume {own}"))
        raise SystemExit(130) from None


def run(opts: argparse.Namespace, kept: dict) -> dict:
    """The body of ``main``: ``kept`` records the last committed epoch (for the Ctrl-C message)."""
    main_process = distributed.is_main(opts)
    log.info("options: %s", " ".join(f"{k}={v}" for k, v in sorted(vars(opts).items())))
    if main_process:
        removed = remove_leftovers(opts.cache)
        if removed:
            log.info("removed %d temporary file(s) of interrupted saves: %s", len(removed), " ".join(removed))
    seed_everything(opts.manual_seed)
    if str(opts.device).startswith("cuda"):
        torch.backends.cudnn.benchmark = True

    net, criterion, optimizer = create_model(opts)
    train_loader, val_loader, video_loader = get_dataset(opts)
    settings = model_settings(opts, class_names(opts))  # recorded in every checkpoint (predict.py reads it)
    best = restore(opts, net, criterion, optimizer) if opts.resume else \
        {"best_mAP": None, "best_epoch": None, "best_state": None, "checkpoint": {}}
    if not opts.evaluate and opts.start_epoch > opts.epochs:
        raise ValueError(f"--resume {opts.resume} is at epoch {opts.start_epoch}, past --epochs {opts.epochs}: "
                         f"give --epochs {opts.start_epoch + 1} or more to train further, or --evaluate")
    own = os.path.join(opts.cache, "model.pth.tar")
    if main_process and "metrics_row" in best["checkpoint"] and os.path.isfile(own) \
            and os.path.samefile(opts.resume, own):
        finish_epoch(best["checkpoint"], opts.cache)  # a kill after the last commit: complete its files
    net = distributed.sync_batchnorm(net, opts)  # same state_dict keys: checkpoints are unchanged
    if opts.channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = torch.compile(net) if opts.compile else net
    if distributed.active():
        model = DistributedDataParallel(model, device_ids=[opts.local_rank] if opts.device != "cpu" else None)
        criterion.gather = distributed.gather_rows  # one global batch, one buffer, on every process
    scaler = train.make_scaler(opts)

    if opts.evaluate:
        val = train.validate(val_loader, model, criterion, opts.start_epoch - 1, opts)
        video = train.validate_video(video_loader, model, criterion, opts.start_epoch - 1, opts)
        return {"cache": opts.cache, "top1val": val["top1"], "top5val": val["top5"], "mAP": video["mAP"]}
    if opts.plot:
        import plot_results  # numpy only at import; matplotlib loads at the first figure
        plot_results.require_matplotlib()  # fail now, not after the first epoch
    if opts.start_epoch == opts.epochs:
        log.info("nothing to train: %s is at epoch %d = --epochs", opts.resume, opts.start_epoch)

    best_mAP, best_epoch, best_state = best["best_mAP"], best["best_epoch"], best["best_state"]
    metrics: dict = {"cache": opts.cache}
    # one bar over the whole run, in batches of every phase, for its ETA; each phase keeps its own bar
    phases = [max(1, int(len(train_loader) * opts.train_size)), max(1, int(len(val_loader) * opts.val_size)),
              len(video_loader)]
    run_bar = tqdm(total=sum(phases) * opts.epochs, initial=sum(phases) * opts.start_epoch, desc="run",
                   unit="batch", smoothing=0, disable=None if main_process else True)
    for epoch in range(opts.start_epoch, opts.epochs):
        start = time.time()
        lr = train.adjust_learning_rate(opts, optimizer, epoch)
        log.info("epoch %d/%d, lr %g", epoch + 1, opts.epochs, lr)
        train_loader.sampler.set_epoch(epoch)
        val_loader.sampler.set_epoch(epoch)
        tr = train.train(train_loader, model, criterion, optimizer, epoch, opts, scaler)
        run_bar.update(phases[0])
        val = train.validate(val_loader, model, criterion, epoch, opts)
        run_bar.update(phases[1])
        video = train.validate_video(video_loader, model, criterion, epoch, opts)
        run_bar.update(phases[2])
        metrics = {"cache": opts.cache, "top1train": tr["top1"], "top5train": tr["top5"], "top1val": val["top1"],
                   "top5val": val["top5"], "mAP": video["mAP"], "videoprec1": video["prec1"],
                   "videoprec5": video["prec5"], "loss": tr["loss"]}
        if video["top1"] is not None:  # single-label datasets: video top-1/top-5 accuracy
            metrics.update(video_top1=video["top1"], video_top5=video["top5"])
        if is_better(video["mAP"], best_mAP):
            best_mAP, best_epoch = video["mAP"], epoch + 1
        if main_process:  # every process holds the same weights and buffers: one writes them
            # The state file first (named by nothing yet), then model.pth.tar, the commit: a kill before
            # it redoes the epoch from the previous one; after it, finish_epoch completes the rest.
            run_state = save_run_state(opts.cache, epoch + 1, criterion)
            best_state = run_state if best_epoch == epoch + 1 else best_state
            row = {"epoch": epoch + 1, "lr": lr, "train_loss": tr["loss"], "top1train": tr["top1"],
                   "top5train": tr["top5"], "top1val": val["top1"], "top5val": val["top5"], "mAP": video["mAP"],
                   "loc_mAP": video["loc_mAP"], "video_top1": video["top1"], "video_top5": video["top5"],
                   "epoch_time_s": time.time() - start,
                   "samples_per_s": tr["samples"] / max(tr["seconds"], 1e-9)}
            state = {"epoch": epoch + 1, "arch": opts.arch, "state_dict": net.state_dict(), "mAP": float(video["mAP"]),
                     "best_mAP": float(best_mAP), "best_epoch": best_epoch, "optimizer": optimizer.state_dict(),
                     "run_state": run_state, "best_run_state": best_state, "settings": settings,
                     "metrics": {k: float(metrics[k]) for k in checkpoints.METRIC_KEYS if k in metrics},
                     "metrics_row": {k: v if v is None or isinstance(v, int) else float(v) for k, v in row.items()}}
            checkpoints.atomic_torch_save(state, own)
            kept.update(epoch=epoch + 1, best_epoch=best_epoch)
            finish_epoch(state, opts.cache)
            if opts.plot:
                try:
                    plot_results.plot_curves(opts.cache, os.path.join(opts.cache, "curves.png"))
                except Exception as err:  # a figure must never stop a training run
                    log.warning("could not refresh curves.png: %s", err)
        log.info("epoch %d done: train prec@1 %.2f, val prec@1 %.2f, video mAP %.4f (best %.4f, epoch %s)",
                 epoch + 1, tr["top1"], val["top1"], video["mAP"], best_mAP, best_epoch)
    run_bar.close()
    distributed.shutdown()
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
