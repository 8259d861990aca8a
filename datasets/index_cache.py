"""The caches behind ``frame_index.load_split``, and how they notice a frame tree that changed.

**Listings.** Each video's frame listing (``frame_files.Listing``) is cached with the modification time of
its directory, in ``<cache>/listing_<dataset>_<key>.npz`` (one per annotation file and data root).  A
directory's mtime changes whenever a file is added to it, removed from it or renamed in it: frames that
``extract_frames.py`` was still writing when a run started, frames deleted, a video renamed into place.  So
``fresh_listings`` costs one ``stat`` per video (no directory listing, nothing read) when nothing changed,
and lists again only the videos whose directory changed; a video listed while its directory could still
change within the file system's timestamp resolution (its mtime within ``RACY_NS`` of the listing, as
git's "racy" index entries) is listed again next time.

**The index** of a split is cached under a key of everything it depends on, the listings included
(``listings_digest``): a changed tree gives another key, so the index is rebuilt from the fresh listings
and ``load_split`` says so in one line.

**Frame headers.** The frames an index samples from the videos (re)listed are opened (header only: format,
size, PIL's decompression-bomb limit) when the index is built, where that is cheap (up to
``HEADER_CHECK_LIMIT`` files); a bad one stops the run there, naming it and the way around it, instead of
at batch 14 of 20.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import time
import types
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields

import numpy as np
from PIL import Image

from datasets.frame_files import FrameNaming, Listing, list_all
from datasets.frame_io import WITHOUT_IT, FrameError, reading
from utils.atomic import atomic_write

log = logging.getLogger(__name__)

LISTING_VERSION = 1
RACY_NS = 2_000_000_000        # a directory modified this close to its listing is listed again next time
HEADER_CHECK_LIMIT = 20_000    # frames whose headers are checked when an index is built (~1 s of opens)
STAT_CHUNK = 256               # videos per thread task in dir_mtimes


def _atomic_npz(path: str, arrays: dict) -> None:
    """Compressed npz, atomically; a cache that cannot be written only costs a rebuild next time."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: given a name, numpy would append ".npz" to it
            np.savez_compressed(f, **arrays)
    try:
        atomic_write(path, write)
    except OSError as e:
        log.warning("could not write the cache %s: %s", path, e)


# -- the index ----------------------------------------------------------------------------------------
def write_index(path: str, key: str, index) -> None:
    """A ``SplitIndex`` under ``key`` (Charades train, ~1.4M samples: ~2 MB, ~0.6 s once)."""
    arrays = {f.name: getattr(index, f.name) for f in fields(index)}
    arrays["split"] = np.array(index.split)
    _atomic_npz(path, {"key": np.array(key), **arrays})


def read_index(path: str, key: str, cls) -> object | None:
    """The ``cls`` (``SplitIndex``) cached at ``path`` under ``key``; None when the file holds another key
    (what it depends on changed).  A corrupt file raises (the caller rebuilds)."""
    with np.load(path, allow_pickle=False) as z:
        if str(z["key"]) != key:
            return None
        data = {f.name: z[f.name] for f in fields(cls)}
    data["split"] = str(data["split"])
    index = cls(**data)
    if len(index.label_ptr) != len(index.frame) + 1 or len(index.video) != len(index.frame):
        raise ValueError("inconsistent array lengths")
    return index


def listings_digest(listings: Sequence[Listing]) -> str:
    """A digest of every video's listing (frame count and gaps): part of the index cache's key."""
    n = np.array([x.n for x in listings], np.int64)
    gaps = np.array([f for x in listings for f in x.missing], np.int64)
    ngaps = np.array([len(x.missing) for x in listings], np.int64)
    return hashlib.sha1(n.tobytes() + ngaps.tobytes() + gaps.tobytes()).hexdigest()


# -- listings -----------------------------------------------------------------------------------------
def dir_mtimes(root: str, ids: Sequence[str]) -> np.ndarray:
    """``st_mtime_ns`` of every ``<root>/<id>`` (-1 where it is missing or not a directory); threaded in
    chunks, as ``list_all``, for file systems where a ``stat`` is a round trip."""
    def chunk(part: Sequence[str]) -> list[int]:
        out = []
        for vid in part:
            try:
                st = os.stat(os.path.join(root, vid))
                out.append(st.st_mtime_ns if stat.S_ISDIR(st.st_mode) else -1)
            except OSError:
                out.append(-1)
        return out
    parts = [ids[i:i + STAT_CHUNK] for i in range(0, len(ids), STAT_CHUNK)]
    if len(parts) <= 1:
        return np.array(chunk(ids), np.int64)
    with ThreadPoolExecutor(max_workers=8) as pool:
        return np.array([m for part in pool.map(chunk, parts) for m in part], np.int64)


def listings_path(cache_dir: str, dataset: str, root: str, naming: FrameNaming, annotations: str) -> str:
    """The listing cache of the videos of one annotation file (``annotations``: its digest) under ``root``."""
    key = json.dumps([LISTING_VERSION, os.path.abspath(root), naming.template, *naming.axes, annotations])
    return os.path.join(cache_dir, f"listing_{dataset}_{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz")


def cached_ids(path: str) -> list[str] | None:
    """The video ids of a listing cache (in annotation order), or None without a readable one."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["ids"].tolist()
    except Exception:  # absent, corrupt, truncated: the annotations are parsed instead
        return None


def _read_listings(path: str) -> tuple[dict[str, tuple[int, Listing]], int] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            ids, mtimes, n, ptr, missing = (z[k] for k in ("ids", "mtime", "n", "missing_ptr", "missing"))
            listed_at = int(z["listed_at"])
    except Exception as e:
        if os.path.exists(path):
            log.warning("listing cache %s is unreadable (%s: %s); listing every video again", path,
                        type(e).__name__, e)
        return None
    gaps = missing.tolist()
    cached = {vid: (int(m), Listing(int(k), tuple(gaps[ptr[i]:ptr[i + 1]])))
              for i, (vid, m, k) in enumerate(zip(ids.tolist(), mtimes, n))}
    return cached, listed_at


def _write_listings(path: str, ids: Sequence[str], mtimes: np.ndarray, listings: Sequence[Listing],
                    listed_at: int) -> None:
    counts = np.array([len(x.missing) for x in listings], np.int64)
    _atomic_npz(path, {
        "ids": np.array(ids, dtype=str), "mtime": mtimes, "n": np.array([x.n for x in listings], np.int64),
        "missing_ptr": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "missing": np.array([f for x in listings for f in x.missing], np.int64), "listed_at": np.array(listed_at)})


def fresh_listings(ids: Sequence[str], root: str, naming: FrameNaming,
                   path: str) -> tuple[list[Listing], list[str], set[str]]:
    """Every video's listing, from the cache at ``path`` where its directory has not changed since, else
    listed now (and the cache updated).  Returns ``(listings, changed, relisted)``: ``changed`` the ids
    (of a cache that existed) whose listing differs from the cached one, ``relisted`` every id listed now."""
    started = time.time_ns()
    mtimes = dir_mtimes(root, ids)  # before listing: a change during the listing shows up next time
    previous = _read_listings(path)
    cached, listed_at = previous if previous else ({}, 0)
    stale = [i for i, vid in enumerate(ids) if vid not in cached or cached[vid][0] != mtimes[i]
             or cached[vid][0] >= listed_at - RACY_NS]
    fresh = list_all([types.SimpleNamespace(id=ids[i]) for i in stale], root, naming)
    listings = [cached[vid][1] if vid in cached else Listing(0) for vid in ids]
    for i, listing in zip(stale, fresh):
        listings[i] = listing
    changed = [ids[i] for i, listing in zip(stale, fresh) if ids[i] in cached and cached[ids[i]][1] != listing]
    if stale or len(cached) != len(ids):
        _write_listings(path, ids, mtimes, listings, started)
    return listings, changed, {ids[i] for i in stale}


# -- frame headers ------------------------------------------------------------------------------------
def _header_problem(path: str) -> str | None:
    try:
        with reading(path), Image.open(path) as img:
            img.size  # noqa: B018 (parsed from the header: nothing is decoded)
    except FrameError as e:
        return str(e).removesuffix(WITHOUT_IT)
    return None


def sampled_frames(index, relisted: set[str], span: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(video row, frame)`` of every frame the samples of ``index`` (a ``SplitIndex``) read from the videos
    of ``relisted`` (``span`` consecutive frames for flow stacks, never past a video's last frame), once each;
    vectorised, so that counting them costs little even where there are too many to check."""
    rows = np.flatnonzero(np.isin(index.ids, list(relisted)))
    keep = np.isin(index.video, rows)
    video = index.video[keep].astype(np.int64)
    frames = np.minimum(index.frame[keep].astype(np.int64)[:, None] + np.arange(span),
                        index.nframes[video].astype(np.int64)[:, None])
    stride = int(index.nframes.max(initial=0)) + 1
    key = np.unique((video[:, None] * stride + frames).ravel())
    return key // stride, key % stride


def sampled_paths(index, rows: np.ndarray, frames: np.ndarray, root: str, naming: FrameNaming) -> list[str]:
    """The files of ``sampled_frames``' frames (each plane), in the order of (video id, frame)."""
    pairs = sorted(zip(index.ids[rows].tolist(), frames.tolist()))
    return [naming.path(root, vid, f, axis) for vid, f in pairs for axis in naming.axes]


def check_headers(paths: Sequence[str]) -> list[str]:
    """The problem of every file of ``paths`` whose header PIL cannot read (missing, not an image, over the
    decompression-bomb limit), in order; threaded (opening files is latency-bound)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return [p for p in pool.map(_header_problem, paths, chunksize=64) if p]
