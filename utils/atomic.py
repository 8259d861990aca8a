"""Atomic file writes, for every file the project writes (checkpoints, submissions, metrics, figures,
index caches): a temporary file in the same folder, fsync, then ``os.replace``.  A reader, or a run
killed mid-write, sees the old file or the new one, never half of one.  Stdlib only.

A temporary file is named ``.<name>.<pid>-<random>.tmp``: a run killed mid-write leaves one behind, and
``remove_leftovers`` deletes those whose writer is no longer running (main.py calls it at start-up).
"""
from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from utils.cli import FULL_DISK, FULL_DISK_FIX, Failure

_TEMP = re.compile(r"^\..+\.(\d+)-[^.]+\.tmp$")


class WriteError(Failure, OSError):
    """A write that failed for lack of space (or another OS error); the message names the file and says
    that the previous version of it is unchanged."""


def _os_error(err: BaseException) -> OSError | None:
    """``err`` itself or the OS error behind it (torch.save reports a failed write as a RuntimeError
    whose context is the OSError)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


@contextmanager
def atomic_output(path: str) -> Iterator[str]:
    """``with atomic_output(path) as tmp:`` write ``tmp``; when the block ends normally it is renamed to
    ``path``.  For writers that keep a file open over many calls (a video encoder).  An OS error (a full
    disk) raises ``WriteError`` naming ``path``; on any error the previous ``path`` is untouched and the
    temporary file is removed."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.{os.getpid()}-", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; give it the mode an ordinary open() would have produced
        os.chmod(tmp, os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644)
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        cause = _os_error(err) if isinstance(err, Exception) and not isinstance(err, WriteError) else None
        if cause is not None:
            full = cause.errno in FULL_DISK
            reason = "no space left on the device" if full else (cause.strerror or str(cause))
            raise WriteError(cause.errno, f"could not write {path}: {reason}; the previous file (if any) "
                                          "is unchanged" + (FULL_DISK_FIX if full else "")) from err
        raise
    try:  # make the rename itself durable; not every platform can fsync a directory
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Create ``path`` through ``write(tmp_path)``, then rename it into place.  An OS error (a full disk)
    raises ``WriteError`` naming ``path``; the previous ``path`` is untouched and the temporary file is
    removed."""
    with atomic_output(path) as tmp:
        write(tmp)


def atomic_write_text(path: str, text: str | Iterable[str]) -> None:
    """Write ``text`` (a string, or chunks of one) to ``path`` atomically, UTF-8, newlines untranslated."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for chunk in ([text] if isinstance(text, str) else text):
                f.write(chunk)
    atomic_write(path, write)


def _running(pid: int) -> bool:
    if pid == os.getpid():  # this process is not writing while it cleans up
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True


def remove_leftovers(folder: str) -> list[str]:
    """Delete the temporary files that interrupted atomic writes left in ``folder`` (those whose
    writing process has ended); return their names."""
    removed = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        match = _TEMP.match(name)
        if match and not _running(int(match.group(1))):
            try:
                os.unlink(os.path.join(folder, name))
                removed.append(name)
            except FileNotFoundError:  # another process cleaned it first
                pass
    return removed
