"""The demo Charades frame trees on disk: write them once (RGB, and optical flow when asked for), reuse them
while the settings hold, and never leave a tree that looks complete but is not.

For every video of the demo CSVs (``data/demo/Charades_demo_{train,test}.csv``, real Charades annotations
chosen by ``datasets/demo/selection.py``), frames in the exact Charades on-disk format (SPEC section 1):

- ``<root>/rgb/<id>/<id>-000001.jpg`` ... : ``n = frame_count(length) = max(1, floor(length * 24))`` RGB
  JPEGs (24 fps, numbered from 1); frame ``i`` shows time ``t = (i - 1) / 24`` s.
- ``<root>/flow/<id>/<id>-000001x.jpg``, ``<id>-000001y.jpg`` ... : ``flow_count(n) = max(1, n - 1)``
  flow frames (8-bit grayscale, 128 = no motion); flow frame ``k`` is the motion from RGB frame ``k`` to
  ``k + 1``, i.e. it shows time ``t = (k - 1) / 24`` s.

What a frame shows is ``datasets/demo/scene.py``'s job (the class code is in ``codes.py``).  Everything
derives from ``(seed, video id)``.  Regenerate with::

    python -m datasets.demo [--root ./demo_data] [--seed 0] [--size 64 | --size 854x480] [--no-flow] [--force]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from typing import Sequence

import numpy as np
from PIL import Image

from datasets.demo.codes import NCLASS, flow_count, size_hw
from datasets.demo.scene import Scene, chunks
from utils.charades_csv import Video, read_annotations
from utils.file_hash import file_digest
from utils import cli
from utils.cli import UserError
from utils.cores import usable_cores

RENDER_VERSION = 2  # bump when the rendering changes: existing trees are then regenerated
MANIFEST = "demo_manifest.json"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_TRAIN_CSV = os.path.join(REPO_ROOT, "data", "demo", "Charades_demo_train.csv")
DEMO_TEST_CSV = os.path.join(REPO_ROOT, "data", "demo", "Charades_demo_test.csv")
DEFAULT_ROOT = "./demo_data"
DEFAULT_QUALITY = 90


class DemoRootError(UserError, RuntimeError):
    """The demo root is something else than a demo tree: it is never overwritten."""


def render_video(video: Video, root: str, seed: int = 0, size=64, flow: bool = True,
                 quality: int = DEFAULT_QUALITY) -> tuple[int, int]:
    """Write one video's ``<root>/rgb/<id>/`` (and ``<root>/flow/<id>/``); returns (rgb, flow) frame counts."""
    h, w = size_hw(size)
    scene = Scene(video, seed, size)
    n = scene.n
    d = os.path.join(root, "rgb", video.id)
    os.makedirs(d, exist_ok=True)
    frames = list(range(1, n + 1))
    for ch in chunks(frames, h, w):
        for f, img in zip(ch, scene.rgb(ch)):
            Image.fromarray(img, "RGB").save(os.path.join(d, f"{video.id}-{f:06d}.jpg"), quality=quality,
                                            subsampling=0)
    nflow = 0
    if flow:
        nflow = flow_count(n)
        d = os.path.join(root, "flow", video.id)
        os.makedirs(d, exist_ok=True)
        frames = list(range(1, nflow + 1))
        for ch in chunks(frames, h, w):
            for f, fl in zip(ch, scene.flow(ch)):
                Image.fromarray(np.ascontiguousarray(fl[..., 0]), "L").save(
                    os.path.join(d, f"{video.id}-{f:06d}x.jpg"), quality=quality)
                Image.fromarray(np.ascontiguousarray(fl[..., 1]), "L").save(
                    os.path.join(d, f"{video.id}-{f:06d}y.jpg"), quality=quality)
    return n, nflow


# --- the whole tree ---------------------------------------------------------------------------------------
def _render_job(args) -> tuple[int, int]:
    return render_video(*args)


def _read_manifest(root: str) -> dict | None:
    try:
        with open(os.path.join(root, MANIFEST), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _satisfies(manifest: dict | None, want: dict) -> bool:
    if not manifest or manifest.get("complete") is not True:
        return False
    for key, val in want.items():
        if key == "flow":
            if val and not manifest.get("flow"):
                return False
        elif manifest.get(key) != val:
            return False
    return True


def _check_ours(path: str) -> None:
    """Refuse a ``root`` that exists and is not a demo tree (a manifest, or nothing but rgb/flow inside)."""
    if not os.path.isdir(path):
        if os.path.exists(path):
            raise DemoRootError(f"{path} exists and is not a directory; choose another demo root")
        return
    entries = set(os.listdir(path))
    if entries and MANIFEST not in entries and not entries <= {"rgb", "flow"}:
        raise DemoRootError(f"{path} exists and does not look like a demo tree (no {MANIFEST}); "
                            "refusing to overwrite it: remove it or choose another root")


def _scratch_prefix(root: str, kind: str) -> str:
    return f".{os.path.basename(root)}.{kind}-"


def _make_scratch(root: str, kind: str) -> str:
    """A fresh hidden sibling directory of ``root`` (same file system, so renames are atomic)."""
    return tempfile.mkdtemp(prefix=f"{_scratch_prefix(root, kind)}{os.getpid()}-", dir=os.path.dirname(root))


def _clean_stale_scratch(root: str) -> None:
    """Remove scratch siblings left by killed runs (their process no longer exists)."""
    parent = os.path.dirname(root)
    for name in os.listdir(parent):
        for kind in ("tmp", "old"):
            prefix = _scratch_prefix(root, kind)
            if not name.startswith(prefix):
                continue
            pid = name[len(prefix):].split("-", 1)[0]
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
            except OSError:
                pass


def _remove_tree(path: str) -> None:
    """Remove a previous demo tree (moved aside first, so ``path`` never holds a partly deleted tree)."""
    if not os.path.exists(path):
        return
    _check_ours(path)
    trash = _make_scratch(path, "old")
    os.rename(path, os.path.join(trash, "tree"))
    shutil.rmtree(trash, ignore_errors=True)


def ensure_demo_data(root: str = DEFAULT_ROOT, seed: int = 0, flow: bool = True, size: int | tuple[int, int] = 64, *,
                     csv_files: Sequence[str] | None = None, workers: int | None = None,
                     quality: int = DEFAULT_QUALITY, force: bool = False) -> str:
    """Render the demo trees ``<root>/rgb`` and ``<root>/flow`` once; reuse them while the settings hold.

    ``csv_files`` (default: the shipped demo train and test CSVs) list the videos.  The tree is rendered
    into a hidden temporary sibling directory (``.<name>.tmp-<pid>-*``; those of killed runs are removed
    by the next call), its manifest (``demo_manifest.json``: render version, seed, size, flow, JPEG
    quality, the CSVs' SHA-1, per-video frame counts) written last, and then renamed into place,
    so an interrupted run never leaves a tree that looks complete.  A tree whose manifest differs (other
    seed, size, CSV content, or no flow when flow is asked for) is replaced.  ``size`` is an int (square
    frames) or ``(width, height)``, e.g. ``(854, 480)`` for 480p frames.  Returns ``root``.
    """
    csv_files = list(csv_files) if csv_files is not None else [DEMO_TRAIN_CSV, DEMO_TEST_CSV]
    root = os.path.abspath(root).rstrip(os.sep) or os.sep
    h, w = size_hw(size)
    size_key = h if isinstance(size, (int, np.integer)) else [w, h]  # JSON has no tuples
    want = {"version": RENDER_VERSION, "seed": int(seed), "size": size_key, "flow": bool(flow),
            "quality": int(quality), "csv_sha1": [file_digest(p) for p in csv_files]}
    if not force and _satisfies(_read_manifest(root), want):
        return root

    start = time.time()
    videos: dict[str, Video] = {}
    for p in csv_files:
        for v in read_annotations(p, NCLASS):
            videos.setdefault(v.id, v)
    _check_ours(root)
    os.makedirs(os.path.dirname(root), exist_ok=True)
    _clean_stale_scratch(root)
    tmp = _make_scratch(root, "tmp")
    try:
        jobs = [(v, tmp, seed, size, flow, quality) for v in videos.values()]
        if workers is None:
            workers = min(usable_cores(), 8)
        if workers > 1 and len(jobs) > 1:
            import multiprocessing as mp
            with mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn").Pool(workers) as pool:
                counts = pool.map(_render_job, jobs, chunksize=1)
        else:
            counts = [_render_job(j) for j in jobs]
        manifest = dict(want, complete=True, csv_files=[os.path.abspath(p) for p in csv_files],
                        videos={v.id: {"rgb": n, "flow": nf} for v, (n, nf) in zip(videos.values(), counts)})
        with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
        if _satisfies(_read_manifest(root), want) and not force:
            # another process rendered the same tree meanwhile: keep it (it may be in use)
            shutil.rmtree(tmp, ignore_errors=True)
            return root
        if os.path.exists(root):
            _remove_tree(root)
        try:
            os.rename(tmp, root)
        except OSError:
            # another process finished first: keep its tree if it is what we want
            if _satisfies(_read_manifest(root), want):
                shutil.rmtree(tmp, ignore_errors=True)
                return root
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    nrgb = sum(n for n, _ in counts)
    nflow = sum(nf for _, nf in counts)
    print(f"demo data: rendered {len(videos)} videos ({nrgb} RGB frames, {nflow} flow frames) at "
          f"{w}x{h}, seed {seed}, into {root} in {time.time() - start:.1f}s", flush=True)
    return root


def _size(text: str) -> int | tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected N or WxH (positive integers), got {text!r}")
    return int(parts[0]) if len(parts) == 1 else (int(parts[0]), int(parts[1]))


def main(argv: Sequence[str] | None = None) -> str:
    """``python -m datasets.demo``: render (or reuse) the demo trees; returns the root."""
    p = cli.ArgumentParser(prog="python -m datasets.demo",
                                description="Render the demo Charades frame trees (RGB and flow).")
    p.add_argument("--root", default=DEFAULT_ROOT)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=_size, default=64, help="frame size: N (square) or WxH, e.g. 854x480")
    p.add_argument("--no-flow", action="store_true")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--force", action="store_true", help="regenerate even if an up-to-date tree exists")
    p.add_argument("csv_files", nargs="*", help="annotation CSVs (default: the shipped demo CSVs)")
    a = p.parse_args(argv)
    root = ensure_demo_data(a.root, a.seed, not a.no_flow, a.size, csv_files=a.csv_files or None,
                            workers=a.workers, force=a.force)
    trees = [os.path.join(root, kind) for kind in ("rgb", "flow") if os.path.isdir(os.path.join(root, kind))]
    print(f"demo data ready: {' and '.join(trees)}")
    return root

