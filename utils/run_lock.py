"""One run at a time in a run folder: an exclusive lock its process holds for as long as it lives.

``hold(folder)`` opens ``<folder>/run.lock``, takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on it and writes
who holds it there (pid, host, start time, command).  The kernel releases the lock when the process ends,
however it ends (SIGKILL included), so there is nothing to clean up and no stale lock: the holder written
in the file is only read while the lock is held.  A second run finds the lock taken and stops with one
line naming the holder (``RunLocked``).

A forked child (a DataLoader worker) shares the lock's open file, and an flock lasts until every copy of
it is closed: the children close their copy at fork, so a killed run's orphaned workers never keep the
folder locked.  Where ``fcntl`` is missing (Windows) or the file system has no locks, nothing is locked
(with a warning).  Stdlib only.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time

from utils.cli import UserError

LOCK_FILE = "run.lock"
log = logging.getLogger(__name__)
_held: dict[int, str] = {}  # fd -> path of the locks this process holds


class RunLocked(UserError):
    """The run folder is in use by another run; the message names it and the way out."""


def _close_in_child() -> None:
    for fd in list(_held):
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


def holder(path: str) -> str:
    """Who holds the lock file ``path``, in words (from what the holder wrote into it)."""
    try:
        with open(path, encoding="utf-8") as f:
            info = json.loads(f.read() or "{}")
        return (f"pid {info['pid']} on {info['host']}, started {info['started']}, "
                f"command: {info['command']}")
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not said who it is yet"


class RunLock:
    """A held lock; ``release()`` (or the end of the process) frees it."""

    def __init__(self, fd: int, path: str):
        self.fd, self.path = fd, path

    def release(self) -> None:
        if self.fd in _held:
            del _held[self.fd]
            os.close(self.fd)  # closing the last copy of the open file releases the flock

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def hold(folder: str, what: str = "run", fix: str = "give this one another --name or --cache-dir") -> RunLock | None:
    """Lock ``folder`` for this process, or raise ``RunLocked`` naming the holder (``what`` names the
    kind of job in the message, ``fix`` the other way out).  None where locks are not available."""
    try:
        import fcntl
    except ImportError:
        log.warning("no file locks on this platform: nothing stops two runs from writing %s at once", folder)
        return None
    path = os.path.join(folder, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunLocked(f"{folder} is in use by another {what} ({holder(path)}): wait for it to end, or "
                        f"{fix}") from None
    except OSError as err:  # a file system without locks (some network mounts)
        os.close(fd)
        log.warning("could not lock %s (%s): nothing stops two runs from writing it at once", path, err)
        return None
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "command": " ".join(sys.argv)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    _held[fd] = path
    return RunLock(fd, path)
