"""torchrun with 2 processes (CPU, gloo) and per-process batch B is the same run as 1 process with batch
2B: same losses, same message buffers, same submission file."""
import os
import subprocess
import sys

import pytest
import torch

import checkpoints
from checkpoints.run_state import expand_buffer
from utils.metrics_log import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def flags(cache, batch):
    return ["--dataset", "testdata1", "--arch", "linear", "--inputsize", "100", "--nclass", "5", "--nhidden", "4",
            "--epochs", "2", "--batch-size", str(batch), "--workers", "0", "--device", "cpu", "--lr", "0.1",
            "--temporal-weight", "5", "--temporalloss-weight", "0.05", "--memory-decay", "0.9", "--sigma", "150",
            "--adjustment", "--balanceloss", "--test-frames", "25", "--print-freq", "1000", "--localize",
            "--train-size", "0.6", "--val-size", "0.5", "--cache-dir", str(cache), "--name", "run"]


def buffers(cache):
    ckpt = checkpoints.load_checkpoint(os.path.join(cache, "run", "model.pth.tar"))
    crit = checkpoints.load_checkpoint(os.path.join(cache, "run", ckpt["run_state"]["file"]))["criterion"]
    out = {}
    for name in ("messages", "targets"):
        b = expand_buffer(crit[name])
        out[name] = {vid: (b["seq"][i], b["times"][i], b["values"][i], b["count"][i])
                     for i, vid in enumerate(b["ids"])}
    return ckpt, out, crit


def test_two_processes_equal_one_with_double_batch(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "main.py"] + flags(tmp_path / "one", 50), cwd=ROOT, check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "main.py"] + flags(tmp_path / "two", 25), cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert two.returncode == 0, two.stdout[-3000:]
    m1, m2 = read_metrics(str(tmp_path / "one" / "run")), read_metrics(str(tmp_path / "two" / "run"))
    assert len(m1) == len(m2) == 2
    for r1, r2 in zip(m1, m2):
        for key in ("train_loss", "top1train", "top5train", "top1val", "mAP"):
            assert r1[key] == pytest.approx(r2[key], rel=1e-4, abs=1e-5), key
    ck1, b1, c1 = buffers(tmp_path / "one")
    ck2, b2, c2 = buffers(tmp_path / "two")
    for k, v in ck1["state_dict"].items():
        assert torch.allclose(v, ck2["state_dict"][k], atol=1e-5), k
    assert torch.equal(c1["positives"], c2["positives"]) and int(c1["seen"]) == int(c2["seen"])
    for name in ("messages", "targets"):
        assert b1[name].keys() == b2[name].keys()
        for vid, (seq, times, values, count) in b1[name].items():
            seq2, times2, values2, count2 = b2[name][vid]
            assert torch.equal(seq, seq2) and torch.equal(times, times2) and torch.equal(count, count2), vid
            assert torch.allclose(values, values2, atol=1e-5), vid
    for sub, keys in (("epoch_002.txt", 1), ("localize_002.txt", 2)):  # (id) or (id, frame), then scores
        rows1 = [line.split() for line in open(tmp_path / "one" / "run" / sub)]
        rows2 = [line.split() for line in open(tmp_path / "two" / "run" / sub)]
        assert len(rows1) == 100 * (25 if keys == 2 else 1)
        assert [r[:keys] for r in rows1] == [r[:keys] for r in rows2]
        a = torch.tensor([[float(x) for x in r[keys:]] for r in rows1])
        b = torch.tensor([[float(x) for x in r[keys:]] for r in rows2])
        assert torch.allclose(a, b, atol=1e-5), sub
    log2 = (tmp_path / "two" / "run" / "log.txt").read_text()
    assert log2.count("options:") == 1  # rank 0 logs alone


@pytest.mark.parametrize("device,world,sync_bn,converted", [
    ("cuda", 2, True, True), ("cuda", 1, True, False), ("cuda", 2, False, False), ("cpu", 2, True, False)])
def test_sync_batchnorm_only_where_it_makes_several_processes_one(device, world, sync_bn, converted, caplog):
    """Several CUDA processes get SyncBatchNorm (the global batch's statistics, as one process has);
    the layers keep their parameter objects (the optimiser's) and the checkpoint keys."""
    import argparse

    import torchvision

    from utils import distributed
    net = torchvision.models.resnet18(num_classes=3)
    params, keys = list(net.parameters()), list(net.state_dict())
    out = distributed.sync_batchnorm(net, argparse.Namespace(device=device, world_size=world, sync_bn=sync_bn))
    n_sync = sum(isinstance(m, torch.nn.SyncBatchNorm) for m in out.modules())
    assert n_sync == (20 if converted else 0)  # resnet18 has 20 BatchNorm layers
    assert all(a is b for a, b in zip(out.parameters(), params)) and list(out.state_dict()) == keys
    assert ("SyncBatchNorm needs CUDA" in caplog.text) == (device == "cpu")


@pytest.mark.parametrize("env, message", [
    ({}, r"--world-size 4: nothing starts the other 3 processes; launch them with torchrun --nproc_per_node 4"),
    ({"WORLD_SIZE": "2", "RANK": "0"}, r"--world-size 4: this process was started by a launcher of 2 processes "
                                       r"\(WORLD_SIZE=2\); leave --world-size out"),
])
def test_world_size_without_its_launcher_is_one_line(monkeypatch, env, message):
    """--world-size N alone used to be ignored silently (one process trained); now it says what to run."""
    import argparse

    from utils import cli, distributed
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    opts = argparse.Namespace(world_size=4, device="cpu", dist_url="env://", dist_backend="gloo")
    with pytest.raises(cli.UserError, match=message):
        distributed.init(opts)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    opts.world_size = 1
    distributed.init(opts)  # the default without a launcher: one process
    assert (opts.rank, opts.world_size) == (0, 1)
