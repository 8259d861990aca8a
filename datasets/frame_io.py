"""Reading frame files, with every failure reported as a ``FrameError`` that names the file.

Shared by the plain, fast (``fast_frames``) and device-decode (``device_decode``) input paths and by
the flow stacks, so that a missing, truncated, corrupt or oversized frame reads the same everywhere.

PIL refuses images above its decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS`` pixels: a warning
up to twice that, an error above) without naming the file.  No video frame is that large, so both are
errors here, naming the file, its size and the setting that raises the limit.
"""
from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image

from utils.cli import UserError

# what PIL raises for a file it cannot read: missing or unreadable (OSError), not an image or bad data
# (OSError, ValueError, SyntaxError)
READ_ERRORS = (OSError, ValueError, SyntaxError)


class FrameError(UserError, RuntimeError):
    """A frame that is missing or cannot be decoded; the message names the file and how to go on."""


# how to go on without a bad frame (appended to every FrameError's message)
WITHOUT_IT = ("; to go on without a bad frame, delete its file (or extract its video again): a video with a frame "
              "missing is left out (--frame-gaps skip, the default) or sampled around it (--frame-gaps present), "
              "and the next run notices the change")


@contextmanager
def reading(path: str) -> Iterator[None]:
    """Turn whatever PIL raises while reading ``path`` (including its decompression-bomb warning and
    error) into a ``FrameError`` naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise FrameError(f"cannot read frame {path}: {e} (a frame this large is not a video frame; "
                         f"PIL.Image.MAX_IMAGE_PIXELS sets PIL's limit){WITHOUT_IT}") from e
    except READ_ERRORS as e:
        raise FrameError(f"cannot read frame {path}: {type(e).__name__}: {e}{WITHOUT_IT}") from e


def open_frame(path: str, mode: str) -> Image.Image:
    """Decode one frame now (``convert`` forces the decode, so a truncated file fails here, naming the
    file, instead of silently becoming a black image or failing later inside a transform)."""
    with reading(path), Image.open(path) as img:
        return img.convert(mode)


def open_header(path: str) -> tuple[bytes, Image.Image]:
    """The file's bytes and a lazy PIL image (only the header is parsed: size, format)."""
    with reading(path):
        with open(path, "rb") as f:
            data = f.read()
        return data, Image.open(io.BytesIO(data))
