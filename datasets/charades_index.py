"""The sample index of Charades, shared by the RGB and flow datasets (SPEC sections 2, 11, 12).

No image is decoded here: frames are counted with one directory listing per video and the samples of
each split are computed from those counts and the annotations.

- train / val (frame level): 0-based frame indices ``i = 0, GAP, 2*GAP, ... < n-1`` (image ``i+1``),
  target = every action with ``start < i/fps < end`` (strict).  With ``span > 1`` (flow stacks of
  ``span`` consecutive frames) samples whose stack would run past frame ``n`` are dropped.
- val_video: ``test_frames`` samples at ``t_k = k * length / test_frames``, frame ``floor(t_k*fps)+1``
  clamped to ``1..n``; with ``span > 1`` moved back to ``min(frame, n-span+1)`` (at least 1) so the
  stack fits.  Every sample carries the video-level target.
- A sample's ``time`` (``meta['time']``) is its 1-based frame number (the first of the stack for flow).

The index of a split is cached in the run's cache directory, keyed by everything it depends on.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields

import numpy as np

from utils.atomic import atomic_write
from utils.charades_csv import Video, file_digest, read_annotations

log = logging.getLogger(__name__)

GAP = 4          # frame-level sampling stride (frames)
FPS = 24         # frame rate of the extracted frames
FLOW_SPAN = 10   # consecutive flow pairs stacked per flow sample
SPLITS = ("train", "val", "val_video")
MODALITIES = ("rgb", "flow")
INDEX_VERSION = 1  # bump when the sampling rules change, so that stale caches are never reused


@dataclass
class SplitIndex:
    """The samples of one split.  Labels are stored sparsely (CSR) because Charades train has ~1.4M
    frame samples and a dense 157-wide float target per sample would not be a "small" cache file."""

    split: str
    ids: np.ndarray        # (V,) str: the kept videos, in CSV order
    nframes: np.ndarray    # (V,) int64: frames (flow: x/y pairs) of each kept video
    lengths: np.ndarray    # (V,) float64: CSV length in seconds of each kept video
    video: np.ndarray      # (N,) int32: row in ``ids`` of each sample
    frame: np.ndarray      # (N,) int32: 1-based frame number (flow: first of the stack) = meta time
    label_ptr: np.ndarray  # (N+1,) int32: sample i's classes are label_cls[label_ptr[i]:label_ptr[i+1]]
    label_cls: np.ndarray  # (P,) int16: positive classes, concatenated
    skipped: np.ndarray    # (S,) str: videos skipped because they have no frames

    def __len__(self) -> int:
        return len(self.frame)

    def classes(self, i: int) -> np.ndarray:
        """The positive classes of sample ``i``."""
        return self.label_cls[self.label_ptr[i]:self.label_ptr[i + 1]]

    def video_id(self, i: int) -> str:
        return str(self.ids[self.video[i]])

    @property
    def video_ids(self) -> list[str]:
        """Each sample's video id, in sample order (computed on demand: keeps workers' copies small)."""
        ids = self.ids.tolist()
        return [ids[v] for v in self.video.tolist()]


def count_frames(video_dir: str, video_id: str, modality: str = "rgb") -> int:
    """Frames of one video from ONE directory listing; 0 when the directory is missing or empty.

    rgb counts ``<id>-NNNNNN.jpg``; flow counts ``<id>-NNNNNNx.jpg`` / ``...y.jpg`` pairs (files / 2;
    ``min(#x, #y)`` so that a half-written pair is not counted as a usable frame).
    """
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    try:
        names = os.listdir(video_dir)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    if modality == "rgb":
        pat = re.compile(re.escape(video_id) + r"-\d{6}\.jpg")
        return sum(1 for name in names if pat.fullmatch(name))
    pat = re.compile(re.escape(video_id) + r"-\d{6}([xy])\.jpg")
    found = [m.group(1) for m in map(pat.fullmatch, names) if m]
    return min(found.count("x"), found.count("y"))


def count_all(videos: list[Video], root: str, modality: str = "rgb", workers: int = 16) -> list[int]:
    """``count_frames`` of every video; threaded because listings on a network file system are
    latency-bound (one round trip per video, ~10k videos)."""
    def one(v: Video) -> int:
        return count_frames(os.path.join(root, v.id), v.id, modality)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, videos))


def build_index(videos: list[Video], counts: list[int], split: str, *, gap: int = GAP, fps: float = FPS,
                test_frames: int = 50, span: int = 1) -> SplitIndex:
    """The samples of ``split`` (see the module docstring) given each video's frame count."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    ids, nframes, lengths, skipped = [], [], [], []
    vrows, frames, npos, pos = [], [], [], []
    for v, n in zip(videos, counts):
        if n <= 0:
            skipped.append(v.id)
            continue
        row = len(ids)
        ids.append(v.id)
        nframes.append(n)
        lengths.append(v.length)
        uniq = v.classes
        if split == "val_video":
            k = np.arange(test_frames)
            # The epsilon keeps t_k*fps that is an integer in exact arithmetic (e.g. the 25 official
            # localisation points) from flooring one frame low through float rounding.
            f = np.floor(k * v.length * fps / test_frames + 1e-6).astype(np.int64) + 1
            f = np.clip(f, 1, n)
            f = np.maximum(np.minimum(f, n - span + 1), 1)  # the stack must fit (span=1: no-op)
            frames.append(f)
            npos.append(np.full(len(f), len(uniq), np.int64))
            pos.append(np.tile(np.asarray(uniq, np.int16), len(f)))
        else:
            i = np.arange(0, n - 1, gap, dtype=np.int64)
            i = i[i + span <= n]  # flow: drop stacks running past the last frame (span=1: no-op)
            t = i / fps
            hot = np.zeros((len(i), len(uniq)), bool)
            for c, start, end in v.actions:
                hot[:, uniq.index(c)] |= (t > start) & (t < end)
            r, col = np.nonzero(hot)  # row-major: each sample's classes come out sorted and together
            frames.append(i + 1)
            npos.append(np.bincount(r, minlength=len(i)).astype(np.int64))
            pos.append(np.asarray(uniq, np.int16)[col])
        vrows.append(np.full(len(frames[-1]), row, np.int64))

    def cat(parts: list[np.ndarray], dtype) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
    counts_per_sample = cat(npos, np.int64)
    return SplitIndex(
        split=split, ids=np.array(ids, dtype=str), nframes=np.array(nframes, np.int64),
        lengths=np.array(lengths, np.float64), video=cat(vrows, np.int32), frame=cat(frames, np.int32),
        label_ptr=np.concatenate([[0], np.cumsum(counts_per_sample)]).astype(np.int32),
        label_cls=cat(pos, np.int16), skipped=np.array(skipped, dtype=str))


def _write_cache(path: str, key: str, index: SplitIndex) -> None:
    """Atomic write (temp file + os.replace): concurrent ranks or a crash never leave a half file.
    Compressed: Charades train (~1.4M samples) takes ~2 MB instead of ~25 MB, for ~0.6 s once."""
    arrays = {f.name: getattr(index, f.name) for f in fields(SplitIndex)}
    arrays["split"] = np.array(index.split)
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: given a name, numpy would append ".npz" to it
            np.savez_compressed(f, key=np.array(key), **arrays)
    try:
        atomic_write(path, write)
    except OSError as e:  # the cache is an optimisation: failing to write it must not stop a run
        log.warning("could not write the index cache %s: %s", path, e)


def _read_cache(path: str, key: str) -> SplitIndex:
    with np.load(path, allow_pickle=False) as z:
        if str(z["key"]) != key:
            raise ValueError("key mismatch")
        data = {f.name: z[f.name] for f in fields(SplitIndex)}
    data["split"] = str(data["split"])
    index = SplitIndex(**data)
    if len(index.label_ptr) != len(index.frame) + 1 or len(index.video) != len(index.frame):
        raise ValueError("inconsistent array lengths")
    return index


def load_split(csv_path: str, root: str, split: str, cache_dir: str, *, nclass: int = 157,
               test_frames: int = 50, modality: str = "rgb", span: int = 1, gap: int = GAP,
               fps: float = FPS, memo: dict | None = None) -> SplitIndex:
    """The index of one split, from the cache when nothing it depends on has changed.

    ``memo`` (optional) shares the parsed CSV and frame counts between splits of the same CSV
    (val and val_video) so the directories are listed once.
    """
    if not csv_path:
        raise FileNotFoundError(f"no annotation file given for the {split} split (--train-file/--val-file)")
    if not os.path.isfile(csv_path):
        raise FileNotFoundError(f"annotation file not found: {csv_path}")
    if not root or not os.path.isdir(root):
        raise FileNotFoundError(f"data directory not found: {root!r} (--data)")
    key_fields = dict(version=INDEX_VERSION, csv=file_digest(csv_path), root=os.path.abspath(root),
                      split=split, gap=gap, fps=fps, test_frames=test_frames, nclass=nclass,
                      modality=modality, span=span)
    key = hashlib.sha1(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, f"index_{modality}_{split}_{key[:16]}.npz")
    if os.path.exists(path):
        try:
            index = _read_cache(path, key)
            log.info("%s %s: %d samples of %d videos from the index cache %s",
                     modality, split, len(index), len(index.ids), path)
            return index
        except Exception as e:  # a corrupt or truncated cache only costs a rebuild
            log.warning("index cache %s is unreadable (%s: %s); rebuilding it", path, type(e).__name__, e)
    memo = {} if memo is None else memo
    mkey = (key_fields["csv"], key_fields["root"], modality, nclass)
    if mkey not in memo:
        videos = read_annotations(csv_path, nclass)
        memo[mkey] = (videos, count_all(videos, root, modality))
    videos, counts = memo[mkey]
    index = build_index(videos, counts, split, gap=gap, fps=fps, test_frames=test_frames, span=span)
    if len(index.skipped):
        log.warning("%s %s (%s): skipped %d of %d videos with no %s frames under %s (e.g. %s)",
                    modality, split, csv_path, len(index.skipped), len(videos), modality, root,
                    ", ".join(index.skipped[:5].tolist()))
    log.info("%s %s: built %d samples of %d videos; cached in %s",
             modality, split, len(index), len(index.ids), path)
    _write_cache(path, key, index)
    return index


def load_splits(opts: argparse.Namespace, modality: str = "rgb",
                span: int = 1) -> tuple[SplitIndex, SplitIndex, SplitIndex]:
    """train (``opts.train_file``), val and val_video (``opts.val_file``) indices of ``opts.data``."""
    common = dict(cache_dir=opts.cache, nclass=opts.nclass, test_frames=opts.test_frames,
                  modality=modality, span=span, memo={})
    return (load_split(opts.train_file, opts.data, "train", **common),
            load_split(opts.val_file, opts.data, "val", **common),
            load_split(opts.val_file, opts.data, "val_video", **common))
