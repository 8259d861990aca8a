"""The demo's class code: how each Charades class looks in a rendered RGB or flow frame (fixed; it does not
depend on the seed), and the frame-count conventions of the demo trees.

Every class has, in RGB, a texture spread over the whole frame (an oriented sinusoidal grating, or a
"checker" = that grating times a perpendicular one of half its frequency) with a class-specific orientation
(0..90 degrees, so a horizontal flip does not map one class onto another), spatial frequency and colour (hue;
ColorJitter(0.4, 0.4, 0.4) changes brightness/contrast/saturation but not hue), drifting at a class-specific
speed.  Because the texture tiles the frame, a random crop of 8% of the area still contains a few periods
of it.  In flow, each class moves a textured field in a class-specific direction (the x/y flow is
``direction * texture``).  Active classes add their signals (``datasets/demo/scene.py``).
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import Iterable

import numpy as np

FPS = 24
NCLASS = 157
NHUE, NORIENT, NKIND = 12, 7, 2            # 12 * 7 * 2 = 168 >= 157 distinct codes
RGB_CYCLES = 9.0                           # texture periods across the short side of the frame (x0.85..1.15)
FLOW_CYCLES = 6.0
RGB_AMPLITUDE = 0.35                       # per active class, on the [0, 1] pixel scale (x per-video gain)
FLOW_AMPLITUDE = 22.0                      # per active class, in flow grey levels (128 = no motion)
RGB_NOISE = 0.04                           # gaussian pixel noise (std, [0, 1] scale)
FLOW_NOISE = 4.0                           # gaussian flow noise (std, grey levels)
FLOW_SCALE = 8.0 * 64                      # grey levels per (frame short side) of motion per frame


@dataclass(frozen=True)
class ClassCode:
    """How class ``c`` looks: RGB texture (hue, orientation, kind, frequency, drift) and flow texture."""

    hue: float            # 0..1
    orient: float         # radians, 0..pi/2
    kind: int             # 0 = grating, 1 = checker
    cycles: float         # periods across the frame's short side
    speed: float          # temporal phase rate, radians per second (signed)
    flow_dir: float       # radians, direction of the flow vector
    flow_orient: float
    flow_kind: int
    flow_cycles: float
    flow_speed: float


def _make_codes(nclass: int = NCLASS) -> list[ClassCode]:
    rng = np.random.default_rng(20170721)
    ncode = NHUE * NORIENT * NKIND
    rgb_perm, flow_perm = rng.permutation(ncode), rng.permutation(ncode)
    codes = []
    for c in range(nclass):
        a, b = int(rgb_perm[c % ncode]), int(flow_perm[c % ncode])
        codes.append(ClassCode(
            hue=(a % NHUE) / NHUE,
            orient=((a // NHUE) % NORIENT) * (np.pi / 2) / (NORIENT - 1),
            kind=a // (NHUE * NORIENT),
            cycles=RGB_CYCLES * float(rng.uniform(0.85, 1.15)),
            speed=float(rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 3.0) * np.pi),
            flow_dir=(b % NHUE) * 2 * np.pi / NHUE,
            flow_orient=((b // NHUE) % NORIENT) * (np.pi / 2) / (NORIENT - 1),
            flow_kind=b // (NHUE * NORIENT),
            flow_cycles=FLOW_CYCLES * float(rng.uniform(0.85, 1.15)),
            flow_speed=float(rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 3.0) * np.pi),
        ))
    return codes


CLASS_CODES: list[ClassCode] = _make_codes()


def class_colour(c: int) -> np.ndarray:
    """The unit RGB direction (3,) along which class ``c``'s texture modulates the pixels."""
    col = np.array(colorsys.hsv_to_rgb(CLASS_CODES[c].hue, 1.0, 1.0))
    return (col / np.linalg.norm(col)).astype(np.float32)


# --- frame-count conventions ------------------------------------------------------------------------------
def frame_count(length: float) -> int:
    """RGB frames of a video of ``length`` seconds: ``max(1, floor(length * 24))``."""
    return max(1, int(float(length) * FPS))


def flow_count(nframes: int) -> int:
    """Flow frames of a video with ``nframes`` RGB frames: ``max(1, nframes - 1)`` (motion between frames)."""
    return max(1, int(nframes) - 1)


def frame_time(frame: int) -> float:
    """The time in seconds shown by (1-based) frame number ``frame``: ``(frame - 1) / 24``."""
    return (frame - 1) / FPS


def active_classes(actions: Iterable[tuple[int, float, float]], t: float) -> list[int]:
    """The sorted classes with ``start < t < end`` (strict, as the training targets)."""
    return sorted({c for c, s, e in actions if s < t < e})


# --- textures ---------------------------------------------------------------------------------------------
def size_hw(size) -> tuple[int, int]:
    """``size`` is an int (square) or ``(width, height)``; returns ``(height, width)``."""
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    w, h = size
    return int(h), int(w)


def coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in units of the short side, centred: u (1, W), v (H, 1)."""
    s = float(min(h, w))
    u = ((np.arange(w, dtype=np.float32) + 0.5) - w / 2) / s
    v = ((np.arange(h, dtype=np.float32) + 0.5) - h / 2) / s
    return u[None, :], v[:, None]


def texture_basis(h: int, w: int, orient: float, kind: int, cycles: float, phase: float,
                  phase2: float) -> tuple[np.ndarray, np.ndarray]:
    """``(P, Q)`` (H, W) such that the texture at drift phase ``p`` is ``P cos p - Q sin p``."""
    u, v = coords(h, w)
    k = 2 * np.pi * cycles
    a = k * (u * np.cos(orient) + v * np.sin(orient)) + phase
    if kind == 0:
        return np.cos(a), np.sin(a)
    # "checker": modulated by a perpendicular grating of half the frequency (not symmetric under a 90
    # degree rotation, so orientations 0 and 90 differ and a flip maps no code onto another)
    b = np.cos(0.5 * k * (-u * np.sin(orient) + v * np.cos(orient)) + phase2)
    return np.cos(a) * b, np.sin(a) * b


def class_pattern(c: int, size=64, t: float = 0.0, phase: float = 0.0, phase2: float = 0.0) -> np.ndarray:
    """Class ``c``'s additive RGB signal at time ``t`` with unit amplitude: float32 (H, W, 3), zero mean.

    In a rendered frame it appears as ``RGB_AMPLITUDE * gain * class_pattern(c, size, t, phase, phase2)``
    with a per-video gain and random phases (``phase`` shifts along the texture, ``phase2`` across it).
    """
    h, w = size_hw(size)
    code = CLASS_CODES[c]
    p, q = texture_basis(h, w, code.orient, code.kind, code.cycles, phase, phase2)
    d = code.speed * t
    return ((p * np.cos(d) - q * np.sin(d))[..., None] * class_colour(c)).astype(np.float32)


def flow_pattern(c: int, size=64, t: float = 0.0, phase: float = 0.0, phase2: float = 0.0) -> np.ndarray:
    """Class ``c``'s additive flow signal (x, y) at time ``t`` with unit amplitude: float32 (H, W, 2)."""
    h, w = size_hw(size)
    code = CLASS_CODES[c]
    p, q = texture_basis(h, w, code.flow_orient, code.flow_kind, code.flow_cycles, phase, phase2)
    d = code.flow_speed * t
    g = p * np.cos(d) - q * np.sin(d)
    return np.stack([g * np.cos(code.flow_dir), g * np.sin(code.flow_dir)], -1).astype(np.float32)
