"""An epoch's files are one consistent set: a run killed (SIGKILL) at every write of an epoch's end, or
stopped by Ctrl-C or a full disk, ends after a rerun of the same command with the files of an
uninterrupted run; the checkpoint's ``mAP`` is its epoch's video mAP and the best is kept apart (12.6).

Tiny runs (testdata1 with 8 sequences, the linear arch, one thread) with scripted video mAPs, so that
epoch 2 is the best and epoch 3 is not.  Every instant of the last two epochs' ends is covered by what a
kill leaves on disk (a copy of the folder just before each write, its temporary file included); real
SIGKILLs hit forks of the test process (no interpreter start-up) in the best epoch's saves and at a
random instant.
"""
import csv
import os
import random
import shutil
import signal
import sys
import time
import traceback

import pytest
import torch

import checkpoints
import datasets.testdata1 as testdata1
import main
import train

MAPS = {1: 0.5, 2: 0.7, 3: 0.6}  # scripted video mAP per epoch: epoch 2 is the best, epoch 3 is not
TIMING = ("epoch_time_s", "samples_per_s")


def flags(cache):
    return ["--dataset", "testdata1", "--arch", "linear", "--inputsize", "100", "--nclass", "5", "--nhidden", "2",
            "--epochs", "3", "--lr", "0.1", "--batch-size", "50", "--workers", "0", "--device", "cpu",
            "--test-frames", "2", "--print-freq", "100000", "--localize", "--adjustment", "--balanceloss",
            "--cache-dir", str(cache), "--name", "run"]


@pytest.fixture(scope="module")
def scripted():
    """8 sequences instead of 100, one thread, and the scripted mAPs (the files are still written)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    real = train.validate_video

    def validate_video(loader, model, criterion, epoch, opts):
        return dict(real(loader, model, criterion, epoch, opts), mAP=MAPS[epoch + 1])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(testdata1, "NSEQ", 8)
        mp.setattr(train, "validate_video", validate_video)
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, scripted):
    """An uninterrupted run, the sequence of its writes (renames into place, and deletions "-name"),
    and a copy of its folder just before each write: what a SIGKILL at that instant leaves on disk
    (the write's complete temporary file included)."""
    cache = tmp_path_factory.mktemp("reference")
    snapshots = tmp_path_factory.mktemp("snapshots")
    writes = []

    def hook(real, mark):
        def op(path, *args):
            name = mark + os.path.basename(args[0] if args else path)
            shutil.copytree(cache, snapshots / f"{len(writes) + 1:02d}{name}", symlinks=True)
            writes.append(name)
            return real(path, *args)
        return op
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", hook(os.replace, ""))
        mp.setattr(os, "remove", hook(os.remove, "-"))
        main.experiment([], flags(cache))
    return cache / "run", writes, snapshots


def run_forked(cache, kill_before: int | None = None, kill_after_s: float | None = None) -> int:
    """The experiment in a forked child that SIGKILLs itself just before its ``kill_before``-th rename or
    deletion (or is killed after ``kill_after_s`` seconds); returns the child's wait status."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            count = [0]
            real_replace, real_remove = os.replace, os.remove

            def hook(real):
                def op(*args):
                    count[0] += 1
                    if count[0] == kill_before:
                        os.kill(os.getpid(), signal.SIGKILL)
                    return real(*args)
                return op
            os.replace, os.remove = hook(real_replace), hook(real_remove)
            main.experiment([], flags(cache))
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            os._exit(code)
    if kill_after_s is not None:
        time.sleep(kill_after_s)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return os.waitpid(pid, 0)[1]


def metrics_rows(run):
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def same_checkpoint(a, b, where):
    a, b = (checkpoints.load_checkpoint(str(p)) for p in (a, b))
    for ckpt in (a, b):
        for key in TIMING:
            ckpt["metrics_row"].pop(key)
    assert a.keys() == b.keys(), where
    for key in a:
        if key == "state_dict":
            assert a[key].keys() == b[key].keys() and all(torch.equal(a[key][k], b[key][k]) for k in a[key]), where
        elif key == "optimizer":
            assert all(torch.equal(a[key]["state"][i]["momentum_buffer"], b[key]["state"][i]["momentum_buffer"])
                       for i in a[key]["state"]), where
        else:
            assert a[key] == b[key], (where, key)


def assert_same_files(run, ref, where):
    own = ("log.txt", "run.lock")  # what each run writes about itself (its log, the lock's holder)
    names = sorted(n for n in os.listdir(run) if n not in own)
    assert names == sorted(n for n in os.listdir(ref) if n not in own), where  # also: no .tmp left over
    for name in names:
        if name.endswith(".pth.tar"):
            same_checkpoint(run / name, ref / name, (where, name))
        elif name == "metrics.csv":
            assert metrics_rows(run) == metrics_rows(ref), where
        else:  # submissions, state files, model_NNN.txt
            assert (run / name).read_bytes() == (ref / name).read_bytes(), (where, name)


def test_checkpoint_map_is_the_epochs_and_best_is_kept_apart(reference):
    """12.6: ``mAP`` is the epoch's video mAP (the original's ``scores['mAP']``), ``best_mAP`` the best."""
    run = reference[0]
    last = checkpoints.load_checkpoint(str(run / "model.pth.tar"))
    assert (last["epoch"], last["mAP"], last["best_mAP"], last["best_epoch"]) == (3, 0.6, 0.7, 2)
    best = checkpoints.load_checkpoint(str(run / "model_best.pth.tar"))
    assert (best["epoch"], best["mAP"]) == (2, 0.7)
    assert [float(r["mAP"]) for r in metrics_rows(run)] == [0.5, 0.7, 0.6]
    assert (run / "model_best.txt").read_text() == (run / "model_002.txt").read_text()
    assert sorted(n for n in os.listdir(run) if n.startswith("state_")) == ["state_002.pt", "state_003.pt"]
    # a checkpoint without best_mAP (the original's) takes its mAP as the best
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    original = {"epoch": 4, "arch": "linear", "state_dict": model.state_dict(), "mAP": 0.3, "optimizer": None}
    checkpoints.atomic_torch_save(original, str(run.parent / "original.pth.tar"))
    assert checkpoints.resume(str(run.parent / "original.pth.tar"), model)["best_mAP"] == 0.3


def test_killed_at_every_write_of_the_last_epochs_then_rerun(reference, tmp_path):
    """Every instant of the ends of epoch 2 (the best so far) and epoch 3: the rerun of the same command
    on what the kill left ends with the uninterrupted run's files, and no temporary file."""
    ref, writes, snapshots = reference
    first = writes.index("state_002.pt")
    assert writes[first:] == ["state_002.pt", "model.pth.tar", "model_002.txt", "model_best.pth.tar",
                              "model_best.txt", "metrics.csv", "-state_001.pt", "epoch_003.txt", "localize_003.txt",
                              "state_003.pt", "model.pth.tar", "model_003.txt", "metrics.csv"]
    for k in range(first, len(writes)):
        if writes[k].startswith(("epoch_", "localize_")):
            continue  # a kill in the middle of an epoch: tests/test_resume.py
        snapshot = next(snapshots.glob(f"{k + 1:02d}*"))
        cache = tmp_path / snapshot.name
        shutil.copytree(snapshot, cache, symlinks=True)
        if writes[k] != "-state_001.pt":  # the write's temporary file is there, as a kill leaves it
            assert [n for n in os.listdir(cache / "run") if n.startswith(f".{writes[k]}.")], writes[k]
        main.experiment([], flags(cache))  # the same command again
        assert_same_files(cache / "run", ref, f"killed just before {writes[k]} (write {k + 1})")


@pytest.mark.parametrize("kill", ["model_best.pth.tar", "random"])
def test_sigkill_then_rerun(reference, tmp_path, kill):
    """Real SIGKILLs of a forked run: just before model_best.pth.tar is renamed into place at the end
    of the best epoch, and at a random instant."""
    ref, writes, _ = reference
    if kill == "random":
        status = run_forked(tmp_path, kill_after_s=random.Random(13).uniform(0.1, 0.8))
    else:
        status = run_forked(tmp_path, kill_before=writes.index(kill, writes.index("state_002.pt")) + 1)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    assert not os.WIFEXITED(status) or os.WEXITSTATUS(status) == 0, status
    main.experiment([], flags(tmp_path))
    assert_same_files(tmp_path / "run", ref, f"SIGKILL {kill}")


def test_ctrl_c_during_the_best_epochs_saves(reference, tmp_path, monkeypatch, capsys):
    ref, writes, _ = reference
    at = writes.index("model_best.pth.tar", writes.index("state_002.pt"))
    count, real = [0], os.replace

    def replace(src, dst):
        count[0] += 1
        if count[0] == at + 1:
            raise KeyboardInterrupt
        return real(src, dst)
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(SystemExit) as stop:
        main.experiment([], flags(tmp_path))
    assert stop.value.code == 130
    monkeypatch.setattr(os, "replace", real)
    out = capsys.readouterr()
    lines = [line for line in out.out.splitlines() if "interrupted" in line]
    assert len(lines) == 1 and "model.pth.tar at epoch 2" in lines[0], out.out[-2000:]
    assert "Traceback" not in out.out + out.err
    assert not [n for n in os.listdir(tmp_path / "run") if n.endswith(".tmp")]
    main.experiment([], flags(tmp_path))
    assert_same_files(tmp_path / "run", ref, "Ctrl-C")


def test_full_disk_names_the_file_and_a_rerun_completes(reference, tmp_path, monkeypatch):
    ref = reference[0]
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("epoch") == 2 and "state_dict" in obj:  # the commit of epoch 2
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *args, **kwargs)
    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(OSError, match=r"could not write .*run/model\.pth\.tar: no space left on the device"):
        main.experiment([], flags(tmp_path))
    monkeypatch.setattr(torch, "save", real_save)
    run = tmp_path / "run"
    assert checkpoints.load_checkpoint(str(run / "model.pth.tar"))["epoch"] == 1  # the previous files intact
    assert [r["epoch"] for r in metrics_rows(run)] == ["1"]
    assert not [n for n in os.listdir(run) if n.endswith(".tmp")]
    main.experiment([], flags(tmp_path))
    assert_same_files(run, ref, "full disk")
