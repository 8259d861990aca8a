"""The flow stream's input for ``predict.py``: flow computed from a video's pictures as they are decoded (no
flow tree on disk), or read from a frame folder that holds its flow frames.

Flow frame ``k`` of a video is what ``extract_frames.py --flow`` would write as ``<id>-NNNNNN{x,y}.jpg``
(``utils/video_frames.py``): the motion from output frame ``k`` to ``k+1`` of the frame rule, by the same
OpenCV algorithm and parameters (``FlowEncoder``), clipped to the same bound and quantised to the same 8 bits
by ``to_uint8``, less the JPEG step.  It is computed only for the flow frames some wanted stack needs
(a default-sampled 30-second video needs ~500 of its ~720 pairs), on several threads (OpenCV releases the
GIL; Farneback itself runs on one core).  Each plane is turned into network input as soon as it exists
(``/255``, then the flow evaluation transform: resize, centre crop, normalisation, each applied to every
channel alone, so a plane can go through it by itself), and a stack ``start .. start+span-1``
(``datasets.flow_files.stack_frames``, channels x, y interleaved) is handed out as soon as its last
plane is there.  Only the planes still wanted by a pending stack are kept.
"""
from __future__ import annotations

import bisect
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from fractions import Fraction

import numpy as np
import torch
from PIL import Image

from datasets.flow_files import NAMING, read_stack, stack_frames
from datasets.frame_files import list_frames
from datasets.frame_index import FLOW_SPAN, FPS
from datasets.frame_io import FrameError
from datasets.video_input import FRAMES, Clip, InputError
from utils.video_decode import VideoError
from utils.video_frames import FlowEncoder, pictures, to_uint8


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
    ``transform`` (``datasets.transforms.flow_val_transform``).  ``workers``: threads computing flow."""

    def __init__(self, transform: Callable[[torch.Tensor], torch.Tensor], method: str, bound: float,
                 span: int = FLOW_SPAN, workers: int = 1):
        self.method, self.transform, self.bound, self.span = method, transform, bound, span
        self.local = threading.local()  # one FlowEncoder per thread: a TV-L1 object keeps state between calls
        self.pool = ThreadPoolExecutor(workers) if workers > 1 else None
        self.queued: deque[Future] = deque()
        self.frames = 0           # output frames seen
        self.prev = self.before = None  # grey levels of the last picture and of the one before it
        self.pending: list[int] = []            # starts of the stacks not handed out yet, sorted
        self.planes: dict[int, torch.Tensor | Future] = {}  # flow frame -> its transformed (x, y) planes
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

    def _jobs(self, picture, repeats: int) -> Iterator[tuple[int, tuple]]:
        """``(k, (a, b))``: the wanted flow frames that end at this picture, each as the grey pictures whose
        motion it is (``b`` None: no motion, a repeat).  A lazy picture (a function, ``pictures(lazy=True)``)
        is made only when a wanted flow frame starts or ends at it: a default-sampled video skips ~1/4."""
        first = self.frames  # flow frame from the previous output frame to this picture's first one
        used = any(self._needed(k) for k in range(first, first + repeats + 1))
        g = grey(picture) if not callable(picture) else grey(picture()) if used else picture
        if self.prev is not None and self._needed(first):
            yield first, (self.prev, g)
        for k in range(first + 1, first + repeats):
            if self._needed(k):
                yield k, (g, None)
        self.before, self.prev = self.prev, g
        self.frames += repeats
        self.last_repeats = repeats

    def _planes(self, a: np.ndarray, b: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The 8-bit (x, y) planes of the motion from grey picture ``a`` to ``b`` (None: no motion)."""
        a, b = (grey(p()) if callable(p) else p for p in (a, b))  # a picture not made yet (``finish``)
        if b is None:
            still = to_uint8(np.zeros(a.shape, np.float32), self.bound)
            return still, still
        encoder = getattr(self.local, "encoder", None)
        if encoder is None:  # the algorithm of extract_frames.py's FlowEncoder (its JPEG step is not used here)
            encoder = self.local.encoder = FlowEncoder(self.method, self.bound, quality=0, threads=1)
        flow = encoder.calc(a, b, None)
        return to_uint8(flow[..., 0], self.bound), to_uint8(flow[..., 1], self.bound)

    def planes_of(self, picture, repeats: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(k, x, y)``: the 8-bit planes of the wanted flow frames that end at this picture: the motion from
        the previous picture (flow frame ``frames``), then no motion between its repeats."""
        for k, pair in self._jobs(picture, repeats):
            self.computed += pair[1] is not None
            yield (k, *self._planes(*pair))

    def _input(self, pair: tuple) -> torch.Tensor:
        return self.transform(torch.from_numpy(np.stack(self._planes(*pair))).float().div_(255.0))

    def _keep(self, k: int, pair: tuple) -> None:
        self.computed += pair[1] is not None
        if self.pool is None:
            self.planes[k] = self._input(pair)
            return
        while len(self.queued) >= 4 * self.pool._max_workers:  # bound the pictures held by queued jobs
            self.queued.popleft().result()
        self.planes[k] = future = self.pool.submit(self._input, pair)
        self.queued.append(future)

    def add(self, picture, repeats: int = 1) -> list[tuple[int, torch.Tensor]]:
        """Take the next picture; return the stacks it completed, in start order."""
        for k, pair in self._jobs(picture, repeats):
            self._keep(k, pair)
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
            self._keep(last, (self.prev, None) if self.last_repeats > 1 else (self.before, self.prev))
        out = self._ready(last, final=True)
        if self.pool is not None:
            self.pool.shutdown()
        return out

    def _ready(self, last: int, final: bool = False) -> list[tuple[int, torch.Tensor]]:
        """Hand out the pending stacks whose planes are all there (``final``: with the last plane repeated)."""
        out = []
        while self.pending and (final or self.pending[0] + self.span - 1 <= last):
            start = self.pending.pop(0)
            planes = [self.planes[k] for k in stack_frames(start, last, self.span)]
            out.append((start, torch.cat([p.result() if isinstance(p, Future) else p for p in planes])))
        keep_from = self.pending[0] if self.pending else self.frames  # planes no pending stack needs go
        for k in [k for k in self.planes if k < keep_from]:
            del self.planes[k]
        return out


def flow_count(clip: Clip) -> int:
    """The flow frames of a clip: a video's tree has one fewer than its frames; a frame folder, the x/y
    pairs it holds (``InputError`` without any)."""
    if clip.kind != FRAMES:
        return clip.nframes - 1
    listing = list_frames(clip.path, clip.id, NAMING)
    if listing.n == 0 or listing.missing:
        raise InputError(f"{clip.path}: no flow frames {clip.id}-NNNNNNx.jpg / y.jpg in it (give the folder "
                         f"extract_frames.py --flow writes, or the video)" if listing.n == 0 else
                         f"{clip.path}: flow frames missing (extract the video again)")
    return listing.n


def stack_starts(frames: Sequence[int], nflow: int, span: int = FLOW_SPAN) -> np.ndarray:
    """The flow stack scored for each RGB frame number: the same frame, moved back so that the stack fits
    (``frame_index.build_index``'s rule for val_video flow samples)."""
    if nflow < 1:
        raise InputError("a video of a single frame has no optical flow to score")
    f = np.clip(np.asarray(frames, np.int64), 1, nflow)
    return np.maximum(np.minimum(f, nflow - span + 1), 1)


# seconds per pixel of a frame pair on one core, measured by benchmarks/bench_predict_streams.py on its 30-s
# video at 455x256 on a 2-core CPU (calibration step 0.046 s): TV-L1's 500 pairs took 581 s on 2 threads (a
# pair alone 0.9-1.2 s on one core, depending on the content), Farneback's 0.016 s a pair
SECONDS_PER_PIXEL = {"tvl1": 2.0e-5, "farneback": 1.5e-7}


def expected_cost(clip: Clip, starts: Sequence[int], method: str, short_side: int, workers: int
                  ) -> tuple[int, tuple[int, int], float]:
    """``(pairs, (w, h), seconds)``: the flow frames the stacks need, the size they are computed at, and
    about how long that takes (``SECONDS_PER_PIXEL`` on ``workers`` cores)."""
    from utils.video_decode import open_video, scaled_size
    pairs = len({f for s in set(int(s) for s in starts) for f in range(s, s + FLOW_SPAN)})
    container, stream = open_video(clip.path, 1)
    with container:
        size = scaled_size(stream.width, stream.height, short_side)
    return pairs, size, pairs * size[0] * size[1] * SECONDS_PER_PIXEL[method] / max(1, workers)


def flow_batches(clip: Clip, starts: Sequence[int], transform: Callable, batch_size: int, method: str,
                 bound: float, short_side: int = 0, threads: int = 1,
                 stats: dict | None = None) -> Iterator[torch.Tensor]:
    """The flow stacks at ``starts`` (ascending; repeats allowed) of a clip, transformed, in batches of
    ``batch_size``: read from a frame folder's flow files, or computed while its video decodes (frames
    scaled to ``short_side`` first, as ``extract_frames.py --short-side``); decoding stops after the last
    stack.  ``stats``: gets ``flow_pairs`` (flow frames computed) and ``flow_seconds``."""
    starts = [int(s) for s in starts]
    if clip.kind == FRAMES:
        nflow = flow_count(clip)
        stacks = ((s, transform(_read(clip, s, nflow))) for s in starts)
    else:
        stacks = _computed(clip, starts, transform, method, bound, short_side, threads, stats)
    batch = []
    for _, x in stacks:
        batch.append(x)
        if len(batch) == batch_size:
            yield torch.stack(batch)
            batch = []
    if batch:
        yield torch.stack(batch)


def _read(clip: Clip, start: int, nflow: int) -> torch.Tensor:
    root = os.path.dirname(clip.path)
    try:
        return read_stack([NAMING.path(root, clip.id, f, axis) for f in stack_frames(start, nflow) for axis in "xy"])
    except FrameError as e:
        raise InputError(f"{e}; extract the video again or remove the folder") from None


def _computed(clip: Clip, starts: list[int], transform: Callable, method: str, bound: float, short_side: int,
              threads: int, stats: dict | None) -> Iterator[tuple[int, torch.Tensor]]:
    """``(start, stack)`` for each of ``starts`` in order, computed while the clip's video decodes."""
    began = time.perf_counter()
    stacks = FlowStacks(transform, method, bound, workers=threads)
    stacks.want(starts)
    done: dict[int, torch.Tensor] = {}
    i, notes = 0, []
    try:
        for picture, repeats in pictures(clip.path, Fraction(FPS), short_side, threads, notes, lazy=True):
            done.update(stacks.add(picture, repeats))
            while i < len(starts) and starts[i] in done:
                yield starts[i], done[starts[i]]
                if i + 1 == len(starts) or starts[i + 1] != starts[i]:
                    del done[starts[i]]  # the last time it is wanted
                i += 1
            if i == len(starts):
                break
        else:
            done.update(stacks.finish())
    except VideoError as e:
        raise InputError(f"{clip.path}: {e}") from None
    finally:
        if stacks.pool is not None:
            stacks.pool.shutdown(cancel_futures=True)
    yield from ((s, done[s]) for s in starts[i:])
    if stats is not None:
        stats.update(flow_pairs=stacks.computed, flow_seconds=time.perf_counter() - began)
