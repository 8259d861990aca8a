"""Atomic file writes, for every file the project writes (checkpoints, submissions, metrics, figures,
index caches): a temporary file in the same folder, fsync, then ``os.replace``.  A reader, or a run
killed mid-write, sees the old file or the new one, never half of one.  Stdlib only."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Create ``path`` through ``write(tmp_path)``, then rename it into place."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; give it the mode an ordinary open() would have produced
        os.chmod(tmp, os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable; not every platform can fsync a directory
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def atomic_write_text(path: str, text: str | Iterable[str]) -> None:
    """Write ``text`` (a string, or chunks of one) to ``path`` atomically, UTF-8, newlines untranslated."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for chunk in ([text] if isinstance(text, str) else text):
                f.write(chunk)
    atomic_write(path, write)
