"""What noticing a changed frame tree costs (``datasets/index_cache.py``), on a synthetic Charades-style tree
of 10,000 video folders.

    python benchmarks/bench_index_check.py [--videos 10000] [--frames 24] [--dir DIR] [--calibrate]

Times, on the same tree: the first index build (every folder listed, caches written); a run start with
nothing changed (one ``stat`` per video folder, both caches read: the path every run takes); the
``stat`` pass alone; reading the index cache alone (all a start cost before the check existed); a start
after one video changed (that folder listed again, the index rebuilt); and the full listing of every folder
that the check avoids.  Every frame file is one 8x8 JPEG (the first build samples more frames than the
header check's limit and skips it, as for Charades; the changed video's frames are checked).  Stdout:
seconds (best of ``--repeats``) and, with ``--calibrate``, calibration steps (``benchmarks/machine.py``).
"""
from __future__ import annotations

import argparse
import io
import logging
import os
import shutil
import sys
import tempfile
import time
import types

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets import charadesrgb, index_cache  # noqa: E402
from datasets import frame_index as fi  # noqa: E402
from datasets.frame_files import list_all  # noqa: E402
from utils.charades_csv import read_annotations  # noqa: E402

HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"


def make_tree(root: str, videos: int, frames: int) -> tuple[str, str, list[str]]:
    """``videos`` folders of ``frames`` empty frame files, their annotation CSV, and their ids."""
    data = os.path.join(root, "rgb")
    ids = [f"V{k:05d}" for k in range(videos)]
    tiny = io.BytesIO()  # one 8x8 JPEG for every frame (the header check reads it where cheap)
    Image.new("L", (8, 8), 128).save(tiny, format="JPEG")
    for vid in ids:
        os.makedirs(os.path.join(data, vid))
        for f in range(1, frames + 1):
            with open(os.path.join(data, vid, f"{vid}-{f:06d}.jpg"), "wb") as out:
                out.write(tiny.getvalue())
    old = time.time() - 86400  # written a day ago: no folder is within the "racy" window
    for vid in ids:
        os.utime(os.path.join(data, vid), (old, old))
    csv = os.path.join(root, "ann.csv")
    with open(csv, "w") as f:
        f.write(HEADER + "".join(f'{vid},S,R,1,1,Yes,x,,y,"c00{k % 5} 0.0 0.5",{frames / 24:.3f}\n'
                                 for k, vid in enumerate(ids)))
    return data, csv, ids


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=10000)
    ap.add_argument("--frames", type=int, default=24, help="frame files per video folder")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dir", help="where to build the tree (default: a temporary folder, removed after)")
    ap.add_argument("--calibrate", action="store_true", help="also state the times in calibration steps")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # the rebuilds' one-line notices, five times over
    root = args.dir or tempfile.mkdtemp(prefix="bench_index_check_")
    try:
        t = time.perf_counter()
        data, csv, ids = make_tree(root, args.videos, args.frames)
        print(f"tree: {args.videos} video folders x {args.frames} files under {root} "
              f"(made in {time.perf_counter() - t:.1f} s)")
        source = fi.FrameSource("charadesrgb", charadesrgb.NAMING, lambda p: read_annotations(p, 157))
        cache = os.path.join(root, "cache")

        def load() -> None:
            fi.load_split(csv, data, "train", cache, source, nclass=157)
        t = time.perf_counter()
        load()
        rows = [("first build (list every folder, build, write caches)", time.perf_counter() - t)]
        rows.append(("run start, nothing changed (stat every folder, read caches)", best(load, args.repeats)))
        rows.append(("  of which the stat of every folder", best(lambda: index_cache.dir_mtimes(data, ids),
                                                                 args.repeats)))
        index_file = next(os.path.join(cache, n) for n in os.listdir(cache) if n.startswith("index_"))
        with np.load(index_file) as z:
            key = str(z["key"])
        rows.append(("  reading the index cache alone (the start before the check)",
                     best(lambda: index_cache.read_index(index_file, key, fi.SplitIndex), args.repeats)))
        victim = os.path.join(data, ids[len(ids) // 2])

        def one_changed() -> None:
            extra = os.path.join(victim, f"{os.path.basename(victim)}-{args.frames + 1:06d}.jpg")
            if os.path.exists(extra):
                os.remove(extra)
            else:
                open(extra, "wb").close()
            st = os.stat(victim)  # moved out of the racy window, as a change seen by a later run
            os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns - 86400 * 10 ** 9 + 1))
            load()
        rows.append(("run start after one video changed (list it, rebuild the index)", best(one_changed, args.repeats)))
        everyone = [types.SimpleNamespace(id=v) for v in ids]
        rows.append(("listing every folder (what the check avoids)",
                     best(lambda: list_all(everyone, data, charadesrgb.NAMING), args.repeats)))
        step = None
        if args.calibrate:
            from benchmarks.machine import calibration_step
            step = calibration_step()
            print(f"calibration step: {step:.3f} s")
        for what, seconds in rows:
            print(f"{what:<68} {seconds * 1000:9.1f} ms" + (f"  {seconds / step:7.2f} steps" if step else ""))
        check = rows[1][1] - rows[3][1]
        print(f"the check's cost at a run start: {check * 1000:.1f} ms for {args.videos} videos "
              f"({check / args.videos * 1e6:.1f} us per video)" + (f", {check / step:.2f} calibration steps"
                                                                    if step else ""))
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
