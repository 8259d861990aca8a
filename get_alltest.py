#!/usr/bin/env python
"""Score every video of a CSV with a trained checkpoint and write both submission files (SPEC 7).

    python get_alltest.py --resume CHECKPOINT --val-file CSV --data DIR [--arch ... model flags]

The project's own scorer: the original has no ``get_alltest.py`` (its evaluation path is ``--evaluate``,
e.g. ``exp/asynctf_rgb_test.py``: frame-level validation, then val_video).  Here only the videos are scored,
one after another, in synchronous mode (1 + 5 passes, smoothing), from an empty message buffer (the
checkpoint's buffer is not loaded).  With ``--memory-size`` at most 5 x the frames scored per video (250 at
the default 50) the scores equal ``--evaluate``'s; above it, the messages that ``--evaluate``'s frame-level
validation stores first reach its video scores, and not these.  Writes ``<out-dir>/classify.txt`` and
``<out-dir>/localize.txt`` (default out-dir: the run's cache directory) and prints their official mAP when
the CSV has labels.
"""
from __future__ import annotations

import logging
import os
import sys

import checkpoints
import opts as options
import train
from datasets import check_data, get_dataset
from models import create_model
from utils import charades_eval, cli
from utils.charades_csv import read_annotations
from utils.logger import setup_logging
from utils.submission import write_classification, write_localization

log = logging.getLogger("get_alltest")


def main(argv: list[str] | None = None) -> dict:
    """Write the two submission files; return their paths and, with labels, their mAPs."""
    parser = options.build_parser()
    parser.add_argument("--out-dir", default="", help="where to write the files (default: the cache dir)")
    opts = options.parse(argv, parser)
    if not opts.resume:  # (a --resume that is not a file is refused when parsed)
        raise cli.InputError("get_alltest needs a trained checkpoint: --resume CHECKPOINT")
    check_data(opts, files=("val_file",))  # before the model: --pretrained would download first
    setup_logging(opts.cache)
    opts.train_file = opts.train_file or opts.val_file  # only the val_video split is used
    model, criterion, _ = create_model(opts)
    checkpoints.resume(opts.resume, model, trusted=opts.trust_checkpoint)
    _, _, video_loader = get_dataset(opts)
    ids, scores, local, targets = train.score_videos(video_loader, model, criterion, opts, desc="test")
    out = opts.out_dir or opts.cache
    result = {"classify": os.path.join(out, "classify.txt"), "localize": os.path.join(out, "localize.txt")}
    write_classification(result["classify"], ids, scores)
    write_localization(result["localize"], ids, local)
    log.info("scored %d videos: %s, %s", len(ids), result["classify"], result["localize"])
    gt_csv = video_loader.dataset.eval_csv  # the Charades-format file the official evaluator reads, if any
    if gt_csv is None:  # single-label sets: the mAP of the scores against the videos' labels, as validate_video
        result["classify_mAP"] = train.video_map(scores, targets, result["classify"], None)
        log.info("classify: mAP %.4f (classes with positives)", result["classify_mAP"])
    elif any(v.actions for v in read_annotations(gt_csv, opts.nclass)):
        for kind in ("classify", "localize"):
            ap, mAP, wAP = getattr(charades_eval, kind)(result[kind], gt_csv, nclass=opts.nclass)
            result[kind + "_mAP"] = charades_eval.mean_ap_with_positives(ap)  # the official mAP is NaN then
            log.info("%s: mAP %.4f (classes with positives), WAP %.4f", kind, result[kind + "_mAP"], wAP)
    return result


if __name__ == "__main__":
    sys.exit(cli.run(main))
