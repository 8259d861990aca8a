"""datasets.device_decode (``--gpu-decode``), run on the CPU: the same crop boxes and flips as the fast
loader from the same seeds, the same pixels to 8-bit rounding, Resize + CenterCrop for evaluation,
errors naming the file, and the loader wiring (collate, prepare)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

import datasets
import opts as opts_module
import train
from datasets import charadesrgb, device_decode, fast_frames
from datasets.charadesrgb import FrameError
from datasets.transforms import val_transform
from test_fast_frames import natural_jpeg, tiny_rgb_dataset

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    # 96 x 64 with S = 32: every train crop (h <= 64) is below 2S, so the fast loader never uses DCT
    # scaling and both paths decode the full frame
    return natural_jpeg(tmp_path_factory.mktemp("dd") / "f.jpg", 96, 64, 3)


def test_train_crops_equal_the_fast_loaders(frame):
    S, n = 32, 24
    fast, enc = fast_frames.FastTrainFrame(S), device_decode.EncodedTrainFrame(S)
    items, ref = [], []
    for seed in range(n):
        torch.manual_seed(seed)
        items.append(enc(frame))
        torch.manual_seed(seed)
        assert fast.sample(96, 64) == (*items[-1].box, items[-1].flip)  # the same draws
        torch.manual_seed(seed)
        ref.append(fast(frame))
    assert len({it.box for it in items}) > n // 2 and 0 < sum(it.flip for it in items) < n  # they do vary
    decoder = device_decode.DeviceDecode(S, CPU, train=True, jitter=None)
    images = device_decode.decode(items, CPU)
    got = torch.stack([decoder.crop_resize(img, it) for img, it in zip(images, items)])
    want = torch.stack(ref).float() / 255
    # where the fast loader decodes the full frame too (no DCT scaling): same box, flip and filter, and
    # the fast loader rounds to 8 bits once more
    full = [k for k, it in enumerate(items) if fast_frames.dct_scale(*it.box[2:], S, S) == 1]
    assert len(full) >= n - 3
    assert (got[full] - want[full]).abs().max() <= 1.01 / 255
    k = next(k for k in full if items[k].flip)
    unflipped = decoder.crop_resize(images[k], dataclasses.replace(items[k], flip=False))
    assert torch.equal(unflipped.flip(-1), got[k])


def test_eval_equals_the_plain_transform(frame, tmp_path):
    S = 32
    opts = opts_module.parse(["--inputsize", str(S), "--cache-dir", str(tmp_path)])
    decoder = device_decode.DeviceDecode(S, CPU, train=False, jitter=None)
    item = device_decode.EncodedEvalFrame()(frame)
    got = decoder(device_decode.EncodedFrames([item]))[0]
    ref = val_transform(opts)(charadesrgb.open_frame(frame, "RGB"))
    assert got.shape == ref.shape == (3, S, S)
    # PIL's 8-bit resize vs float resize: a pixel step, divided by the ImageNet std (~0.225)
    assert (got - ref).abs().max() < 2.5 / 255 / 0.225
    assert (got - ref).abs().mean() < 0.5 / 255 / 0.225


def test_batch_jitter_and_normalisation_follow_the_fast_path(frame):
    items = [device_decode.EncodedTrainFrame(32)(frame) for _ in range(4)]
    decoder = device_decode.DeviceDecode(32, CPU, train=True, jitter=fast_frames.JITTER)
    torch.manual_seed(7)
    x = decoder(device_decode.EncodedFrames(items))
    images = device_decode.decode(items, CPU)
    plain = torch.stack([decoder.crop_resize(img, it) for img, it in zip(images, items)])
    torch.manual_seed(7)
    assert torch.allclose(x, fast_frames.BatchTransform(fast_frames.JITTER)(plain), atol=1e-6)


def test_bad_frames_name_the_file(tmp_path, frame):
    good = open(frame, "rb").read()
    (tmp_path / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (tmp_path / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    with pytest.raises(FrameError, match="missing.jpg"):
        device_decode.EncodedEvalFrame()(str(tmp_path / "missing.jpg"))
    for name in ("truncated.jpg", "garbage.jpg"):
        items = [device_decode.EncodedEvalFrame()(frame)]
        try:
            items.append(device_decode.EncodedEvalFrame()(str(tmp_path / name)))
        except FrameError as e:  # rejected from the header already
            assert name in str(e)
            continue
        with pytest.raises(FrameError, match=name):
            device_decode.DeviceDecode(32, CPU, train=False, jitter=None)(device_decode.EncodedFrames(items))


@pytest.mark.parametrize("dataset", ["charadesrgb", "jesterrgb"])
def test_gpu_decode_wiring(tmp_path, dataset):
    argv = tiny_rgb_dataset(tmp_path, dataset)
    opts = opts_module.parse(argv + ["--gpu-decode"])
    fast = datasets.get_dataset(opts_module.parse(argv + ["--fast-loader"]))
    for loader, ref_loader in zip(datasets.get_dataset(opts), fast):
        batch, ref_batch = next(iter(loader)), next(iter(ref_loader))
        assert isinstance(batch[0], device_decode.EncodedFrames) and len(batch[0]) == len(ref_batch[0])
        assert torch.equal(batch[1], ref_batch[1]) and batch[2]["id"] == ref_batch[2]["id"]
        assert torch.equal(batch[2]["time"], ref_batch[2]["time"])
        inputs, _, _ = train.prepare(batch, loader, opts)
        assert inputs.dtype == torch.float32 and inputs.shape[1:] == (3, 16, 16) and inputs.min() < 0
