"""utils/atomic.py: leftovers of interrupted writes are removed only when their writer has ended; a
failed write names its file and leaves the previous one."""
import errno
import os
import subprocess
import sys

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
