"""Direction-safe horizontal flips of training frames (``--flip``).

A left-right mirror turns "Swiping Left" into "Swiping Right" and "Pushing something from left to right"
into its mirror, so flipping a frame without touching its label teaches the network the wrong class.
The rule is derived from the class names: the mirror of a name swaps the words left/right and
clockwise/counterclockwise.

- a class whose name has none of those words is unchanged by a flip;
- a class whose mirrored name is another class swaps with it when the frame is flipped;
- a class whose mirrored name is not a class is never flipped (its mirror would be a class that does
  not exist).

Modes: ``none`` (never flip), ``original`` (the original's RandomHorizontalFlip: p = 0.5 whatever the
class), ``mirror`` (p = 0.5 under the rule above; without class names it is ``original``).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from opts import FLIP_MODES
from utils.cli import InputError
MIRROR_WORDS = {"left": "right", "right": "left", "clockwise": "counterclockwise",
                "counterclockwise": "clockwise"}
_WORD = re.compile(r"\b(" + "|".join(MIRROR_WORDS) + r")\b", re.IGNORECASE)


def mirrored_name(name: str) -> str:
    """``name`` as seen in a mirror: left <-> right, clockwise <-> counterclockwise (case kept)."""
    def swap(m: re.Match) -> str:
        word = MIRROR_WORDS[m.group(0).lower()]
        return word.capitalize() if m.group(0)[0].isupper() else word
    return _WORD.sub(swap, name)


@dataclass
class FlipRule:
    """How a training sample may be mirrored: with probability ``p``, when every class of its target is
    allowed, and then with each class replaced by its mirror (``perm``, an involution)."""

    perm: torch.Tensor      # (C,) long: class -> mirrored class
    allowed: torch.Tensor   # (C,) bool: the classes a flip may show
    p: float = 0.5

    @classmethod
    def everything(cls, nclass: int) -> "FlipRule":
        """The original's flip: every sample, labels unchanged."""
        return cls(torch.arange(nclass), torch.ones(nclass, dtype=torch.bool))

    @classmethod
    def from_names(cls, names: Sequence[str]) -> "FlipRule":
        """The rule of the module docstring for classes ``names`` (in class order)."""
        index = {name.lower(): c for c, name in enumerate(names)}
        perm, allowed = torch.arange(len(names)), torch.ones(len(names), dtype=torch.bool)
        for c, name in enumerate(names):
            mirror = mirrored_name(name)
            if mirror != name:
                other = index.get(mirror.lower())
                if other is None:
                    allowed[c] = False
                else:
                    perm[c] = other
        return cls(perm, allowed)

    def pairs(self) -> list[tuple[int, int]]:
        """The classes a flip swaps, each pair once."""
        return [(c, int(m)) for c, m in enumerate(self.perm.tolist()) if c < m]

    def apply(self, target: torch.Tensor) -> tuple[bool, torch.Tensor]:
        """Draw the flip of one sample (one draw from torch's global RNG, as RandomHorizontalFlip) and
        return ``(flipped, target as the flipped frame shows it)``."""
        if torch.rand(1).item() >= self.p:
            return False, target
        positive = target > 0
        if not bool(self.allowed[positive].all()):
            return False, target
        return True, target[self.perm]


def flip_rule(mode: str, nclass: int, names: Sequence[str] | None) -> FlipRule | None:
    """The rule of ``mode`` (``auto`` already resolved by the dataset) for ``nclass`` classes."""
    if mode == "none":
        return None
    if mode == "original" or names is None:
        return FlipRule.everything(nclass)
    if mode == "mirror":
        if len(names) != nclass:
            raise InputError(f"--flip mirror: {len(names)} class names for {nclass} classes")
        return FlipRule.from_names(names)
    raise InputError(f"unknown --flip {mode!r}; choose one of: {', '.join(FLIP_MODES)}")
