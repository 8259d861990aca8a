"""Exact resume: a run stopped at an epoch boundary (or killed mid-epoch) and restarted ends exactly
where the uninterrupted run ends: weights, message buffers, random streams, submission file."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

import checkpoints
import main
import train
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
    return ckpt, {k: expand_buffer(crit[k]) for k in ("messages", "targets")}, dict(crit, random=state["random"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted 3-epoch run every test compares with (workers 0; shared: the runs are slow)."""
    full = tmp_path_factory.mktemp("full")
    main.main(flags(full, 3))
    return full


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    """The first 2 epochs of the same run, stopped at the boundary; tests resume a copy of it."""
    done = tmp_path_factory.mktemp("two")
    main.main(flags(done, 2))
    return done


def copy_run(src, dst):
    """A copy of a run's cache (the checkpoint names its state file by plain name, so a copy resumes)."""
    shutil.copytree(src, dst)
    return dst


def assert_same_run(cache_a, cache_b, same_workers=True):
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
    assert torch.equal(crit_a["generator"], crit_b["generator"])
    if same_workers:
        # the global random streams where the run ended: equal only if the resume restored them (the samples
        # and the criterion draw from streams of their own, but each DataLoader iterator draws its base seed
        # there: once per epoch without workers, once per run with persistent workers)
        rand_a, rand_b = crit_a["random"], crit_b["random"]
        assert torch.equal(rand_a["torch"], rand_b["torch"]) and rand_a["python"] == rand_b["python"]
        assert torch.equal(rand_a["numpy"]["state"]["key"], rand_b["numpy"]["state"]["key"])
        assert rand_a["numpy"]["state"]["pos"] == rand_b["numpy"]["state"]["pos"]
    sub_a = [line.split() for line in open(os.path.join(cache_a, "run", "epoch_003.txt"))]
    sub_b = [line.split() for line in open(os.path.join(cache_b, "run", "epoch_003.txt"))]
    assert [r[0] for r in sub_a] == [r[0] for r in sub_b]
    a = torch.tensor([[float(x) for x in r[1:]] for r in sub_a])
    b = torch.tensor([[float(x) for x in r[1:]] for r in sub_b])
    assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_at_epoch_boundary_is_exact(tmp_path, reference, two_epochs, workers):
    # with loader workers the run is the same as without: every sample draws from its own seed
    split = tmp_path / "split"
    if workers:
        main.main(flags(split, 2, workers))
    else:
        copy_run(two_epochs, split)
    run_in_new_process(flags(split, 3, workers))  # resumes from its own model.pth.tar
    assert_same_run(reference, split, same_workers=not workers)
    # only the states that model.pth.tar and model_best.pth.tar name are kept
    kept = [f for f in os.listdir(split / "run") if f.startswith("state_")]
    assert "state_003.pt" in kept and len(kept) <= 2 and not [f for f in kept if f.endswith(".tmp")]


def test_killed_mid_epoch_then_rerun_is_exact(tmp_path, reference, two_epochs):
    """Resumed at epoch 3, SIGKILLed once epoch 3 has trained a batch, run again: the same run."""
    killed = copy_run(two_epochs, tmp_path / "killed")
    script = f"import sys; sys.path.insert(0, {ROOT!r}); import main; main.experiment([], sys.argv[1:])"
    cmd = [sys.executable, "-c", script] + flags(killed, 3)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log, deadline = killed / "run" / "log.txt", time.time() + 180
    while "train epoch 3 [1/" not in log.read_text() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert "train epoch 3 [1/" in log.read_text(), "the run never reached epoch 3"
    assert not (killed / "run" / "model_003.txt").exists(), "the kill came too late to test a mid-epoch stop"
    run_in_new_process(flags(killed, 3))
    assert_same_run(reference, killed)


def test_resume_without_state_differs_and_says_so(tmp_path, reference, two_epochs):
    """Dropping the run state (like the released model) still loads, logs it, and gives another run."""
    bare = copy_run(two_epochs, tmp_path / "bare")
    ckpt_path = bare / "run" / "model.pth.tar"
    ckpt = checkpoints.load_checkpoint(str(ckpt_path))
    for key in ("run_state", "best_run_state"):
        ckpt.pop(key)
    torch.save(ckpt, str(ckpt_path))
    run_in_new_process(flags(bare, 3))
    assert "has no criterion state: the message buffer starts empty" in (bare / "run" / "log.txt").read_text()
    with pytest.raises(AssertionError):
        assert_same_run(reference, bare)


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_damaged_state_file_is_named(tmp_path, two_epochs, damage):
    copy_run(two_epochs, tmp_path / "run")
    state = tmp_path / "run" / "run" / "state_002.pt"
    data = bytearray(state.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    state.write_bytes(bytes(data))
    resume = ["--resume", str(tmp_path / "run" / "run" / "model.pth.tar")]
    with pytest.raises(StateFileError, match="state_002.pt"):
        main.main(flags(tmp_path / "run", 3) + resume)
    main.main(flags(tmp_path / "run", 3) + resume + ["--ignore-bad-state"])
    log = (tmp_path / "run" / "run" / "log.txt").read_text()
    assert "--ignore-bad-state: the message buffer starts empty" in log
    assert (tmp_path / "run" / "run" / "model_003.txt").is_file()


def test_a_diverged_epoch_saves_nothing(two_epochs, tmp_path):
    """--lr 1e30 from epoch 2's checkpoint: the run stops in epoch 3 with one error, and every file of the
    run is as epoch 2 left it (no checkpoint, submission, state file or metrics row of epoch 3)."""
    cache = copy_run(two_epochs, tmp_path / "c")
    folder = cache / "run"

    def files():
        return {p.name: p.read_bytes() for p in folder.iterdir() if p.name not in ("log.txt", "run.lock")}
    before = files()
    with pytest.raises(train.Diverged, match=r"the loss of train batch \d+/\d+ of epoch 3 is nan at lr 1e\+29"):
        main.main(flags(cache, 3) + ["--resume", str(folder / "model.pth.tar"), "--lr", "1e30",
                                     "--print-freq", "1"])
    assert files() == before
    assert checkpoints.load_checkpoint(str(folder / "model.pth.tar"))["epoch"] == 2
