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

**Hostile input.** A video whose id would be one of the tool's own files in OUT (``log.txt``, a name
starting with ``.``, ...) is refused on its own and the others go on.  A timestamp gap is held for at most
``MAX_GAP_S`` seconds (``utils/video_frames.py``), with a warning naming the video and the gap.  A write
that fails (a full disk) stops the run with exit status 1, naming the error once; the videos done so far
are kept and a rerun resumes.  The worker processes die with the main process (Linux), so a killed run
leaves none behind holding OUT's lock.
"""
from __future__ import annotations

import argparse
import csv
import io
import logging
import math
import multiprocessing
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass
from fractions import Fraction

from tqdm import tqdm

from utils import cli, run_lock
from utils.atomic import atomic_write_text
from utils.charades_csv import read_annotations
from utils.cli import Failure
from utils.cores import usable_cores
from utils.logger import setup_logging
from utils.run_settings import check_or_record
from utils.video_frames import FlowEncoder, VideoError, flow_method, jpeg, pictures, require

VIDEO_EXTENSIONS = "mp4,webm,mkv,avi,mov,m4v,mpg,mpeg,flv,wmv,3gp,ogv,ts"
NAMES = {"charades": "{id}-{n:06d}{axis}.jpg", "ssv2": "{id}-{n:06d}{axis}.jpg", "jester": "{n:05d}{axis}.jpg"}
PARTIAL = ".partial"
SETTINGS_FILE = "extract_frames.json"
SUMMARY_FILE = "extract_frames_summary.csv"

log = logging.getLogger("extract_frames")


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


# the tool's own files in OUT: a video id must not be one of them (nor start with "." like the others)
OWN_FILES = (PARTIAL, SETTINGS_FILE, SUMMARY_FILE, run_lock.LOCK_FILE, "log.txt")


class WriteFailed(Exception):
    """A file of the tree could not be written (a full disk, a read-only folder): not the video's fault."""


def write_file(path: str, data: bytes) -> None:
    """One output file (a function of its own: the tests kill a run from inside it)."""
    with open(path, "wb") as f:
        f.write(data)


def id_problem(vid: str) -> str | None:
    """Why ``vid`` cannot name ``OUT/<id>`` (it would be, or could clash with, one of the tool's own
    files), or None."""
    if vid in OWN_FILES or vid.startswith("."):
        return (f"its id {vid!r} would be one of extract_frames.py's own files in the output folder "
                f"({', '.join(OWN_FILES)}, or any name starting with '.'); rename the video file")
    return None


def write_video(vid: str, path: str, folders: tuple[str, str], settings: Settings, threads: int,
                notes: list[str]) -> tuple[int, int]:
    """Decode ``path`` into ``folders`` (RGB, flow); returns ``(frames, flow frames)``."""
    pattern = NAMES[settings.format]
    flow = settings.flow and FlowEncoder(settings.flow_method, settings.flow_bound, settings.quality, threads)
    frames = flows = 0

    def write(path: str, data: bytes) -> None:
        try:
            write_file(path, data)
        except OSError as e:
            raise WriteFailed(e) from e
    for picture, repeats in pictures(path, Fraction(settings.fps), settings.short_side, threads, notes):
        data = jpeg(picture, settings.quality)
        for _ in range(repeats):
            frames += 1
            write(os.path.join(folders[0], pattern.format(id=vid, n=frames, axis="")), data)
        for pair in flow.add(picture, repeats) if flow else ():
            flows += 1
            for axis, data in zip("xy", pair):
                write(os.path.join(folders[1], pattern.format(id=vid, n=flows, axis=axis)), data)
    return frames, flows


@dataclass
class Result:
    id: str
    status: str          # "ok", "failed"
    frames: int = 0
    flow_frames: int = 0
    message: str = ""
    write_error: str = ""  # the OS error when the tree could not be written (the disk's fault, not the video's)


def extract(job: tuple[str, str, tuple[str, str], Settings, int]) -> Result:
    """One video into ``<root>/.partial/<id>``, renamed to ``<root>/<id>`` when complete, for the RGB
    and flow roots; the RGB folder last, as it is what marks the video done."""
    vid, path, roots, settings, threads = job
    tmp = tuple(dict.fromkeys(os.path.join(root, PARTIAL, vid) for root in roots))  # one when the same
    notes: list[str] = []
    try:
        try:
            for folder in tmp:
                shutil.rmtree(folder, ignore_errors=True)
                os.makedirs(folder)
        except OSError as e:
            raise WriteFailed(e) from e
        frames, flow = write_video(vid, path, (tmp[0], tmp[-1]), settings, threads, notes)
        try:
            if len(tmp) == 2:  # a flow folder already there is from a run killed between the two renames
                shutil.rmtree(os.path.join(roots[1], vid), ignore_errors=True)
                os.replace(tmp[1], os.path.join(roots[1], vid))
            os.replace(tmp[0], os.path.join(roots[0], vid))
        except OSError as e:
            raise WriteFailed(e) from e
    except Exception as e:  # any failure is this video's (or the disk's): report it, keep going
        for folder in tmp:
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(e, WriteFailed):
            return Result(vid, "failed", message=f"could not write: {e}", write_error=str(e))
        return Result(vid, "failed", message=str(e) if isinstance(e, VideoError) else f"{type(e).__name__}: {e}")
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


def _worker_init(parent: int) -> None:
    """A worker process: Ctrl-C is the main process's to handle, and the worker dies with it (Linux's
    PR_SET_PDEATHSIG: a killed run leaves no orphan writing into OUT/.partial; the copy of OUT's lock a
    forked worker gets is closed at fork by ``utils/run_lock.py``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the main process died before the line above took effect
        os._exit(1)


def _fps(text: str) -> Fraction:
    """``--fps``: a number or a fraction (``30000/1001``) > 0."""
    try:
        fps = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a frame rate: give a number or a fraction > 0, "
                                         "e.g. 24 or 30000/1001") from None
    if fps <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the frame rate must be > 0")
    return fps


def _flow_bound(text: str) -> float:
    """``--flow-bound``: a finite number of pixels > 0 (NaN would clip every flow to 0)."""
    try:
        bound = float(text)
    except ValueError:
        bound = math.nan
    if not (math.isfinite(bound) and bound > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: the flow bound must be a finite number of pixels > 0, e.g. 20")
    return bound


def build_parser() -> argparse.ArgumentParser:
    ap = cli.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("videos", help="folder searched (recursively) for video files")
    ap.add_argument("out", help="frame tree to write")
    ap.add_argument("--ids-from", metavar="CSV", help="only the videos of this annotation CSV")
    ap.add_argument("--fps", default="24", type=_fps, help="output frame rate (24 for Charades; 12 for Jester); "
                    "a fraction like 30000/1001 is exact")
    ap.add_argument("--short-side", type=int, default=0, help="scale frames to this shorter side (0: keep the size)")
    ap.add_argument("--format", choices=sorted(NAMES), default="charades",
                    help="file names: charades / ssv2 <id>-NNNNNN.jpg, jester NNNNN.jpg")
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality")
    ap.add_argument("--workers", "-j", type=int, default=usable_cores(), help="processes")
    ap.add_argument("--flow", action="store_true", help="also write optical flow x/y frames (into OUT)")
    ap.add_argument("--flow-out", metavar="DIR", help="write the flow into this tree instead (implies --flow)")
    ap.add_argument("--flow-method", choices=("auto", "tvl1", "farneback"), default="auto")
    ap.add_argument("--flow-bound", type=_flow_bound, default=20.0, help="flow clipping bound in pixels")
    ap.add_argument("--ext", default=VIDEO_EXTENSIONS, help="video file extensions, comma-separated")
    return ap


def run(args: argparse.Namespace) -> list[Result]:
    """Extract every video not yet in OUT; returns this run's results (missing videos included)."""
    require("av")
    fps = Fraction(args.fps)
    if fps <= 0 or not 1 <= args.quality <= 100 or args.short_side < 0 or not args.flow_bound > 0:
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
    held = run_lock.hold(args.out, "extract_frames.py run", "write another folder")
    try:
        return _extract_all(args, settings, videos, results, roots)
    finally:
        if held:
            held.release()


def _extract_all(args: argparse.Namespace, settings: Settings, videos: dict[str, str], results: list[Result],
                 roots: tuple[str, str]) -> list[Result]:
    """The body of ``run`` once OUT is locked: the settings checked, the videos not yet done extracted, the
    summary written; a failed write raises ``Failure`` after the summary."""
    check_or_record(os.path.join(args.out, SETTINGS_FILE), asdict(settings), args.out)
    for root in set(roots):
        shutil.rmtree(os.path.join(root, PARTIAL), ignore_errors=True)  # left by a killed run
        os.makedirs(os.path.join(root, PARTIAL))
    refused = {v: id_problem(v) for v in videos if id_problem(v)}
    results += [Result(v, "failed", message=why) for v, why in refused.items()]
    todo = [v for v in videos if v not in refused and not os.path.isdir(os.path.join(args.out, v))]
    workers = max(1, min(args.workers, len(todo)))
    threads = max(1, usable_cores() // workers)  # decoding (and flow) threads per process
    jobs = [(v, videos[v], roots, settings, threads) for v in todo]
    log.info("%d videos, %d already extracted, %d to do (%d process%s)%s", len(videos),
             len(videos) - len(todo) - len(refused), len(todo), workers, "es" if workers > 1 else "",
             f"; {len(refused)} refused (see the summary)" if refused else "")
    pool = multiprocessing.get_context().Pool(workers, _worker_init, (os.getpid(),)) if workers > 1 else None
    t0, frames, disk = time.perf_counter(), 0, None
    try:
        done = pool.imap_unordered(extract, jobs) if pool else map(extract, jobs)
        with tqdm(done, total=len(jobs), unit="video", desc="extract", smoothing=0.05) as bar:
            for r in bar:
                results.append(r)
                frames += r.frames
                bar.set_postfix(frames_per_s=f"{frames / (time.perf_counter() - t0):.0f}", refresh=False)
                if r.write_error:  # the disk's fault: every further video would fail the same way
                    disk = r
                    break
    finally:
        if pool:
            pool.terminate()
            pool.join()
    for root in set(roots):
        if os.path.isdir(os.path.join(root, PARTIAL)) and not os.listdir(os.path.join(root, PARTIAL)):
            os.rmdir(os.path.join(root, PARTIAL))
    try:
        write_summary(args.out, results, time.perf_counter() - t0)
    except OSError as e:  # the same full disk, most likely: the log has said it all already
        log.warning("could not write %s: %s", os.path.join(args.out, SUMMARY_FILE), e)
    if disk is not None:
        done_ok = sum(r.status == "ok" for r in results)
        raise Failure(f"could not write under {args.out}: {disk.write_error} (at video {disk.id}); stopped with "
                      f"{done_ok} of the {len(jobs)} videos to do written: free some space (or fix the folder) "
                      f"and run the same command again to resume")
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
