"""Deterministic renderer of the demo Charades frame trees (RGB and optical flow) from REAL annotations.

The raw Charades videos are not available here, so the demo renders, for every video of the demo CSVs
(``data/demo/Charades_demo_{train,test}.csv``, real Charades annotations chosen by
``datasets/demo_select.py``), frames in the exact Charades on-disk format (SPEC section 1) whose content
carries the actions active at each moment:

- ``<root>/rgb/<id>/<id>-000001.jpg`` ... : ``n = frame_count(length) = max(1, floor(length * 24))`` RGB
  JPEGs (24 fps, numbered from 1); frame ``i`` shows time ``t = (i - 1) / 24`` s.
- ``<root>/flow/<id>/<id>-000001x.jpg``, ``<id>-000001y.jpg`` ... : ``flow_count(n) = max(1, n - 1)``
  flow frames (8-bit grayscale, 128 = no motion); flow frame ``k`` is the motion from RGB frame ``k`` to
  ``k + 1``, i.e. it shows time ``t = (k - 1) / 24`` s.

**The class signal.**  A class ``c`` is active at ``t`` when ``start < t < end`` (strict, SPEC section 2).
Every class has a fixed code (independent of the seed): in RGB, a texture spread over the whole frame (an
oriented sinusoidal grating, or a "checker" = that grating times a perpendicular one of half its
frequency) with a class-specific orientation (0..90 degrees, so a horizontal flip does not map one class
onto another), spatial frequency and colour (hue; ColorJitter(0.4, 0.4, 0.4) changes
brightness/contrast/saturation but not hue), drifting at a class-specific speed; every active class adds its texture (several actions mix additively).  Because
the texture tiles the frame, a random crop of 8% of the area still contains a few periods of it.  In flow,
each class moves a textured field in a class-specific direction (the x/y flow is ``direction * texture``),
again added over the active classes.

**Distractors and noise.**  Each video has its own background (a near-grey colour, a faint gradient, slow
flicker: kept close across videos, so that a video is not easier to recognise by its look than by its
class textures; with only 52 training videos a stronger per-video look is memorised instead of the
classes) and at most one opaque soft blob of random colour and size moving and bouncing across the frame
(occluding the texture; its true motion appears in the flow, replacing the class flow under it), a small global "camera"
motion in the flow, per-video random gains of every class, and gaussian pixel noise; then JPEG.

Everything derives from ``(seed, video id)``: a frame renders identically whether alone
(``render_frames``) or with the whole tree (``ensure_demo_data``), in any process.  Regenerate with::

    python -m datasets.demo_render [--root ./demo_data] [--seed 0] [--size 64] [--no-flow] [--force]
"""
from __future__ import annotations

import argparse
import colorsys
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

if __package__ in (None, ""):  # run as a script: make ``utils`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils.charades_csv import Video, file_digest, read_annotations  # noqa: E402

FPS = 24
NCLASS = 157
RENDER_VERSION = 2  # bump when the rendering changes: existing trees are then regenerated
MANIFEST = "demo_manifest.json"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_TRAIN_CSV = os.path.join(REPO_ROOT, "data", "demo", "Charades_demo_train.csv")
DEMO_TEST_CSV = os.path.join(REPO_ROOT, "data", "demo", "Charades_demo_test.csv")
DEFAULT_ROOT = "./demo_data"
DEFAULT_QUALITY = 90

# --- the class code (fixed; does not depend on the seed) -------------------------------------------------
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


def _size_hw(size) -> tuple[int, int]:
    """``size`` is an int (square) or ``(width, height)``; returns ``(height, width)``."""
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    w, h = size
    return int(h), int(w)


def _coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in units of the short side, centred: u (1, W), v (H, 1)."""
    s = float(min(h, w))
    u = ((np.arange(w, dtype=np.float32) + 0.5) - w / 2) / s
    v = ((np.arange(h, dtype=np.float32) + 0.5) - h / 2) / s
    return u[None, :], v[:, None]


def _texture_basis(h: int, w: int, orient: float, kind: int, cycles: float, phase: float,
                   phase2: float) -> tuple[np.ndarray, np.ndarray]:
    """``(P, Q)`` (H, W) such that the texture at drift phase ``p`` is ``P cos p - Q sin p``."""
    u, v = _coords(h, w)
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
    h, w = _size_hw(size)
    code = CLASS_CODES[c]
    p, q = _texture_basis(h, w, code.orient, code.kind, code.cycles, phase, phase2)
    d = code.speed * t
    return ((p * np.cos(d) - q * np.sin(d))[..., None] * class_colour(c)).astype(np.float32)


def flow_pattern(c: int, size=64, t: float = 0.0, phase: float = 0.0, phase2: float = 0.0) -> np.ndarray:
    """Class ``c``'s additive flow signal (x, y) at time ``t`` with unit amplitude: float32 (H, W, 2)."""
    h, w = _size_hw(size)
    code = CLASS_CODES[c]
    p, q = _texture_basis(h, w, code.flow_orient, code.flow_kind, code.flow_cycles, phase, phase2)
    d = code.flow_speed * t
    g = p * np.cos(d) - q * np.sin(d)
    return np.stack([g * np.cos(code.flow_dir), g * np.sin(code.flow_dir)], -1).astype(np.float32)


# --- one video's scene ------------------------------------------------------------------------------------
def _video_key(video_id: str) -> int:
    return int.from_bytes(hashlib.sha1(video_id.encode("utf-8")).digest()[:8], "little")


def _rng(seed: int, video_id: str, *stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, _video_key(video_id) & 0xFFFFFFFF,
                                  _video_key(video_id) >> 32, *stream])


class _Scene:
    """Everything random about one video (from ``seed`` and its id), at one frame size."""

    def __init__(self, video: Video, seed: int, size):
        self.video, self.seed = video, int(seed)
        self.h, self.w = h, w = _size_hw(size)
        self.n = frame_count(video.length)
        rng = _rng(seed, video.id, 0)
        self.classes = sorted({c for c, _, _ in video.actions})
        k = len(self.classes)
        # background: base colour, linear gradient, slow flicker
        self.bg_base = rng.uniform(0.45, 0.55, 3).astype(np.float32)
        grad = rng.uniform(-0.03, 0.03, (2, 3)).astype(np.float32)
        u, v = _coords(h, w)
        self.background = self.bg_base + u[..., None] * grad[0] + v[..., None] * grad[1]   # (H, W, 3)
        self.flicker = (rng.uniform(0.0, 0.05), rng.uniform(0.1, 0.5), rng.uniform(0, 2 * np.pi))
        # per-class gains and phases (RGB and flow)
        self.gain = rng.uniform(1.0, 1.2, k).astype(np.float32)
        self.flow_gain = rng.uniform(0.7, 1.2, k).astype(np.float32)
        ph = rng.uniform(0, 2 * np.pi, (k, 4))
        self.rgb_basis, self.flow_basis = [], []
        for j, c in enumerate(self.classes):
            code = CLASS_CODES[c]
            self.rgb_basis.append(_texture_basis(h, w, code.orient, code.kind, code.cycles, ph[j, 0], ph[j, 1]))
            self.flow_basis.append(_texture_basis(h, w, code.flow_orient, code.flow_kind, code.flow_cycles,
                                                  ph[j, 2], ph[j, 3]))
        # distractor blobs: soft ellipses moving (and bouncing) at constant speed
        nb = int(rng.integers(0, 2))
        self.blob_p0 = rng.uniform(0, 1, (nb, 2))                       # position in [0, 1]^2 (x, y)
        self.blob_vel = rng.uniform(-0.25, 0.25, (nb, 2))               # frame widths per second
        self.blob_rad = rng.uniform(0.06, 0.16, nb) * min(h, w)         # pixels
        self.blob_aspect = rng.uniform(0.6, 1.6, nb)
        self.blob_col = rng.uniform(0, 1, (nb, 3)).astype(np.float32)
        self.blob_alpha = rng.uniform(0.6, 1.0, nb).astype(np.float32)
        # global camera motion in the flow: constant drift + a slow shake (grey levels)
        self.cam = (rng.uniform(-3, 3, 2), rng.uniform(0, 3, 2), rng.uniform(0.2, 1.0), rng.uniform(0, 6.3))

    # activity of the video's classes at times t: (T, K) float
    def _activity(self, t: np.ndarray) -> np.ndarray:
        act = np.zeros((len(t), len(self.classes)), np.float32)
        idx = {c: j for j, c in enumerate(self.classes)}
        for c, s, e in self.video.actions:
            act[(t > s) & (t < e), idx[c]] = 1.0
        return act

    def _blob_centres(self, t: np.ndarray) -> np.ndarray:
        """(T, B, 2) centres in pixels (x, y), bouncing inside the frame."""
        x = self.blob_p0[None] + self.blob_vel[None] * t[:, None, None]
        x = 1.0 - np.abs(np.mod(x, 2.0) - 1.0)                          # triangle wave in [0, 1]
        return x * np.array([self.w, self.h])

    def _blob_alpha(self, centres: np.ndarray) -> np.ndarray:
        """(T, B, H, W) opacity of each blob (a soft-edged ellipse)."""
        xs = np.arange(self.w, dtype=np.float32) + 0.5
        ys = np.arange(self.h, dtype=np.float32) + 0.5
        c = centres.astype(np.float32)
        asp = self.blob_aspect.astype(np.float32)[None, :, None]
        dx2 = np.square((xs[None, None, :] - c[:, :, 0, None]) / asp)                # (T, B, W)
        dy2 = np.square((ys[None, None, :] - c[:, :, 1, None]) * asp)                # (T, B, H)
        r = self.blob_rad.astype(np.float32)
        edge = max(1.0, 0.03 * min(self.h, self.w))
        # (r^2 - d^2) / (2 r edge) ~ (r - d) / edge near the rim: a linear ramp `edge` pixels wide
        scale = (1.0 / (2.0 * r * edge)).astype(np.float32)[None, :, None, None]
        a = (r * r)[None, :, None, None] - dy2[:, :, :, None] - dx2[:, :, None, :]
        a *= scale
        a += 0.5
        np.clip(a, 0.0, 1.0, out=a)
        a *= self.blob_alpha[None, :, None, None]
        return a

    def _texture(self, basis, speeds, coef: np.ndarray, t: np.ndarray) -> np.ndarray:
        """sum_k coef[t, k, :] * (P_k cos(speed_k t) - Q_k sin(speed_k t)): (T, H, W, ch)."""
        ph = t[:, None] * np.asarray(speeds)[None, :]
        if not basis:
            return np.zeros((len(t), self.h, self.w, coef.shape[-1]), np.float32)
        cc, ss = coef * np.cos(ph)[..., None], -coef * np.sin(ph)[..., None]      # (T, K, ch)
        pq = np.concatenate([np.stack([b[0] for b in basis]), np.stack([b[1] for b in basis])])
        pq = pq.reshape(len(pq), -1).astype(np.float32)                             # (2K, H*W)
        m = np.concatenate([cc, ss], 1).astype(np.float32).transpose(0, 2, 1)       # (T, ch, 2K)
        nt, nch = m.shape[0], m.shape[1]
        out = m.reshape(nt * nch, -1) @ pq                                           # (T*ch, H*W)
        return np.ascontiguousarray(out.reshape(nt, nch, self.h, self.w).transpose(0, 2, 3, 1))

    def rgb(self, frames: Sequence[int]) -> np.ndarray:
        """uint8 (T, H, W, 3) for 1-based frame numbers."""
        frames = np.asarray(frames, dtype=np.int64)
        t = (frames - 1) / FPS
        act = self._activity(t)
        col = np.stack([class_colour(c) for c in self.classes]) if self.classes else np.zeros((0, 3), np.float32)
        coef = (act * self.gain * RGB_AMPLITUDE)[:, :, None] * col[None]            # (T, K, 3)
        img = self._texture(self.rgb_basis, [CLASS_CODES[c].speed for c in self.classes], coef, t)
        amp, freq, ph0 = self.flicker
        img += self.background[None] + (amp * np.sin(2 * np.pi * freq * t + ph0)).astype(np.float32)[:, None, None, None]
        alpha = self._blob_alpha(self._blob_centres(t))                              # (T, B, H, W)
        for b in range(alpha.shape[1]):
            a = alpha[:, b, :, :, None]
            img += a * (self.blob_col[b] - img)
        for i, f in enumerate(frames):
            img[i] += _rng(self.seed, self.video.id, 1, int(f)).normal(0, RGB_NOISE, (self.h, self.w, 3)).astype(np.float32)
        return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

    def flow(self, frames: Sequence[int]) -> np.ndarray:
        """uint8 (T, H, W, 2) (x, y) for 1-based flow frame numbers (motion from frame k to k + 1)."""
        frames = np.asarray(frames, dtype=np.int64)
        t = (frames - 1) / FPS
        act = self._activity(t)
        dirs = np.array([[np.cos(CLASS_CODES[c].flow_dir), np.sin(CLASS_CODES[c].flow_dir)]
                         for c in self.classes], np.float32).reshape(-1, 2)
        coef = (act * self.flow_gain * FLOW_AMPLITUDE)[:, :, None] * dirs[None]      # (T, K, 2)
        fl = self._texture(self.flow_basis, [CLASS_CODES[c].flow_speed for c in self.classes], coef, t)
        drift, shake, sfreq, sph = self.cam
        cam = drift[None] + shake[None] * np.sin(2 * np.pi * sfreq * t + sph)[:, None]   # (T, 2)
        fl += cam.astype(np.float32)[:, None, None, :]
        c0, c1 = self._blob_centres(t), self._blob_centres(t + 1.0 / FPS)
        vel = (c1 - c0) / min(self.h, self.w) * FLOW_SCALE                          # (T, B, 2) grey levels
        alpha = self._blob_alpha(c0)
        vel = vel.astype(np.float32)
        for b in range(alpha.shape[1]):
            a = alpha[:, b, :, :, None]
            fl += a * (vel[:, b, None, None, :] - fl)
        for i, f in enumerate(frames):
            fl[i] += _rng(self.seed, self.video.id, 2, int(f)).normal(0, FLOW_NOISE, (self.h, self.w, 2)).astype(np.float32)
        return np.clip(np.rint(fl + 128.0), 0, 255).astype(np.uint8)


def _chunks(frames: Sequence[int], h: int, w: int) -> Iterable[Sequence[int]]:
    step = max(1, (1 << 21) // (h * w * 6))  # bound the float32 working set (blobs x frames x pixels)
    for i in range(0, len(frames), step):
        yield frames[i:i + step]


def render_frames(video: Video, frames: Iterable[int], seed: int = 0, size=64) -> list[np.ndarray]:
    """RGB frames (uint8 (H, W, 3), 1-based frame numbers) of ``video``, identical to the tree's JPEG inputs.

    ``size`` is an int (square) or ``(width, height)``, e.g. ``(640, 480)`` for realistic 480p frames.
    """
    frames = [int(f) for f in frames]
    h, w = _size_hw(size)
    scene = _Scene(video, seed, size)
    out = []
    for ch in _chunks(frames, h, w):
        out.extend(scene.rgb(ch))
    return out


def render_flow(video: Video, frames: Iterable[int], seed: int = 0, size=64) -> list[tuple[np.ndarray, np.ndarray]]:
    """Flow frames ``(x, y)`` (each uint8 (H, W), 128 = no motion) for 1-based flow frame numbers."""
    frames = [int(f) for f in frames]
    h, w = _size_hw(size)
    scene = _Scene(video, seed, size)
    out = []
    for ch in _chunks(frames, h, w):
        out.extend((f[..., 0], f[..., 1]) for f in scene.flow(ch))
    return out


def render_video(video: Video, root: str, seed: int = 0, size=64, flow: bool = True,
                 quality: int = DEFAULT_QUALITY) -> tuple[int, int]:
    """Write one video's ``<root>/rgb/<id>/`` (and ``<root>/flow/<id>/``); returns (rgb, flow) frame counts."""
    h, w = _size_hw(size)
    scene = _Scene(video, seed, size)
    n = scene.n
    d = os.path.join(root, "rgb", video.id)
    os.makedirs(d, exist_ok=True)
    frames = list(range(1, n + 1))
    for ch in _chunks(frames, h, w):
        for f, img in zip(ch, scene.rgb(ch)):
            Image.fromarray(img, "RGB").save(os.path.join(d, f"{video.id}-{f:06d}.jpg"), quality=quality,
                                            subsampling=0)
    nflow = 0
    if flow:
        nflow = flow_count(n)
        d = os.path.join(root, "flow", video.id)
        os.makedirs(d, exist_ok=True)
        frames = list(range(1, nflow + 1))
        for ch in _chunks(frames, h, w):
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
            raise RuntimeError(f"{path} exists and is not a directory; choose another demo root")
        return
    entries = set(os.listdir(path))
    if entries and MANIFEST not in entries and not entries <= {"rgb", "flow"}:
        raise RuntimeError(f"{path} exists and does not look like a demo tree (no {MANIFEST}); "
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


def ensure_demo_data(root: str = DEFAULT_ROOT, seed: int = 0, flow: bool = True, size: int = 64, *,
                     csv_files: Sequence[str] | None = None, workers: int | None = None,
                     quality: int = DEFAULT_QUALITY, force: bool = False) -> str:
    """Render the demo trees ``<root>/rgb`` and ``<root>/flow`` once; reuse them while the settings hold.

    ``csv_files`` (default: the shipped demo train and test CSVs) list the videos.  The tree is rendered
    into a hidden temporary sibling directory (``.<name>.tmp-<pid>-*``; those of killed runs are removed
    by the next call), its manifest (``demo_manifest.json``: render version, seed, size, flow, JPEG
    quality, the CSVs' SHA-1, per-video frame counts) written last, and then renamed into place,
    so an interrupted run never leaves a tree that looks complete.  A tree whose manifest differs (other
    seed, size, CSV content, or no flow when flow is asked for) is replaced.  Returns ``root``.
    """
    csv_files = list(csv_files) if csv_files is not None else [DEMO_TRAIN_CSV, DEMO_TEST_CSV]
    root = os.path.abspath(root).rstrip(os.sep) or os.sep
    want = {"version": RENDER_VERSION, "seed": int(seed), "size": int(size), "flow": bool(flow),
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
            workers = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1), 8)
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
          f"{size}x{size}, seed {seed}, into {root} in {time.time() - start:.1f}s", flush=True)
    return root


def main(argv: Sequence[str] | None = None) -> str:
    p = argparse.ArgumentParser(description="Render the demo Charades frame trees (RGB and flow).")
    p.add_argument("--root", default=DEFAULT_ROOT)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--no-flow", action="store_true")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--force", action="store_true", help="regenerate even if an up-to-date tree exists")
    p.add_argument("csv_files", nargs="*", help="annotation CSVs (default: the shipped demo CSVs)")
    a = p.parse_args(argv)
    root = ensure_demo_data(a.root, a.seed, not a.no_flow, a.size, csv_files=a.csv_files or None,
                            workers=a.workers, force=a.force)
    print(f"demo data ready: {os.path.join(root, 'rgb')} and {os.path.join(root, 'flow')}")
    return root


if __name__ == "__main__":
    main()
