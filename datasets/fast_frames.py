"""Fast RGB frame loading for ``--fast-loader`` (issue #6): the SPEC section 2 transforms, split in two.

**Worker side** (per sample, CPU): the RandomResizedCrop box is drawn exactly as torchvision's
``RandomResizedCrop.get_params`` (same RNG calls, so the same seed gives the same box) on the size read
from the JPEG header, the frame is decoded (at 1/2, 1/4 or 1/8 size with JPEG DCT scaling when the crop
stays at least ``inputsize`` after it), cropped and resized (bilinear, antialiased: torch's uint8 kernel,
which follows PIL's filter, at full size; PIL's resize of the sub-pixel box in a reduced image), flipped
with p = 0.5, and returned as a **uint8** CHW tensor: no float conversion, jitter or normalisation on the
worker.  val / val_video: Resize(int(256/224*S)) + CenterCrop(S) likewise.  (At 480p with S = 224 a train
crop rarely reaches the 448 pixels that 1/2 scaling needs, so the full JPEG decode - which the plain path
pays too - remains most of the worker's cost: see benchmarks/bench_loader.py.)

**Device side** (per batch, ``dataset.batch_transform``, applied by ``train.prepare``): uint8 -> float,
ColorJitter(0.4, 0.4, 0.4) with per-sample factors and per-sample op order drawn from torch's global CPU
RNG (as torchvision: factors uniform in [0.6, 1.4], a random order of brightness / contrast / saturation,
clamp to [0, 1] after each op, the tensor formulas of ``torchvision.transforms.v2.functional``), then the
ImageNet normalisation; vectorised over the batch.  val: float + normalisation only.

Jitter and flip commute (the contrast mean is flip invariant), so moving the jitter after the flip keeps
the augmentation distribution of ``datasets.transforms.train_transform`` (whose jitter runs on the PIL
image: same factors and orders, 8-bit rounding between the ops).

GPU JPEG decoding is ``datasets.device_decode`` (``--gpu-decode``).  The datasets that use these
transforms are built in ``datasets.frames``; this module knows nothing of datasets.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from datasets.frame_io import open_header, reading
from datasets.transforms import IMAGENET_MEAN, IMAGENET_STD, resize_size

SCALE = (0.08, 1.0)          # RandomResizedCrop defaults
RATIO = (3.0 / 4.0, 4.0 / 3.0)
JITTER = 0.4                 # ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4), hue off
GREY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights
DCT_SCALES = (8, 4, 2)       # the reductions libjpeg can apply while decoding
CPU_CHUNK = 8                # samples per pass of the batch transform on the CPU (cache-sized)


def crop_params(width: int, height: int, scale=SCALE, ratio=RATIO) -> tuple[int, int, int, int]:
    """``RandomResizedCrop.get_params`` on a ``width`` x ``height`` image without the pixels: the same
    draws from torch's global RNG in the same order, so it returns the same ``(i, j, h, w)``."""
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))  # float32 bounds, as torchvision
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1]).item()
        aspect_ratio = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1])).item()
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            i = torch.randint(0, height - h + 1, size=(1,)).item()
            j = torch.randint(0, width - w + 1, size=(1,)).item()
            return i, j, h, w
    in_ratio = float(width) / float(height)  # fallback: central crop
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def dct_scale(h: int, w: int, need_h: int, need_w: int) -> int:
    """The largest JPEG reduction (8, 4, 2, else 1) that keeps an ``h`` x ``w`` region at least
    ``need_h`` x ``need_w``: the resize after it then only ever shrinks, as the full-size path does."""
    return next((s for s in DCT_SCALES if h >= s * need_h and w >= s * need_w), 1)


def resized_hw(height: int, width: int, short: int) -> tuple[int, int]:
    """torchvision ``Resize(short)``'s output size: shorter side ``short``, longer side truncated."""
    if width <= height:
        return int(short * height / width), short
    return short, int(short * width / height)


def decode_full(data: bytes, img: Image.Image, path: str) -> torch.Tensor:
    """uint8 (3, H, W) of the whole frame: torchvision's libjpeg decoder (straight into a tensor, no
    PIL -> numpy copy); whatever it rejects goes through PIL, which reports a truncated or corrupt file
    as FrameError naming it (as ``open_frame`` does)."""
    if img.format == "JPEG":
        try:
            return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
        except RuntimeError:
            pass
    return pil_uint8(decode_reduced(img, path, 1)[0])


def decode_reduced(img: Image.Image, path: str, scale: int) -> tuple[Image.Image, int]:
    """The frame decoded by PIL at 1/``scale`` (JPEG DCT scaling, ``draft``) and the reduction actually
    applied (1 for a non-JPEG)."""
    used = 1
    with reading(path):
        if scale > 1:
            width = img.width  # draft() changes img.size to the reduced one
            got = img.draft("RGB", (width // scale, img.height // scale))  # None: not a JPEG
            used = 1 if got is None else round(width / got[1][2])
        return img.convert("RGB"), used  # convert forces the decode


def pil_uint8(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)


def resize_uint8(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear antialiased resize of a uint8 CHW tensor (torch's uint8 kernel follows PIL's filter)."""
    return F.interpolate(x[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]


def resize_box(img: Image.Image, size: int, box: tuple[float, float, float, float]) -> torch.Tensor:
    """PIL's bilinear antialiased resize of the sub-pixel ``box`` (left, top, right, bottom) to
    ``size`` x ``size``: a crop box mapped into a DCT-reduced image is fractional, and rounding it to
    whole pixels there would shift the crop by up to ``scale / 2`` original pixels."""
    return pil_uint8(img.resize((size, size), Image.BILINEAR, box=box))


class FastTrainFrame:
    """Frame path -> uint8 (3, S, S): RandomResizedCrop(S) + RandomHorizontalFlip, DCT-scaled decoding.
    ``flip_p=None``: no flip and no flip draw (the datasets draw and apply the flip themselves, after
    this transform, so that they can also mirror the label: ``datasets.mirror``)."""

    def __init__(self, size: int, scale=SCALE, ratio=RATIO, flip_p: float | None = 0.5):
        self.size, self.scale, self.ratio, self.flip_p = size, scale, ratio, flip_p

    def sample(self, width: int, height: int) -> tuple[int, int, int, int, bool]:
        """The random part of one sample: crop box ``(i, j, h, w)`` (original pixels) and the flip."""
        i, j, h, w = crop_params(width, height, self.scale, self.ratio)
        if self.flip_p is None:
            return i, j, h, w, False
        return i, j, h, w, bool(torch.rand(1).item() < self.flip_p)  # as RandomHorizontalFlip

    def __call__(self, path: str) -> torch.Tensor:
        data, img = open_header(path)
        i, j, h, w, flip = self.sample(img.width, img.height)
        s = dct_scale(h, w, self.size, self.size)
        if s == 1:
            x = resize_uint8(decode_full(data, img, path)[:, i:i + h, j:j + w], (self.size, self.size))
        else:
            small, s = decode_reduced(img, path, s)
            x = resize_box(small, self.size, (j / s, i / s, (j + w) / s, (i + h) / s))
        return x.flip(-1) if flip else x


class FastEvalFrame:
    """Frame path -> uint8 (3, S, S): Resize(int(256/224*S)) + CenterCrop(S), DCT-scaled decoding."""

    def __init__(self, size: int):
        self.size, self.short = size, resize_size(size)

    def __call__(self, path: str) -> torch.Tensor:
        data, img = open_header(path)
        width, height, size = img.width, img.height, self.size
        rh, rw = resized_hw(height, width, self.short)
        top, left = int(round((rh - size) / 2.0)), int(round((rw - size) / 2.0))  # as CenterCrop
        s = dct_scale(height, width, rh, rw)
        if s == 1:
            x = resize_uint8(decode_full(data, img, path), (rh, rw))
            return x[:, top:top + size, left:left + size].contiguous()
        # PIL's box resize samples exactly as resize-then-crop: resize only the centre crop's box
        small, s = decode_reduced(img, path, s)
        fx, fy = width / rw / s, height / rh / s  # reduced pixels per resized pixel
        return resize_box(small, size, (left * fx, top * fy, (left + size) * fx, (top + size) * fy))


def color_jitter(x: torch.Tensor, factors: torch.Tensor, order: torch.Tensor, scale: float = 1.0,
                 grey: torch.Tensor | None = None) -> torch.Tensor:
    """torchvision's tensor ColorJitter per sample, vectorised: ``x`` (N, 3, H, W) float holds ``scale`` x
    the [0, 1] image (``scale = 1/255`` on raw uint8 values: the conversion is folded into the first op);
    ``factors`` (N, 3) are the brightness / contrast / saturation factors and ``order`` (N, 3) the order
    (0, 1, 2 = brightness, contrast, saturation) in which each sample gets them.

    Every op is ``f * x + (1 - f) * m`` (m = 0, the mean grey level, the grey image), i.e. a per-sample
    3x3 colour matrix plus an offset: one batched matmul per op position, then the clamp to [0, 1].
    (Where CUDA matmuls are allowed TF32 the products lose ~5e-4: still below an 8-bit input's 1/255.)
    ``grey``: the ``GREY`` weights already on ``x``'s device (``BatchTransform`` caches them: building
    them from Python every batch is a blocking host-to-device copy)."""
    n, c, h, w = x.shape
    y = x.reshape(n, c, h * w)
    grey = torch.tensor(GREY, device=x.device, dtype=x.dtype) if grey is None else grey
    eye = torch.eye(3, device=x.device, dtype=x.dtype)
    for k in range(3):
        op = order[:, k].view(n, 1, 1)
        f = factors.gather(1, order[:, k:k + 1]).view(n, 1, 1)
        matrix = (f * eye + (op == 2) * (1 - f) * grey.view(1, 1, 3)) * scale
        grey_mean = (y.mean(-1) @ grey).view(n, 1, 1) * scale  # = mean of the grey image (linear)
        offset = (op == 1) * (1 - f) * grey_mean
        y = torch.baddbmm(offset, matrix, y).clamp_(0.0, 1.0)
        scale = 1.0
    return y.view(n, c, h, w)


class BatchTransform:
    """Per-batch device work of the fast loader: uint8 (N, 3, H, W) -> normalised float, with the
    ColorJitter of training first when ``jitter`` is set.  Random factors come from torch's global CPU
    RNG (reproducible, resumable, device independent) and are then moved to the batch's device."""

    def __init__(self, jitter: float | None = JITTER, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.jitter, self.mean, self.std = jitter, mean, std
        self._consts: dict = {}

    def __getstate__(self) -> dict:  # device tensors stay out of pickled copies (DataLoader workers)
        return {**self.__dict__, "_consts": {}}

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Factors (N, 3) uniform in [max(0, 1-j), 1+j] and a uniformly random op order (N, 3) per sample
        (torchvision permutes 4 ops with hue a no-op: every order of the other 3 is equally likely)."""
        factors = torch.empty(n, 3).uniform_(max(0.0, 1 - self.jitter), 1 + self.jitter)
        return factors, torch.rand(n, 3).argsort(dim=1)

    def _grey(self, x: torch.Tensor) -> torch.Tensor:
        key = ("grey", x.device, x.dtype)
        if key not in self._consts:
            self._consts[key] = torch.tensor(GREY, dtype=x.dtype).to(x.device)
        return self._consts[key]

    def _affine(self, x: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        key = (x.device, x.dtype, scale)
        if key not in self._consts:  # normalise as one multiply-add: (x*scale - mean) / std
            mean = torch.tensor(self.mean, dtype=x.dtype).view(1, 3, 1, 1)
            std = torch.tensor(self.std, dtype=x.dtype).view(1, 3, 1, 1)
            self._consts[key] = ((scale / std).to(x.device), (-mean / std).to(x.device))
        return self._consts[key]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = len(x)
        factors, order = self.sample(n) if self.jitter else (None, None)  # whole batch: chunking-independent
        if factors is not None and x.device.type != "cpu":  # pinned, so the copies really are asynchronous
            factors, order = (t.pin_memory().to(x.device, non_blocking=True) for t in (factors, order))
        out = torch.empty(x.shape, dtype=x.dtype if x.is_floating_point() else torch.float32, device=x.device)
        # On the CPU, chunks of CPU_CHUNK samples stay in cache through the ~10 passes (~3x faster than
        # whole-batch passes); on an accelerator the whole batch is one set of kernels.
        step = CPU_CHUNK if x.device.type == "cpu" else max(n, 1)
        for s in range(0, n, step):
            chunk = x[s:s + step]
            scale = 1.0 if chunk.is_floating_point() else 1.0 / 255.0  # float input: already in [0, 1]
            chunk = chunk.to(out.dtype)
            if factors is not None:
                chunk = color_jitter(chunk, factors[s:s + step], order[s:s + step], scale, self._grey(chunk))
                scale = 1.0
            gain, offset = self._affine(chunk, scale)
            torch.addcmul(offset, chunk, gain, out=out[s:s + step])
        return out
