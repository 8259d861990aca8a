"""The settings a folder of extracted files was written with (frames, features): recorded on the first
run, and a rerun that would write different files into the same folder is refused."""
from __future__ import annotations

import json
import os

from utils.atomic import atomic_write_text
from utils.cli import InputError


def check_or_record(path: str, wanted: dict, folder: str, write: bool = True) -> None:
    """Refuse when ``path`` records settings other than ``wanted``; else write them there (``write``).

    ``folder`` names the output folder in the message (e.g. ``"--out cache/features"``)."""
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            try:
                have = json.load(f)
            except json.JSONDecodeError as err:
                raise InputError(f"{path} is not valid JSON ({err}): delete it only if {folder} holds nothing "
                                 "else") from None
        diff = sorted(k for k in wanted.keys() | have.keys() if have.get(k) != wanted.get(k))
        if diff:
            shown = "; ".join(f"{k}: {have.get(k)!r} there, {wanted.get(k)!r} now" for k in diff)
            raise InputError(f"{folder} holds files extracted with other settings ({path}: {shown}); use "
                             "another folder, or delete that one to start again")
    elif write:
        atomic_write_text(path, json.dumps(wanted, indent=1, sort_keys=True) + "\n")
