"""The message buffer with many videos: one video registered first and then others, more than 64 of them,
so that the buffer grows (64 -> 128 -> 256 rows) on the way, as in a val_video pass.  Every read and every
FIFO is checked against a direct implementation (a dict of Python FIFOs and the formula of SPEC section 4):
a new video starts with no messages, whatever was stored or dropped before it; the old ones keep theirs."""
import math
from collections import deque

import pytest
import torch

import opts as options
from models.asynctf import AsyncTFCriterion
from models.message_buffer import MessageBuffer


class ReferenceBuffer:
    """A dict id -> FIFO of (t, message) (``deque(maxlen=M)``), read item by item in float64."""

    def __init__(self, memory_size: int, memory_decay: float, sigma: float, temporal_weight: float):
        self.M, self.decay, self.sigma, self.w = memory_size, memory_decay, sigma, temporal_weight
        self.fifos: dict[str, deque] = {}

    def store(self, ids, times, values, order):
        for k in order:
            self.fifos.setdefault(ids[k], deque(maxlen=self.M)).append((int(times[k]), values[k].tolist()))

    def read(self, vid: str, t0: int, nclass: int) -> list[float]:
        """``[past | future]``: items numbered i = 0, 1, ... from the oldest among those kept in each direction,
        ``w * sum_i c_i k_i m_i / sum_i c_i`` with ``c_i = (1/decay)**i`` (0 when nothing is kept)."""
        out = []
        for kept in (lambda t: t < t0, lambda t: t > t0):
            items = [(t, m) for t, m in self.fifos.get(vid, ()) if kept(t)]
            c = [(1.0 / self.decay) ** i for i in range(len(items))]
            msg = [0.0] * nclass
            for ci, (t, m) in zip(c, items):
                k = math.exp(-(t - t0) ** 2 / (2 * self.sigma ** 2))
                msg = [s + self.w * ci * k * mj / sum(c) for s, mj in zip(msg, m)]
            out += msg
        return out


def check_reads(buf, ref, ids, t0s, nclass):
    got = buf.read_joint(buf.lookup(ids), torch.tensor(t0s))
    want = torch.tensor([ref.read(v, t, nclass) for v, t in zip(ids, t0s)], dtype=torch.float64)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("decay", [1.0, 0.5])
def test_one_video_then_many_others_against_a_dict_of_fifos(decay):
    C, M = 3, 3
    buf, ref = MessageBuffer(C, M, decay, 6.0, 0.7), ReferenceBuffer(M, decay, 6.0, 0.7)
    g = torch.Generator().manual_seed(1)

    def store(ids, times):
        values = torch.rand(len(ids), C, generator=g)
        order = torch.randperm(len(ids), generator=g)
        buf.store(buf.lookup(ids), torch.tensor(times), values, order)
        ref.store(ids, times, values, order.tolist())

    # the first video alone, with more items in one batch than its FIFO keeps: two are dropped (written
    # to the buffer's trash row, which no video may ever read)
    store(["first"] * 5, [1, 5, 9, 13, 17])
    check_reads(buf, ref, ["first"] * 3, [0, 10, 20], C)
    sizes = []
    for v in range(150):  # then the others one at a time, as val_video scores them
        vid = f"v{v:03d}"
        times = [4 * k + 1 for k in range(2 + v % 5)]  # 2..6 frames: some FIFOs overflow
        assert torch.count_nonzero(buf.read_joint(buf.lookup([vid] * len(times)), torch.tensor(times))) == 0, vid
        store([vid] * len(times), times)
        old = ["first", f"v{v // 2:03d}", f"v{max(v - 1, 0):03d}"]
        check_reads(buf, ref, [vid] * 2 + old, [0, 30, 10, 10, 10], C)
        sizes.append(buf.seq.shape[0] - 1)
    assert sorted(set(sizes)) == [64, 128, 256]  # it grew twice during the pass
    # a batch of several videos, new and old, some more than memory_size times
    mixed = ["first", "new1", "v010", "new1", "new1", "new1", "new1", "new2", "v149", "first"]
    store(mixed, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    every = ["first", "new1", "new2"] + [f"v{v:03d}" for v in range(150)]
    for t0 in (0, 6, 12):
        check_reads(buf, ref, every, [t0] * len(every), C)
    # the stored FIFOs themselves: each video's items, oldest first (seq orders them), as the reference's
    for vid in every:
        row = buf.rows[vid]
        kept = sorted((int(s), int(t)) for s, t in zip(buf.seq[row], buf.times[row]) if s >= 0)
        assert [t for _, t in kept] == [t for t, _ in ref.fifos[vid]], vid
    assert len(buf) == 153


def criterion(tmp_path):
    o = options.parse(["--cache-dir", str(tmp_path), "--nclass", "4", "--memory-size", "3", "--memory-decay", "0.8",
                       "--sigma", "5", "--temporal-weight", "0.7", "--window-smooth", "1", "--manual-seed", "2"])
    return AsyncTFCriterion(o).eval()


def test_val_video_pass_over_70_videos_after_one(tmp_path):
    """A criterion that has stored one video (a training batch), then scores 70 videos synchronously: the
    buffer grows at the 64th; each video scores as it does scored alone after that same first batch (its
    messages are its own), and the first video's FIFO is the one it had."""
    C, B = 4, 5
    g = torch.Generator().manual_seed(0)
    first = (torch.randn(7, C, generator=g), torch.randn(C, C, generator=g) * 0.3, torch.zeros(7, C),
             {"id": ["first"] * 7, "time": torch.arange(7) * 3 + 1})
    videos = [(f"v{v:02d}", torch.randn(B, C, generator=g), torch.randn(C, C, generator=g) * 0.3) for v in range(70)]

    def prepared():
        crit = criterion(tmp_path)
        a, aa, target, meta = first
        crit(a, aa.expand(7, C, C), target, meta)
        return crit

    def score(crit, vid, a, aa):
        meta = {"id": [vid] * B, "time": torch.arange(B) * 10 + 1}
        return crit(a, aa.expand(B, C, C), torch.zeros(B, C), meta, synchronous=True)[0]

    crit = prepared()
    before = {k: v.clone() for k, v in crit.messages.state_dict().items() if k != "ids"}
    together = [score(crit, *video) for video in videos]
    assert crit.messages.seq.shape[0] - 1 == 128 and len(crit.messages) == 71
    after = crit.messages.state_dict()
    assert after["ids"][0] == "first"
    for k, v in before.items():
        assert torch.equal(after[k][:1], v), k
    for v in (0, 62, 63, 64, 69):  # around the growth
        alone = score(prepared(), *videos[v])
        assert torch.equal(together[v], alone), v
