"""``--gpu-decode``: RGB frames decoded per batch on ``--device`` (nvJPEG on CUDA), not in the workers.

Full-size JPEG decoding is most of what a worker of ``--fast-loader`` still pays per sample (~1.4 ms for a
480p frame on one core, see benchmarks/bench_loader.py), and no CPU path can avoid it.  Here a worker only
reads the file and draws the sample's random crop box and flip (the same draws, from the same per-sample
seed, as ``fast_frames.FastTrainFrame``); the batch then goes to ``DeviceDecode`` (``batch_transform``,
applied by ``train.prepare``), which decodes every frame of it with ``torchvision.io.decode_jpeg`` on the
device, crops, resizes (bilinear, antialiased, in float: no 8-bit rounding) and flips each, then hands
the [0, 1] floats to ``fast_frames.BatchTransform`` (colour jitter and normalisation).

val / val_video: Resize(int(256/224*S)) of the whole frame, then CenterCrop(S), as the plain transform.
On a CPU ``--device`` the same code decodes on the CPU, in the main process: correct (that is how it is
tested here) but slower than ``--fast-loader``; the option is for CUDA.  The datasets that use these
transforms are built in ``datasets.frames``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.io import ImageReadMode, decode_image, decode_jpeg

from datasets.fast_frames import BatchTransform, FastTrainFrame, resized_hw
from datasets.frame_io import WITHOUT_IT, FrameError, open_header
from datasets.transforms import resize_size


@dataclass
class EncodedFrame:
    """One sample as a worker leaves it: the file's bytes and where to crop it (``flip`` for training)."""
    path: str
    data: torch.Tensor  # uint8 (nbytes,)
    box: tuple[int, int, int, int]  # i, j, h, w in original pixels; the whole frame for evaluation
    flip: bool
    is_jpeg: bool


def flip_encoded(frame: EncodedFrame) -> EncodedFrame:
    """The frame mirrored left-right (applied on the device with the crop): the datasets' flip."""
    return dataclasses.replace(frame, flip=not frame.flip)


class EncodedFrames:
    """A batch of ``EncodedFrame``: what ``collate`` makes of them.  ``to()`` keeps it where it is: the
    device decoder takes CPU bytes (nvJPEG uploads them itself)."""

    def __init__(self, frames: list[EncodedFrame]):
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def to(self, *args, **kwargs) -> "EncodedFrames":
        return self


class EncodedTrainFrame(FastTrainFrame):
    """Frame path -> ``EncodedFrame`` with RandomResizedCrop's box and the flip drawn (no decoding)."""

    def __call__(self, path: str) -> EncodedFrame:
        data, img = open_header(path)
        i, j, h, w, flip = self.sample(img.width, img.height)
        return EncodedFrame(path, torch.frombuffer(bytearray(data), dtype=torch.uint8), (i, j, h, w), flip,
                            img.format == "JPEG")


class EncodedEvalFrame:
    """Frame path -> ``EncodedFrame`` of the whole frame (the resize and centre crop happen on the device)."""

    def __call__(self, path: str) -> EncodedFrame:
        data, img = open_header(path)
        return EncodedFrame(path, torch.frombuffer(bytearray(data), dtype=torch.uint8),
                            (0, 0, img.height, img.width), False, img.format == "JPEG")


def collate(batch: list) -> tuple[EncodedFrames, torch.Tensor, dict]:
    """``(EncodedFrames, targets, meta)`` of a list of ``(EncodedFrame, target, meta)`` items."""
    frames, targets, metas = zip(*batch)
    return (EncodedFrames(list(frames)), torch.stack(targets),
            {"id": [m["id"] for m in metas], "time": torch.tensor([m["time"] for m in metas])})


def decode(frames: list[EncodedFrame], device: torch.device) -> list[torch.Tensor]:
    """uint8 (3, H, W) of every frame, on ``device``.  JPEGs are decoded together (one nvJPEG batch on
    CUDA); anything else, or a batch the decoder rejects, one by one so that an error names its file."""
    jpegs = [k for k, f in enumerate(frames) if f.is_jpeg]
    out: list[torch.Tensor | None] = [None] * len(frames)
    if jpegs:
        try:
            decoded = decode_jpeg([frames[k].data for k in jpegs], mode=ImageReadMode.RGB, device=device)
            for k, x in zip(jpegs, decoded):
                out[k] = x
        except RuntimeError:
            pass  # find the culprit below
    for k, f in enumerate(frames):
        if out[k] is None:
            try:
                out[k] = decode_image(f.data, mode=ImageReadMode.RGB).to(device, non_blocking=True)
            except RuntimeError as e:
                raise FrameError(f"cannot read frame {f.path}: {e}{WITHOUT_IT}") from e
    return out


class DeviceDecode:
    """``batch_transform`` of ``--gpu-decode``: ``EncodedFrames`` -> normalised float (N, 3, S, S) on
    ``device``; ``train`` crops each frame's box and flips, otherwise Resize + CenterCrop."""

    def __init__(self, size: int, device: torch.device | str, train: bool, jitter: float | None):
        self.size, self.short, self.device, self.train = size, resize_size(size), torch.device(device), train
        self.finish = BatchTransform(jitter)

    def crop_resize(self, x: torch.Tensor, frame: EncodedFrame) -> torch.Tensor:
        """float [0, 1] (3, S, S) of one decoded frame."""
        S = self.size
        if self.train:  # RandomResizedCrop: crop, then resize the crop (only the crop is converted)
            i, j, h, w = frame.box
            x = F.interpolate(x[None, :, i:i + h, j:j + w].float().div_(255.0), size=(S, S), mode="bilinear",
                              antialias=True, align_corners=False)
            return (x.flip(-1) if frame.flip else x)[0]
        x = x.float().div_(255.0)[None]
        rh, rw = resized_hw(x.shape[-2], x.shape[-1], self.short)  # Resize(short side), then CenterCrop
        x = F.interpolate(x, size=(rh, rw), mode="bilinear", antialias=True, align_corners=False)
        top, left = int(round((rh - S) / 2.0)), int(round((rw - S) / 2.0))
        return x[0, :, top:top + S, left:left + S]

    def __call__(self, batch: EncodedFrames) -> torch.Tensor:
        frames = batch.frames
        images = decode(frames, self.device)
        # bilinear weights are non-negative and sum to 1: the frames stay in [0, 1] without a clamp
        return self.finish(torch.stack([self.crop_resize(img, f) for img, f in zip(images, frames)]))
