"""models/online.py: the causal field against the project's own criterion run one frame at a time (the
slow, direct reference), chunking invariance, causality, and the positive control (the offline
synchronous mode is not causal)."""
import pytest
import torch

import opts as options
from models.asynctf import AsyncTFCriterion
from models.online import CausalField, causal_smooth


def make_opts(tmp_path, **kw):
    o = options.parse(["--cache-dir", str(tmp_path)])
    for k, v in {**dict(nclass=5, memory_size=4, memory_decay=0.8, sigma=6.0, temporal_weight=2.0,
                        window_smooth=2, nhidden=2), **kw}.items():
        setattr(o, k, v)
    return o


def field_inputs(n=11, C=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, C, generator=g) * 2
    aa = (torch.randn(C, C, generator=g) * 2).unsqueeze(0).expand(n, -1, -1)  # as the head returns it
    times = torch.tensor([1, 3, 4, 4, 9, 12, 13, 20, 21, 22, 30])[:n]  # one repeated time: neither past nor future
    return a, aa, times


def reference(o, a, aa, times):
    """Each frame: one eval-mode criterion pass (batch of one) on the buffer of the frames before it; then
    the mean over the last window_smooth + 1 frames, written out."""
    crit = AsyncTFCriterion(o).eval()
    raw = []
    for k in range(len(a)):
        qa, _ = crit(a[k:k + 1], aa[k:k + 1], torch.zeros(1, o.nclass), {"id": ["v"], "time": times[k:k + 1]})
        raw.append(qa[0])
    w = o.window_smooth
    smooth = [torch.stack(raw[max(0, k - w):k + 1]).mean(0) for k in range(len(raw))]
    return torch.stack(raw), torch.stack(smooth)


@pytest.mark.parametrize("decay", [0.8, 1.0])
def test_matches_the_criterion_one_frame_at_a_time_in_any_chunks(tmp_path, decay):
    o = make_opts(tmp_path, memory_decay=decay)
    a, aa, times = field_inputs()
    raw_ref, smooth_ref = reference(o, a, aa, times)
    # the messages matter here: without them the scores would be sigmoid(a)
    assert (raw_ref - torch.sigmoid(a)).abs().max() > 0.05
    for chunks in ([11], [1] * 11, [3, 1, 5, 2]):
        field, raws, smooths = CausalField.from_opts(o), [], []
        start = 0
        for size in chunks:
            part = slice(start, start + size)
            raw, smooth = field.step(a[part], aa[part], times[part])
            raws.append(raw)
            smooths.append(smooth)
            start += size
        assert torch.allclose(torch.cat(raws), raw_ref, atol=1e-6), chunks
        assert torch.allclose(torch.cat(smooths), smooth_ref, atol=1e-6), chunks
    assert field.scored == 11 and len(field.times) == o.memory_size  # the FIFO stays bounded


def test_scores_are_causal_and_the_offline_mode_is_not(tmp_path):
    o = make_opts(tmp_path, memory_decay=1.0, sigma=50.0)
    a, aa, times = field_inputs()
    m = 6  # frames 0..5 are compared; 6.. change or are cut off
    changed = a.clone()
    changed[m:] = torch.randn(len(a) - m, o.nclass, generator=torch.Generator().manual_seed(9)) * 3
    online = {name: CausalField.from_opts(o).step(x, aa[:len(x)], times[:len(x)])[1]
              for name, x in (("full", a), ("changed", changed), ("cut", a[:m]))}
    assert (online["changed"][:m] - online["full"][:m]).abs().max() < 1e-5
    assert (online["cut"] - online["full"][:m]).abs().max() < 1e-5

    def offline(x):  # the synchronous mode, from an empty buffer, as val_video / get_alltest.py score
        crit = AsyncTFCriterion(o).eval()
        return crit(x, aa[:len(x)], torch.zeros(len(x), o.nclass), {"id": ["v"] * len(x), "time": times[:len(x)]},
                    synchronous=True)[0]
    full = offline(a)
    assert (offline(changed)[:m] - full[:m]).abs().max() > 1e-3  # the same check fails offline
    assert (offline(a[:m]) - full[:m]).abs().max() > 1e-3


def test_frames_out_of_order_are_refused(tmp_path):
    o = make_opts(tmp_path)
    a, aa, times = field_inputs()
    field = CausalField.from_opts(o)
    field.step(a[:3], aa[:3], times[:3])
    with pytest.raises(ValueError, match="time order"):
        field.step(a[3:4], aa[3:4], torch.tensor([2]))


def test_causal_smooth_by_hand():
    x = torch.tensor([[1.0], [3.0], [5.0], [7.0]])
    assert causal_smooth(x, 1).flatten().tolist() == [1.0, 2.0, 4.0, 6.0]
    assert causal_smooth(x, 0) is x
    # with rows before: the window reaches back into them
    assert causal_smooth(x[2:], 2, before=x[:2]).flatten().tolist() == [3.0, 5.0]
