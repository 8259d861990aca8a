"""datasets.fast_frames (``--fast-loader``): same augmentation distribution as the plain transforms,
batched jitter = torchvision's ColorJitter, val outputs = the plain ones, errors, wiring."""
from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image
from scipy import stats

import datasets
import opts as opts_module
import train
from datasets import fast_frames
from datasets.charadesrgb import FrameError, open_frame
from datasets.transforms import val_transform

P_MIN = 1e-3  # KS threshold; every draw is seeded, so the tests are deterministic


def natural_jpeg(path, w: int, h: int, seed: int = 0) -> str:
    """A natural-looking frame (gradient, soft shapes, texture, mild noise) saved as a quality-90 JPEG."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = rng.uniform(0.2, 0.8, 3) + (x / w)[..., None] * rng.uniform(-0.3, 0.3, 3)
    for k in range(8):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.3) * h
        inside = np.hypot(x - cx, y - cy) < r if k % 2 else (abs(x - cx) < r) & (abs(y - cy) < 0.6 * r)
        img[inside] = rng.uniform(0, 1, 3) * (0.8 + 0.2 * np.sin(x[inside] / 4))[:, None]
    img = np.clip(img * 255 + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path, quality=90)
    return str(path)


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames")
    return {"480p": natural_jpeg(d / "f480.jpg", 854, 480), "1080p": natural_jpeg(d / "f1080.jpg", 1920, 1080, 1)}


def test_crop_params_are_torchvision_draws():
    for (w, h), seed in itertools.product([(854, 480), (480, 854), (640, 480), (400, 40)], range(300)):
        torch.manual_seed(seed)
        ours = fast_frames.crop_params(w, h)
        torch.manual_seed(seed)
        assert ours == T.RandomResizedCrop.get_params(Image.new("RGB", (w, h)), [0.08, 1.0], [3 / 4, 4 / 3])


def box_stats(boxes, w: int, h: int) -> dict[str, np.ndarray]:
    b = np.asarray(boxes, dtype=np.float64)[:, :4]  # i, j, h, w
    return {"scale": b[:, 2] * b[:, 3] / (w * h), "log_ratio": np.log(b[:, 3] / b[:, 2]),
            "cy": (b[:, 0] + b[:, 2] / 2) / h, "cx": (b[:, 1] + b[:, 3] / 2) / w}


def ks_pvalues(a: dict, b: dict) -> dict[str, float]:
    return {k: stats.ks_2samp(a[k], b[k]).pvalue for k in a}


def test_crop_and_flip_distribution_match_torchvision():
    w, h, n = 854, 480, 2000
    torch.manual_seed(1)
    draws = [fast_frames.FastTrainFrame(224).sample(w, h) for _ in range(n)]
    img = Image.new("RGB", (w, h))

    def reference(scale, ratio, seed):
        torch.manual_seed(seed)
        return box_stats([T.RandomResizedCrop.get_params(img, scale, ratio) for _ in range(n)], w, h)

    ours, ref = box_stats(draws, w, h), reference([0.08, 1.0], [3 / 4, 4 / 3], 2)
    assert min(ks_pvalues(ours, ref).values()) > P_MIN
    # the test has the power to see a wrong distribution
    assert min(ks_pvalues(ours, reference([0.2, 1.0], [3 / 4, 4 / 3], 3)).values()) < P_MIN
    assert min(ks_pvalues(ours, reference([0.08, 1.0], [1.0, 1.0], 4)).values()) < P_MIN
    assert abs(np.mean([d[4] for d in draws]) - 0.5) < 0.04  # flip p = 0.5 (sd 0.011)


def test_train_sample_is_the_torchvision_crop_and_flip(frames):
    """Same seed -> the same crop box and flip as the plain RandomResizedCrop + RandomHorizontalFlip on
    the PIL image: the same pixels to 1 grey level at full-size decoding, close with DCT scaling."""
    fast = fast_frames.FastTrainFrame(224)
    plain = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip()])
    scales, flips = set(), set()
    for name, seed in itertools.product(("480p", "1080p"), range(12)):
        torch.manual_seed(seed)
        x = fast(frames[name])
        assert x.dtype == torch.uint8 and x.shape == (3, 224, 224)
        torch.manual_seed(seed)
        i, j, h, w, flip = fast.sample(*Image.open(frames[name]).size)
        scales.add(scale := fast_frames.dct_scale(h, w, 224, 224))
        flips.add(flip)
        torch.manual_seed(seed)
        diff = (x.float() - TF.pil_to_tensor(plain(open_frame(frames[name], "RGB"))).float()).abs()
        if scale == 1:
            assert diff.max() <= 1 and diff.mean() < 0.1, (name, seed)
        else:  # decoded at 1/2 or 1/4 (a different low-pass than PIL's filter alone), same box
            assert diff.mean() < 1.5, (name, seed, scale)
    assert scales == {1, 2, 4} and flips == {True, False}


def test_jitter_params_uniform_and_order_random():
    torch.manual_seed(5)
    factors, order = fast_frames.BatchTransform().sample(6000)
    assert factors.min() >= 0.6 and factors.max() <= 1.4
    for col in factors.T.numpy():
        assert stats.kstest(col, stats.uniform(loc=0.6, scale=0.8).cdf).pvalue > P_MIN
    assert torch.equal(order.sort(dim=1).values, torch.arange(3).expand(6000, 3))
    counts = {}
    for row in order.tolist():
        counts[tuple(row)] = counts.get(tuple(row), 0) + 1
    assert len(counts) == 6 and all(abs(c / 6000 - 1 / 6) < 0.03 for c in counts.values())


def test_batched_jitter_equals_torchvision_colorjitter(monkeypatch):
    torch.manual_seed(6)
    n = 12
    x = (torch.rand(n, 3, 1, 1) * 0.8 + torch.rand(n, 3, 24, 20) * 0.5).clamp(0, 1)  # some saturate
    order = torch.tensor(list(itertools.permutations(range(3))) * 2)
    factors = torch.empty(n, 3).uniform_(0.6, 1.4)
    factors[:3] = torch.tensor([1.4, 0.6, 1.4])  # the extremes, where the clamps matter
    got = fast_frames.color_jitter(x.clone(), factors, order)
    jitter = T.ColorJitter(0.4, 0.4, 0.4)
    for k in range(n):  # torchvision's own ColorJitter.forward, told our factors and order (hue last, off)
        params = (torch.cat([order[k], torch.tensor([3])]), *factors[k].tolist(), None)
        monkeypatch.setattr(T.ColorJitter, "get_params", staticmethod(lambda *a, p=params: p))
        assert (jitter(x[k]) - got[k]).abs().max() < 1e-5


def test_batch_transform_uses_its_draws_and_normalises():
    x = torch.randint(0, 256, (20, 3, 16, 16), dtype=torch.uint8)  # > CPU_CHUNK: several chunks
    bt = fast_frames.BatchTransform()
    torch.manual_seed(7)
    out = bt(x)
    torch.manual_seed(7)
    factors, order = bt.sample(20)
    ref = T.Normalize(bt.mean, bt.std)(fast_frames.color_jitter(x.float() / 255, factors, order))
    assert out.dtype == torch.float32 and (out - ref).abs().max() < 1e-5
    plain = T.Normalize(bt.mean, bt.std)(x.float() / 255)
    assert (fast_frames.BatchTransform(None)(x) - plain).abs().max() < 1e-5


def test_val_matches_plain_transform(frames):
    fast, norm, plain = fast_frames.FastEvalFrame(224), fast_frames.BatchTransform(None), val_transform(
        opts_module.parse(["--inputsize", "224"]))
    for name, tol in (("480p", 0.01), ("1080p", 0.05)):  # 1080p decodes at 1/4 (DCT scaling)
        x = fast(frames[name])
        assert x.dtype == torch.uint8 and x.shape == (3, 224, 224)
        diff = (norm(x[None])[0] - plain(open_frame(frames[name], "RGB"))).abs().mean().item()
        assert diff < tol, (name, diff)


def test_bad_frames_raise_frame_error_naming_the_file(tmp_path, frames):
    good = open(frames["480p"], "rb").read()
    (tmp_path / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "garbage.jpg").write_bytes(b"not a jpeg at all" * 10)
    for name in ("missing.jpg", "truncated.jpg", "garbage.jpg"):
        for transform in (fast_frames.FastTrainFrame(224), fast_frames.FastEvalFrame(224)):
            with pytest.raises(FrameError, match=name):
                transform(str(tmp_path / name))


def tiny_rgb_dataset(tmp_path, dataset: str = "charadesrgb") -> list[str]:
    """One 12-frame 40x30 video under ``tmp_path`` in ``dataset``'s layout (charadesrgb or jesterrgb);
    returns the flags of a CPU run on it (16 px input)."""
    root = tmp_path / "rgb" / "AAA01"
    os.makedirs(root)
    for f in range(1, 13):
        natural_jpeg(root / (f"AAA01-{f:06d}.jpg" if dataset == "charadesrgb" else f"{f:05d}.jpg"), 40, 30, f)
    if dataset == "charadesrgb":
        (tmp_path / "ann.csv").write_text(
            "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
            'AAA01,S01,Kitchen,6,7,Yes,x,y,z,"c001 0.0 0.3",0.5\n')
    else:
        (tmp_path / "ann.csv").write_text("AAA01;Swiping Right\n")
        (tmp_path / "jester-v1-labels.csv").write_text("Swiping Left\nSwiping Right\nThumb Up\nStop Sign\nNo gesture\n")
    return ["--dataset", dataset, "--data", str(tmp_path / "rgb"), "--train-file", str(tmp_path / "ann.csv"),
            "--val-file", str(tmp_path / "ann.csv"), "--nclass", "5", "--inputsize", "16", "--test-frames", "4",
            "--workers", "0", "--batch-size", "2", "--device", "cpu", "--cache-dir", str(tmp_path / "cache")]


@pytest.mark.parametrize("dataset", ["charadesrgb", "jesterrgb"])
def test_fast_loader_wiring(tmp_path, dataset):
    argv = tiny_rgb_dataset(tmp_path, dataset) + ["--flip", "original"]
    opts = opts_module.parse(argv + ["--fast-loader"])
    plain = datasets.get_datasets(opts_module.parse(argv))
    assert not any(hasattr(ds, "batch_transform") for ds in plain)  # the default path is unchanged
    fast = datasets.get_datasets(opts)
    assert [ds.batch_transform.jitter for ds in fast] == [0.4, None, None]
    for ds_fast, ds_plain in zip(fast[1:], plain[1:]):
        x, target, meta = ds_fast[1]
        assert x.dtype == torch.uint8 and x.shape == (3, 16, 16)
        ref, ref_target, ref_meta = ds_plain[1]
        assert torch.equal(target, ref_target) and meta == ref_meta
        assert (ds_fast.batch_transform(x[None])[0] - ref).abs().mean() < 0.05
    flips = set()
    for seed in range(8):  # the training flip: drawn by the dataset, applied to the uint8 frame
        torch.default_generator.manual_seed(seed)
        x, _, _ = fast[0][0]
        torch.default_generator.manual_seed(seed)
        unflipped = fast_frames.FastTrainFrame(16, flip_p=None)(fast[0].path(0))  # the same crop draws
        flipped = not torch.equal(x, unflipped)
        assert torch.equal(x, unflipped.flip(-1) if flipped else unflipped)
        flips.add(flipped)
    assert flips == {True, False}
    loaders = datasets.get_dataset(opts)
    for loader in loaders:
        inputs, _, _ = train.prepare(next(iter(loader)), loader, opts)
        assert inputs.dtype == torch.float32 and inputs.shape[1:] == (3, 16, 16)
        assert inputs.min() < 0  # normalised
