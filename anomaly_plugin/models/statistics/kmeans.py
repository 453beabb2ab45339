"""k-means of latent vectors (k-means++ seeding, Lloyd iterations)."""
from typing import Optional

import torch


def _sq_dist(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    return (x.pow(2).sum(1, keepdim=True) - 2 * x @ centres.t()
            + centres.pow(2).sum(1)).clamp_min(0)  # (N, k)


def assign(x: torch.Tensor, centres: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Index of the nearest centre of every row of ``x`` (N, D), chunked: (N,)."""
    return torch.cat([_sq_dist(x[s:s + chunk], centres).argmin(1)
                      for s in range(0, x.shape[0], chunk)])


def kmeans_plusplus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur and Vassilvitskii 2007): (k, D) rows of ``x``."""
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=generator))
    centres = [x[first]]
    d2 = _sq_dist(x, x[first:first + 1]).squeeze(1)  # (N,)
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:  # fewer distinct points than k: repeat
            idx = int(torch.randint(n, (1,), generator=generator))
        else:
            idx = int(torch.multinomial((d2 / total).cpu(), 1, generator=generator))
        centres.append(x[idx])
        d2 = torch.minimum(d2, _sq_dist(x, x[idx:idx + 1]).squeeze(1))
    return torch.stack(centres)


def kmeans(x: torch.Tensor, k: int, iters: int = 50, seed: int = 0,
           init: Optional[torch.Tensor] = None, tol: float = 1e-6) -> torch.Tensor:
    """Lloyd's k-means.

    Args:
        x: (N, D) points.
        k: number of centres (<= N).
        iters: maximum Lloyd iterations.
        seed: seed of the k-means++ seeding.
        init: (k, D) initial centres instead of k-means++.
        tol: stop when no centre moves more than this (squared distance).

    Returns:
        (k, D) centres; a centre that loses all its points keeps its place.
    """
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f'kmeans: k must be in [1, {n}] (the number of points), got {k}')
    x = x.float()
    if init is None:
        centres = kmeans_plusplus(x, k, torch.Generator().manual_seed(int(seed)))
    else:
        if tuple(init.shape) != (k, x.shape[1]):
            raise ValueError(f'kmeans: init has shape {tuple(init.shape)}, expected '
                             f'{(k, x.shape[1])}')
        centres = init.float().clone()
    for _ in range(iters):
        labels = assign(x, centres)  # (N,)
        sums = torch.zeros_like(centres).index_add_(0, labels, x)  # (k, D)
        counts = torch.bincount(labels, minlength=k).to(x.dtype)  # (k,)
        new = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centres)
        shift = (new - centres).pow(2).sum(1).max()
        centres = new
        if shift <= tol:
            break
    return centres
