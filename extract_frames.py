#!/usr/bin/env python
"""Decode videos into the Charades frame tree (and optionally its optical flow tree).

    python extract_frames.py VIDEOS OUT [--ids-from CSV] [--fps 24] [--short-side 256] [--workers N] [--flow]

Every video file under VIDEOS (``--ext``; id = file name without extension) is decoded with PyAV
(``pip install av``) into ``OUT/<id>/<id>-NNNNNN.jpg`` from 1 (``--format jester``: ``OUT/<id>/NNNNN.jpg``);
``--flow`` adds ``<id>-NNNNNNx.jpg`` / ``y.jpg`` (into ``--flow-out`` if given).  Which source frame each
output frame shows, how many frames a video gets, and the flow encoding: ``utils/video_frames.py``.

**Resumable.** A video is written into ``OUT/.partial/<id>`` and renamed to ``OUT/<id>`` when complete; a
rerun skips finished videos and removes partial folders.  ``OUT/extract_frames.json`` holds the settings
that shape the files, and a rerun with others is refused.  A video that cannot be opened or decodes to no
frame is skipped (undecodable packets inside a video are skipped, as ffmpeg does); every failed, missing
(``--ids-from``) or suspicious video of the run is listed in ``OUT/extract_frames_summary.csv``.
"""
from __future__ import annotations

import argparse
import csv
import io
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass
from fractions import Fraction

from tqdm import tqdm

from utils import cli
from utils.atomic import atomic_write_text
from utils.charades_csv import read_annotations
from utils.cores import usable_cores
from utils.logger import setup_logging
from utils.run_settings import check_or_record
from utils.video_frames import FlowEncoder, VideoError, flow_method, jpeg, pictures, require

VIDEO_EXTENSIONS = "mp4,webm,mkv,avi,mov,m4v,mpg,mpeg,flv,wmv,3gp,ogv,ts"
NAMES = {"charades": "{id}-{n:06d}{axis}.jpg", "ssv2": "{id}-{n:06d}{axis}.jpg", "jester": "{n:05d}{axis}.jpg"}
PARTIAL = ".partial"
SETTINGS_FILE = "extract_frames.json"
SUMMARY_FILE = "extract_frames_summary.csv"
LOCK_FILE = ".extract_frames.lock"

log = logging.getLogger("extract_frames")


class BusyError(cli.UserError, RuntimeError):
    """OUT is being written by another run."""


@dataclass(frozen=True)
class Settings:
    """Everything that shapes the written files (recorded in ``extract_frames.json``)."""

    fps: str = "24"
    short_side: int = 0
    format: str = "charades"
    quality: int = 90
    flow: bool = False
    flow_method: str = ""   # resolved: "tvl1" or "farneback" ("" without --flow)
    flow_bound: float = 20.0


def write_file(path: str, data: bytes) -> None:
    """One output file (a function of its own: the tests kill a run from inside it)."""
    with open(path, "wb") as f:
        f.write(data)


def write_video(vid: str, path: str, folders: tuple[str, str], settings: Settings, threads: int,
                notes: list[str]) -> tuple[int, int]:
    """Decode ``path`` into ``folders`` (RGB, flow); returns ``(frames, flow frames)``."""
    pattern = NAMES[settings.format]
    flow = settings.flow and FlowEncoder(settings.flow_method, settings.flow_bound, settings.quality, threads)
    frames = flows = 0
    for picture, repeats in pictures(path, Fraction(settings.fps), settings.short_side, threads, notes):
        data = jpeg(picture, settings.quality)
        for _ in range(repeats):
            frames += 1
            write_file(os.path.join(folders[0], pattern.format(id=vid, n=frames, axis="")), data)
        for pair in flow.add(picture, repeats) if flow else ():
            flows += 1
            for axis, data in zip("xy", pair):
                write_file(os.path.join(folders[1], pattern.format(id=vid, n=flows, axis=axis)), data)
    return frames, flows


@dataclass
class Result:
    id: str
    status: str          # "ok", "failed"
    frames: int = 0
    flow_frames: int = 0
    message: str = ""


def extract(job: tuple[str, str, tuple[str, str], Settings, int]) -> Result:
    """One video into ``<root>/.partial/<id>``, renamed to ``<root>/<id>`` when complete, for the RGB
    and flow roots; the RGB folder last, as it is what marks the video done."""
    vid, path, roots, settings, threads = job
    tmp = tuple(dict.fromkeys(os.path.join(root, PARTIAL, vid) for root in roots))  # one when the same
    for folder in tmp:
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
    notes: list[str] = []
    try:
        frames, flow = write_video(vid, path, (tmp[0], tmp[-1]), settings, threads, notes)
    except Exception as e:  # any failure is this video's: report it, keep going
        for folder in tmp:
            shutil.rmtree(folder, ignore_errors=True)
        return Result(vid, "failed", message=str(e) if isinstance(e, VideoError) else f"{type(e).__name__}: {e}")
    if len(tmp) == 2:  # a flow folder already there is from a run killed between the two renames
        shutil.rmtree(os.path.join(roots[1], vid), ignore_errors=True)
        os.replace(tmp[1], os.path.join(roots[1], vid))
    os.replace(tmp[0], os.path.join(roots[0], vid))
    return Result(vid, "ok", frames, flow, "; ".join(notes))


# ------------------------------------------------------------------------------------- the run

def find_videos(root: str, extensions: str) -> dict[str, str]:
    """id -> path of every file under ``root`` with one of ``extensions``; a repeated id is an error."""
    exts = {"." + e.strip().lower().lstrip(".") for e in extensions.split(",") if e.strip()}
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            stem, ext = os.path.splitext(f)
            if ext.lower() in exts:
                path = os.path.join(folder, f)
                if stem in found:
                    raise cli.InputError(f"two videos have the id {stem!r}: {found[stem]} and {path}")
                found[stem] = path
    return found


def lock(out: str):
    """An exclusive lock on OUT for this run (POSIX), so that two runs never write one tree."""
    handle = open(os.path.join(out, LOCK_FILE), "w")
    try:
        import fcntl
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:
        pass
    except OSError:
        raise BusyError(f"another extract_frames.py run is writing {out}: wait for it to end (or stop it), "
                        "then run this command again") from None
    return handle


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("videos", help="folder searched (recursively) for video files")
    ap.add_argument("out", help="frame tree to write")
    ap.add_argument("--ids-from", metavar="CSV", help="only the videos of this annotation CSV")
    ap.add_argument("--fps", default="24", help="output frame rate (24 for Charades; 12 for Jester); "
                    "a fraction like 30000/1001 is exact")
    ap.add_argument("--short-side", type=int, default=0, help="scale frames to this shorter side (0: keep the size)")
    ap.add_argument("--format", choices=sorted(NAMES), default="charades",
                    help="file names: charades / ssv2 <id>-NNNNNN.jpg, jester NNNNN.jpg")
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality")
    ap.add_argument("--workers", "-j", type=int, default=usable_cores(), help="processes")
    ap.add_argument("--flow", action="store_true", help="also write optical flow x/y frames (into OUT)")
    ap.add_argument("--flow-out", metavar="DIR", help="write the flow into this tree instead (implies --flow)")
    ap.add_argument("--flow-method", choices=("auto", "tvl1", "farneback"), default="auto")
    ap.add_argument("--flow-bound", type=float, default=20.0, help="flow clipping bound in pixels")
    ap.add_argument("--ext", default=VIDEO_EXTENSIONS, help="video file extensions, comma-separated")
    return ap


def run(args: argparse.Namespace) -> list[Result]:
    """Extract every video not yet in OUT; returns this run's results (missing videos included)."""
    require("av")
    try:
        fps = Fraction(args.fps)
    except (ValueError, ZeroDivisionError):
        raise cli.InputError(f"--fps {args.fps}: not a frame rate (a number or a fraction, e.g. 24 or "
                             "30000/1001)") from None
    if fps <= 0 or not 1 <= args.quality <= 100 or args.short_side < 0 or args.flow_bound <= 0:
        raise cli.InputError("--fps and --flow-bound must be positive, --quality in 1..100, --short-side >= 0")
    flow = args.flow or bool(args.flow_out)
    settings = Settings(str(fps), args.short_side, args.format, args.quality, flow,
                        flow_method(args.flow_method) if flow else "", args.flow_bound if flow else 0.0)
    if not os.path.isdir(args.videos):
        raise cli.MissingInputError(f"video folder not found: {args.videos}")
    videos = find_videos(args.videos, args.ext)
    results = []
    if args.ids_from:
        wanted = [v.id for v in read_annotations(args.ids_from)]
        results = [Result(v, "missing", message=f"no video file for it under {args.videos}")
                   for v in wanted if v not in videos]
        videos = {v: videos[v] for v in wanted if v in videos}
    roots = (args.out, args.flow_out or args.out)
    os.makedirs(args.out, exist_ok=True)
    setup_logging(args.out)  # the console and OUT/log.txt, appended across runs
    held = lock(args.out)
    check_or_record(os.path.join(args.out, SETTINGS_FILE), asdict(settings), args.out)
    for root in set(roots):
        shutil.rmtree(os.path.join(root, PARTIAL), ignore_errors=True)  # left by a killed run
        os.makedirs(os.path.join(root, PARTIAL))
    todo = [v for v in videos if not os.path.isdir(os.path.join(args.out, v))]
    workers = max(1, min(args.workers, len(todo)))
    threads = max(1, usable_cores() // workers)  # decoding (and flow) threads per process
    jobs = [(v, videos[v], roots, settings, threads) for v in todo]
    log.info("%d videos, %d already extracted, %d to do (%d process%s)", len(videos), len(videos) - len(todo),
             len(todo), workers, "es" if workers > 1 else "")
    pool = multiprocessing.get_context().Pool(workers, _ignore_sigint) if workers > 1 else None
    t0, frames = time.perf_counter(), 0
    try:
        done = pool.imap_unordered(extract, jobs) if pool else map(extract, jobs)
        with tqdm(done, total=len(jobs), unit="video", desc="extract", smoothing=0.05) as bar:
            for r in bar:
                results.append(r)
                frames += r.frames
                bar.set_postfix(frames_per_s=f"{frames / (time.perf_counter() - t0):.0f}", refresh=False)
    finally:
        if pool:
            pool.terminate()
            pool.join()
        held.close()
    for root in set(roots):
        if not os.listdir(os.path.join(root, PARTIAL)):
            os.rmdir(os.path.join(root, PARTIAL))
    write_summary(args.out, results, time.perf_counter() - t0)
    return results


def write_summary(out: str, results: list[Result], seconds: float) -> None:
    """``extract_frames_summary.csv``: every video of the run that failed, is missing or has warnings."""
    ok = [r for r in results if r.status == "ok"]
    frames = sum(r.frames for r in ok)
    log.info("extracted %d videos, %d frames in %.1f s (%.0f frames/s)", len(ok), frames, seconds,
             frames / max(seconds, 1e-9))
    rows = sorted(([r.id, "warning" if r.status == "ok" else r.status, r.frames, r.flow_frames, r.message]
                   for r in results if r.status != "ok" or r.message))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([["id", "status", "frames", "flow_frames", "message"]] + rows)
    atomic_write_text(os.path.join(out, SUMMARY_FILE), buf.getvalue())
    for vid, status, *_, message in rows:
        log.warning("  %s: %s: %s", status, vid, message)
    if rows:
        log.warning("  (listed in %s)", os.path.join(out, SUMMARY_FILE))


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (0 also when some videos failed: see the summary).  A bad
    input or option raises a ``cli.UserError`` (one line and status 2 under ``cli.run``)."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except KeyboardInterrupt:
        print("\nextract_frames: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
