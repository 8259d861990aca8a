"""Entry points' error reporting: an error the user can fix is one or two lines, never a traceback.

Every script's ``if __name__ == "__main__":`` calls ``sys.exit(cli.run(main))``.  A ``UserError`` (a
missing file, a bad option or input, a checkpoint of the wrong kind, no network for the weights...) is
printed as ``<script>: error: <message>`` and exits with status 2; a ``Failure`` (the machine's fault, not
the user's: a full disk, a device that went away) the same way with status 1.  Anything else is a bug and
keeps its traceback.  ``--debug`` on the command line, or ``ASYNCTF_DEBUG=1``, shows the traceback of every
error.  Stdlib only: ``utils/`` imports nothing of the project.

The project's own error classes derive from these (``AnnotationError(UserError, ValueError)``...), keeping
their standard base so that ``except ValueError`` still catches them; ``InputError``, ``MissingInputError``
and ``MissingDependency`` are for the rest.  An ``OSError`` that names a file (no such file, no permission,
a folder where a file was expected) is a user error too, and a full disk a failure, wherever it is raised.
"""
from __future__ import annotations

import errno
import argparse
import os
import sys
from collections.abc import Callable


class UserError(Exception):
    """An error the user causes and can fix; the message names the thing and the fix.  Exit status 2."""

    exit_code = 2


class Failure(Exception):
    """A failure that is not the user's (a full disk, a lost device); the message names what failed.
    Exit status 1."""

    exit_code = 1


class InputError(UserError, ValueError):
    """A bad option value, or an input file whose content is wrong (the message names it and the fix)."""


class MissingInputError(UserError, FileNotFoundError):
    """A file or folder the user named, or must provide, is not there."""


class MissingDependency(UserError, ImportError):
    """An optional package is not installed; the message gives the ``pip install`` command."""


# OSErrors raised outside the project's checks that are still the user's to fix, when they name a file
USER_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)
FULL_DISK = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
FULL_DISK_FIX = "; free some space and run the same command again"


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser with one-line usage errors (``<prog>: error: <message> (see --help)``, exit 2):
    the usage block of a script with many options would bury the message."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def debug_requested(argv: list[str] | None = None) -> bool:
    """``--debug`` among the arguments, or ``ASYNCTF_DEBUG`` set to something other than 0/empty."""
    args = sys.argv[1:] if argv is None else argv
    return "--debug" in args or os.environ.get("ASYNCTF_DEBUG", "0") not in ("", "0")


def message(err: BaseException) -> str:
    """``str(err)``; for an error re-raised by a ``DataLoader`` worker (whose message is the worker's whole
    traceback), only the original message."""
    text = str(err)
    marker = f"{type(err).__module__}.{type(err).__qualname__}: "
    if "\nOriginal Traceback (most recent call last):\n" in text and marker in text:
        text = text[text.rindex(marker) + len(marker):]
    return text.strip()


def run(main: Callable[[list[str] | None], object], argv: list[str] | None = None,
        prog: str | None = None) -> int:
    """Call ``main(argv)`` and turn a ``UserError`` / ``Failure`` (or an ``OSError`` naming a file, or a
    full disk) into one line on stderr and its exit status; 0 when ``main`` returns (an ``int`` it returns
    is the exit status)."""
    args = sys.argv[1:] if argv is None else list(argv)
    debug = debug_requested(args)
    args = [a for a in args if a != "--debug"]
    prog = prog or os.path.basename(sys.argv[0] or "asynctf")
    try:
        result = main(args)
    except (UserError, Failure) as err:
        if debug:
            raise
        print(f"{prog}: error: {message(err)}", file=sys.stderr)
        return err.exit_code
    except OSError as err:
        code = 1 if err.errno in FULL_DISK else 2 if isinstance(err, USER_OS_ERRORS) else None
        if debug or code is None or (code == 2 and err.filename is None):
            raise
        fix = FULL_DISK_FIX if code == 1 else ""
        print(f"{prog}: error: {message(err)}{fix}", file=sys.stderr)
        return code
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
