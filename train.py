"""One function per phase: ``train``, ``validate``, ``validate_video`` (SPEC section 5)."""
from __future__ import annotations

import argparse
import logging
import math
import os
import time

import numpy as np
import torch
from tqdm import tqdm

from utils import charades_eval, distributed
from utils.cli import UserError
from utils.meters import AverageMeter, precision_at_k
from utils.submission import localization_rows, write_classification, write_localization

log = logging.getLogger(__name__)


def adjust_learning_rate(opts: argparse.Namespace, optimizer: torch.optim.Optimizer, epoch: int) -> float:
    """``lr * 0.1 ** (epoch // lr_decay_rate)``."""
    lr = opts.lr * 0.1 ** (epoch // opts.lr_decay_rate)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def amp_dtype(opts: argparse.Namespace) -> torch.dtype | None:
    """``--amp``: bf16 where the device has it, else fp16 (which needs a gradient scaler)."""
    if not opts.amp:
        return None
    dev = torch.device(opts.device)
    if dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def make_scaler(opts: argparse.Namespace) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 autocast; None otherwise (bf16 and fp32 need none)."""
    return torch.amp.GradScaler(torch.device(opts.device).type) if amp_dtype(opts) == torch.float16 else None


def prepare(batch, loader, opts: argparse.Namespace):
    """Move a batch to the device; apply the dataset's per-batch transform (the fast loader does colour
    jitter and normalisation there, on uint8 frames) and the memory format."""
    inputs, target, meta = batch
    inputs, target = inputs.to(opts.device, non_blocking=True), target.to(opts.device, non_blocking=True)
    batch_transform = getattr(loader.dataset, "batch_transform", None)
    if batch_transform is not None:
        inputs = batch_transform(inputs)
    if opts.channels_last and inputs.dim() == 4:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return inputs, target, meta


def optimizer_step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None = None) -> None:
    """One SGD step (through the fp16 gradient scaler when there is one), then clear the gradients."""
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def forward(model, inputs: torch.Tensor, opts: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    """The network under autocast when ``--amp``; the criterion is called outside it, in fp32."""
    dtype = amp_dtype(opts)
    with torch.autocast(torch.device(opts.device).type, dtype=dtype, enabled=dtype is not None):
        return model(inputs)


class Diverged(UserError):
    """A non-finite loss: the run stops before anything of its epoch is saved."""


# the options that make a loss explode, named (with their values) in the message
SUSPECTS = ("lr", "temporal_weight", "temporalloss_weight", "memory_decay", "sigma", "originalloss_weight", "amp")


class LossWatch:
    """The non-finite losses of one phase.  By default (``--max-nonfinite 0``) the first one stops the run:
    it is recorded on the device and looked at only where the loop syncs with the host anyway (every
    ``print_freq`` batches, and the last), so watching costs no extra sync.  With a tolerance each loss is
    looked at (one sync per batch) and up to ``--max-nonfinite`` training batches with a non-finite loss
    are skipped (no backward, no step, not in the averages, its messages taken back out of the buffers)."""

    def __init__(self, phase: str, epoch: int, nbatch: int, opts: argparse.Namespace, lr: float | None):
        self.phase, self.epoch, self.nbatch, self.opts, self.lr = phase, epoch, nbatch, opts, lr
        self.tolerance = getattr(opts, "max_nonfinite", 0) if phase == "train" else 0
        self.skipped = 0
        self.first: torch.Tensor | None = None  # index of the first non-finite loss (-1: none), and the loss
        self.value: torch.Tensor | None = None

    def skip(self, loss: torch.Tensor, i: int) -> bool:
        """Record batch ``i``'s loss; True when it is non-finite and tolerated (skip the batch)."""
        loss = loss.detach().float()
        if not self.tolerance:
            if self.first is None:
                self.first, self.value = torch.full((), -1, device=loss.device, dtype=torch.long), loss.clone()
            new = ~torch.isfinite(loss) & (self.first < 0)
            self.first = torch.where(new, i, self.first)
            self.value = torch.where(new, loss, self.value)
            return False
        bad, = distributed.all_sum([0.0 if math.isfinite(loss.item()) else 1.0])  # every process skips together
        if not bad:
            return False
        self.skipped += 1
        if self.skipped > self.tolerance:
            raise Diverged(self._message(i, loss.item()))
        log.warning("%s batch %d/%d of epoch %d: the loss is %s, batch skipped (%d of --max-nonfinite %d)",
                    self.phase, i + 1, self.nbatch, self.epoch + 1, f"{loss.item():g}", self.skipped,
                    self.tolerance)
        return True

    def check(self) -> None:
        """At a host sync: stop if a non-finite loss was recorded (on any process)."""
        if self.first is None:
            return
        first = int(self.first)
        anywhere, = distributed.all_sum([float(first >= 0)])
        if anywhere:
            raise Diverged(self._message(first, float(self.value)) if first >= 0 else
                           self._message(None, math.nan))

    def _message(self, i: int | None, value: float) -> str:
        where = f"batch {i + 1}/{self.nbatch}" if i is not None else "a batch of another process"
        values = {f"--{k.replace('_', '-')}": getattr(self.opts, k, None) for k in SUSPECTS}
        suspects = " ".join(flag if v is True else f"{flag} {v:g}" for flag, v in values.items()
                            if v is not None and v is not False)
        lr = "" if self.lr is None else f" at lr {self.lr:g}"
        return (f"the run diverged: the loss of {self.phase} {where} of epoch {self.epoch + 1} is {value:g}{lr} "
                f"({suspects}); nothing of epoch {self.epoch + 1} was saved, the checkpoints of the epochs before "
                f"it are kept. Lower --lr (or the option that makes the loss explode) and run again"
                + (", or let --max-nonfinite N skip up to N such batches" if self.phase == "train" else ""))


def _run_frames(loader, model, criterion, optimizer, epoch: int, opts: argparse.Namespace, phase: str,
                fraction: float, scaler: torch.amp.GradScaler | None = None) -> dict:
    """The shared frame-level loop of ``train`` and ``validate``; returns the averaged metrics."""
    training = optimizer is not None
    meters = {k: AverageMeter() for k in ("loss", "top1", "top5", "time")}
    nbatch = max(1, int(len(loader) * fraction))
    bar = tqdm(total=nbatch, desc=f"{phase} {epoch + 1}", disable=None if distributed.is_main(opts) else True,
               leave=False)
    watch = LossWatch(phase, epoch, nbatch, opts, optimizer.param_groups[0]["lr"] if training else None)
    end = time.time()
    for i, batch in enumerate(loader):
        if i >= nbatch:
            break
        inputs, target, meta = prepare(batch, loader, opts)
        if watch.tolerance:
            criterion.begin_batch()
        with torch.set_grad_enabled(training):
            a, aa = forward(model, inputs, opts)
            scores, loss = criterion(a, aa, target, meta)
        if watch.skip(loss, i):  # a tolerated non-finite loss: no step, and its messages are taken back
            criterion.take_back()
            continue
        if training:
            (scaler.scale(loss) if scaler else loss).backward()
            if i % opts.accum_grad == opts.accum_grad - 1:
                optimizer_step(optimizer, scaler)
        n = inputs.shape[0]
        prec1, prec5 = precision_at_k(scores.detach(), target)
        meters["loss"].update(loss.detach(), n)
        meters["top1"].update(prec1, n)
        meters["top5"].update(prec5, n)
        meters["time"].update(time.time() - end)
        end = time.time()
        bar.update()
        if i % opts.print_freq == 0 or i == nbatch - 1:  # the only host syncs of the loop
            watch.check()
            stats = {k: meters[k].avg for k in ("loss", "top1", "top5")}
            bar.set_postfix(loss=f"{stats['loss']:.4f}", prec1=f"{stats['top1']:.1f}")
            log.info("%s epoch %d [%d/%d] time %.3f loss %.4f prec@1 %.2f prec@5 %.2f", phase, epoch + 1,
                     i + 1, nbatch, meters["time"].avg, stats["loss"], stats["top1"], stats["top5"])
    bar.close()
    # one reduction per epoch: averages over every process's samples
    loss, top1, top5, n = distributed.all_sum([float(meters["loss"].sum), float(meters["top1"].sum),
                                               float(meters["top5"].sum), meters["loss"].count])
    return {"loss": loss / n, "top1": top1 / n, "top5": top5 / n, "samples": n, "seconds": meters["time"].sum}


def train(loader, model, criterion, optimizer, epoch: int, opts: argparse.Namespace,
          scaler: torch.amp.GradScaler | None = None) -> dict:
    """One training epoch over the first ``train_size`` of the (shuffled) loader."""
    model.train()
    criterion.train()
    optimizer.zero_grad(set_to_none=True)
    return _run_frames(loader, model, criterion, optimizer, epoch, opts, "train", opts.train_size, scaler)


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
    for batch in tqdm(loader, desc=desc, disable=None, leave=False):
        inputs, target, meta = prepare(batch, loader, opts)
        a, aa = forward(model, inputs, opts)
        frames, _ = criterion(a, aa, target, meta, synchronous=True)
        ids.append(meta["id"][0])
        video.append(frames.max(0).values)
        local.append(frames[torch.as_tensor(localization_rows(frames.shape[0]), device=frames.device)])
        targets.append(target[0])
    C = opts.nclass
    stack = lambda xs, shape: torch.stack(xs).float().cpu().numpy() if xs else np.zeros(shape)  # noqa: E731
    return ids, stack(video, (0, C)), stack(local, (0, 25, C)), stack(targets, (0, C))


@torch.no_grad()
def network_outputs(model, batches, opts: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, aa)`` of the network over input ``batches`` (``--amp``, ``--channels-last``): ``a`` (T x C) for
    all the frames in order, ``aa`` the head's one C x C matrix (1 x C x C)."""
    model.eval()
    parts, aa = [], None
    for inputs in batches:
        inputs = inputs.to(opts.device, non_blocking=True)
        if opts.channels_last and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        a, batch_aa = forward(model, inputs, opts)
        parts.append(a)
        aa = batch_aa[:1]  # one C x C matrix broadcast over the batch: so over the video (no T x C x C copy)
    if not parts:
        raise ValueError("no frame to score")
    return torch.cat(parts), aa


@torch.no_grad()
def synchronous_scores(criterion, a: torch.Tensor, aa: torch.Tensor, video_id: str, times) -> torch.Tensor:
    """Synchronous scores (T x C, probabilities) of one video from its network outputs, exactly as
    ``score_videos`` scores a video (1 + 5 passes, smoothing).  ``times``: the frames' 1-based frame numbers;
    ``criterion`` should hold no message of ``video_id`` (a fresh one: the video is scored from an empty
    buffer, as in ``get_alltest.py``)."""
    criterion.eval()
    T = a.shape[0]
    meta = {"id": [video_id] * T, "time": torch.as_tensor(times, dtype=torch.long)}
    scores, _ = criterion(a, aa.expand(T, -1, -1), a.new_zeros(T, a.shape[1]), meta, synchronous=True)
    return scores.float()


def video_map(scores: np.ndarray, targets: np.ndarray, submission: str, gt_csv: str | None) -> float:
    """Official classification mAP of the written file when there is an annotation CSV (Charades);
    else the mean AP over classes with positives of the in-memory scores (synthetic datasets)."""
    if gt_csv:
        ap, _, _ = charades_eval.classify(submission, gt_csv, nclass=scores.shape[1])
    else:
        ap = charades_eval.average_precision(scores, targets)
    return charades_eval.mean_ap_with_positives(ap)


def gather_videos(ids: list[str], arrays: list[np.ndarray], criterion) -> tuple[list[str], list[np.ndarray]]:
    """Every process's scored videos, back in single-process order (rank r scored videos r, r+W, ...),
    and every process's buffer brought up to date with the FIFOs of the videos the others scored."""
    if not distributed.active():
        return ids, arrays
    parts = distributed.all_objects((ids, arrays, criterion.messages.export_rows(ids)))
    for r, (_, _, rows) in enumerate(parts):
        if r != distributed.rank():
            criterion.messages.import_rows(rows)
    world, total = len(parts), sum(len(p[0]) for p in parts)
    pick = [(i % world, i // world) for i in range(total)]
    ids = [parts[r][0][k] for r, k in pick]
    arrays = [np.stack([parts[r][1][j][k] for r, k in pick]) for j in range(len(arrays))]
    return ids, arrays


def validate_video(loader, model, criterion, epoch: int, opts: argparse.Namespace) -> dict:
    """Score every val video synchronously, write ``epoch_NNN.txt`` (and ``localize_NNN.txt``), and
    return the video mAP, the localisation mAP (``--localize`` with an annotation CSV, else None),
    video-level prec@1/prec@5, and for single-label datasets video top-1/top-5 accuracy (else None).
    The dataset says what it is scored against (``eval_csv``, ``single_label``: datasets.frames)."""
    ids, scores, local, targets = score_videos(loader, model, criterion, opts)
    ids, (scores, local, targets) = gather_videos(ids, [scores, local, targets], criterion)
    path = os.path.join(opts.cache, "epoch_{:03d}.txt".format(epoch + 1))
    mAP = loc_mAP = None
    if distributed.is_main(opts):
        write_classification(path, ids, scores)
        gt_csv = getattr(loader.dataset, "eval_csv", None)
        if opts.localize:
            loc_path = os.path.join(opts.cache, "localize_{:03d}.txt".format(epoch + 1))
            write_localization(loc_path, ids, local)
            if gt_csv:  # the synthetic datasets have no annotation CSV to localise against
                ap, _, _ = charades_eval.localize(loc_path, gt_csv, opts.nclass)
                loc_mAP = charades_eval.mean_ap_with_positives(ap)
        mAP = video_map(scores, targets, path, gt_csv)
    mAP, loc_mAP = distributed.broadcast((mAP, loc_mAP))
    prec1, prec5 = (float(p) for p in precision_at_k(torch.from_numpy(scores), torch.from_numpy(targets)))
    # one positive per video: prec@k is exactly top-k accuracy, these datasets' standard metric
    top1, top5 = (prec1, prec5) if getattr(loader.dataset, "single_label", False) else (None, None)
    log.info("val_video epoch %d: %d videos, mAP %.4f, prec@1 %.2f, prec@5 %.2f%s (%s)", epoch + 1, len(ids),
             mAP, prec1, prec5, "" if top1 is None else f", top-1 accuracy {top1:.2f}, top-5 accuracy {top5:.2f}",
             path)
    return {"mAP": mAP, "loc_mAP": loc_mAP, "prec1": prec1, "prec5": prec5, "top1": top1, "top5": top5,
            "submission": path}
