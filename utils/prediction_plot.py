"""The timeline picture of one video's predictions (``predict.py``: ``<id>.png``).

A strip of thumbnails of the video on top; below, one row per top action (best first): its probability
over time as a thin filled curve, its segments as solid bars with their scores, and the action's name and
video score on the left.  The time axis is in seconds.  matplotlib is optional (``utils.figures``).
"""
from __future__ import annotations

import numpy as np

from utils.figures import figure, save_png
from utils.predictions import VideoPrediction

ROW_IN = 0.42      # inches per action row
THUMBS_IN = 1.25   # inches of the thumbnail strip
WIDTH_IN = 12.0


def top_classes(pred: VideoPrediction, top: int) -> list[int]:
    """The ``top`` best-scored classes, plus any class with a segment among the best ``top`` segments."""
    chosen = pred.ranked()[:top]
    for s in pred.segments[:top]:
        if s.index not in chosen:
            chosen.append(s.index)
    return chosen


def draw_prediction(pred: VideoPrediction, thumbs: list, out_path: str, top: int = 6) -> tuple[int, int]:
    """Write the timeline PNG; ``thumbs``: ``(time, PIL image)`` in time order.  Returns its pixel size."""
    classes = top_classes(pred, top)
    height = 0.9 + (THUMBS_IN if thumbs else 0) + ROW_IN * max(len(classes), 1) + 0.5
    height = round(height * 32) / 32
    fig = figure((WIDTH_IN, height))
    ratios = ([THUMBS_IN] if thumbs else []) + [ROW_IN * max(len(classes), 1)]
    axes = fig.subplots(len(ratios), 1, sharex=True, height_ratios=ratios, squeeze=False)[:, 0]
    ax = axes[-1]
    D = max(pred.duration, 1e-6)
    if thumbs:
        strip = axes[0]
        n = len(thumbs)
        for j, (t, img) in enumerate(thumbs):
            x0, x1 = j * D / n, (j + 1) * D / n
            strip.imshow(np.asarray(img), extent=(x0 + 0.01 * D / n, x1 - 0.01 * D / n, 0, 1), aspect="auto")
            strip.text((x0 + x1) / 2, -0.04, f"{t:.1f} s", ha="center", va="top", fontsize=7, color="0.3")
        strip.set_ylim(0, 1)
        strip.set_yticks([])
        strip.tick_params(axis="x", bottom=False)
        for side in ("top", "right", "left", "bottom"):
            strip.spines[side].set_visible(False)
        strip.set_title(f"{pred.id}: its top actions over time ({pred.duration:.1f} s, {len(pred.probs)} frames "
                        f"scored)", fontsize=11, loc="left")
    else:
        ax.set_title(f"{pred.id} ({pred.duration:.1f} s, {len(pred.probs)} frames scored)", fontsize=11, loc="left")
    scores, edges = pred.scores, np.concatenate([pred.times, [D]])
    for row, c in enumerate(classes):
        color = f"C{row % 10}"
        bottom = row + 0.45  # rows go down the axis (row 0 on top); each band is 0.9 high
        p = pred.probs[:, c]
        ax.fill_between(edges, bottom, bottom - 0.75 * np.append(p, p[-1]), step="post", color=color, alpha=0.35,
                        linewidth=0)
        ax.plot([0, D], [bottom - 0.75 * pred.rule.threshold] * 2, color=color, linewidth=0.6, linestyle=":")
        for s in (s for s in pred.segments if s.index == c):
            ax.barh(bottom - 0.06, s.end - s.start, left=s.start, height=0.12, color=color)
            ax.text(s.start, bottom - 0.14, f" {s.start:.1f}-{s.end:.1f} s ({s.score:.2f})", ha="left",
                    va="bottom", fontsize=7, color="0.15")
    ax.set_yticks(range(len(classes)), [f"{pred.name(c)}  {scores[c]:.2f}" for c in classes], fontsize=9)
    ax.set_ylim(len(classes) - 0.5, -0.5)
    ax.set_xlim(0, D)
    ax.set_xlabel(f"time (s)    shaded: probability per scored frame (dotted: threshold {pred.rule.threshold:g});"
                  f" bars: detected spans (mean probability); left: video score", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return save_png(fig, out_path)
