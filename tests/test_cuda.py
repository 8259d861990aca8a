"""The CUDA paths, on a GPU: the criterion on CUDA equals the CPU's, ``--gpu-decode`` (nvJPEG) equals the
CPU decode to JPEG tolerance, ``--amp`` (bf16), ``--channels-last`` and ``--compile`` train like fp32 eager,
SyncBatchNorm over two GPUs equals one process with the double batch.  Marked ``cuda`` and skipped
without a CUDA device; ``benchmarks/gpu_check.sh`` runs them (``python -m pytest -m cuda``)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import datasets
import main
import opts as options
import train
from models import create_model
from models.asynctf import AsyncTFCriterion
from utils.metrics_log import read_metrics

CUDA = torch.cuda.is_available()
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason="needs a CUDA device")]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse(tmp_path, *flags):
    return options.parse(["--cache-dir", str(tmp_path), *flags])


def criterion_opts(tmp_path, device):
    return parse(tmp_path, "--nclass", "157", "--nhidden", "3", "--temporal-weight", "0.03", "--sigma", "300",
                 "--temporalloss-weight", "1.2", "--memory-decay", "1.0", "--adjustment", "--balanceloss",
                 "--originalloss-weight", "15", "--window-smooth", "1", "--device", device)


def test_criterion_on_cuda_equals_cpu(tmp_path):
    """Training batches, then a synchronous (val_video) pass: scores, losses and gradients."""
    crits = {d: AsyncTFCriterion(criterion_opts(tmp_path, d)).to(d) for d in ("cpu", "cuda")}
    g = torch.Generator().manual_seed(0)
    for step in range(8):
        B, C = 50, 157
        ids = [f"v{int(i)}" for i in torch.randint(0, 12, (B,), generator=g)]
        meta = {"id": ids, "time": torch.randint(1, 400, (B,), generator=g)}
        a = torch.randn(B, C, generator=g) * 2
        aa = torch.randn(C, 3, generator=g) @ torch.randn(3, C, generator=g) * 0.1
        target = (torch.rand(B, C, generator=g) < 0.05).float()
        out = {}
        for d, crit in crits.items():
            crit.train(step < 6)
            x, w = a.to(d).requires_grad_(), aa.to(d).requires_grad_()
            scores, loss = crit(x, w.expand(B, C, C), target.to(d), meta)
            if crit.training:
                loss.backward()
            out[d] = (scores.cpu(), loss.cpu(), None if x.grad is None else (x.grad.cpu(), w.grad.cpu()))
        assert torch.allclose(out["cuda"][0], out["cpu"][0], atol=1e-5), step
        assert torch.allclose(out["cuda"][1], out["cpu"][1], rtol=1e-5, atol=1e-6), step
        if out["cpu"][2] is not None:
            for got, want in zip(out["cuda"][2], out["cpu"][2]):
                assert torch.allclose(got, want, rtol=1e-4, atol=1e-6), step
    video = {"id": ["v3"] * 50, "time": torch.arange(1, 51) * 8}
    a, aa = torch.randn(50, 157, generator=g), torch.randn(157, 157, generator=g) * 0.01
    target = torch.zeros(50, 157)
    sync = {d: c.eval()(a.to(d), aa.to(d).expand(50, -1, -1), target.to(d), video, synchronous=True)[0].cpu()
            for d, c in crits.items()}
    assert torch.allclose(sync["cuda"], sync["cpu"], atol=1e-5)


@pytest.fixture(scope="module")
def demo_tree(tmp_path_factory):
    """Three short demo videos rendered at 160x120 (JPEG frames in the Charades layout)."""
    from datasets.demo import DEMO_TEST_CSV, DEMO_TRAIN_CSV, ensure_demo_data
    tmp = tmp_path_factory.mktemp("cuda_demo")
    files = []
    for src, name, n in ((DEMO_TRAIN_CSV, "train.csv", 2), (DEMO_TEST_CSV, "test.csv", 1)):
        lines = open(src, encoding="utf-8").read().splitlines(keepends=True)
        files.append(str(tmp / name))
        open(files[-1], "w", encoding="utf-8").writelines(lines[: n + 1])
    root = ensure_demo_data(str(tmp / "data"), size=(160, 120), flow=False, csv_files=files, workers=2)
    return os.path.join(root, "rgb"), files[0], files[1]


def loader_batches(tmp_path, demo_tree, device, *extra):
    data, train_csv, test_csv = demo_tree
    o = parse(tmp_path, "--dataset", "charadesrgb", "--data", data, "--train-file", train_csv, "--val-file",
              test_csv, "--inputsize", "64", "--batch-size", "16", "--workers", "0", "--device", device, *extra)
    _, val_loader, video_loader = datasets.get_dataset(o)
    val_loader.sampler.set_epoch(0)
    return [train.prepare(next(iter(loader)), loader, o)[0].float().cpu() for loader in (val_loader, video_loader)]


def test_gpu_decode_equals_the_cpu_decode(tmp_path, demo_tree):
    """nvJPEG on the GPU vs the same code decoding on the CPU, and vs the plain PIL transforms (val and
    val_video: Resize + CenterCrop, no randomness).  JPEG decoders may differ by a few levels."""
    gpu = loader_batches(tmp_path / "g", demo_tree, "cuda", "--gpu-decode")
    cpu = loader_batches(tmp_path / "c", demo_tree, "cpu", "--gpu-decode")
    plain = loader_batches(tmp_path / "p", demo_tree, "cpu")
    level = 1 / 255 / 0.225                        # one 8-bit step after ImageNet normalisation
    for g, c, p in zip(gpu, cpu, plain):
        assert g.shape == c.shape == p.shape
        assert (g - c).abs().mean() < 1.0 * level and (g - c).abs().max() < 12 * level
        assert (g - p).abs().mean() < 1.5 * level and (g - p).abs().max() < 16 * level


def run_flags(tmp_path, name, *extra):
    return ["--dataset", "fake", "--arch", "resnet18", "--inputsize", "64", "--nclass", "10", "--nhidden", "2",
            "--epochs", "2", "--batch-size", "16", "--workers", "0", "--device", "cuda", "--test-frames", "4",
            "--lr", "0.01", "--adjustment", "--balanceloss", "--print-freq", "1000", "--localize",
            "--cache-dir", str(tmp_path), "--name", name, *extra]


def test_amp_channels_last_and_gpu_decode_train_on_cuda(tmp_path, demo_tree):
    """bf16 + channels_last trains like fp32 (losses within bf16 precision); the criterion stays fp32;
    a --gpu-decode run on the demo frames trains and scores end to end."""
    fp32 = main.main(run_flags(tmp_path, "fp32"))
    fast = main.main(run_flags(tmp_path, "bf16", "--amp", "--channels-last"))
    rows = {k: read_metrics(str(tmp_path / k)) for k in ("fp32", "bf16")}
    for a, b in zip(rows["fp32"], rows["bf16"]):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.1)
    assert 0 <= fast["mAP"] <= 1 and 0 <= fp32["mAP"] <= 1
    o = parse(tmp_path, "--arch", "resnet18", "--nclass", "10", "--nhidden", "2", "--device", "cuda", "--amp")
    model, criterion, _ = create_model(o)
    a, aa = train.forward(model, torch.randn(4, 3, 64, 64, device="cuda"), o)
    assert a.dtype == torch.bfloat16
    scores, loss = criterion(a, aa, torch.zeros(4, 10, device="cuda"), {"id": ["v"] * 4, "time": torch.arange(4)})
    assert scores.dtype == loss.dtype == torch.float32
    data, train_csv, test_csv = demo_tree
    out = main.main(["--dataset", "charadesrgb", "--data", data, "--train-file", train_csv, "--val-file", test_csv,
                     "--arch", "resnet18", "--inputsize", "64", "--epochs", "1", "--batch-size", "32",
                     "--workers", "2", "--device", "cuda", "--gpu-decode", "--amp", "--channels-last",
                     "--localize", "--print-freq", "1000", "--cache-dir", str(tmp_path), "--name", "decode"])
    assert 0 <= out["mAP"] <= 1 and (tmp_path / "decode" / "localize_001.txt").is_file()


def test_compile_on_cuda_trains_like_eager(tmp_path):
    flags = lambda name: ["--dataset", "testdata1", "--arch", "linear", "--inputsize", "100", "--nclass", "5",  # noqa
                          "--nhidden", "4", "--epochs", "2", "--lr", "0.1", "--batch-size", "50", "--workers", "0",
                          "--device", "cuda", "--temporal-weight", "5", "--test-frames", "25", "--print-freq",
                          "100000", "--adjustment", "--balanceloss", "--cache-dir", str(tmp_path), "--name", name]
    eager = main.main(flags("eager"))
    compiled = main.main(flags("compiled") + ["--compile"])
    rows = {k: read_metrics(str(tmp_path / k)) for k in ("eager", "compiled")}
    for e, c in zip(rows["eager"], rows["compiled"]):
        assert c["train_loss"] == pytest.approx(e["train_loss"], rel=1e-3)
    assert compiled["mAP"] == pytest.approx(eager["mAP"], abs=1e-3)


@pytest.mark.skipif(CUDA and torch.cuda.device_count() < 2, reason="SyncBatchNorm needs two GPUs")
def test_sync_batchnorm_two_gpus_equal_one_with_double_batch(tmp_path):
    """resnet18 has BatchNorm: with SyncBatchNorm (on by default), 2 processes x batch 8 normalise over
    the same 16 frames as 1 process x batch 16, so the runs agree to GPU float tolerance."""
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def flags(name, batch):
        return ["main.py", "--dataset", "fake", "--arch", "resnet18", "--inputsize", "64", "--nclass", "10",
                "--nhidden", "2", "--epochs", "2", "--batch-size", str(batch), "--workers", "0", "--device", "cuda",
                "--test-frames", "4", "--lr", "0.01", "--adjustment", "--balanceloss", "--print-freq", "1000",
                "--cache-dir", str(tmp_path), "--name", name]
    subprocess.run([sys.executable, *flags("one", 16)], cwd=ROOT, check=True, env=env)
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          *flags("two", 8)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    assert two.returncode == 0, two.stdout[-3000:]
    m1, m2 = read_metrics(str(tmp_path / "one")), read_metrics(str(tmp_path / "two"))
    assert len(m1) == len(m2) == 2
    for r1, r2 in zip(m1, m2):
        for key in ("train_loss", "top1val"):
            assert r2[key] == pytest.approx(r1[key], rel=2e-3, abs=1e-4), (key, r1, r2)
