"""Safe file names from untrusted text (video ids from a CSV or a submission).

Stdlib only.  A name keeps letters, digits, ``-``, ``_`` and inner dots; anything else (``/``, ``\\``,
``..``, spaces, control characters) becomes ``_``, and a name that had to change gets a short hash of
the original, so two different ids never share a file.  Real Charades ids (``46GP8``) are unchanged.
"""
from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
MAX_LEN = 100


def safe_filename(text: str) -> str:
    """A name for ``text`` that is a single path component inside any folder (never ``.``, ``..``,
    empty, hidden, absolute or containing a separator)."""
    name = _UNSAFE.sub("_", text).lstrip(".")[:MAX_LEN]
    if name == text and name:
        return name
    return f"{name or '_'}-{hashlib.sha1(text.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
