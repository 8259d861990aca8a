"""Running averages and multi-label precision, kept on the device until someone reads them."""
from __future__ import annotations


class AverageMeter:
    """Running sum and count; values may be tensors (no host sync until ``avg`` is read)."""

    def __init__(self):
        self.sum, self.count = 0.0, 0

    def update(self, value, n: int = 1) -> None:
        self.sum = self.sum + value * n
        self.count += n

    @property
    def avg(self) -> float:
        return float(self.sum) / self.count if self.count else 0.0


def precision_at_k(scores, target, ks=(1, 5)):
    """Per k, the percentage of samples with at least one positive among their top k scores (as a tensor).

    This is the multi-label prec@k of SPEC section 12: the original summed hits and could exceed 100%.
    """
    k_max = min(max(ks), scores.shape[1])
    top = scores.topk(k_max, dim=1).indices
    hit = target.gather(1, top) > 0.5
    return [hit[:, :min(k, k_max)].any(1).float().mean() * 100 for k in ks]
