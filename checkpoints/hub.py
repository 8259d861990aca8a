"""torchvision's ImageNet weights (``--pretrained``) through the project's safe loader.

torchvision reads its weight files with ``torch.hub.load_state_dict_from_url``, which unpickles them with
``weights_only=False`` and checks the hash in the file name only when it downloads: a pickle placed in the
hub cache (``$TORCH_HOME/hub/checkpoints/<name>-<sha256 prefix>.pth``) would run its code.  Here the file is
downloaded when missing (``torch.hub.download_url_to_file``, which checks the hash as it downloads), its
SHA-256 is checked against the prefix in its name every time (as torchvision's ``check_hash`` does), and
it is read by ``safe_load.load_checkpoint``: tensors, containers and numbers only.  torchvision still
builds the model, so every architecture gets exactly torchvision's own set-up for its weights.
"""
from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from urllib.parse import urlparse

import torch

from checkpoints.safe_load import load_checkpoint
from utils.cli import Failure, UserError
from utils.file_hash import file_digest

HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")  # torchvision's file names: <name>-<sha256 prefix>.pth


class HubFileError(UserError):
    """A file in the hub cache that is not the one its name promises (a damaged download, a stray file)."""


def hub_path(url: str) -> str:
    """Where the torch hub cache keeps the file of ``url``: ``<hub dir>/checkpoints/<file name>``."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path))


def sha256_of(path: str) -> str:
    """The hex SHA-256 of a file (a function of its own so that tests can stand in for the real file)."""
    return file_digest(path, "sha256")


def check_hash(path: str, url: str) -> None:
    """The file's SHA-256 must start with the hex digits its name carries (``resnet18-f37072fd.pth``);
    a name without them is not checked (as torchvision).  ``HubFileError`` names the file and the fix."""
    found = HASH_IN_NAME.search(os.path.basename(path))
    prefix = found.group(1) if found else ""
    if not prefix:
        return
    digest = sha256_of(path)
    if not digest.startswith(prefix):
        raise HubFileError(f"{path} is not the file its name promises: its SHA-256 starts with {digest[:len(prefix)]}, "
                           f"its name says {prefix} (a damaged download, or another file put there); delete it "
                           f"to download it again, or put the file from {url} there")


def load_hub_weights(url: str, trusted: bool = False, progress: bool = True) -> dict:
    """The state dict of ``url`` from the hub cache (downloaded first when missing), hash-checked and
    loaded safely (``trusted``: ``--trust-checkpoint``, full unpickling; the hash is checked all the same)."""
    path = hub_path(url)
    if not os.path.isfile(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        found = HASH_IN_NAME.search(os.path.basename(path))
        torch.hub.download_url_to_file(url, path, found.group(1) if found else None, progress=progress)
    check_hash(path, url)
    return load_checkpoint(path, trusted=trusted)


@contextlib.contextmanager
def safe_torchvision_weights(trusted: bool = False) -> Iterator[None]:
    """While inside, torchvision's weight files load through ``load_hub_weights`` (torchvision's
    ``WeightsEnum.get_state_dict`` calls ``torchvision.models._api.load_state_dict_from_url``).  A
    torchvision without that function is refused rather than left to unpickle the file itself."""
    import torchvision.models._api as api
    if not callable(getattr(api, "load_state_dict_from_url", None)):
        raise Failure(f"torchvision {getattr(api, '__file__', '')} no longer loads its weights through "
                           "load_state_dict_from_url: --pretrained cannot check them; use --pretrained-weights FILE")
    original = api.load_state_dict_from_url

    def load(url: str, *args, progress: bool = True, **kwargs) -> dict:  # torchvision's own arguments
        return load_hub_weights(url, trusted, progress)  # (check_hash, weights_only) are always in force
    api.load_state_dict_from_url = load
    try:
        yield
    finally:
        api.load_state_dict_from_url = original
