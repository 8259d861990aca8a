"""train.py's speed options on the CPU: --amp (bf16 autocast of the network only: the criterion still
computes in fp32), the fp16 gradient scaler choice, --channels-last, and a short run with both."""
import argparse
import math

import pytest
import torch

import main
import opts as options
import train
from models import create_model
from utils.metrics_log import read_metrics


def small_opts(tmp_path, *extra):
    return options.parse(["--dataset", "fake", "--arch", "resnet18", "--inputsize", "32", "--nclass", "10",
                          "--nhidden", "2", "--batch-size", "8", "--workers", "0", "--device", "cpu",
                          "--adjustment", "--balanceloss", "--cache-dir", str(tmp_path), *extra])


def test_amp_dtype_and_scaler(tmp_path, monkeypatch):
    assert train.amp_dtype(small_opts(tmp_path)) is None and train.make_scaler(small_opts(tmp_path)) is None
    amp = small_opts(tmp_path, "--amp")
    assert train.amp_dtype(amp) == torch.bfloat16 and train.make_scaler(amp) is None  # bf16 needs no scaler
    # a GPU without bf16: fp16 autocast, which needs the gradient scaler
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    cuda = argparse.Namespace(amp=True, device="cuda")
    assert train.amp_dtype(cuda) == torch.float16
    with pytest.warns(UserWarning):  # no CUDA here: the scaler says it disables itself
        assert isinstance(train.make_scaler(cuda), torch.amp.GradScaler)


def test_amp_runs_the_network_in_bf16_and_the_criterion_in_fp32(tmp_path):
    o = small_opts(tmp_path, "--amp")
    model, criterion, _ = create_model(o)
    _, reference, _ = create_model(o)  # a second criterion with the same (empty) buffer
    x, target = torch.randn(8, 3, 32, 32), (torch.rand(8, 10) < 0.3).float()
    meta = {"id": [f"v{k % 3}" for k in range(8)], "time": torch.arange(8) * 10 + 1}
    a, aa = train.forward(model, x, o)
    assert a.dtype == aa.dtype == torch.bfloat16
    for _ in range(2):  # the second call reads the messages the first one stored
        scores, loss = criterion(a, aa, target, meta)
        want_scores, want_loss = reference(a.float(), aa.float(), target, meta)
    assert scores.dtype == loss.dtype == torch.float32
    # equal to fp32 rounding (a bf16 field would be off by ~1e-3)
    assert torch.allclose(scores, want_scores, rtol=1e-6, atol=1e-6)
    assert torch.allclose(loss, want_loss, rtol=1e-6, atol=1e-6)
    loss.backward()  # gradients flow back through the casts into the bf16 network
    assert model.fc.mA.weight.grad is not None and torch.isfinite(model.fc.mA.weight.grad).all()


def test_channels_last_inputs(tmp_path):
    o = small_opts(tmp_path, "--channels-last")
    batch = (torch.randn(4, 3, 32, 32), torch.zeros(4, 10), {"id": ["v"] * 4, "time": torch.arange(4)})
    inputs, _, _ = train.prepare(batch, argparse.Namespace(dataset=None), o)
    assert inputs.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(inputs, batch[0])


def test_amp_and_channels_last_train(tmp_path):
    flags = ["--dataset", "fake", "--arch", "resnet18", "--inputsize", "32", "--nclass", "10", "--nhidden", "2",
             "--epochs", "2", "--batch-size", "16", "--workers", "0", "--device", "cpu", "--test-frames", "6",
             "--cache-dir", str(tmp_path), "--name", "fast", "--adjustment", "--balanceloss", "--lr", "0.01",
             "--amp", "--channels-last"]
    metrics = main.main(flags)
    rows = read_metrics(str(tmp_path / "fast"))
    assert [r["epoch"] for r in rows] == [1, 2] and 0 <= metrics["mAP"] <= 1
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in rows)


class Rows(torch.utils.data.Dataset):
    """Linear inputs (12 values) of one video; the rows of the batches in ``bad`` are infinite."""

    def __init__(self, n: int, batch: int, bad: tuple[int, ...]):
        g = torch.Generator().manual_seed(0)
        self.x, self.t = torch.randn(n, 12, generator=g), (torch.rand(n, 4, generator=g) < 0.4).float()
        for b in bad:
            self.x[b * batch:(b + 1) * batch] = float("inf")

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.t[i], {"id": "v", "time": i + 1}


def linear_run(tmp_path, bad: tuple[int, ...], *flags):
    """One training epoch of 6 batches of 4 (a linear AsyncTF model), batches ``bad`` with a NaN loss."""
    o = options.parse(["--dataset", "testdata1", "--arch", "linear", "--inputsize", "12", "--nclass", "4",
                       "--nhidden", "2", "--batch-size", "4", "--workers", "0", "--device", "cpu", "--lr", "0.5",
                       "--print-freq", "10", "--cache-dir", str(tmp_path), *flags])
    model, criterion, optimizer = create_model(o)
    loader = torch.utils.data.DataLoader(Rows(24, 4, bad), batch_size=4)
    return model, train.train(loader, model, criterion, optimizer, 0, o)


def test_the_first_non_finite_loss_stops_the_run_naming_batch_lr_and_options(tmp_path):
    model, _ = linear_run(tmp_path, ())
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # the batch is named exactly although the loss is looked at only at the print sync (the last batch)
    with pytest.raises(train.Diverged, match=r"diverged: the loss of train batch 3/6 of epoch 1 is nan at lr 0\.5 "
                                             r"\(--lr 0\.5 --temporal-weight 1 .*--sigma 150 .*\).*nothing of "
                                             r"epoch 1 was saved.*--max-nonfinite"):
        linear_run(tmp_path, (2,))


def test_max_nonfinite_skips_that_many_batches(tmp_path, caplog):
    model, out = linear_run(tmp_path, (2,), "--max-nonfinite", "1")
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the NaN batch never reached the weights
    assert out["samples"] == 20 and math.isfinite(out["loss"])       # nor the averages
    assert "train batch 3/6 of epoch 1: the loss is nan, batch skipped (1 of --max-nonfinite 1)" in caplog.text
    with pytest.raises(train.Diverged, match="train batch 5/6 of epoch 1 is nan"):
        linear_run(tmp_path, (2, 4), "--max-nonfinite", "1")
