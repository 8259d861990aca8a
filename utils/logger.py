"""Logging to the console and to ``<cache>/log.txt`` (appended across runs)."""
from __future__ import annotations

import logging
import os
import sys

_TAG = "_asynctf_handler"


def setup_logging(cache: str, enabled: bool = True) -> logging.Logger:
    """Route the root logger to stdout and ``<cache>/log.txt``; replaces handlers set by an earlier call
    (a test or a script may run ``main`` several times in one process).  ``enabled=False`` (non-zero
    ranks of a distributed run) logs warnings only, to the console."""
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, _TAG, False)]:
        root.removeHandler(h)
        h.close()
    fmt = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers = [logging.StreamHandler(sys.stdout)]
    if enabled:
        os.makedirs(cache, exist_ok=True)
        handlers.append(logging.FileHandler(os.path.join(cache, "log.txt"), mode="a"))
    for h in handlers:
        setattr(h, _TAG, True)
        h.setFormatter(fmt)
        root.addHandler(h)
    root.setLevel(logging.INFO if enabled else logging.WARNING)
    return root
