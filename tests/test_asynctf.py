"""The AsyncTF head, message buffer and criterion against hand-computed values and a direct, slow
implementation of SPEC section 4 written here (Python lists, float64, autograd hooks)."""
import math
import os
import runpy
import zlib

import pytest
import torch
import torch.nn.functional as F

import opts as options
from models.asynctf import AsyncTFBase, AsyncTFCriterion
from models.message_buffer import MessageBuffer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_opts(tmp_path, **kw):
    o = options.parse(["--cache-dir", str(tmp_path)])
    defaults = dict(nclass=6, memory_size=3, memory_decay=0.8, sigma=5.0, temporal_weight=0.7,
                    temporalloss_weight=1.3, originalloss_weight=2.0, adjustment=True, balanceloss=True,
                    window_smooth=1, manual_seed=3)
    for k, v in {**defaults, **kw}.items():
        setattr(o, k, v)
    return o


# -- message buffer, by hand ------------------------------------------------------------------------
def test_buffer_hand_computed():
    sigma, tw = 10.0, 2.0
    buf = MessageBuffer(2, memory_size=5, memory_decay=0.5, sigma=sigma, temporal_weight=tw)
    rows = buf.lookup(["v", "v", "v"])
    buf.store(rows, torch.tensor([10, 20, 30]), torch.tensor([[1., 0.], [0., 1.], [1., 1.]]), torch.arange(3))
    k = lambda d: math.exp(-d * d / (2 * sigma ** 2))  # noqa: E731
    r = buf.lookup(["v"])
    # past of t0=25: t=10 (i=0, c=1), t=20 (i=1, c=1/0.5=2); denominator = c only = 3
    past = buf.read(r, torch.tensor([25]))[0]
    assert torch.allclose(past[0], torch.tensor([tw * k(15) / 3, tw * 2 * k(5) / 3]), atol=1e-6)
    # future of t0=25: t=30 alone (i=0, c=1)
    fut = buf.read(r, torch.tensor([25]))[1]
    assert torch.allclose(fut[0], torch.tensor([tw * k(5), tw * k(5)]), atol=1e-6)
    # strict: at t0=20 the item at 20 is neither past nor future
    past20 = buf.read(r, torch.tensor([20]))[0]
    assert torch.allclose(past20[0], torch.tensor([tw * k(10), 0.0]), atol=1e-6)
    fut20 = buf.read(r, torch.tensor([20]))[1]
    assert torch.allclose(fut20[0], torch.tensor([tw * k(10), tw * k(10)]), atol=1e-6)
    # an unknown id reads zeros
    assert torch.equal(buf.read(buf.lookup(["new"]), torch.tensor([25]))[0], torch.zeros(1, 2))


def kernel_read64(items, t0, C, decay, sigma, tw):
    """The original's reading in Python floats (float64): kept items oldest first, c_i = (1/decay)**i,
    k_i = exp(-(t_i-t0)**2 / (2 sigma**2)) (0 where 2 sigma**2 is 0 in float64 too: the limit)."""
    out = []
    for keep in (lambda t: t < t0, lambda t: t > t0):
        kept = [(t, m) for t, m in items if keep(t)]
        num, den = [0.0] * C, 0.0
        for i, (t, m) in enumerate(kept):
            c = (1.0 / decay) ** i
            square = sigma * sigma  # inf above ~1e154, 0 below ~1e-162: the formula's limits there
            k = 1.0 if square == math.inf else 0.0 if square == 0 else math.exp(-float(t - t0) ** 2 / (2 * square))
            num = [x + c * k * v for x, v in zip(num, m)]
            den += c
        out += [tw * x / den if den else 0.0 for x in num]
    return out


@pytest.mark.parametrize("sigma", [1e-30, 1e-20, 1e-45, 1e-200, 0.7, 3.0, 150.0, 1e200])
def test_buffer_kernel_is_the_float64_formula_at_any_sigma(sigma):
    """--sigma 1e-30 rounded 2 sigma**2 to 0 in float32: 0/0 = NaN for an item at t0 (the original, in
    float64, gives no messages there).  Every sigma reads as the float64 formula."""
    C, times = 3, [5, 7, 9, 7, 4]
    values = torch.rand(len(times), C, generator=torch.Generator().manual_seed(0))
    buf = MessageBuffer(C, memory_size=4, memory_decay=0.8, sigma=sigma, temporal_weight=1.5)
    buf.store(buf.lookup(["v"] * len(times)), torch.tensor(times), values, torch.arange(len(times)))
    items = list(zip(times, values.double().tolist()))[-4:]  # the FIFO keeps the last 4
    t0s = [7, 6, 9, 4, 100]
    got = buf.read_joint(buf.lookup(["v"] * len(t0s)), torch.tensor(t0s)).double()
    want = torch.tensor([kernel_read64(items, t0, C, 0.8, sigma, 1.5) for t0 in t0s], dtype=torch.float64)
    assert torch.isfinite(got).all()
    assert torch.allclose(got, want, rtol=1e-6, atol=1e-7)
    if sigma < 1e-3:  # the kernel is 0 at every other time: no messages at all
        assert torch.equal(got, torch.zeros_like(got))


def test_buffer_fifo_trimming_and_persistence():
    buf = MessageBuffer(1, memory_size=2, memory_decay=1.0, sigma=1e6, temporal_weight=1.0)
    for t, m in [(1, 1.0), (2, 2.0)]:  # two separate calls: the buffer persists
        buf.store(buf.lookup(["v"]), torch.tensor([t]), torch.tensor([[m]]), torch.arange(1))
    read = lambda t0: buf.read(buf.lookup(["v"]), torch.tensor([t0]))[0][0, 0].item()  # noqa
    assert read(10) == pytest.approx(1.5)  # mean of 1 and 2 (kernel ~1)
    buf.store(buf.lookup(["v"]), torch.tensor([3]), torch.tensor([[6.0]]), torch.arange(1))
    assert read(10) == pytest.approx(4.0)  # the oldest (1.0) left the FIFO: mean of 2 and 6
    # more items of one video in a batch than memory_size: only the last two in storing order stay
    buf.store(buf.lookup(["w"] * 4), torch.tensor([1, 2, 3, 4]), torch.tensor([[1.], [2.], [4.], [8.]]),
              torch.tensor([3, 0, 2, 1]))  # stored as 8, 1, 4, 2 -> keeps 4 and 2
    assert buf.read(buf.lookup(["w"]), torch.tensor([100]))[0][0, 0].item() == pytest.approx(3.0)
    assert buf.values.shape[1] == 2  # memory stays bounded by memory_size per video


def test_buffer_decay_weights_follow_fifo_age_across_the_ring():
    """memory 2, decay 0.5: after t=1,2,3 the FIFO holds t=2 (oldest, c=1) and t=3 (c=1/0.5=2), though
    t=3 sits in the ring slot that t=1 had."""
    buf = MessageBuffer(1, memory_size=2, memory_decay=0.5, sigma=1e6, temporal_weight=1.0)
    for t, m in [(1, 1.0), (2, 2.0), (3, 4.0)]:
        buf.store(buf.lookup(["v"]), torch.tensor([t]), torch.tensor([[m]]), torch.arange(1))
    past = buf.read(buf.lookup(["v"]), torch.tensor([10]))[0][0, 0].item()
    assert past == pytest.approx((1 * 2.0 + 2 * 4.0) / 3)


# -- a direct implementation of SPEC section 4 ------------------------------------------------------
def bce04(p, t):
    """PyTorch 0.4's BCELoss (mean), through autograd."""
    return -(t * torch.log(p + 1e-12) + (1 - t) * torch.log(1 - p + 1e-12)).mean()


class SlowCriterion:
    def __init__(self, o):
        self.o, self.C = o, o.nclass
        self.mem, self.gmem = {}, {}
        self.gen = torch.Generator().manual_seed(o.manual_seed)
        self.N, self.pos = 0, torch.zeros(o.nclass, dtype=torch.float64)

    def read(self, mem, vid, t0, future):
        kept = [(t, m) for t, m in mem.get(vid, []) if (t > t0 if future else t < t0)]
        num, den = torch.zeros(self.C, dtype=torch.float64), 0.0
        for i, (t, m) in enumerate(kept):
            c = (1.0 / self.o.memory_decay) ** i
            num = num + c * math.exp(-(t - t0) ** 2 / (2 * self.o.sigma ** 2)) * m
            den += c
        return self.o.temporal_weight * num / den if kept else num

    def store(self, mem, ids, times, values, order):
        for j in order.tolist():
            fifo = mem.setdefault(ids[j], [])
            fifo.append((int(times[j]), values[j].detach().double().clone()))
            while len(fifo) > self.o.memory_size:
                fifo.pop(0)

    def __call__(self, a, aa, target, ids, times, training):
        B, C, o = a.shape[0], self.C, self.o
        msg = torch.stack([self.read(self.mem, ids[b], int(times[b]), False) for b in range(B)])
        fmsg = torch.stack([self.read(self.mem, ids[b], int(times[b]), True) for b in range(B)])
        q = torch.stack([a[b] + msg[b] @ aa[b] + aa[b] @ fmsg[b] for b in range(B)])
        qa = torch.sigmoid(q)
        if training and o.balanceloss:
            self.N += B
            self.pos += target.sum(0)
            half = self.N // 2  # Python 2's self.total / 2 (BalanceLabels.get_weights)
            w = torch.where(target > 0.5, half / self.pos, half / (self.N - self.pos))
            qa.register_hook(lambda g: g * w)
        loss = bce04(qa, target) + o.originalloss_weight * bce04(torch.sigmoid(a), target)
        order = torch.randperm(B, generator=self.gen)
        self.store(self.mem, ids, times, torch.sigmoid(a), order)
        if not training:
            return qa, loss
        past = fut = 0.0
        if o.adjustment:
            self.store(self.gmem, ids, times, target, torch.randperm(B, generator=self.gen))  # an order of its own
            gmsg = torch.stack([self.read(self.gmem, ids[b], int(times[b]), False) for b in range(B)])
            gfmsg = torch.stack([self.read(self.gmem, ids[b], int(times[b]), True) for b in range(B)])
            s = 0.5 * o.temporalloss_weight / C ** 2
            past = s * torch.stack([((gmsg[b] - msg[b]) @ aa[b] @ target[b]) ** 2 for b in range(B)]).mean()
            fut = s * torch.stack([(target[b] @ aa[b] @ (gfmsg[b] - fmsg[b])) ** 2 for b in range(B)]).mean()
        return qa, (loss + past + fut) / 3


def random_batches(nbatch, B, C, seed):
    g = torch.Generator().manual_seed(seed)
    for _ in range(nbatch):
        ids = [f"v{int(i)}" for i in torch.randint(0, 4, (B,), generator=g)]
        times = torch.randint(1, 40, (B,), generator=g)
        a = torch.randn(B, C, generator=g, dtype=torch.float64)
        aa = torch.randn(B, C, C, generator=g, dtype=torch.float64) * 0.5
        target = (torch.rand(B, C, generator=g) < 0.4).double()
        yield a, aa, target, ids, times


@pytest.mark.parametrize("training,adjustment,balance,decay,shared", [
    (True, True, True, 0.8, False), (True, False, True, 1.0, False), (True, True, False, 0.9, False),
    (False, True, True, 0.8, False), (True, True, True, 0.8, True), (True, True, True, 1.0, True),
    (True, False, False, 1.0, True), (False, True, True, 0.9, True)])
def test_criterion_matches_slow_reference(tmp_path, training, adjustment, balance, decay, shared):
    """``shared``: aa is one matrix expanded over the batch, as the head returns it (the fast path)."""
    o = make_opts(tmp_path, adjustment=adjustment, balanceloss=balance, memory_decay=decay)
    fast, slow = AsyncTFCriterion(o), SlowCriterion(o)
    fast.train(training)
    for a, aa, target, ids, times in random_batches(6, 9, o.nclass, seed=1):
        base = aa[0] if shared else aa
        a1, aa1 = a.clone().requires_grad_(), base.clone().requires_grad_()
        a2, aa2 = a.clone().requires_grad_(), base.clone().requires_grad_()
        expand = (lambda m: m.unsqueeze(0).expand(len(ids), -1, -1)) if shared else (lambda m: m)  # noqa
        s1, l1 = fast(a1, expand(aa1), target, {"id": ids, "time": times})
        s2, l2 = slow(a2, expand(aa2), target, ids, times, training)
        assert torch.allclose(s1.double(), s2, atol=1e-5)
        assert l1.item() == pytest.approx(l2.item(), rel=1e-5, abs=1e-6)
        l1.backward()
        l2.backward()
        assert torch.allclose(a1.grad.double(), a2.grad, atol=1e-5)
        assert torch.allclose(aa1.grad.double(), aa2.grad, atol=1e-5)


def test_message_and_target_buffers_are_shuffled_independently(tmp_path):
    """memory 1: each FIFO keeps the item stored last, which the two buffers' own orders choose (the
    original's mset sorted each buffer's rows by random() separately)."""
    o = make_opts(tmp_path, memory_size=1, nclass=2)
    crit = AsyncTFCriterion(o).train()
    kept = []
    for a, aa, target, _, _ in random_batches(4, 8, 2, seed=4):
        crit(a, aa, target, {"id": ["v"] * 8, "time": torch.arange(1, 9) * 10})
        kept.append((crit.messages.times[0, 0].item(), crit.targets.times[0, 0].item()))
    assert any(m != t for m, t in kept), kept


def test_balance_scale_is_floor_half_n_over_count(tmp_path):
    """First batch of 3: floor(3/2) = 1 (the original's Python 2 ``total / 2``), not 1.5.  Class 0 has
    1 positive and 2 negatives, class 1 has 2 and 1: the gradient of the qa term is scaled by 1/count."""
    target = torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    grads = []
    for balance in (True, False):
        crit = AsyncTFCriterion(make_opts(tmp_path, nclass=2, balanceloss=balance, adjustment=False,
                                          originalloss_weight=0.0)).train()
        a = torch.tensor([[0.3, -1.0], [2.0, 0.5], [-0.7, 1.5]], requires_grad=True)
        _, loss = crit(a, torch.zeros(3, 2, 2), target, {"id": ["v", "w", "x"], "time": [1, 1, 1]})
        loss.backward()
        grads.append(a.grad)
    torch.testing.assert_close(grads[0] / grads[1], torch.tensor([[1.0, 0.5], [0.5, 0.5], [0.5, 1.0]]))


def test_adjustment_and_balance_change_the_loss(tmp_path):
    """The reference test above would pass for a criterion that ignores these options if the reference
    ignored them too: check that they actually matter."""
    losses = {}
    for adj in (False, True):
        o = make_opts(tmp_path, adjustment=adj)
        crit = AsyncTFCriterion(o).train()
        for a, aa, target, ids, times in random_batches(3, 9, o.nclass, seed=2):
            _, loss = crit(a, aa, target, {"id": ids, "time": times})
        losses[adj] = loss.item()
    assert losses[True] > losses[False]


def test_synchronous_mode_matches_reference(tmp_path):
    o = make_opts(tmp_path, memory_size=4, window_smooth=2)
    fast, slow = AsyncTFCriterion(o).eval(), SlowCriterion(o)
    g = torch.Generator().manual_seed(5)
    B, C = 7, o.nclass
    a, aa = torch.randn(B, C, generator=g), torch.randn(B, C, C, generator=g) * 0.5
    target = (torch.rand(1, C, generator=g) < 0.5).float().expand(B, C).contiguous()
    ids, times = ["vid"] * B, torch.arange(1, B + 1) * 10
    s1, _ = fast(a, aa, target, {"id": ids, "time": times}, synchronous=True)
    # a video scored synchronously stores in orders drawn from its own stream (seed, video id)
    slow.gen = torch.Generator().manual_seed(o.manual_seed * 1000003 + zlib.crc32(b"vid"))
    main_stream = fast.generator.get_state()
    for _ in range(6):
        q, _ = slow(a.double(), aa.double(), target.double(), ids, times, False)
    assert torch.equal(fast.generator.get_state(), main_stream)
    w = o.window_smooth
    smooth = torch.stack([q[max(0, m - w):min(B - 1, m + w) + 1].mean(0) for m in range(B)])
    assert torch.allclose(s1.double(), smooth, atol=1e-5)
    assert not torch.allclose(smooth, q)  # smoothing did something


def test_window_smooth_1_of_the_experiments_smooths_on_the_cpu(tmp_path):
    """--window-smooth 1 (exp/asynctf_rgb.py's value): a video's row m becomes the mean of its rows m-1..m+1
    (fewer at the ends).  Messages off (temporal weight 0), so the unsmoothed scores are sigmoid(a) = p."""
    exp_flags = runpy.run_path(os.path.join(ROOT, "exp", "asynctf_rgb.py"), run_name="exp")["FLAGS"]
    assert exp_flags[exp_flags.index("--window-smooth") + 1] == "1"
    o = options.parse(["--cache-dir", str(tmp_path), "--device", "cpu", "--window-smooth", "1", "--nclass", "2",
                       "--temporal-weight", "0"])
    crit = AsyncTFCriterion(o).eval()
    p = torch.tensor([[0.1, 0.9], [0.3, 0.7], [0.5, 0.5], [0.9, 0.1], [0.3, 0.3]])
    meta = {"id": ["v"] * 5, "time": [1, 5, 9, 13, 17]}
    scores, _ = crit(torch.logit(p), torch.zeros(5, 2, 2), torch.zeros(5, 2), meta, synchronous=True)
    want = torch.tensor([[0.2, 0.8],                # rows 0, 1
                         [0.3, 0.7],                # rows 0, 1, 2
                         [1.7 / 3, 1.3 / 3],        # rows 1, 2, 3
                         [1.7 / 3, 0.9 / 3],        # rows 2, 3, 4
                         [0.6, 0.2]])               # rows 3, 4
    torch.testing.assert_close(scores, want, rtol=0, atol=1e-6)


def test_head_shapes_and_low_rank(tmp_path):
    head = AsyncTFBase(12, 6, 2)
    a, aa = head(torch.randn(4, 12))
    assert a.shape == (4, 6) and aa.shape == (4, 6, 6)
    assert torch.equal(aa[0], aa[3])  # one compatibility matrix for every sample
    assert torch.linalg.matrix_rank(aa[0]).item() <= 2
    u, v = head.mAAa.weight.view(6, 2), head.mAAb.weight.view(2, 6)
    assert torch.allclose(aa[0], u @ v)
    assert head.mAAa.weight.shape == (12, 1) and head.mAAb.weight.shape == (12, 1)


def test_criterion_state_round_trip(tmp_path):
    o = make_opts(tmp_path)
    c1 = AsyncTFCriterion(o).train()
    batches = list(random_batches(4, 9, o.nclass, seed=7))
    for a, aa, target, ids, times in batches[:2]:
        c1(a, aa, target, {"id": ids, "time": times})
    c2 = AsyncTFCriterion(make_opts(tmp_path, manual_seed=99)).train()
    c2.load_state_dict_full(c1.state_dict_full())
    for a, aa, target, ids, times in batches[2:]:
        s1, l1 = c1(a, aa, target, {"id": ids, "time": times})
        s2, l2 = c2(a, aa, target, {"id": ids, "time": times})
        assert torch.equal(s1, s2) and torch.equal(l1, l2)


def test_a_batch_taken_back_leaves_no_trace(tmp_path):
    """train's --max-nonfinite skips a batch: take_back() undoes its stores (both buffers), balance counts
    and storing orders, so the run goes on exactly as if the batch had not been there.  (FIFOs of 20: the
    skipped batch's items would outlive the next batch in either buffer.)"""
    o = make_opts(tmp_path, adjustment=True, balanceloss=True, memory_size=20)
    batches = list(random_batches(3, 9, o.nclass, seed=11))
    skipped, plain = AsyncTFCriterion(o).train(), AsyncTFCriterion(o).train()
    for k, (a, aa, target, ids, times) in enumerate(batches):
        meta = {"id": ids, "time": times}
        if k == 1:
            skipped.begin_batch()
            skipped(a.float() * float("nan"), aa, target, meta)  # its messages are NaN
            skipped.take_back()
            continue
        s1, l1 = skipped(a, aa, target, meta)
        s2, l2 = plain(a, aa, target, meta)
        assert torch.equal(s1, s2) and torch.equal(l1, l2) and torch.isfinite(l1)
    full1, full2 = skipped.state_dict_full(), plain.state_dict_full()
    assert torch.equal(full1["generator"], full2["generator"]) and torch.equal(full1["positives"], full2["positives"])
    for name in ("messages", "targets"):
        buf1, buf2 = getattr(skipped, name), getattr(plain, name)
        ids = sorted(buf2.rows)
        t0 = torch.arange(len(ids)) * 7 % 40
        assert torch.equal(buf1.read_joint(buf1.lookup(ids), t0), buf2.read_joint(buf2.lookup(ids), t0))


def test_shared_aa_reaches_the_head_weights_like_a_per_sample_aa(tmp_path):
    """The fast path takes the matrix behind the head's expanded ``aa``; its gradients to mAAa / mAAb
    (and to a view that is not the whole base, which must fall back to ``aa[0]``) equal those of the
    batched equations on a materialised B x C x C copy."""
    o = make_opts(tmp_path)
    a, _, target, ids, times = next(random_batches(1, 9, o.nclass, seed=3))
    a = a.float()
    grads = []
    for how in ("head", "materialised", "view of a larger base"):
        torch.manual_seed(0)
        head, crit = AsyncTFBase(4, o.nclass, o.nhidden), AsyncTFCriterion(o).train()
        _, aa = head(torch.ones(len(ids), 4))
        if how == "materialised":
            aa = aa.contiguous()
            assert crit.shared_matrix(aa) is aa
        elif how == "view of a larger base":
            big = torch.zeros(o.nclass + 1, o.nclass + 1)
            big = big + F.pad(aa[0], (0, 1, 0, 1))
            aa = big[:o.nclass, :o.nclass].unsqueeze(0).expand(len(ids), -1, -1)
            assert crit.shared_matrix(aa) is not big and torch.equal(crit.shared_matrix(aa), aa[0])
        else:  # the very C x C matrix the head expanded, so no gradient of B x C x C is ever made
            assert crit.shared_matrix(aa) is aa._base and aa._base.shape == (o.nclass, o.nclass)
        for _ in range(2):  # the second batch reads the first one's messages
            _, loss = crit(a, aa, target, {"id": ids, "time": times})
        loss.backward()
        grads.append(torch.cat([head.mAAa.weight.grad.flatten(), head.mAAb.weight.grad.flatten()]))
    assert grads[0].abs().sum() > 0
    assert torch.allclose(grads[0], grads[1], rtol=1e-5, atol=1e-7)
    assert torch.allclose(grads[0], grads[2], rtol=1e-5, atol=1e-7)
    # a broadcast aa with no view base (torch.compile's outputs lose theirs): its first matrix
    matrix = torch.randn(o.nclass, o.nclass)
    aa = matrix.expand(len(ids), -1, -1).detach()
    assert aa._base is None and aa.stride(0) == 0 and torch.equal(AsyncTFCriterion.shared_matrix(aa), matrix)
