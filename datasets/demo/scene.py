"""One demo video's scene: everything random about it (from ``(seed, video id)``), and its RGB and flow
frames as arrays.

Each video has its own background (a near-grey colour, a faint gradient, slow flicker: kept close across
videos, so that a video is not easier to recognise by its look than by its class textures; with only 52
training videos a stronger per-video look is memorised instead of the classes) and at most one opaque soft
blob of random colour and size moving and bouncing across the frame (occluding the texture; its true motion
appears in the flow, replacing the class flow under it), a small global "camera" motion in the flow,
per-video random gains of every class, and gaussian pixel noise.  The class signals come from
``datasets/demo/codes.py``; a class is active at ``t`` when ``start < t < end`` (strict, SPEC section 2).

A frame renders identically whether alone or with the whole video, in any process.
"""
from __future__ import annotations

import hashlib
from typing import Iterable, Sequence

import numpy as np

from datasets.demo.codes import (CLASS_CODES, FLOW_AMPLITUDE, FLOW_NOISE, FLOW_SCALE, FPS, RGB_AMPLITUDE,
                                 RGB_NOISE, class_colour, coords, frame_count, size_hw, texture_basis)
from utils.charades_csv import Video


def _video_key(video_id: str) -> int:
    return int.from_bytes(hashlib.sha1(video_id.encode("utf-8")).digest()[:8], "little")


def _rng(seed: int, video_id: str, *stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, _video_key(video_id) & 0xFFFFFFFF,
                                  _video_key(video_id) >> 32, *stream])


class Scene:
    """Everything random about one video (from ``seed`` and its id), at one frame size."""

    def __init__(self, video: Video, seed: int, size):
        self.video, self.seed = video, int(seed)
        self.h, self.w = h, w = size_hw(size)
        self.n = frame_count(video.length)
        rng = _rng(seed, video.id, 0)
        self.classes = sorted({c for c, _, _ in video.actions})
        k = len(self.classes)
        # background: base colour, linear gradient, slow flicker
        self.bg_base = rng.uniform(0.45, 0.55, 3).astype(np.float32)
        grad = rng.uniform(-0.03, 0.03, (2, 3)).astype(np.float32)
        u, v = coords(h, w)
        self.background = self.bg_base + u[..., None] * grad[0] + v[..., None] * grad[1]   # (H, W, 3)
        self.flicker = (rng.uniform(0.0, 0.05), rng.uniform(0.1, 0.5), rng.uniform(0, 2 * np.pi))
        # per-class gains and phases (RGB and flow)
        self.gain = rng.uniform(1.0, 1.2, k).astype(np.float32)
        self.flow_gain = rng.uniform(0.7, 1.2, k).astype(np.float32)
        ph = rng.uniform(0, 2 * np.pi, (k, 4))
        self.rgb_basis, self.flow_basis = [], []
        for j, c in enumerate(self.classes):
            code = CLASS_CODES[c]
            self.rgb_basis.append(texture_basis(h, w, code.orient, code.kind, code.cycles, ph[j, 0], ph[j, 1]))
            self.flow_basis.append(texture_basis(h, w, code.flow_orient, code.flow_kind, code.flow_cycles,
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


def chunks(frames: Sequence[int], h: int, w: int) -> Iterable[Sequence[int]]:
    """``frames`` in consecutive groups, each rendered in one vectorised call."""
    step = max(1, (1 << 21) // (h * w * 6))  # bound the float32 working set (blobs x frames x pixels)
    for i in range(0, len(frames), step):
        yield frames[i:i + step]


def render_frames(video: Video, frames: Iterable[int], seed: int = 0, size=64) -> list[np.ndarray]:
    """RGB frames (uint8 (H, W, 3), 1-based frame numbers) of ``video``, identical to the tree's JPEG inputs.

    ``size`` is an int (square) or ``(width, height)``, e.g. ``(640, 480)`` for realistic 480p frames.
    """
    frames = [int(f) for f in frames]
    h, w = size_hw(size)
    scene = Scene(video, seed, size)
    out = []
    for ch in chunks(frames, h, w):
        out.extend(scene.rgb(ch))
    return out


def render_flow(video: Video, frames: Iterable[int], seed: int = 0, size=64) -> list[tuple[np.ndarray, np.ndarray]]:
    """Flow frames ``(x, y)`` (each uint8 (H, W), 128 = no motion) for 1-based flow frame numbers."""
    frames = [int(f) for f in frames]
    h, w = size_hw(size)
    scene = Scene(video, seed, size)
    out = []
    for ch in chunks(frames, h, w):
        out.extend((f[..., 0], f[..., 1]) for f in scene.flow(ch))
    return out

