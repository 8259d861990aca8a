"""Figures of a run, written as PNG files.

  python plot_results.py curves RUN_DIR_OR_METRICS_CSV [...] [-o curves.png]
  python plot_results.py per-class SUBMISSION GT_CSV [--classes data/Charades_v1_classes.txt] [-o per_class_ap.png]
  python plot_results.py timeline LOCALIZE_FILE GT_CSV (--videos ID [ID ...] | --best N --worst N) [-o OUTDIR]

Each figure is a pure data function (``curves_data``, ``per_class_data``, ``timeline_data``: numbers,
testable without pixels) and a drawing function (``draw_*``) that only lays those numbers out.
matplotlib is optional: it is imported inside the drawing functions, so the training loop can import
this module (``plot_curves``) without it; figures are drawn with the Agg canvas and no pyplot, so no
global backend is switched and nothing accumulates when main.py redraws the curves every epoch.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from dataclasses import dataclass

import numpy as np

from utils.figures import DPI, figure, require_matplotlib, save_png  # noqa: F401 (DPI, require_matplotlib: for callers)
from utils import cli
from utils.charades_csv import Video, read_annotations, read_classes
from utils.charades_eval import average_precision, classify, localize_gt, mean_ap_with_positives
from utils.metrics_log import read_metrics
from utils.safe_names import safe_filename
from utils.submission import LOCALIZE, NFRAMES, SubmissionError, one_based_frames, read_submission

CLASSES_TXT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "Charades_v1_classes.txt")
CURVES_SIZE = (16.0, 5.0)
TIMELINE_SIZE = (12.0, 7.5)


# ------------------------------------------------------------------------------------ curves

@dataclass
class RunCurves:
    """One run's per-epoch series (NaN where a value is missing) and its best video-mAP epoch."""

    name: str
    epoch: np.ndarray
    train_loss: np.ndarray
    top1train: np.ndarray
    top1val: np.ndarray
    mAP: np.ndarray
    loc_mAP: np.ndarray
    best_epoch: int | None   # None when no epoch has a mAP
    best_mAP: float | None


def run_name(path: str) -> str:
    """The run directory's name (``cache/<name>[/metrics.csv]`` -> ``<name>``); a CSV with another
    file name is named by its stem, so two CSVs of one directory stay apart."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        return os.path.basename(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    return os.path.basename(os.path.dirname(path)) if stem == "metrics" else stem


def curves_data(metrics_paths: str | list[str]) -> list[RunCurves]:
    """Read each run (a cache directory or a metrics CSV) into a ``RunCurves``, in the given order."""
    paths = [metrics_paths] if isinstance(metrics_paths, str) else list(metrics_paths)
    names = [run_name(p) for p in paths]
    runs = []
    for path, name in zip(paths, names):
        name = os.path.normpath(path) if names.count(name) > 1 else name  # two "rgb" runs: show their paths
        rows = read_metrics(path)
        col = lambda c: np.array([np.nan if r[c] is None else r[c] for r in rows], dtype=float)  # noqa: E731
        mAP = col("mAP")
        best = int(np.nanargmax(mAP)) if np.isfinite(mAP).any() else None
        runs.append(RunCurves(name, np.array([r["epoch"] for r in rows], dtype=int), col("train_loss"),
                              col("top1train"), col("top1val"), mAP, col("loc_mAP"),
                              None if best is None else int(rows[best]["epoch"]),
                              None if best is None else float(mAP[best])))
    return runs


def draw_curves(runs: list[RunCurves], out_path: str) -> tuple[int, int]:
    """Three panels (train loss; train/val prec@1; video mAP with each run's best epoch starred),
    one colour per run.  Returns the PNG's size in pixels."""
    fig = figure(CURVES_SIZE)  # first: a missing matplotlib raises the ImportError with the install hint
    from matplotlib.ticker import MaxNLocator
    ax_loss, ax_prec, ax_map = fig.subplots(1, 3)
    for k, run in enumerate(runs):
        color = f"C{k % 10}"
        line = dict(color=color, marker="o", markersize=3)  # markers: a 1-epoch run is still visible
        ax_loss.plot(run.epoch, run.train_loss, label=run.name, **line)
        ax_prec.plot(run.epoch, run.top1train, linestyle="--", label=f"{run.name} train", **line)
        ax_prec.plot(run.epoch, run.top1val, label=f"{run.name} val", **line)
        ax_map.plot(run.epoch, run.mAP, label=f"{run.name} video mAP", **line)
        if np.isfinite(run.loc_mAP).any():
            ax_map.plot(run.epoch, run.loc_mAP, linestyle=":", label=f"{run.name} localisation mAP", **line)
        if run.best_epoch is not None:
            ax_map.plot([run.best_epoch], [run.best_mAP], marker="*", markersize=14, color=color,
                        markeredgecolor="black", linestyle="none",
                        label=f"{run.name} best: epoch {run.best_epoch}, mAP {run.best_mAP:.4f}")
    for ax, title, ylabel in ((ax_loss, "Training loss", "loss"),
                              (ax_prec, "Frame-level prec@1 (train dashed, val solid)", "prec@1 (%)"),
                              (ax_map, "Validation video mAP (best epoch starred)", "mAP")):
        ax.set(title=title, xlabel="epoch", ylabel=ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Training curves: " + ", ".join(r.name for r in runs))
    return save_png(fig, out_path)


def plot_curves(metrics_paths: str | list[str], out_path: str) -> tuple[int, int]:
    """``curves`` in one call, for main.py's ``--plot``: ``plot_curves(opts.cache, <cache>/curves.png)``."""
    return draw_curves(curves_data(metrics_paths), out_path)


# ------------------------------------------------------------------------------------ per-class AP

@dataclass
class PerClassAP:
    """Official per-class APs of a classification submission, and the bars to draw."""

    ap: np.ndarray           # (C,), NaN for classes without positives
    order: np.ndarray        # classes with positives, AP descending (stable: ties by class index)
    labels: list[str]        # "cNNN name" of ``order``
    values: np.ndarray       # ap[order]
    n_nan: int               # classes left out: no positives in the ground truth
    mAP: float               # official mAP (NaN as soon as one class has no positives)
    mAP_with_positives: float
    wAP: float
    title: str               # which submission


def per_class_data(submission: str, gt_csv: str, classes: str = CLASSES_TXT, nclass: int = 157) -> PerClassAP:
    """Evaluate with ``utils.charades_eval.classify`` and sort the defined APs, best first."""
    ap, mAP, wAP = classify(submission, gt_csv, nclass)
    names = read_classes(classes) if classes and os.path.isfile(classes) else []
    defined = np.flatnonzero(~np.isnan(ap))
    order = defined[np.argsort(-ap[defined], kind="stable")]
    labels = [f"c{c:03d} {names[c]}" if c < len(names) else f"c{c:03d}" for c in order]
    return PerClassAP(ap, order, labels, ap[order], int(np.isnan(ap).sum()), mAP, mean_ap_with_positives(ap),
                      wAP, os.path.basename(submission))


def per_class_size(n: int) -> tuple[float, float]:
    """Figure size for ``n`` bars: 3/16 inch (18 px) per bar, so 157 labels at 7 pt never overlap."""
    return 10.0, 1.5 + 0.1875 * max(n, 1)


def draw_per_class(data: PerClassAP, out_path: str) -> tuple[int, int]:
    """Horizontal bars, best class on top, AP printed at each bar's end, mean AP as a vertical line."""
    fig = figure(per_class_size(len(data.order)))
    ax = fig.subplots()
    y = np.arange(len(data.order))
    bars = ax.barh(y, data.values, height=0.75, color="C0", label=f"{len(data.order)} classes with positives")
    ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=2)
    ax.axvline(data.mAP_with_positives, color="C3", linestyle="--",
               label=f"mean over classes with positives: {data.mAP_with_positives:.4f}")
    ax.set_yticks(y, data.labels, fontsize=7)
    ax.set_ylim(len(y) - 0.5, -0.5)  # best first, no empty margins
    ax.set_xlim(0, 1.08)  # room for the value labels
    ax.set_xlabel("average precision (official Charades classification AP)")
    ax.xaxis.set_ticks_position("both")  # a 3000 px tall figure: ticks at the top too
    ax.tick_params(axis="x", labeltop=True)
    ax.grid(axis="x", alpha=0.3)
    if data.n_nan:
        ax.plot([], [], " ", label=f"{data.n_nan} classes without positives left out (AP NaN)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"Per-class AP of {data.title}: official mAP {data.mAP:.4f}, WAP {data.wAP:.4f}"
                 + (f"\n({data.n_nan} classes without positives: official mAP is NaN)" if data.n_nan else ""))
    return save_png(fig, out_path)


# ------------------------------------------------------------------------------------ timelines

@dataclass
class Timeline:
    """One video: its ground-truth intervals and the localisation scores of the classes shown."""

    video_id: str
    length: float
    times: np.ndarray        # (25,) seconds: (j-1)/25 * length
    intervals: list[tuple[int, float, float]]  # ground truth (class, start, end), CSV order
    classes: list[int]       # rows shown: the GT classes (sorted), then ``wrong``
    wrong: list[int]         # best-scored classes absent from the ground truth
    labels: dict[int, str]   # class -> "cNNN name"
    scores: np.ndarray       # (len(classes), 25), NaN where the submission lacks the frame
    ap: float                # ``video_ap``; NaN without actions


def video_rows(sub) -> dict[str, np.ndarray]:
    """Rows of a localisation submission per video, indexed by 0-based frame (-1: frame missing)."""
    frames, shifted = one_based_frames(sub.frames)
    if shifted:  # as the official evaluator does
        warnings.warn(f"{sub.path}: frames should be 1-indexed; adding 1 to all frame numbers")
    index: dict[str, np.ndarray] = {}
    for row, (vid, fr) in enumerate(zip(sub.ids, frames.tolist())):
        if 1 <= fr <= NFRAMES:  # the evaluator ignores other frame numbers too
            index.setdefault(vid, np.full(NFRAMES, -1))[fr - 1] = row
    return index


def video_scores(sub, rows: np.ndarray) -> np.ndarray:
    """(25, C) scores of one video, NaN for missing frames."""
    out = np.array(sub.scores[np.maximum(rows, 0)], dtype=float)
    out[rows < 0] = np.nan
    return out


def video_ap(scores: np.ndarray, gt: np.ndarray) -> float:
    """Per-video AP: the video's 25 x C (time, class) pairs ranked by score in one list (stable sort,
    missing frames -inf) against its localisation ground truth; 1.0 when every true pair outranks every
    false one, so it rewards the right classes at the right times.  NaN for a video without actions."""
    flat = np.where(np.isnan(scores), -np.inf, scores).reshape(-1, 1)
    return float(average_precision(flat, gt.reshape(-1, 1))[0])


def rank_videos(sub, videos: list[Video], index: dict[str, np.ndarray]) -> list[tuple[str, float]]:
    """``(id, video_ap)`` of the submitted videos, best first (ties keep CSV order).  Videos without a
    positive (time, class) pair (no actions, or actions between the 25 sampled times) have no AP and
    are left out."""
    nclass = sub.scores.shape[1]
    scored = [(v.id, video_ap(video_scores(sub, index[v.id]), localize_gt([v], nclass)))
              for v in videos if v.actions and v.id in index]
    return sorted([t for t in scored if not np.isnan(t[1])], key=lambda t: -t[1])


def timeline_data(sub, video: Video, rows: np.ndarray, names: list[str], n_wrong: int = 2) -> Timeline:
    """The GT classes of ``video`` and its ``n_wrong`` highest-scored other classes (by peak score)."""
    scores = video_scores(sub, rows)
    gt_classes = video.classes
    in_gt = set(gt_classes)
    peak = np.where(np.isnan(scores), -np.inf, scores).max(axis=0)
    others = [int(c) for c in np.argsort(-peak, kind="stable") if c not in in_gt]
    wrong = others[:n_wrong]
    classes = gt_classes + wrong
    labels = {c: f"c{c:03d} {names[c]}" if c < len(names) else f"c{c:03d}" for c in classes}
    times = np.arange(NFRAMES) / NFRAMES * video.length  # same arithmetic as the evaluator's grid
    ap = video_ap(scores, localize_gt([video], scores.shape[1])) if video.actions else float("nan")
    return Timeline(video.id, video.length, times, list(video.actions), classes, wrong, labels,
                    scores[:, classes].T, ap)


def draw_timeline(data: Timeline, out_path: str) -> tuple[int, int]:
    """Top: ground-truth intervals, one row per class; bottom: the scores over time (wrong classes
    dashed), same colour per class, shared time axis in seconds."""
    fig = figure(TIMELINE_SIZE)
    ax_gt, ax_sc = fig.subplots(2, 1, sharex=True, height_ratios=[1, 1.6])
    color = {c: f"C{k % 10}" for k, c in enumerate(data.classes)}
    row = {c: k for k, c in enumerate(data.classes)}
    min_width = data.length / 200  # a zero-length action still shows as a sliver
    for c, start, end in data.intervals:
        ax_gt.broken_barh([(start, max(end - start, min_width))], (row[c] - 0.35, 0.7), color=color[c])
    names = [data.labels[c] + (" (not in GT)" if c in data.wrong else "") for c in data.classes]
    ax_gt.set_yticks(range(len(data.classes)), names, fontsize=8)
    ax_gt.set_ylim(len(data.classes) - 0.5, -0.5)
    ax_gt.set_title("ground-truth actions")
    ax_gt.grid(axis="x", alpha=0.3)
    for k, c in enumerate(data.classes):
        ax_sc.plot(data.times, data.scores[k], marker="o", markersize=3, color=color[c],
                   linestyle="--" if c in data.wrong else "-", label=names[k])
    ax_sc.set(title=f"localisation scores at the {NFRAMES} evaluated times", xlabel="time (s)",
              ylabel="score (as submitted)", xlim=(0, max(data.length, 1e-6)))
    ax_sc.grid(alpha=0.3)
    # Below the axes, two columns: long class names beside the plot would squeeze it.
    ax_sc.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.suptitle(f"video {data.video_id} ({data.length:.1f} s): per-video localisation AP {data.ap:.3f}")
    return save_png(fig, out_path)


def select_videos(ranked: list[tuple[str, float]], best: int, worst: int) -> list[str]:
    """The ``best`` first and ``worst`` last ids of a best-first ranking (worst first), no repeats."""
    picked = [vid for vid, _ in ranked[:best]] + [vid for vid, _ in reversed(ranked[max(len(ranked) - worst, 0):])]
    return list(dict.fromkeys(picked))


# ------------------------------------------------------------------------------------ command line

def _timeline_cmd(args) -> list[str]:
    videos = read_annotations(args.gt_csv, args.nclass)
    sub = read_submission(args.submission, args.nclass)
    if sub.kind != LOCALIZE:
        raise SubmissionError(f"{args.submission}: a classification file; timeline needs a localisation file")
    index = video_rows(sub)
    by_id = {v.id: v for v in videos}
    if args.videos:
        missing = [v for v in args.videos if v not in by_id or v not in index]
        if missing:
            raise cli.InputError(f"video(s) {missing} not in both {args.gt_csv} and {args.submission}")
        ids = list(dict.fromkeys(args.videos))
    else:
        ranked = rank_videos(sub, videos, index)
        ids = select_videos(ranked, args.best, args.worst)
        for vid, ap in ranked:
            if vid in ids:
                print(f"{vid}: per-video AP {ap:.4f}")
    names = read_classes(args.classes) if os.path.isfile(args.classes) else []
    out = []
    for vid in ids:
        path = os.path.join(args.output, f"timeline_{safe_filename(vid)}.png")  # ids come from input files
        draw_timeline(timeline_data(sub, by_id[vid], index[vid], names, args.wrong), path)
        out.append(path)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python plot_results.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("curves", help="loss, prec@1 and video mAP per epoch, one or more runs")
    c.add_argument("runs", nargs="+", help="run cache directories or metrics.csv files")
    c.add_argument("-o", "--output", default="curves.png")
    for name, help_, default in (("per-class", "the class APs of a classification submission, sorted",
                                  "per_class_ap.png"),
                                 ("timeline", "ground truth vs localisation scores over time, per video", ".")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("submission", help=("classification" if name == "per-class" else "localisation") + " submission")
        s.add_argument("gt_csv", help="Charades annotation CSV (e.g. Charades_v1_test.csv)")
        s.add_argument("--classes", default=CLASSES_TXT, help="class names (default: data/Charades_v1_classes.txt)")
        s.add_argument("--nclass", type=int, default=157)
        s.add_argument("-o", "--output", default=default, help="output PNG" if name == "per-class" else "output folder")
    t = sub.choices["timeline"]
    t.add_argument("--videos", nargs="+", metavar="ID")
    t.add_argument("--best", type=int, default=0, help="the N videos with the highest per-video AP")
    t.add_argument("--worst", type=int, default=0, help="the N videos with the lowest per-video AP")
    t.add_argument("--wrong", type=int, default=2, help="top-scored classes outside the GT to show too")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; 0 on success.  A usage error exits 2 (argparse); an input error or a missing
    matplotlib raises a ``cli.UserError`` (one line and status 2 under ``cli.run``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "timeline" and bool(args.videos) == bool(args.best or args.worst):
        parser.error("timeline: give either --videos ID [ID ...] or --best N / --worst N")
    require_matplotlib()
    written = [args.output]
    if args.command == "curves":
        plot_curves(args.runs, args.output)
    elif args.command == "per-class":
        draw_per_class(per_class_data(args.submission, args.gt_csv, args.classes, args.nclass), args.output)
    else:
        written = _timeline_cmd(args)
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
