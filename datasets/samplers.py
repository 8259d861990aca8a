"""Samplers that make a run independent of how it is split over processes and workers.

- ``EpochSampler``: the order of an epoch is ``randperm(n)`` seeded by ``seed + epoch`` (no hidden
  state, so a resumed run sees the same batches); with ``world`` processes, rank r takes positions
  ``r, r+world, ...``, so the r-th rows of every process's j-th batch together are exactly the j-th
  batch of a single process whose batch is ``world`` times larger.
- Every item is paired with its own augmentation seed (drawn from the same epoch stream), and
  ``SeededDataset`` runs the dataset under that seed: random crops, flips and jitter no longer depend on
  which worker process or which rank loads the sample, nor on persistent workers.
"""
from __future__ import annotations

import torch
from torch.utils.data import Dataset, Sampler


class EpochSampler(Sampler):
    """Yields ``(index, seed)`` pairs: a seeded permutation per epoch (or the identity), split by rank."""

    def __init__(self, n: int, shuffle: bool, seed: int, rank: int = 0, world: int = 1):
        self.n, self.shuffle, self.seed, self.rank, self.world = n, shuffle, seed, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order ``__iter__`` yields (call before each epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.n // self.world)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        seeds = torch.randint(0, 2 ** 62, (self.n,), generator=g)
        if self.world > 1:  # pad (repeating the start) so that every rank has the same number of items
            order = torch.cat([order, order[: len(self) * self.world - self.n]])[self.rank::self.world]
        return iter(list(zip(order.tolist(), seeds[order].tolist())))  # one conversion, not one per item


class VideoBatchSampler(Sampler):
    """The item indices of one video per batch (a video's items are consecutive, in time order);
    with ``world`` processes, rank r scores videos ``r, r+world, ...``."""

    def __init__(self, video_ids: list[str], rank: int = 0, world: int = 1):
        batches: list[list[int]] = []
        for i, vid in enumerate(video_ids):
            if batches and video_ids[batches[-1][0]] == vid:
                batches[-1].append(i)
            else:
                batches.append([i])
        self.all_batches = batches
        self.batches = batches[rank::world]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class SeededDataset(Dataset):
    """Runs ``dataset[index]`` with torch's global RNG seeded by the item's own seed (then restored),
    so the augmentation of a sample is a function of (run seed, epoch, index) alone."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str):  # video_ids, batch_transform, ... of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, item):
        if not isinstance(item, tuple):
            return self.dataset[item]
        index, seed = item
        state = torch.get_rng_state()  # (torch.random.fork_rng costs ~35x more per item)
        try:
            torch.default_generator.manual_seed(seed)
            return self.dataset[index]
        finally:
            torch.set_rng_state(state)
