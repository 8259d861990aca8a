"""utils/atomic.py: leftovers of interrupted writes are removed only when their writer has ended; a
failed write names its file and leaves the previous one; folders, modes, descriptors, errors passed on."""
import errno
import os
import subprocess
import sys
import threading

import pytest

from utils.atomic import WriteError, atomic_write, atomic_write_text, remove_leftovers


def test_leftovers_of_ended_writers_are_removed(tmp_path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(ended.stdout)
    live = os.getppid()  # pytest's parent: running, and not us
    names = {f".model.pth.tar.{dead}-abc123.tmp": False, f".metrics.csv.{live}-xyz.tmp": True,
             "model.pth.tar": True, ".hidden.tmp": True, f".epoch_001.txt.{os.getpid()}-q1.tmp": False}
    for name in names:
        (tmp_path / name).write_text("x")
    removed = remove_leftovers(str(tmp_path))
    assert sorted(removed) == sorted(n for n, keep in names.items() if not keep)
    assert sorted(os.listdir(tmp_path)) == sorted(n for n, keep in names.items() if keep)


def test_failed_write_names_the_file_and_keeps_the_old_one(tmp_path):
    path = str(tmp_path / "epoch_001.txt")
    atomic_write_text(path, "old\n")

    def fill_the_disk(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(WriteError, match=r"could not write .*epoch_001\.txt: no space left on the device"):
        atomic_write(path, fill_the_disk)
    assert open(path).read() == "old\n" and os.listdir(tmp_path) == ["epoch_001.txt"]


def test_a_running_writers_leftover_is_kept_and_the_writer_left_alone(tmp_path, monkeypatch):
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        name = f".model.pth.tar.{writer.pid}-abc123.tmp"
        (tmp_path / name).write_text("x")
        assert remove_leftovers(str(tmp_path)) == [] and (tmp_path / name).exists()
        with pytest.raises(subprocess.TimeoutExpired):  # only asked whether it runs (signal 0)
            writer.wait(timeout=0.3)
    finally:
        writer.kill()
        writer.wait()

    def foreign(pid, sig):  # a process of another user: it exists, but we may not signal it
        raise PermissionError(errno.EPERM, "Operation not permitted")
    monkeypatch.setattr(os, "kill", foreign)
    assert remove_leftovers(str(tmp_path)) == [] and (tmp_path / name).exists()


def test_folders_modes_and_descriptors(tmp_path):
    """The folder is created; a new file gets mode 0644 (not mkstemp's 0600), a replaced one keeps its mode;
    no file descriptor is left open."""
    path = tmp_path / "new" / "sub" / "epoch_001.txt"
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    for k in range(20):
        atomic_write_text(str(path), f"{k}\n")
    assert path.read_text() == "19\n" and os.stat(path).st_mode & 0o7777 == 0o644
    if fds is not None:
        assert len(os.listdir("/proc/self/fd")) == fds
    os.chmod(path, 0o640)
    atomic_write_text(str(path), "again\n")
    assert os.stat(path).st_mode & 0o7777 == 0o640


def test_errors_pass_through_unchanged(tmp_path):
    """A WriteError from a nested write is not wrapped again; an error whose chain loops (no OS error in
    it) is re-raised as it is."""
    inner = WriteError(errno.ENOSPC, "could not write inner.txt: no space left on the device")

    def nested(tmp):
        raise inner

    def looping(tmp):
        a, b = RuntimeError("a"), RuntimeError("b")
        a.__context__, b.__context__ = b, a
        raise a
    with pytest.raises(WriteError) as err:
        atomic_write(str(tmp_path / "outer.txt"), nested)
    assert err.value is inner
    raised = []

    def write_looping():
        try:
            atomic_write(str(tmp_path / "outer.txt"), looping)
        except RuntimeError as e:
            raised.append(e)
    worker = threading.Thread(target=write_looping, daemon=True)  # a loop over the chain would never end
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive() and [str(e) for e in raised] == ["a"]
    assert os.listdir(tmp_path) == []
