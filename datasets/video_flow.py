"""The flow stream's input computed from a video's pictures as they are decoded, without a flow tree on disk.

Flow frame ``k`` is what ``extract_frames.py --flow`` would write as ``<id>-NNNNNN{x,y}.jpg``
(``utils/video_frames.py``: the motion from output frame ``k`` to ``k+1`` of the frame rule, by the same
OpenCV algorithm and parameters (``FlowEncoder``), clipped to the same bound and quantised to the same 8 bits
by ``to_uint8``), less the JPEG step.  It is computed only for the flow frames some wanted stack needs
(a default-sampled 30-second video needs ~500 of its ~720 pairs; a dense one all of them).  Each plane is
turned into network input as soon as it exists (``/255``, then the flow evaluation transform: resize, centre
crop, normalisation, each applied to every channel alone, so a plane can go through it by itself), and a
stack ``start .. start+span-1`` (``datasets.charadesflow.stack_frames``, channels x, y interleaved) is
handed out as soon as its last plane is there.  Only the planes still wanted by a pending stack are kept.
"""
from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator

import numpy as np
import torch
from PIL import Image

from datasets.charadesflow import stack_frames
from datasets.frame_index import FLOW_SPAN
from utils.video_frames import FlowEncoder, to_uint8


def grey(picture) -> np.ndarray:
    """The grey levels flow is computed on, as ``FlowEncoder.add`` takes them (PIL's ``L``)."""
    image = picture if isinstance(picture, Image.Image) else Image.fromarray(np.asarray(picture))
    return np.asarray(image.convert("L"))


class FlowStacks:
    """Flow stacks of one video from its pictures, in decoding order.

    ``want(starts)`` registers stacks (1-based flow frame of their first pair; any time before the
    frames they start at are decoded), ``add(picture, repeats)`` takes the next picture of the frame rule
    (shown by ``repeats`` output frames) and returns the stacks it completed as ``(start, tensor)``,
    ``finish()`` the rest, with frames past the video's last flow frame replaced by the last one (as
    ``CharadesFlow`` does for a video shorter than a stack).  Tensors are ``2*span x S x S`` after
    ``transform`` (``datasets.transforms.flow_val_transform``)."""

    def __init__(self, transform: Callable[[torch.Tensor], torch.Tensor], method: str, bound: float,
                 span: int = FLOW_SPAN, threads: int = 1):
        self.encoder = FlowEncoder(method, bound, quality=0, threads=threads)  # its algorithm; no JPEG here
        self.transform, self.bound, self.span = transform, bound, span
        self.frames = 0           # output frames seen
        self.prev = self.before = None  # grey levels of the last picture and of the one before it
        self.pending: list[int] = []            # starts of the stacks not handed out yet, sorted
        self.planes: dict[int, torch.Tensor] = {}  # flow frame -> its transformed (x, y) planes
        self.computed = 0         # flow frames computed (pairs run through the algorithm)
        self.last_repeats = 0     # output frames the last picture shows

    def want(self, starts) -> None:
        """Register stacks starting at these flow frames (each handed out once, duplicates merged)."""
        for s in starts:
            s = int(s)
            if s < 1:
                raise ValueError(f"a flow stack starts at flow frame 1 or later, not {s}")
            if any(k < self.frames and k not in self.planes for k in range(s, s + self.span)):
                raise ValueError(f"the flow stack at {s} needs flow frames that are past already (output frame "
                                 f"{self.frames} is decoded): register stacks before their frames")
            i = bisect.bisect_left(self.pending, s)
            if i == len(self.pending) or self.pending[i] != s:
                self.pending.insert(i, s)

    def _needed(self, k: int) -> bool:
        """Does a pending stack cover flow frame ``k``?"""
        i = bisect.bisect_right(self.pending, k)
        return i > 0 and self.pending[i - 1] + self.span > k

    def planes_of(self, picture, repeats: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(k, x, y)``: the 8-bit planes of the wanted flow frames that end at this picture: the motion from
        the previous picture (flow frame ``frames``), then no motion between its repeats."""
        g = grey(picture)
        first = self.frames  # flow frame from the previous output frame to this picture's first one
        if self.prev is not None and self._needed(first):
            yield (first, *self._motion(self.prev, g))
        still = None
        for k in range(first + 1, first + repeats):
            if self._needed(k):
                still = self._still(g.shape) if still is None else still
                yield k, still, still
        self.before, self.prev = self.prev, g
        self.frames += repeats

    def _motion(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The 8-bit (x, y) planes of the motion from grey picture ``a`` to ``b``."""
        flow = self.encoder.calc(a, b, None)
        self.computed += 1
        return to_uint8(flow[..., 0], self.bound), to_uint8(flow[..., 1], self.bound)

    def _still(self, shape: tuple[int, ...]) -> np.ndarray:
        return to_uint8(np.zeros(shape, np.float32), self.bound)

    def _keep(self, k: int, x: np.ndarray, y: np.ndarray) -> None:
        self.planes[k] = self.transform(torch.from_numpy(np.stack([x, y])).float().div_(255.0))

    def add(self, picture, repeats: int = 1) -> list[tuple[int, torch.Tensor]]:
        """Take the next picture; return the stacks it completed, in start order."""
        for k, x, y in self.planes_of(picture, repeats):
            self._keep(k, x, y)
        self.last_repeats = repeats
        return self._ready(self.frames - 1)

    def finish(self) -> list[tuple[int, torch.Tensor]]:
        """The stacks still pending, with frames past the last flow frame replaced by it; a video of one
        frame has no flow (``ValueError``)."""
        last = self.frames - 1
        if self.pending and last < 1:
            raise ValueError("a video of a single frame has no optical flow")
        if self.pending and self.pending[-1] > last and last not in self.planes:
            # a stack that starts past the end is the last flow frame repeated, which no stack had wanted:
            # the last two output frames show the same picture (no motion), or the last two pictures
            x, y = (self._still(self.prev.shape),) * 2 if self.last_repeats > 1 else self._motion(self.before, self.prev)
            self._keep(last, x, y)
        return self._ready(last, final=True)

    def _ready(self, last: int, final: bool = False) -> list[tuple[int, torch.Tensor]]:
        """Hand out the pending stacks whose planes are all there (``final``: with the last plane repeated)."""
        out = []
        while self.pending and (final or self.pending[0] + self.span - 1 <= last):
            start = self.pending.pop(0)
            out.append((start, torch.cat([self.planes[k] for k in stack_frames(start, last, self.span)])))
        keep_from = self.pending[0] if self.pending else self.frames  # planes no pending stack needs go
        for k in [k for k in self.planes if k < keep_from]:
            del self.planes[k]
        return out
