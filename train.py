"""One function per phase: ``train``, ``validate``, ``validate_video`` (SPEC section 5)."""
from __future__ import annotations

import argparse
import logging
import os
import time

import numpy as np
import torch
from tqdm import tqdm

from utils import charades_eval
from utils.meters import AverageMeter, precision_at_k
from utils.submission import localization_rows, write_classification, write_localization

log = logging.getLogger(__name__)


def adjust_learning_rate(opts: argparse.Namespace, optimizer: torch.optim.Optimizer, epoch: int) -> float:
    """``lr * 0.1 ** (epoch // lr_decay_rate)``."""
    lr = opts.lr * 0.1 ** (epoch // opts.lr_decay_rate)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def _to(batch, device):
    inputs, target, meta = batch
    return inputs.to(device, non_blocking=True), target.to(device, non_blocking=True), meta


def _run_frames(loader, model, criterion, optimizer, epoch: int, opts: argparse.Namespace, phase: str,
                fraction: float) -> dict:
    """The shared frame-level loop of ``train`` and ``validate``; returns the averaged metrics."""
    training = optimizer is not None
    meters = {k: AverageMeter() for k in ("loss", "top1", "top5", "time")}
    nbatch = max(1, int(len(loader) * fraction))
    bar = tqdm(total=nbatch, desc=f"{phase} {epoch + 1}", disable=None, leave=False)
    end = time.time()
    for i, batch in enumerate(loader):
        if i >= nbatch:
            break
        inputs, target, meta = _to(batch, opts.device)
        with torch.set_grad_enabled(training):
            a, aa = model(inputs)
            scores, loss = criterion(a, aa, target, meta)
        if training:
            loss.backward()
            if i % opts.accum_grad == opts.accum_grad - 1:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        n = inputs.shape[0]
        prec1, prec5 = precision_at_k(scores.detach(), target)
        meters["loss"].update(loss.detach(), n)
        meters["top1"].update(prec1, n)
        meters["top5"].update(prec5, n)
        meters["time"].update(time.time() - end)
        end = time.time()
        bar.update()
        if i % opts.print_freq == 0 or i == nbatch - 1:  # the only host syncs of the loop
            stats = {k: meters[k].avg for k in ("loss", "top1", "top5")}
            bar.set_postfix(loss=f"{stats['loss']:.4f}", prec1=f"{stats['top1']:.1f}")
            log.info("%s epoch %d [%d/%d] time %.3f loss %.4f prec@1 %.2f prec@5 %.2f", phase, epoch + 1,
                     i + 1, nbatch, meters["time"].avg, stats["loss"], stats["top1"], stats["top5"])
    bar.close()
    out = {k: meters[k].avg for k in ("loss", "top1", "top5")}
    out.update(samples=meters["top1"].count, seconds=meters["time"].sum)
    return out


def train(loader, model, criterion, optimizer, epoch: int, opts: argparse.Namespace) -> dict:
    """One training epoch over the first ``train_size`` of the (shuffled) loader."""
    model.train()
    criterion.train()
    optimizer.zero_grad(set_to_none=True)
    return _run_frames(loader, model, criterion, optimizer, epoch, opts, "train", opts.train_size)


def validate(loader, model, criterion, epoch: int, opts: argparse.Namespace) -> dict:
    """Frame-level validation over the first ``val_size`` of the shuffled val loader (the messages it
    stores stay in the buffer, as in the original)."""
    model.eval()
    criterion.eval()
    return _run_frames(loader, model, criterion, None, epoch, opts, "val", opts.val_size)


@torch.no_grad()
def score_videos(loader, model, criterion, opts: argparse.Namespace, desc: str = "val_video"):
    """Synchronous scoring of every video: ``(ids, video scores N x C, localisation N x 25 x C, targets)``."""
    model.eval()
    criterion.eval()
    ids, video, local, targets = [], [], [], []
    for inputs, target, meta in tqdm(loader, desc=desc, disable=None, leave=False):
        inputs, target = inputs.to(opts.device, non_blocking=True), target.to(opts.device, non_blocking=True)
        a, aa = model(inputs)
        frames, _ = criterion(a, aa, target, meta, synchronous=True)
        ids.append(meta["id"][0])
        video.append(frames.max(0).values)
        local.append(frames[torch.as_tensor(localization_rows(frames.shape[0]), device=frames.device)])
        targets.append(target[0])
    stack = lambda xs: torch.stack(xs).float().cpu().numpy()  # noqa: E731
    return ids, stack(video), stack(local), stack(targets)


def video_map(scores: np.ndarray, targets: np.ndarray, submission: str, gt_csv: str | None) -> float:
    """Official classification mAP of the written file when there is an annotation CSV (Charades);
    else the mean AP over classes with positives of the in-memory scores (synthetic datasets)."""
    if gt_csv:
        ap, _, _ = charades_eval.classify(submission, gt_csv, nclass=scores.shape[1])
    else:
        ap = charades_eval.average_precision(scores, targets)
    return float(np.nanmean(ap))


def validate_video(loader, model, criterion, epoch: int, opts: argparse.Namespace) -> dict:
    """Score every val video synchronously, write ``epoch_NNN.txt`` (and ``localize_NNN.txt``), and
    return the video mAP and video-level prec@1/prec@5."""
    ids, scores, local, targets = score_videos(loader, model, criterion, opts)
    path = os.path.join(opts.cache, "epoch_{:03d}.txt".format(epoch + 1))
    write_classification(path, ids, scores)
    if opts.localize:
        write_localization(os.path.join(opts.cache, "localize_{:03d}.txt".format(epoch + 1)), ids, local)
    gt_csv = opts.val_file if opts.dataset.startswith("charades") else None
    mAP = video_map(scores, targets, path, gt_csv)
    prec1, prec5 = (float(p) for p in precision_at_k(torch.from_numpy(scores), torch.from_numpy(targets)))
    log.info("val_video epoch %d: %d videos, mAP %.4f, prec@1 %.2f, prec@5 %.2f (%s)", epoch + 1, len(ids),
             mAP, prec1, prec5, path)
    return {"mAP": mAP, "prec1": prec1, "prec5": prec5, "submission": path}
