"""Exact resume: a run stopped at an epoch boundary (or killed mid-epoch) and restarted ends exactly
where the uninterrupted run ends: weights, message buffers, submission file."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import checkpoints
import main
from checkpoints.run_state import StateFileError, expand_buffer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def flags(cache, epochs, workers=0):
    return ["--dataset", "fake", "--arch", "resnet18", "--inputsize", "32", "--nclass", "10", "--nhidden", "2",
            "--epochs", str(epochs), "--batch-size", "8", "--workers", str(workers), "--device", "cpu",
            "--test-frames", "6", "--cache-dir", str(cache), "--name", "run", "--adjustment", "--balanceloss",
            "--print-freq", "100", "--lr", "0.01", "--lr-decay-rate", "2", "--train-size", "0.8"]


def run_in_new_process(args, check=True):
    script = f"import sys; sys.path.insert(0, {ROOT!r}); import main; main.experiment([], sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", script] + args, cwd=ROOT, check=check,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def final_state(cache):
    ckpt = checkpoints.load_checkpoint(os.path.join(cache, "run", "model.pth.tar"))
    state = checkpoints.load_checkpoint(os.path.join(cache, "run", ckpt["run_state"]["file"]))
    crit = state["criterion"]
    return ckpt, {k: expand_buffer(crit[k]) for k in ("messages", "targets")}, crit


def assert_same_run(cache_a, cache_b):
    ck_a, buf_a, crit_a = final_state(cache_a)
    ck_b, buf_b, crit_b = final_state(cache_b)
    assert ck_a["epoch"] == ck_b["epoch"] == 3
    for k, v in ck_a["state_dict"].items():
        assert torch.allclose(v.float(), ck_b["state_dict"][k].float(), atol=1e-6), k
    for name in ("messages", "targets"):
        assert buf_a[name]["ids"] == buf_b[name]["ids"]
        for key in ("seq", "times", "count"):
            assert torch.equal(buf_a[name][key], buf_b[name][key]), (name, key)
        assert torch.allclose(buf_a[name]["values"], buf_b[name]["values"], atol=1e-6), name
    assert torch.equal(crit_a["positives"], crit_b["positives"]) and crit_a["seen"] == crit_b["seen"]
    sub_a = [line.split() for line in open(os.path.join(cache_a, "run", "epoch_003.txt"))]
    sub_b = [line.split() for line in open(os.path.join(cache_b, "run", "epoch_003.txt"))]
    assert [r[0] for r in sub_a] == [r[0] for r in sub_b]
    a = torch.tensor([[float(x) for x in r[1:]] for r in sub_a])
    b = torch.tensor([[float(x) for x in r[1:]] for r in sub_b])
    assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_at_epoch_boundary_is_exact(tmp_path, workers):
    full, split = tmp_path / "full", tmp_path / "split"
    main.main(flags(full, 3, workers))
    main.main(flags(split, 2, workers))
    run_in_new_process(flags(split, 3, workers))  # resumes from its own model.pth.tar
    assert_same_run(full, split)
    # only the states that model.pth.tar and model_best.pth.tar name are kept
    kept = [f for f in os.listdir(split / "run") if f.startswith("state_")]
    assert "state_003.pt" in kept and len(kept) <= 2 and not [f for f in kept if f.endswith(".tmp")]


def test_killed_mid_epoch_then_rerun_is_exact(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    main.main(flags(full, 3))
    script = f"import sys; sys.path.insert(0, {ROOT!r}); import main; main.experiment([], sys.argv[1:])"
    cmd = [sys.executable, "-c", script] + flags(killed, 3)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while not (killed / "run" / "model_002.txt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "run" / "model_003.txt").exists(), "the kill came too late to test a mid-epoch stop"
    run_in_new_process(flags(killed, 3))
    assert_same_run(full, killed)


def test_resume_without_state_differs_and_says_so(tmp_path):
    """Dropping the run state (like the released model) still loads, logs it, and gives another run."""
    full, bare = tmp_path / "full", tmp_path / "bare"
    main.main(flags(full, 3))
    main.main(flags(bare, 2))
    ckpt_path = bare / "run" / "model.pth.tar"
    ckpt = checkpoints.load_checkpoint(str(ckpt_path))
    for key in ("run_state", "best_run_state"):
        ckpt.pop(key)
    torch.save(ckpt, str(ckpt_path))
    run_in_new_process(flags(bare, 3))
    assert "has no criterion state: the message buffer starts empty" in (bare / "run" / "log.txt").read_text()
    with pytest.raises(AssertionError):
        assert_same_run(full, bare)


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_damaged_state_file_is_named(tmp_path, damage):
    main.main(flags(tmp_path, 1))
    state = tmp_path / "run" / "state_001.pt"
    data = bytearray(state.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    state.write_bytes(bytes(data))
    with pytest.raises(StateFileError, match="state_001.pt"):
        main.main(flags(tmp_path, 2) + ["--resume", str(tmp_path / "run" / "model.pth.tar")])
    main.main(flags(tmp_path, 2) + ["--resume", str(tmp_path / "run" / "model.pth.tar"), "--ignore-bad-state"])
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "--ignore-bad-state: the message buffer starts empty" in log
    assert (tmp_path / "run" / "model_002.txt").is_file()
