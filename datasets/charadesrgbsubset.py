"""Charades RGB over the first ``SUBSET`` videos of each CSV, for quick runs and debugging: the original's
``charadesrgbsubset``, whose sampling differs from ``charadesrgb``'s (``frame_index``'s ``action`` sampling):

- train / val: one item per (action, frame inside that action), every 4th frame from frame 1, action by
  action in CSV order, each with that action's class alone (a one-hot target); frames outside every
  action, and videos without actions, are never sampled;
- val_video: ``TEST_FRAMES`` (25) frames per video at ``floor(linspace(0, n-1, 25)) + 1``, with the
  video-level target (videos without actions too); ``--test-frames`` does not apply;
- the first 101 CSV rows (the original stopped after 101 videos of a Python 2 dict, in no reproducible
  order).

The original could not run: it had no ``testGAP`` for the val_video loader's batch size (25 here, the
frames of one video) and its class-index targets broke ``accuracy()`` (one-hot vectors here, what its
criterion turned them into).  val_video is scored by the official evaluator against the same 101 rows of
``--val-file``, written to ``<cache>/charadesrgbsubset_<val file name>``, so that the videos left out do
not count as missed.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
from dataclasses import replace

from datasets import charadesrgb
from datasets.frames import RGBFrames, resolve_flip, rgb_datasets
from utils.atomic import atomic_write_text

class_names = charadesrgb.class_names
SUBSET = 101      # CSV rows (the original's ``if i > 100: break``)
TEST_FRAMES = 25  # val_video frames per video (the original's ``testGAP = 25``)


def write_subset_csv(path: str, out: str, limit: int = SUBSET) -> str:
    """The header and first ``limit`` rows of the CSV ``path``, written to ``out``; returns ``out``."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [row for _, row in zip(range(limit + 1), csv.reader(f))]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    atomic_write_text(out, text.getvalue())
    return out


def get(opts: argparse.Namespace) -> tuple[RGBFrames, RGBFrames, RGBFrames]:
    """train, val, val_video datasets of the first ``SUBSET`` videos of each CSV."""
    source = replace(charadesrgb.source(opts, "charadesrgbsubset", SUBSET), placement="spread", sampling="action",
                     test_frames=TEST_FRAMES)
    datasets = rgb_datasets(opts, source, flip=resolve_flip(opts, charadesrgb.DEFAULT_FLIP, None), eval_csv=None,
                            single_label=False)
    eval_csv = write_subset_csv(opts.val_file, os.path.join(opts.cache, "charadesrgbsubset_" +
                                                            os.path.basename(opts.val_file)))
    for ds in datasets:
        ds.eval_csv = eval_csv
    return datasets
