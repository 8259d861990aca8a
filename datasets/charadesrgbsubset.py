"""Charades RGB over the first ``SUBSET`` videos of each CSV, for quick runs and debugging (the
original's ``charadesrgbsubset``).  Sampling, frames and targets are ``charadesrgb``'s.

val_video is scored by the official evaluator against the same subset of ``--val-file``, written to
``<cache>/charadesrgbsubset_<val file name>``, so that the videos left out do not count as missed.
"""
from __future__ import annotations

import argparse
import csv
import io
import os

from datasets import charadesrgb
from datasets.frames import RGBFrames, resolve_flip, rgb_datasets
from utils.atomic import atomic_write_text

class_names = charadesrgb.class_names
SUBSET = 100  # videos per CSV (the original stopped after ~100 of them)


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
    source = charadesrgb.source(opts, "charadesrgbsubset", SUBSET)
    datasets = rgb_datasets(opts, source, flip=resolve_flip(opts, charadesrgb.DEFAULT_FLIP, None), eval_csv=None,
                            single_label=False)
    eval_csv = write_subset_csv(opts.val_file, os.path.join(opts.cache, "charadesrgbsubset_" +
                                                            os.path.basename(opts.val_file)))
    for ds in datasets:
        ds.eval_csv = eval_csv
    return datasets
