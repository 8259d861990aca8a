"""A file's digest, read in blocks: the key of caches on content (annotations, weights, state files) and the
check of downloaded weights.  Stdlib only."""
from __future__ import annotations

import hashlib


def file_digest(path: str, algorithm: str = "sha1") -> str:
    """The hex digest (``hashlib`` algorithm name) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
