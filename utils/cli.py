"""Entry points' error reporting: an error the user can fix is one or two lines, never a traceback.

Every script's ``if __name__ == "__main__":`` calls ``sys.exit(cli.run(main))``.  A ``UserError`` (a
missing file, a bad option or input, a checkpoint of the wrong kind, no network for the weights...) is
printed as ``<script>: error: <message>`` and exits with status 2; a ``Failure`` (the machine's fault, not
the user's: a full disk, a device that went away) the same way with status 1.  Anything else is a bug and
keeps its traceback.  ``--debug`` on the command line, or ``ASYNCTF_DEBUG=1``, shows the traceback of every
error.  Stdlib only: ``utils/`` imports nothing of the project.
"""
from __future__ import annotations

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


def debug_requested(argv: list[str] | None = None) -> bool:
    """``--debug`` among the arguments, or ``ASYNCTF_DEBUG`` set to something other than 0/empty."""
    args = sys.argv[1:] if argv is None else argv
    return "--debug" in args or os.environ.get("ASYNCTF_DEBUG", "0") not in ("", "0")


def run(main: Callable[[list[str] | None], object], argv: list[str] | None = None,
        prog: str | None = None) -> int:
    """Call ``main(argv)`` and turn a ``UserError`` / ``Failure`` into one line on stderr and its exit
    status; 0 when ``main`` returns (an ``int`` it returns is the exit status)."""
    args = sys.argv[1:] if argv is None else list(argv)
    debug = debug_requested(args)
    args = [a for a in args if a != "--debug"]
    prog = prog or os.path.basename(sys.argv[0] or "asynctf")
    try:
        result = main(args)
    except (UserError, Failure) as err:
        if debug:
            raise
        print(f"{prog}: error: {err}", file=sys.stderr)
        return err.exit_code
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
