"""``--compile``: torch.compile of the model trains to the same losses, weights and scores as eager mode,
and checkpoints keep the plain module's keys (loadable without --compile)."""
import shutil

import pytest
import torch

import checkpoints
import main
from utils.metrics_log import read_metrics

pytestmark = pytest.mark.skipif(not (shutil.which("g++") or shutil.which("clang++")),
                                reason="torch.compile's CPU backend needs a C++ compiler")


def flags(cache, name):
    return ["--dataset", "testdata1", "--arch", "linear", "--inputsize", "100", "--nclass", "5", "--nhidden", "4",
            "--epochs", "2", "--lr", "0.1", "--batch-size", "50", "--workers", "0", "--device", "cpu",
            "--temporal-weight", "5", "--sigma", "150", "--test-frames", "25", "--print-freq", "100000",
            "--adjustment", "--balanceloss", "--cache-dir", str(cache), "--name", name]


def test_compiled_model_trains_like_eager(tmp_path):
    eager = main.main(flags(tmp_path, "eager"))
    compiled = main.main(flags(tmp_path, "compiled") + ["--compile"])
    rows = {k: read_metrics(str(tmp_path / k)) for k in ("eager", "compiled")}
    for e, c in zip(rows["eager"], rows["compiled"]):
        assert c["train_loss"] == pytest.approx(e["train_loss"], rel=1e-4)
    assert compiled["mAP"] == pytest.approx(eager["mAP"], abs=1e-4)
    states = {k: checkpoints.load_checkpoint(str(tmp_path / k / "model.pth.tar"))["state_dict"]
              for k in ("eager", "compiled")}
    assert states["compiled"].keys() == states["eager"].keys()  # no "_orig_mod." prefix
    for key, value in states["eager"].items():
        assert torch.allclose(states["compiled"][key], value, rtol=1e-4, atol=1e-5), key
