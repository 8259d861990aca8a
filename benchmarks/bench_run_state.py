#!/usr/bin/env python
"""Size and save/load time of the exact-resume state (``state_NNN.pt``) at Charades scale.

7,985 training videos (both buffers: messages and targets) + 1,863 test videos (messages only: targets
are stored for training samples alone), memory 20, 157 classes, every FIFO full.

    python benchmarks/bench_run_state.py [--train 7985] [--test 1863]
"""
import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import opts as options  # noqa: E402
from checkpoints.run_state import load_run_state, save_run_state  # noqa: E402
from models.asynctf import AsyncTFCriterion  # noqa: E402


def fill(criterion, ids, targets: bool, memory: int) -> None:
    C = criterion.nclass
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows = [v for v in chunk for _ in range(memory)]
        times = torch.arange(len(rows)) % (memory * 40) + 1
        order = torch.arange(len(rows))
        criterion.messages.store(criterion.messages.lookup(rows), times, torch.rand(len(rows), C), order)
        if targets:
            t = (torch.rand(len(rows), C) < 0.05).float()
            criterion.targets.store(criterion.targets.lookup(rows), times, t, order)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train", type=int, default=7985)
    p.add_argument("--test", type=int, default=1863)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        o = options.parse(["--cache-dir", tmp, "--memory-size", "20"])
        crit = AsyncTFCriterion(o)
        fill(crit, [f"tr{i:05d}" for i in range(args.train)], True, o.memory_size)
        fill(crit, [f"te{i:05d}" for i in range(args.test)], False, o.memory_size)
        raw = sum(t.numel() * t.element_size() for b in (crit.messages, crit.targets)
                  for t in (b.seq, b.times, b.values, b.count))
        t0 = time.perf_counter()
        ref = save_run_state(tmp, 1, crit)
        save_s = time.perf_counter() - t0
        crit2 = AsyncTFCriterion(o)
        t0 = time.perf_counter()
        load_run_state(ref, tmp, crit2)
        load_s = time.perf_counter() - t0
        same = all(torch.equal(getattr(crit.messages, k)[:len(crit.messages)],
                               getattr(crit2.messages, k)[:len(crit2.messages)]) for k in ("seq", "times", "values"))
        same &= torch.equal(crit.targets.values[:len(crit.targets)], crit2.targets.values[:len(crit2.targets)])
        print(f"{args.train} train + {args.test} test videos, memory 20, 157 classes")
        print(f"in memory (both buffers, with int64 bookkeeping): {raw / 2**20:.1f} MiB")
        print(f"state file: {ref['bytes'] / 2**20:.1f} MiB; save {save_s:.2f} s (incl. SHA-1), "
              f"load {load_s:.2f} s; restored exactly: {same}")


if __name__ == "__main__":
    main()
