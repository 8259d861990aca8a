"""The compact run-state format: every stored value comes back unchanged, and it is compact."""
import os
import random

import numpy as np
import pytest
import torch

import opts as options
from checkpoints.run_state import (compact_buffer, expand_buffer, load_run_state, random_states, save_run_state,
                                   set_random_states)
from models.asynctf import AsyncTFCriterion


def test_compact_round_trip_is_exact():
    g = torch.Generator().manual_seed(0)
    targets = {"ids": ["a", "b"], "seq": torch.tensor([[0, 1], [-1, -1]]), "times": torch.tensor([[5, 9], [0, 0]]),
               "values": (torch.rand(2, 2, 157, generator=g) < 0.1).float(), "count": torch.tensor([2, 0])}
    packed = compact_buffer(targets)
    assert packed["values"].numel() * packed["values"].element_size() == -(-2 * 2 * 157 // 8)  # one bit each
    assert packed["times"].dtype == torch.int32
    back = expand_buffer(packed)
    for k in ("seq", "times", "values", "count"):
        assert torch.equal(back[k], targets[k]) and back[k].dtype == targets[k].dtype, k
    messages = dict(targets, values=torch.rand(2, 2, 157, generator=g))  # not 0/1: stored as they are
    assert torch.equal(expand_buffer(compact_buffer(messages))["values"], messages["values"])
    # times narrowed to int32 whenever they fit, its two limits included; kept as int64 past either one
    limits = dict(targets, times=torch.tensor([[-2 ** 31, 2 ** 31 - 1], [0, 0]]))
    assert compact_buffer(limits)["times"].dtype == torch.int32
    for times in ([[5, 2 ** 31], [0, 0]], [[-2 ** 31 - 1, 9], [0, 0]]):
        wide = dict(targets, times=torch.tensor(times))
        assert compact_buffer(wide)["times"].dtype == torch.int64
        assert torch.equal(expand_buffer(compact_buffer(wide))["times"], wide["times"])


def test_state_file_holds_only_live_rows(tmp_path):
    o = options.parse(["--cache-dir", str(tmp_path), "--memory-size", "4"])
    crit = AsyncTFCriterion(o)
    ids = [f"v{i}" for i in range(70)]  # the buffer over-allocates (capacity 128) as it grows
    crit.messages.store(crit.messages.lookup(ids), torch.arange(70), torch.rand(70, 157), torch.arange(70))
    crit.targets.store(crit.targets.lookup(ids), torch.arange(70), (torch.rand(70, 157) < 0.1).float(),
                       torch.arange(70))
    ref = save_run_state(str(tmp_path), 1, crit)
    # ~ the live float32 messages, not the whole capacity; the 0/1 targets one bit each
    assert ref["bytes"] < 70 * 4 * 157 * 4 * 1.3
    saved = torch.load(str(tmp_path / ref["file"]), weights_only=True)["criterion"]
    assert all(saved[k]["times"].dtype == torch.int32 for k in ("messages", "targets"))
    assert saved["targets"]["values"].dtype == torch.uint8 and saved["targets"]["values_shape"] == (70, 4, 157)
    crit2 = AsyncTFCriterion(o)
    assert load_run_state(ref, str(tmp_path), crit2)
    assert torch.equal(crit2.messages.values[:70], crit.messages.values[:70])
    assert torch.equal(crit2.targets.values[:70], crit.targets.values[:70])
    assert os.path.isfile(tmp_path / ref["file"])


def test_random_states_come_back_through_a_safe_file(tmp_path):
    """The next draws of Python's, numpy's and torch's global streams repeat once the states captured
    before them are restored from a file read safely; earlier state files held numpy's state as a tuple."""
    def draws():
        return random.random(), float(np.random.rand()), torch.rand(2).tolist()
    torch.save(random_states(), str(tmp_path / "random.pt"))
    first = draws()
    set_random_states(torch.load(str(tmp_path / "random.pt"), weights_only=True))
    assert draws() == first
    legacy = dict(random_states(), numpy=np.random.get_state())
    first = draws()
    set_random_states(legacy)
    assert draws() == first


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CUDA generators would be restored")
def test_random_states_of_a_cuda_run_restore_on_a_machine_without_cuda():
    """A state file written on a GPU holds the CUDA generators' states: on the CPU they are not restored,
    and the rest is."""
    states = random_states()
    expected = torch.rand(3)
    torch.rand(5)
    set_random_states(dict(states, cuda=[torch.zeros(16, dtype=torch.uint8)]))
    assert torch.equal(torch.rand(3), expected)
