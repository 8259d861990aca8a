"""The panel drawn on a labelled video: the current top actions, each with its name, its score and a small bar,
on a dark translucent box in the top-left corner; and its blending into a frame's YUV 4:2:0 planes.

The panel is drawn once per change of labels (at the scored frames) as an RGBA picture, turned into Y, U, V
and alpha once, and blended into the planes of every frame that shows it: no frame goes through RGB.
Sizes follow the frame's height, so the text reads the same on a phone video and on a 1080p one.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BOX = (0, 0, 0, 170)            # background of the panel
TEXT = (255, 255, 255, 255)
TRACK = (255, 255, 255, 70)     # the empty part of a bar
BAR = (255, 176, 0, 255)        # the filled part
# Y, U, V of limited-range R'G'B' (rows), BT.601 (SD) and BT.709 (HD), as players assume for untagged video
RGB_TO_YUV = {601: np.array([[0.257, 0.504, 0.098], [-0.148, -0.291, 0.439], [0.439, -0.368, -0.071]]),
              709: np.array([[0.183, 0.614, 0.062], [-0.101, -0.339, 0.439], [0.439, -0.399, -0.040]])}
YUV_OFFSET = np.array([16.0, 128.0, 128.0])


def top_actions(scores: np.ndarray, names: Sequence[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` best ``(name, score)`` of one frame's scores, best first (ties: the lower class first); a
    class without a name is ``class N``."""
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")[:k]
    return [(names[c] if c < len(names) else f"class {c}", float(scores[c])) for c in order]


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)   # Pillow's scalable built-in font (needs FreeType)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: float) -> str:
    """``text``, cut with an ellipsis to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def render_panel(entries: Sequence[tuple[str, float]], frame_width: int, frame_height: int) -> np.ndarray:
    """The panel of ``entries`` (name, score in [0, 1]) for a frame of this size: an RGBA array with even
    width and height, at most the frame's width less two margins."""
    size = max(11, round(frame_height / 26))
    font, pad, line = _font(size), max(2, size // 2), round(size * 1.5)
    bar_h, score_w = max(3, round(size * 0.5)), round(size * 2.6)
    max_w = frame_width - 2 * margin(frame_height)
    fixed = 2 * pad + score_w + size        # the box's pads, the score, the gaps
    # on a narrow frame (a small phone video) the bar gives way first, so that the score is never cut
    bar_w = min(4 * size, max(0, max_w - fixed - 3 * size))
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    name_room = max(size, max_w - fixed - bar_w)
    names = [_fit(probe, name, font, name_room) for name, _ in entries]
    text_w = max((probe.textlength(n, font=font) for n in names), default=0)
    w = min(max_w, round(2 * pad + (bar_w + size // 2 if bar_w else 0) + score_w + text_w))
    h = 2 * pad + line * max(1, len(entries))
    w, h = w + w % 2, h + h % 2
    img = Image.new("RGBA", (w, h), BOX)
    draw = ImageDraw.Draw(img)
    for i, ((_, score), name) in enumerate(zip(entries, names)):
        top = pad + i * line
        mid = top + line / 2
        y0 = round(mid - bar_h / 2)
        if bar_w:
            draw.rectangle([pad, y0, pad + bar_w - 1, y0 + bar_h - 1], fill=TRACK)
        filled = round(bar_w * min(max(score, 0.0), 1.0))
        if filled:
            draw.rectangle([pad, y0, pad + filled - 1, y0 + bar_h - 1], fill=BAR)
        x = pad + (bar_w + size // 2 if bar_w else 0)
        draw.text((x, mid), f"{score:.2f}", font=font, fill=TEXT, anchor="lm")
        draw.text((x + score_w, mid), name, font=font, fill=TEXT, anchor="lm")
    return np.asarray(img)


def margin(frame_height: int) -> int:
    """Distance of the panel from the frame's top-left corner (even, for the 4:2:0 chroma grid)."""
    m = max(4, round(frame_height / 40))
    return m + m % 2


class YUVOverlay:
    """An RGBA picture made ready to blend into 4:2:0 planes at an even position ``(x, y)``."""

    def __init__(self, rgba: np.ndarray, x: int, y: int, matrix: int = 601):
        if x % 2 or y % 2 or rgba.shape[0] % 2 or rgba.shape[1] % 2:
            raise ValueError("a 4:2:0 overlay needs an even position and size")
        rgb, alpha = rgba[..., :3].astype(np.float32), rgba[..., 3:].astype(np.float32) / 255.0
        yuv = rgb @ RGB_TO_YUV[matrix].T.astype(np.float32) + YUV_OFFSET.astype(np.float32)
        self.x, self.y, self.h, self.w = x, y, rgba.shape[0], rgba.shape[1]
        self.luma = (yuv[..., 0] * alpha[..., 0] + 0.5, 1.0 - alpha[..., 0])   # premultiplied, +0.5 to round
        half = lambda v: v.reshape(self.h // 2, 2, self.w // 2, 2, *v.shape[2:]).mean((1, 3))  # noqa: E731
        a2 = half(alpha)
        self.chroma = (half(yuv[..., 1:] * alpha) + 0.5, 1.0 - a2)

    def apply(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        """Blend into the planes in place (the part of the overlay inside them)."""
        h, w = min(self.h, y.shape[0] - self.y), min(self.w, y.shape[1] - self.x)
        if h <= 0 or w <= 0:
            return
        region = y[self.y:self.y + h, self.x:self.x + w]
        region[:] = region * self.luma[1][:h, :w] + self.luma[0][:h, :w]
        h2, w2, y2, x2 = h // 2, w // 2, self.y // 2, self.x // 2
        for plane, j in ((u, 0), (v, 1)):
            region = plane[y2:y2 + h2, x2:x2 + w2]
            region[:] = region * self.chroma[1][:h2, :w2, 0] + self.chroma[0][:h2, :w2, j]
