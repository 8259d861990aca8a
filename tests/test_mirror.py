"""Direction-safe flips (datasets.mirror, ``--flip``): the rule derived from class names, and the flips
and labels of training samples over many draws: Jester never mirrored by default, Something-Something
left/right pairs swapped and direction classes without a mirror never flipped, the original's flip behind
``--flip original``.  A flipped sample is recognised exactly: the same seed without the flip gives the
same crop and jitter, so the sample is that one or its mirror image.  The draws are counted on the
``--gpu-decode`` path, whose samples carry their flip and need no decoding; the plain path, where the
pixels are mirrored, is checked on fewer draws."""
from __future__ import annotations

import pytest
import torch

import opts as opts_module
import test_jesterrgb
import test_somethingrgb
from datasets import jesterrgb, somethingrgb
from datasets.device_decode import EncodedFrame
from datasets.mirror import FlipRule, mirrored_name

SEEDS = 50         # draws per training sample for the statistics (--gpu-decode samples)
PLAIN_SEEDS = 10   # draws per sample on the plain path (decoded, transformed)
GPU = ["--gpu-decode"]


def test_mirrored_names():
    assert mirrored_name("Swiping Left") == "Swiping Right"
    assert mirrored_name("Pushing something from left to right") == "Pushing something from right to left"
    assert mirrored_name("Turning Hand Counterclockwise") == "Turning Hand Clockwise"
    assert mirrored_name("Putting something upright on the table") == "Putting something upright on the table"


def test_rule_from_names():
    jester = FlipRule.from_names(test_jesterrgb.NAMES)
    assert jester.pairs() == [(0, 1), (3, 4)] and bool(jester.allowed.all())
    names = sorted(test_somethingrgb.LABELS, key=lambda n: int(test_somethingrgb.LABELS[n]))
    ssv2 = FlipRule.from_names(names)
    assert ssv2.pairs() == [(0, 1)]
    assert ssv2.allowed.tolist() == [True, True, True, False, True, True, True]  # "camera left": no "right"


def draws(module, flags: list[str], extra: list[str], seeds: int = SEEDS) -> list[tuple[int, bool, int]]:
    """``(class, flipped, label)`` of every training sample under ``seeds`` seeds."""
    plain, train = (module.get(opts_module.parse(flags + extra + ["--flip", "none"]))[0],
                    module.get(opts_module.parse(flags + extra))[0])
    out = []
    for seed in range(seeds):
        for i in range(len(train)):
            torch.default_generator.manual_seed(seed)  # (torch.manual_seed also seeds CUDA: slow)
            ref, ref_target, _ = plain[i]
            torch.default_generator.manual_seed(seed)  # (torch.manual_seed also seeds CUDA: slow)
            x, target, _ = train[i]
            if isinstance(x, EncodedFrame):  # --gpu-decode: the flip is applied with the crop, per batch
                assert not ref.flip and x.box == ref.box
                flipped = x.flip
            else:
                flipped = not torch.equal(x, ref)
                assert torch.equal(x, ref.flip(-1) if flipped else ref)
            out.append((int(ref_target.argmax()), flipped, int(target.argmax())))
    return out


def share_flipped(stats, cls: int) -> float:
    mine = [flipped for c, flipped, _ in stats if c == cls]
    return sum(mine) / len(mine)


@pytest.mark.parametrize("path, seeds", [(GPU, SEEDS), ([], PLAIN_SEEDS)])
def test_jester_is_never_mirrored_by_default(tmp_path, path, seeds):
    stats = draws(jesterrgb, test_jesterrgb.flags.__wrapped__(tmp_path), path, seeds)
    assert len(stats) == 3 * seeds and all(not flipped and c == label for c, flipped, label in stats)


@pytest.mark.parametrize("path, seeds", [(GPU, SEEDS), ([], PLAIN_SEEDS)])
def test_ssv2_pairs_swap_and_lone_directions_never_flip(tmp_path, path, seeds):
    stats = draws(somethingrgb, test_somethingrgb.flags.__wrapped__(tmp_path), path, seeds)
    for c, flipped, label in stats:
        assert label == ({0: 1, 1: 0}.get(c, c) if flipped else c)  # the label follows the frame
    assert share_flipped(stats, 3) == 0  # "Turning the camera left": its mirror is no class
    assert 0 < share_flipped(stats, 0) < 1 and 0 < share_flipped(stats, 2) < 1
    if seeds >= SEEDS:
        assert 0.3 < share_flipped(stats, 0) < 0.7 and 0.25 < share_flipped(stats, 2) < 0.75


@pytest.mark.parametrize("module", [jesterrgb, somethingrgb])
def test_original_flip_behind_the_flag(tmp_path, module):
    test_module = test_jesterrgb if module is jesterrgb else test_somethingrgb
    stats = draws(module, test_module.flags.__wrapped__(tmp_path), GPU + ["--flip", "original"])
    assert all(c == label for c, _, label in stats)  # labels never change
    assert all(0.25 < share_flipped(stats, c) < 0.75 for c in {c for c, _, _ in stats})


def test_jester_mirror_on_request(tmp_path):
    stats = draws(jesterrgb, test_jesterrgb.flags.__wrapped__(tmp_path), GPU + ["--flip", "mirror"])
    assert 0.3 < share_flipped(stats, 0) < 0.7
    assert all(label == ({0: 1}.get(c, c) if flipped else c) for c, flipped, label in stats)
