"""utils.charades_eval's bucketed ranks (the fast path of average_precision for NaN-free scores) equal
the ranks of a stable sort, on the distributions that stress buckets: skewed scores, ties, infinities."""
import numpy as np
import pytest

from utils.charades_eval import _stable_ranks, average_precision


def stable_ranks(key, idx):
    order = np.argsort(key, kind="stable")
    where = np.empty(len(key), dtype=np.int64)
    where[order] = np.arange(len(key))
    return where[idx]


@pytest.mark.parametrize("kind", ["uniform", "sigmoid-like", "ties", "one value", "clustered + outliers",
                                  "infinite"])
def test_bucketed_ranks_equal_a_stable_sort(kind):
    rng = np.random.default_rng(len(kind))
    n = 5000
    x = {"uniform": rng.random(n), "sigmoid-like": np.exp(-rng.exponential(8, n)),
         "ties": rng.integers(0, 5, n) / 4.0, "one value": np.full(n, 0.25),
         "clustered + outliers": np.r_[0.5 + rng.normal(0, 1e-12, n - 2), -1e300, 1e300],
         "infinite": np.where(rng.random(n) < 0.5, -np.inf, rng.random(n))}[kind]
    x[rng.random(n) < 0.1] = -np.inf if kind != "one value" else 0.25
    x[rng.random(n) < 0.05] = -0.0 if kind != "one value" else 0.25
    key = np.subtract(0.0, x)
    idx = np.sort(rng.choice(n, 400, replace=False))
    assert np.array_equal(_stable_ranks(key, idx), stable_ranks(key, idx))
    gt = np.zeros((n, 1), dtype=bool)
    gt[idx] = True
    ranks = np.sort(stable_ranks(key, idx) + 1)
    assert average_precision(x[:, None], gt)[0] == np.mean(np.arange(1, len(idx) + 1) / ranks)
