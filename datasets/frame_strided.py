"""The frames feature extraction scores (``extract_features.py``, ``frames.strided_dataset``): every video
sampled at a fixed step of its own frame numbers, ``floor(k*step)+1``, instead of ``frame_index``'s
training and val_video rules."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from datasets.frame_files import Listing
from datasets.frame_index import SplitIndex, usable_starts


def strided_frames(n: int, step: float, span: int = 1) -> np.ndarray:
    """The 1-based frames ``floor(k*step)+1``, k = 0, 1, ..., of a video with ``n`` frames, as long as the
    frame (and its stack of ``span`` frames) fits in ``1..n``.  An integer ``step`` gives 1, 1+step, ...;
    a fractional one (``24/fps``) the frame where each sampling instant falls."""
    if step <= 0:
        raise ValueError(f"the frame step must be positive, got {step}")
    k = np.arange(int((n - 1) / step) + 2, dtype=np.float64)
    # the epsilon keeps k*step that is an integer in exact arithmetic from flooring one frame low
    f = np.floor(k * step + 1e-6).astype(np.int64) + 1
    return f[f <= n - span + 1]


def strided_index(index: SplitIndex, step: float, span: int = 1, listings: dict[str, Listing] | None = None,
                  videos: Sequence[str] | None = None) -> SplitIndex:
    """Every video of ``index`` (or only ``videos``, in ``index`` order) sampled at ``strided_frames``, each
    sample with its video's classes (those of the video's first sample in ``index``: a val_video index
    gives the video-level target).  ``listings``: the listing of a video with gaps in its numbering
    (``--frame-gaps present``): its missing frames are dropped, the others keep their numbers.  A video
    left without a frame goes to ``skipped``."""
    keep = None if videos is None else set(videos)
    first = np.searchsorted(index.video, np.arange(len(index.ids)))
    rows, frames, npos, pos, skipped = [], [], [], [], list(index.skipped)
    for v, vid in enumerate(index.ids.tolist()):
        if keep is not None and vid not in keep:
            continue
        f = strided_frames(int(index.nframes[v]), step, span)
        listing = (listings or {}).get(vid)
        if listing is not None and listing.missing:
            f = f[usable_starts(listing, span)[f]]
        if not len(f):
            skipped.append(vid)
            continue
        classes = index.classes(int(first[v]))
        rows.append(v)
        frames.append(f)
        npos.append(np.full(len(f), len(classes), np.int64))
        pos.append(np.tile(classes, len(f)))
    counts = np.concatenate(npos) if npos else np.zeros(0, np.int64)
    return SplitIndex(
        split="strided", ids=index.ids[rows], nframes=index.nframes[rows], lengths=index.lengths[rows],
        video=np.concatenate([np.full(len(f), r, np.int32) for r, f in enumerate(frames)] or [np.zeros(0, np.int32)]),
        frame=np.concatenate(frames or [np.zeros(0, np.int64)]).astype(np.int32),
        label_ptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int32),
        label_cls=np.concatenate(pos or [np.zeros(0, np.int16)]).astype(np.int16),
        skipped=np.array(skipped, dtype=str), gapped=index.gapped)
