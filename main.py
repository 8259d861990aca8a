"""Train and evaluate AsyncTF: the epoch loop, read top to bottom (SPEC section 5).

``python main.py --flags``, or more usually ``python exp/asynctf_rgb.py [overrides]``; on several GPUs
or nodes, ``torchrun --nproc_per_node N exp/asynctf_rgb.py ...``.
"""
from __future__ import annotations

import argparse
import logging
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
from checkpoints.run_state import load_run_state, remove_stale_states, save_run_state
from datasets import get_dataset
from models import create_model
from utils import distributed
from utils.logger import setup_logging
from utils.metrics_log import append_metrics

log = logging.getLogger("main")


def seed_everything(seed: int) -> None:
    """Python, numpy and torch (CPU and CUDA) from ``--manual-seed``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def restore(opts: argparse.Namespace, net: torch.nn.Module, criterion, optimizer) -> tuple[float, dict | None]:
    """``--resume``: weights, optimiser, start epoch, best mAP, and the run state (buffers, random
    streams) when the checkpoint names one.  Returns ``(best_mAP, best_run_state)``."""
    state = checkpoints.resume(opts.resume, net, optimizer)
    if state["start_epoch"] is not None:
        opts.start_epoch = state["start_epoch"]
    ckpt = state["checkpoint"] if isinstance(state["checkpoint"], dict) else {}
    if ckpt.get("run_state"):
        folder = os.path.dirname(os.path.abspath(opts.resume))
        load_run_state(ckpt["run_state"], folder, criterion, opts.ignore_bad_state)
        return state["best_mAP"], ckpt.get("best_run_state")
    if state["checkpoint"] is not None:
        log.info("=> %s has no criterion state: the message buffer starts empty", opts.resume)
    return state["best_mAP"], None


def main(argv: list[str] | None = None) -> dict:
    """Run training (or ``--evaluate``) and return the last epoch's metrics (and ``cache``, the run's
    directory)."""
    opts = options.parse(argv)
    distributed.init(opts)
    main_process = distributed.is_main(opts)
    setup_logging(opts.cache, enabled=main_process)
    log.info("options: %s", " ".join(f"{k}={v}" for k, v in sorted(vars(opts).items())))
    seed_everything(opts.manual_seed)
    if str(opts.device).startswith("cuda"):
        torch.backends.cudnn.benchmark = True

    net, criterion, optimizer = create_model(opts)
    train_loader, val_loader, video_loader = get_dataset(opts)
    best_mAP, best_state = restore(opts, net, criterion, optimizer) if opts.resume else (0.0, None)
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
        is_best = video["mAP"] > best_mAP
        best_mAP = max(video["mAP"], best_mAP)
        if main_process:  # every process holds the same weights and buffers: one writes them
            run_state = save_run_state(opts.cache, epoch + 1, criterion)  # first: see run_state.py
            best_state = run_state if is_best else best_state
            state = {"epoch": epoch + 1, "arch": opts.arch, "state_dict": net.state_dict(), "mAP": best_mAP,
                     "optimizer": optimizer.state_dict(), "run_state": run_state, "best_run_state": best_state}
            checkpoints.save_checkpoint(state, is_best, metrics, opts.cache)
            remove_stale_states(opts.cache, {run_state["file"], (best_state or run_state)["file"]})
            append_metrics(opts.cache, {
                "epoch": epoch + 1, "lr": lr, "train_loss": tr["loss"], "top1train": tr["top1"],
                "top5train": tr["top5"], "top1val": val["top1"], "top5val": val["top5"], "mAP": video["mAP"],
                "loc_mAP": video["loc_mAP"], "epoch_time_s": time.time() - start,
                "samples_per_s": tr["samples"] / max(tr["seconds"], 1e-9)})
            if opts.plot:
                try:
                    plot_results.plot_curves(opts.cache, os.path.join(opts.cache, "curves.png"))
                except Exception as err:  # a figure must never stop a training run
                    log.warning("could not refresh curves.png: %s", err)
        log.info("epoch %d done: train prec@1 %.2f, val prec@1 %.2f, video mAP %.4f (best %.4f)", epoch + 1,
                 tr["top1"], val["top1"], video["mAP"], best_mAP)
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
