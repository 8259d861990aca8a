#!/usr/bin/env python
"""Per-frame features and AsyncTF scores of every video, one ``.npy`` per video and kind.

    python extract_features.py --resume CHECKPOINT --val-file CSV --data DIR --out DIR [--stride N | --fps F]
                               [--ids FILE] [model flags: --arch --nhidden ... as for training]
    python extract_features.py --arch resnet152 --pretrained --ids FILE --data DIR --out DIR  # ImageNet features

Frames: ``frame_strided.strided_frames``: frames ``floor(k*step)+1`` (k = 0, 1, ...) up to the video's last
frame, with ``step = --stride`` (default 4, the training sampling) or ``--source-fps / --fps``; times
``(frame-1) / --source-fps`` seconds.  They go through the evaluation transform of ``--dataset`` (the
val_video dataset, ``datasets.frames.at_stride``).  Writes, under ``--out``:

- ``features/<id>.npy``: float32 (T, D), the input of the AsyncTF head (the layer it replaced: 2048 for
  ResNet-152), captured with a hook, so any ``--arch`` works;
- ``scores/<id>.npy``: float32 (T, C), the synchronous AsyncTF scores of those T frames (the network in
  batches of ``--batch-size`` frames, then the criterion once over the whole video, from an empty buffer,
  as ``get_alltest.py``); only with ``--resume`` (a head that was never trained scores nothing);
- ``frames.csv``: ``id,row,frame,time``, one line per frame of every finished video (row: of the .npy);
- ``settings.json``: what the files depend on; a rerun with other settings into the same ``--out`` is an
  error, so files of two models or two frame rules never mix;
- ``log.txt``.

Every ``.npy`` is written atomically; a rerun skips the videos whose files are complete and redoes the
others.  Under ``torchrun`` rank r extracts videos r, r+W, ...; rank 0 writes ``frames.csv`` at the end.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import logging
import os
import sys
import time

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

import checkpoints
import opts as options
import train
from datasets import check_data, get_datasets
from datasets.frame_index import FPS, GAP
from datasets.frames import FrameDataset, at_stride
from models import create_model
from models.asynctf import AsyncTFBase
from utils import cli, distributed
from utils.atomic import atomic_write, atomic_write_text
from utils.file_hash import file_digest
from utils.logger import setup_logging
from utils.run_settings import check_or_record

log = logging.getLogger("extract_features")

KINDS = ("features", "scores")
CHARADES_FORMAT = ("charadesrgb", "charadesflow", "charadesrgbsubset")  # datasets whose CSV --ids can stand in for
CSV_HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"


def build_parser() -> argparse.ArgumentParser:
    """The training options plus this script's."""
    p = options.build_parser()
    p.description = "Per-frame features and AsyncTF scores of every video (extract_features.py)"
    p.add_argument("--out", required=True, help="output folder (features/, scores/, frames.csv)")
    p.add_argument("--ids", default="", help="a file of video ids, one a line: only these videos (of --val-file, "
                                             "or, for the Charades datasets, without one)")
    every = p.add_mutually_exclusive_group()
    every.add_argument("--stride", type=int, default=None, help=f"every N-th frame from frame 1 (default {GAP})")
    every.add_argument("--fps", type=float, default=None, help="F frames per second: every source-fps/F frames")
    p.add_argument("--source-fps", type=float, default=FPS, help="frame rate of the frame files (Jester: 12)")
    return p


def frame_step(opts: argparse.Namespace) -> float:
    """Frames between two samples: ``--stride``, or ``--source-fps / --fps``."""
    if opts.fps is not None:
        if not 0 < opts.fps <= opts.source_fps:
            raise cli.InputError(f"--fps {opts.fps}: must be in (0, --source-fps {opts.source_fps:g}]")
        return opts.source_fps / opts.fps
    step = GAP if opts.stride is None else opts.stride
    if step < 1:
        raise cli.InputError(f"--stride {step}: must be at least 1")
    return float(step)


def read_ids(path: str) -> list[str]:
    """The ids of ``path``, one a line (blank lines skipped, duplicates kept once)."""
    if not os.path.isfile(path):
        raise cli.MissingInputError(f"--ids file not found: {path}")
    with open(path, encoding="utf-8-sig") as f:
        ids = list(dict.fromkeys(line.strip() for line in f if line.strip()))
    if not ids:
        raise cli.InputError(f"--ids {path} lists no video ids")
    return ids


def check_inputs(opts: argparse.Namespace) -> list[str] | None:
    """The ``--ids`` (None without), after checking that the inputs are there: an annotation file (or
    ``--ids`` with a Charades dataset), and the frame tree (``datasets.check_data``)."""
    wanted = read_ids(opts.ids) if opts.ids else None
    if not opts.val_file and (wanted is None or opts.dataset not in CHARADES_FORMAT):
        raise cli.InputError("extract_features needs --val-file (an annotation file), or --ids FILE with a "
                             f"Charades dataset ({', '.join(CHARADES_FORMAT)}; --dataset is {opts.dataset})")
    check_data(opts, files=("val_file",) if opts.val_file else ())
    return wanted


def videos_dataset(opts: argparse.Namespace, wanted: list[str] | None) -> tuple[FrameDataset, list[str], list[str]]:
    """The strided dataset of the videos to extract (``wanted``: those of ``--ids``, checked by
    ``check_inputs``; None: all), and the ids skipped without frames / for frame gaps."""
    if not opts.val_file:
        # the ids as a Charades CSV without labels, so that the datasets list and sample them as usual; the
        # length only places val_video's frames, which at_stride replaces, so any valid length will do
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows([v] + [""] * 9 + ["1"] for v in wanted)
        digest = hashlib.sha1(text.getvalue().encode()).hexdigest()[:12]
        opts.val_file = os.path.join(opts.cache, f"extract_features_ids_{digest}.csv")
        atomic_write_text(opts.val_file, CSV_HEADER + text.getvalue())
    opts.train_file = opts.val_file  # only the val_video split (evaluation transform, video targets) is used
    _, _, val_video = get_datasets(opts)
    index = val_video.index
    known = set(index.ids.tolist()) | set(index.skipped.tolist()) | set(index.gapped.tolist())
    if wanted is not None and set(wanted) - known:
        unknown = [v for v in wanted if v not in known]
        raise cli.InputError(f"--ids {opts.ids}: {len(unknown)} of its ids are not in {opts.val_file}: "
                             f"{', '.join(unknown[:10])}")
    ds = at_stride(val_video, frame_step(opts), wanted)
    chosen, kept = known if wanted is None else set(wanted), set(ds.index.ids.tolist())
    gapped = [v for v in index.gapped.tolist() if v in chosen and v not in kept]
    return ds, [v for v in ds.index.skipped.tolist() if v in chosen], gapped


def load_model(opts: argparse.Namespace) -> tuple[torch.nn.Module, torch.nn.Module, AsyncTFBase]:
    """The training network with the checkpoint's weights (or ImageNet's), its criterion and its head."""
    if not (opts.resume or opts.pretrained or opts.pretrained_weights):
        raise cli.InputError("extract_features needs weights: --resume CHECKPOINT (features and scores), or "
                             "--pretrained [TAG] / --pretrained-weights FILE (backbone features only)")
    model, criterion, _ = create_model(opts)
    if opts.resume:
        try:
            checkpoints.resume(opts.resume, model)
        except checkpoints.CheckpointError:  # a corrupt file: its message names it
            raise
        except RuntimeError as err:  # load_state_dict: keys or shapes of another --arch/--nclass/--nhidden
            raise checkpoints.CheckpointError(f"--resume {opts.resume} does not fit --arch {opts.arch} --nclass "
                                              f"{opts.nclass} --nhidden {opts.nhidden}: {err}") from None
    if opts.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.eval()
    criterion.eval()
    head = next(m for m in model.modules() if isinstance(m, AsyncTFBase))
    return model, criterion, head


def settings(opts: argparse.Namespace, step: float) -> dict:
    """Everything the written files depend on (besides the frames themselves)."""
    weights = opts.resume or opts.pretrained_weights
    return {"weights": os.path.abspath(weights) if weights else f"torchvision {opts.pretrained}",
            "weights_sha1": file_digest(weights) if weights else "", "scores": bool(opts.resume),
            "arch": opts.arch, "dataset": opts.dataset, "inputsize": opts.inputsize, "nclass": opts.nclass,
            "step": step, "source_fps": opts.source_fps, "frame_gaps": opts.frame_gaps, "amp": bool(opts.amp),
            "fast_loader": bool(opts.fast_loader or opts.gpu_decode),
            "criterion": {k: getattr(opts, k) for k in ("nhidden", "temporal_weight", "memory_decay", "memory_size",
                                                        "sigma", "window_smooth", "manual_seed")}}


def npy_path(out: str, kind: str, vid: str) -> str:
    return os.path.join(out, kind, vid + ".npy")


def is_complete(path: str, shape: tuple[int, int]) -> bool:
    """Whether ``path`` is a whole float32 array of ``shape`` (a truncated or foreign file is not)."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)  # reads the header; too short a file fails
    except (OSError, ValueError, EOFError):
        return False
    return arr.dtype == np.float32 and arr.shape == shape


def save_npy(path: str, arr: np.ndarray) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: given a name, numpy would append ".npy" to it
            np.save(f, arr)
    atomic_write(path, write)


def video_rows(index) -> list[tuple[str, int, int]]:
    """``(id, first item, end item)`` of every video of a strided index (its items are consecutive)."""
    ends = np.searchsorted(index.video, np.arange(len(index.ids)), side="right")
    starts = np.concatenate([[0], ends[:-1]]).astype(int)
    return list(zip(index.ids.tolist(), starts.tolist(), ends.tolist()))


def extract(ds: FrameDataset, todo: list[tuple[str, int, int]], model, criterion, head: AsyncTFBase,
            kinds: tuple[str, ...], opts: argparse.Namespace) -> int:
    """Write the files of every video of ``todo``; returns the number of frames."""
    chunks = [list(range(s, e))[i:i + opts.batch_size] for _, s, e in todo for i in range(0, e - s, opts.batch_size)]
    loader = DataLoader(ds, batch_sampler=chunks, collate_fn=getattr(ds, "collate_fn", None),
                        num_workers=opts.workers, pin_memory=str(opts.device).startswith("cuda"))
    captured: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    batches, frames = (iter(loader) if todo else iter(())), 0  # no worker processes for a finished run
    try:
        for vid, start, end in tqdm(todo, desc="videos", unit="video", disable=None if distributed.is_main(opts)
                                    else True):
            feats, a_parts, aa_parts, targets = [], [], [], []
            for _ in range(0, end - start, opts.batch_size):
                inputs, target, meta = train.prepare(next(batches), loader, opts)
                captured.clear()
                a, aa = train.forward(model, inputs, opts)
                feats.append(captured[0].flatten(1).float())
                a_parts.append(a)
                aa_parts.append(aa)
                targets.append(target)
            times = torch.from_numpy(ds.index.frame[start:end].astype(np.int64))
            save_npy(npy_path(opts.out, "features", vid), torch.cat(feats).cpu().numpy())
            if "scores" in kinds:
                T = end - start
                # the head's aa is one C x C matrix broadcast over the frames: so over the video (no T x C x C copy)
                shared = all(x.stride(0) == 0 for x in aa_parts)
                aa = aa_parts[0][:1].expand(T, -1, -1) if shared else torch.cat(aa_parts)
                scores, _ = criterion(torch.cat(a_parts), aa, torch.cat(targets), {"id": [vid] * T, "time": times},
                                      synchronous=True)
                save_npy(npy_path(opts.out, "scores", vid), scores.float().cpu().numpy())
            frames += end - start
    finally:
        hook.remove()
    return frames


def write_index(path: str, ds: FrameDataset, done: set[str], fps: float) -> None:
    """``frames.csv``: ``id,row,frame,time`` of every frame of the finished videos, in dataset order."""
    text = io.StringIO()
    rows = csv.writer(text, lineterminator="\n")
    rows.writerow(["id", "row", "frame", "time"])
    for vid, start, end in video_rows(ds.index):
        if vid in done:
            frames = ds.index.frame[start:end].tolist()
            rows.writerows((vid, r, f, f"{(f - 1) / fps:.6f}") for r, f in enumerate(frames))
    atomic_write_text(path, text.getvalue())


def main(argv: list[str] | None = None) -> dict:
    """Extract every video; returns the ids ``written`` now and ``finished`` before (over all processes),
    those skipped for ``no_frames`` or ``gaps``, the ``index`` path, and this process's ``frames`` and
    ``seconds``."""
    opts = options.parse(argv, build_parser())
    distributed.init(opts)
    main_process = distributed.is_main(opts)
    setup_logging(opts.out, enabled=main_process)
    step = frame_step(opts)
    ids = check_inputs(opts)  # before the model: --pretrained would download first
    model, criterion, head = load_model(opts)
    wanted = settings(opts, step)
    check_or_record(os.path.join(opts.out, "settings.json"), wanted, f"--out {opts.out}", write=False)
    kinds = KINDS if opts.resume else ("features",)
    ds, no_frames, gapped = videos_dataset(opts, ids)
    check_or_record(os.path.join(opts.out, "settings.json"), wanted, f"--out {opts.out}", write=main_process)  # recorded once the inputs are known to be good
    dims = {"features": head.mA.in_features, "scores": opts.nclass}

    def complete(vid: str, start: int, end: int) -> bool:
        return all(is_complete(npy_path(opts.out, k, vid), (end - start, dims[k])) for k in kinds)
    mine = video_rows(ds.index)[opts.rank::opts.world_size]
    finished = [v for v in mine if complete(*v)]
    finished_ids = {vid for vid, _, _ in finished}
    todo = [v for v in mine if v[0] not in finished_ids]
    log.info("%d videos at a step of %g frames (%s); this process: %d, %d finished already, %d to extract; "
             "%d videos without frames and %d with frame gaps skipped", len(ds.index.ids), step,
             ", ".join(kinds), len(mine), len(finished), len(todo), len(no_frames), len(gapped))
    for what, ids in (("no frames", no_frames), ("gaps in their frame numbering (--frame-gaps)", gapped)):
        if ids:
            log.warning("skipped %d videos with %s under %s: %s%s", len(ids), what, opts.data, ", ".join(ids[:10]),
                        " ..." if len(ids) > 10 else "")
    begin = time.time()
    with torch.no_grad():
        nframes = extract(ds, todo, model, criterion, head, kinds, opts)
    seconds = time.time() - begin
    log.info("extracted %d frames of %d videos in %.1f s (%.1f frames/s)", nframes, len(todo), seconds,
             nframes / max(seconds, 1e-9))
    parts = distributed.all_objects(([v[0] for v in todo], [v[0] for v in finished]))  # also a barrier
    written, before = [v for p in parts for v in p[0]], [v for p in parts for v in p[1]]
    index = os.path.join(opts.out, "frames.csv")
    if main_process:
        done = {vid for vid, s, e in video_rows(ds.index) if complete(vid, s, e)}
        write_index(index, ds, done, opts.source_fps)
        log.info("%s: %d of %d videos finished; arrays in %s", index, len(done), len(ds.index.ids),
                 ", ".join(os.path.join(opts.out, k) for k in kinds))
    distributed.shutdown()
    return {"written": written, "finished": before, "no_frames": no_frames, "gaps": gapped, "index": index,
            "frames": nframes, "seconds": seconds}


if __name__ == "__main__":
    sys.exit(cli.run(main))
