"""utils/run_lock.py: a run folder held by a real process (a subprocess here) refuses a second run with a
line naming the holder; SIGKILL of the holder frees it at once, even while a child it forked (a DataLoader
worker) lives on."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import main
from utils import run_lock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOLDER = """
import os, sys, time
sys.path.insert(0, {root!r})
from utils import run_lock
run_lock.hold(sys.argv[1])
child = os.fork() if sys.argv[2] == "fork" else -1
if child == 0:  # a forked worker that outlives its parent
    time.sleep(60)
    os._exit(0)
print(child, flush=True)
time.sleep(60)
"""


def start_holder(folder, fork: bool) -> tuple[subprocess.Popen, int]:
    """A process holding ``folder``'s lock (and the pid of the child it forked, or -1)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER.format(root=ROOT), str(folder),
                             "fork" if fork else "nofork"], stdout=subprocess.PIPE, text=True)
    return proc, int(proc.stdout.readline())


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()


def test_a_second_run_is_refused_naming_the_holder(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    proc, _ = start_holder(folder, fork=False)
    try:
        with pytest.raises(run_lock.RunLocked) as err:
            run_lock.hold(str(folder))
        text = str(err.value)
        assert f"pid {proc.pid} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d')}" in text
        assert str(folder) in text and "--name or --cache-dir" in text
        flags = ["--dataset", "fake", "--arch", "resnet18", "--inputsize", "32", "--nclass", "10", "--epochs",
                 "1", "--workers", "0", "--device", "cpu", "--cache-dir", str(tmp_path), "--name", "run"]
        with pytest.raises(run_lock.RunLocked, match=f"pid {proc.pid}"):
            main.main(flags)
        assert os.listdir(folder) == [run_lock.LOCK_FILE]  # the refused run wrote nothing, not even log.txt
    finally:
        kill(proc)
    with run_lock.hold(str(folder)):  # SIGKILL released it: no stale lock to remove by hand
        assert f"pid {os.getpid()} on" in run_lock.holder(str(folder / run_lock.LOCK_FILE))
    with run_lock.hold(str(folder)):  # and release() did too
        pass


def test_a_forked_child_does_not_keep_the_lock_of_a_killed_parent(tmp_path):
    proc, child = start_holder(tmp_path, fork=True)
    try:
        assert child > 0
        with pytest.raises(run_lock.RunLocked):
            run_lock.hold(str(tmp_path))
        kill(proc)
        os.kill(child, 0)  # the orphan still runs...
        with run_lock.hold(str(tmp_path)):  # ...and the folder is free at once
            pass
    finally:
        if proc.poll() is None:
            kill(proc)
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
