"""Streamed first and second moments: the one way the fitted Gaussians (PaDiM's
per-position Gaussians, DFM's PCA) reduce over ranks and form covariances."""
from typing import Tuple

import torch
from mmengine import dist


def reduce_moments(total: torch.Tensor, outer: torch.Tensor, n: int
                   ) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """Sum the moments of every rank (a collective; a no-op on one process).

    Args:
        total: (..., D) sum of the vectors, float64, reduced in place.
        outer: (..., D, D) sum of their outer products, float64, reduced in place.
        n: the number of vectors on this rank.

    Returns:
        ``(total, outer, n)`` over all ranks.
    """
    if dist.get_world_size() > 1:
        for t in (total, outer):
            dist.all_reduce(t, op='sum')
        count = torch.tensor(float(n), dtype=torch.float64, device=total.device)
        dist.all_reduce(count, op='sum')
        n = int(count)
    return total, outer, n


def mean_and_covariance(total: torch.Tensor, outer: torch.Tensor, n: int
                        ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(..., D) mean and (..., D, D) unbiased covariance from the moments of ``n`` vectors."""
    mean = total / n
    cov = (outer - n * mean[..., :, None] * mean[..., None, :]) / (n - 1)
    return mean, cov
