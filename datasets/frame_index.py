"""The sample index of every frame dataset (SPEC sections 2, 11, 12 and 13).

No image is decoded here: each video's frames are found with one directory listing (``frame_files``),
and the samples of each split are computed from the listings and the annotations.  A dataset module describes itself with
a ``FrameSource`` (how to read its annotation file, how its frame files are named, where val_video's
frames go) and ``load_splits`` does the rest.

- train / val (frame level): 0-based frame indices ``i = 0, GAP, 2*GAP, ... < n-1`` (image ``i+1``).
  ``sampling="frame"`` (Charades, Jester, SSv2): one sample per frame, target = every action with
  ``start < i/fps < end`` (strict); a single-label video (Jester, SSv2) is one action without bounds.
  ``sampling="action"`` (the original's ``charadesrgbsubset``): one sample per (action, frame inside that
  action), action by action in annotation order, each with that action's class alone; frames outside
  every action, and so videos without actions, give none.  With ``span > 1`` (flow stacks of ``span``
  consecutive frames) samples whose stack would run past frame ``n`` are dropped.
- val_video: ``test_frames`` samples in time order (the source's own ``test_frames`` when it has one),
  all with the video-level target.
  ``placement="time"`` (Charades, SPEC 12): at ``t_k = k * length / test_frames`` seconds, frame
  ``floor(t_k*fps)+1`` clamped to ``1..n``.  ``placement="spread"`` (as the original): frames
  ``floor(np.linspace(0, n-1, test_frames))+1``, first to last, so short videos repeat frames.  With
  ``span > 1`` moved back to ``min(frame, n-span+1)`` (at least 1) so the stack fits.
- A sample's ``time`` (``meta['time']``) is its 1-based frame number (the first of the stack for flow).
- ``strided_index`` (feature extraction) re-samples the videos of an index at a fixed frame step.
- Gaps in a video's frame numbering (frame 13 missing of 1..48) are found in its listing and reported
  per video.  ``gaps`` (``--frame-gaps``) chooses what happens: ``skip`` the video (the default),
  sample only the frames ``present`` (samples that need a missing frame are dropped; val_video takes the
  nearest usable frame), or stop with an ``error`` that lists them.
- A split without a single sample is an error that names the annotation file and the data directory.

The index of a split is cached in the run's cache directory, keyed by everything it depends on, each
video's listing included; the listings are cached with their directories' mtimes, so a tree that changed
(frames still being written, deleted, videos added) is noticed with one ``stat`` per video, only the
changed videos are listed again, and the index is rebuilt, with one line saying so (``index_cache``).
The headers of the frames an index samples are checked when it is built, where that is cheap.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from datasets import index_cache
from datasets.frame_files import FrameNaming, Listing, describe_gaps
from datasets.frame_io import WITHOUT_IT
from opts import FRAME_GAPS as GAP_POLICIES
from utils.file_hash import file_digest
from utils.cli import MissingInputError, UserError

log = logging.getLogger(__name__)

GAP = 4          # frame-level sampling stride (frames)
FPS = 24         # frame rate of the extracted frames
FLOW_SPAN = 10   # consecutive flow pairs stacked per flow sample
SPLITS = ("train", "val", "val_video")
PLACEMENTS = ("time", "spread")
SAMPLINGS = ("frame", "action")
INDEX_VERSION = 3  # bump when the sampling rules change, so that stale caches are never reused


class DatasetError(UserError, ValueError):
    """Annotations and frames that cannot make a split (no sample at all, frame gaps under
    ``--frame-gaps error``); the message names the files."""


@dataclass(frozen=True)
class LabelledVideo:
    """A video with one class over all of it (Jester, Something-Something): one action without bounds,
    and no length in seconds (val_video frames are spread over its frames)."""

    id: str
    label: int
    line: int = field(default=0, compare=False)
    length: ClassVar[None] = None

    @property
    def classes(self) -> list[int]:
        return [self.label]

    @property
    def actions(self) -> tuple[tuple[int, float, float], ...]:
        return ((self.label, -math.inf, math.inf),)


@dataclass(frozen=True)
class FrameSource:
    """What the index needs from a dataset module."""

    name: str                                # the dataset ("charadesrgb"): cache file names and messages
    naming: FrameNaming
    read: Callable[[str], Sequence]          # annotation file -> videos (.id, .classes, .actions, .length)
    depends: tuple[str, ...] = ()            # other files the videos depend on (a labels file)
    placement: str = "time"                  # of val_video's frames, see the module docstring
    span: int = 1                            # consecutive frames per sample (flow stacks)
    sampling: str = "frame"                  # of train / val, see the module docstring
    test_frames: int | None = None           # val_video frames per video (None: --test-frames)


@dataclass
class SplitIndex:
    """The samples of one split.  Labels are stored sparsely (CSR) because Charades train has ~1.4M
    frame samples and a dense 157-wide float target per sample would not be a "small" cache file."""

    split: str
    ids: np.ndarray        # (V,) str: the kept videos, in annotation order
    nframes: np.ndarray    # (V,) int64: highest frame number (flow: x/y pair) of each kept video
    lengths: np.ndarray    # (V,) float64: length in seconds of each kept video (NaN: none given)
    video: np.ndarray      # (N,) int32: row in ``ids`` of each sample
    frame: np.ndarray      # (N,) int32: 1-based frame number (flow: first of the stack) = meta time
    label_ptr: np.ndarray  # (N+1,) int32: sample i's classes are label_cls[label_ptr[i]:label_ptr[i+1]]
    label_cls: np.ndarray  # (P,) int16: positive classes, concatenated
    skipped: np.ndarray    # (S,) str: videos skipped because they have no frames
    gapped: np.ndarray     # (G,) str: videos with gaps in their frame numbering (skipped, or sampled
    #                        from the frames present, by the gap policy)

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


def usable_starts(listing: Listing, span: int = 1) -> np.ndarray | None:
    """``ok[f]``: a sample starting at frame ``f`` (1..n) finds all its frames ``f .. min(f+span-1, n)``;
    None when the video has no gap (every start is usable)."""
    if not listing.missing:
        return None
    n = listing.n
    absent = np.zeros(n + 1, np.int64)
    absent[np.asarray(listing.missing)] = 1
    before = np.cumsum(absent)  # before[f]: missing frames among 1..f
    f = np.arange(1, n + 1)
    ok = np.zeros(n + 1, bool)
    ok[1:] = before[np.minimum(f + span - 1, n)] - before[f - 1] == 0
    return ok


def nearest_usable(frames: np.ndarray, ok: np.ndarray) -> np.ndarray | None:
    """Each of ``frames`` moved to the nearest usable start (ties: the earlier); None if there is none."""
    starts = np.flatnonzero(ok)
    if not len(starts):
        return None
    pos = np.clip(np.searchsorted(starts, frames), 1, len(starts) - 1) if len(starts) > 1 else np.zeros_like(frames)
    lower, upper = starts[np.maximum(pos - 1, 0)], starts[pos]
    return np.where(np.abs(frames - lower) <= np.abs(upper - frames), lower, upper)


def val_video_frames(n: int, length: float | None, test_frames: int, fps: float, placement: str) -> np.ndarray:
    """The 1-based frames of val_video's ``test_frames`` samples of a video with ``n`` frames."""
    if placement == "spread":
        # numpy's float linspace, as the original: k*step with step = (n-1)/(T-1) can fall just below an
        # integer that exact arithmetic reaches (n=120, T=50: k=21 gives 50.99999... -> frame 51, not 52)
        return np.floor(np.linspace(0, n - 1, test_frames)).astype(np.int64) + 1
    k = np.arange(test_frames, dtype=np.int64)
    # The epsilon keeps t_k*fps that is an integer in exact arithmetic (e.g. the 25 official
    # localisation points) from flooring one frame low through float rounding.
    return np.floor(k * length * fps / test_frames + 1e-6).astype(np.int64) + 1


def build_index(videos: Sequence, listings: Sequence[Listing | int], split: str, *, gap: int = GAP,
                fps: float = FPS, test_frames: int = 50, span: int = 1, placement: str = "time",
                gaps: str = "skip", sampling: str = "frame") -> SplitIndex:
    """The samples of ``split`` (see the module docstring) given each video's listing (or frame count)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement {placement!r}; expected one of {PLACEMENTS}")
    if sampling not in SAMPLINGS:
        raise ValueError(f"unknown sampling {sampling!r}; expected one of {SAMPLINGS}")
    ids, nframes, lengths, skipped, gapped = [], [], [], [], []
    vrows, frames, npos, pos = [], [], [], []
    for v, listing in zip(videos, listings):
        listing = Listing(listing) if isinstance(listing, (int, np.integer)) else listing
        n = listing.n
        if n <= 0:
            skipped.append(v.id)
            continue
        if listing.missing:
            gapped.append(v.id)
            if gaps == "skip":
                continue
        ok = usable_starts(listing, span)
        uniq = v.classes
        if split == "val_video":
            f = np.clip(val_video_frames(n, v.length, test_frames, fps, placement), 1, n)
            f = np.maximum(np.minimum(f, n - span + 1), 1)  # the stack must fit (span=1: no-op)
            if ok is not None:
                f = nearest_usable(f, ok)
                if f is None:  # no frame of it can be read: nothing to score
                    continue
            sample_frames = f
            npos.append(np.full(len(f), len(uniq), np.int64))
            pos.append(np.tile(np.asarray(uniq, np.int16), len(f)))
        else:
            i = np.arange(0, n - 1, gap, dtype=np.int64)
            i = i[i + span <= n]  # flow: drop stacks running past the last frame (span=1: no-op)
            if ok is not None:
                i = i[ok[i + 1]]
            t = i / fps
            inside = [(c, (t > start) & (t < end)) for c, start, end in v.actions]
            if sampling == "action":  # one sample per (action, frame inside it), one class each
                sample_frames = np.concatenate([i[m] for _, m in inside] or [np.zeros(0, np.int64)]) + 1
                npos.append(np.ones(len(sample_frames), np.int64))
                pos.append(np.concatenate([np.full(int(m.sum()), c, np.int16) for c, m in inside]
                                          or [np.zeros(0, np.int16)]))
            else:
                hot = np.zeros((len(i), len(uniq)), bool)
                for c, m in inside:
                    hot[:, uniq.index(c)] |= m
                r, col = np.nonzero(hot)  # row-major: each sample's classes come out sorted and together
                sample_frames = i + 1
                npos.append(np.bincount(r, minlength=len(i)).astype(np.int64))
                pos.append(np.asarray(uniq, np.int16)[col])
        row = len(ids)
        ids.append(v.id)
        nframes.append(n)
        lengths.append(np.nan if v.length is None else v.length)
        frames.append(sample_frames)
        vrows.append(np.full(len(sample_frames), row, np.int64))

    def cat(parts: list[np.ndarray], dtype) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
    counts_per_sample = cat(npos, np.int64)
    return SplitIndex(
        split=split, ids=np.array(ids, dtype=str), nframes=np.array(nframes, np.int64),
        lengths=np.array(lengths, np.float64), video=cat(vrows, np.int32), frame=cat(frames, np.int32),
        label_ptr=np.concatenate([[0], np.cumsum(counts_per_sample)]).astype(np.int32),
        label_cls=cat(pos, np.int16), skipped=np.array(skipped, dtype=str), gapped=np.array(gapped, dtype=str))


def _report_gaps(videos: Sequence, listings: Sequence[Listing], source: FrameSource, ann_path: str,
                 root: str, gaps: str) -> None:
    """One warning per video with a gap in its numbering (or, under ``error``, one error for all)."""
    bad = [(v, listing) for v, listing in zip(videos, listings) if listing.missing]
    if not bad:
        return
    if gaps == "error":
        shown = "; ".join(f"{v.id}: {describe_gaps(listing)}" for v, listing in bad[:10])
        raise DatasetError(f"{len(bad)} of the {len(videos)} videos of {ann_path} have gaps in their frame "
                           f"numbering under {root}: {shown}{' ...' if len(bad) > 10 else ''} "
                           f"(--frame-gaps skip leaves them out, --frame-gaps present uses the frames present)")
    what = ("skipped (--frame-gaps present would use the frames present)" if gaps == "skip" else
            "only the frames present are sampled (--frame-gaps present)")
    for v, listing in bad:
        log.warning("%s (%s): video %s: %s under %s; %s", source.name, ann_path, v.id, describe_gaps(listing),
                    root, what)


def _empty_split_message(split: str, ann_path: str, root: str, source: FrameSource, nvideos: int,
                         index: SplitIndex, gaps: str) -> str:
    if nvideos == 0:
        return f"{ann_path} lists no videos (an empty or header-only annotation file): no {split} samples"
    example = source.naming.path(root, str(index.skipped[0]) if len(index.skipped) else "<id>", 1,
                                 source.naming.axes[0])
    return (f"no {split} samples from the {nvideos} videos of {ann_path} under {root} (--data): "
            f"{len(index.skipped)} have no frames (looked for files such as {example}), "
            f"{len(index.gapped)} have gaps in their frame numbering (--frame-gaps {gaps}), "
            f"{nvideos - len(index.skipped) - len(index.gapped)} are too short to give a sample"
            f"{' or have no frame inside an action' if source.sampling == 'action' else ''}")


def _check_ids(videos: Sequence, ann_path: str) -> None:
    """A video id names the directory ``<data>/<id>/``: it must be one path component, so that no
    annotation file can make the loader read (or list) anything outside ``--data``."""
    bad = [v.id for v in videos if v.id in (".", "..") or "/" in v.id or "\\" in v.id or "\0" in v.id]
    if bad:
        raise DatasetError(f"{ann_path}: {len(bad)} video id(s) are not plain directory names under --data "
                           f"(they hold '/' or '\\', or are '.' / '..'): {', '.join(map(repr, bad[:5]))}")


def _check_frames(index: SplitIndex, relisted: set[str], root: str, source: FrameSource) -> None:
    """The headers of the frames ``index`` samples from the videos listed now, where that is cheap; a bad
    one is a ``DatasetError`` naming it and the way around it."""
    rows, frames = index_cache.sampled_frames(index, relisted, source.span)
    count = len(frames) * len(source.naming.axes)
    if count > index_cache.HEADER_CHECK_LIMIT:  # counted before any path is made (Charades: 1.5M samples)
        log.info("%s %s: %d frames sampled from new or changed videos: too many to check now; a bad one is named "
                 "when it is read", source.name, index.split, count)
        return
    paths = index_cache.sampled_paths(index, rows, frames, root, source.naming)
    bad = index_cache.check_headers(paths)
    if bad:
        raise DatasetError(f"{len(bad)} frame(s) of the {index.split} split cannot be read: {'; '.join(bad[:5])}"
                           f"{' ...' if len(bad) > 5 else ''}{WITHOUT_IT}")


def load_split(ann_path: str, root: str, split: str, cache_dir: str, source: FrameSource, *,
               nclass: int = 157, test_frames: int = 50, gap: int = GAP, fps: float = FPS,
               gaps: str = "skip", memo: dict | None = None) -> SplitIndex:
    """The index of one split, from the cache when nothing it depends on has changed (the frame tree
    included: ``index_cache``).

    ``memo`` (optional) shares the parsed annotations and listings between splits of the same file
    (val and val_video) so the directories are looked at once.
    """
    if gaps not in GAP_POLICIES:
        raise ValueError(f"unknown frame-gap policy {gaps!r}; expected one of {GAP_POLICIES}")
    if not ann_path:
        raise MissingInputError(f"no annotation file given for the {split} split (--train-file/--val-file)")
    if not os.path.isfile(ann_path):
        raise MissingInputError(f"annotation file not found: {ann_path}")
    if not root or not os.path.isdir(root):
        raise MissingInputError(f"data directory not found: {root!r} (--data)")
    key_fields = dict(version=INDEX_VERSION, annotations=file_digest(ann_path),
                      depends=[file_digest(p) for p in source.depends], root=os.path.abspath(root),
                      split=split, gap=gap, fps=fps, test_frames=test_frames, nclass=nclass, dataset=source.name,
                      naming=[source.naming.template, *source.naming.axes], placement=source.placement,
                      span=source.span, gaps=gaps, sampling=source.sampling)
    os.makedirs(cache_dir, exist_ok=True)
    memo = {} if memo is None else memo
    mkey = (key_fields["annotations"], tuple(key_fields["depends"]), key_fields["root"], source.name, nclass)
    if mkey not in memo:  # the annotations are parsed only when no listing cache gives their ids
        lpath = index_cache.listings_path(cache_dir, source.name, root, source.naming, key_fields["annotations"])
        ids = index_cache.cached_ids(lpath)
        videos = None if ids is not None else source.read(ann_path)
        if videos is not None:
            _check_ids(videos, ann_path)
            ids = [v.id for v in videos]
        listings, changed, relisted = index_cache.fresh_listings(ids, root, source.naming, lpath)
        if changed:
            log.warning("%s (%s): %d of its %d videos changed under %s since they were listed (e.g. %s): listed "
                        "again, and the index rebuilt", source.name, ann_path, len(changed), len(ids), root,
                        ", ".join(changed[:5]))
        memo[mkey] = {"videos": videos, "listings": listings, "relisted": relisted, "lpath": lpath}
    entry = memo[mkey]
    key = hashlib.sha1(json.dumps({**key_fields, "listings": index_cache.listings_digest(entry["listings"])},
                                  sort_keys=True).encode()).hexdigest()
    name = hashlib.sha1(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:16]
    path = os.path.join(cache_dir, f"index_{source.name}_{split}_{name}.npz")  # one file, rewritten on changes
    if os.path.exists(path):
        try:
            index = index_cache.read_index(path, key, SplitIndex)
            if index is not None:
                log.info("%s %s: %d samples of %d videos from the index cache %s (%d skipped without frames, "
                         "%d with frame gaps)", source.name, split, len(index), len(index.ids), path,
                         len(index.skipped), len(index.gapped))
                return index
        except Exception as e:  # a corrupt or truncated cache only costs a rebuild
            log.warning("index cache %s is unreadable (%s: %s); rebuilding it", path, type(e).__name__, e)
    if entry["videos"] is None:
        entry["videos"] = source.read(ann_path)
        _check_ids(entry["videos"], ann_path)
    videos, listings = entry["videos"], entry["listings"]
    if not entry.get("reported"):
        _report_gaps(videos, listings, source, ann_path, root, gaps)
        entry["reported"] = True
    index = build_index(videos, listings, split, gap=gap, fps=fps, test_frames=test_frames, span=source.span,
                        placement=source.placement, gaps=gaps, sampling=source.sampling)
    if len(index) == 0:
        raise DatasetError(_empty_split_message(split, ann_path, root, source, len(videos), index, gaps))
    try:
        _check_frames(index, entry["relisted"], root, source)
    except DatasetError:
        with contextlib.suppress(OSError):
            os.remove(entry["lpath"])  # so that the next run lists (and checks) every video again
        raise
    if len(index.skipped):
        log.warning("%s %s (%s): skipped %d of %d videos with no frames under %s (e.g. %s)",
                    source.name, split, ann_path, len(index.skipped), len(videos), root,
                    ", ".join(index.skipped[:5].tolist()))
    log.info("%s %s: built %d samples of %d videos; cached in %s", source.name, split, len(index),
             len(index.ids), path)
    index_cache.write_index(path, key, index)
    return index


def load_splits(opts: argparse.Namespace, source: FrameSource) -> tuple[SplitIndex, SplitIndex, SplitIndex]:
    """train (``opts.train_file``), val and val_video (``opts.val_file``) indices of ``opts.data``."""
    common = dict(nclass=opts.nclass, test_frames=source.test_frames or opts.test_frames,
                  gaps=getattr(opts, "frame_gaps", "skip"), memo={})
    return tuple(load_split(path, opts.data, split, opts.cache, source, **common)  # type: ignore[return-value]
                 for path, split in ((opts.train_file, "train"), (opts.val_file, "val"),
                                     (opts.val_file, "val_video")))
