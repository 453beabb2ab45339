"""Exact nearest-neighbour search in chunks (bounded memory)."""
from typing import Tuple

import torch


def knn(queries: torch.Tensor, bank: torch.Tensor, k: int = 1,
        chunk_size: int = 1024) -> Tuple[torch.Tensor, torch.Tensor]:
    """Euclidean k nearest neighbours of each query in ``bank``.

    Distances come from ``|q|^2 - 2 q.b + |b|^2`` with one GEMM per chunk of
    queries. ``|q|^2`` is the same for a whole row, so it is added after the
    row's min / top-k: one pass over the distance block besides the GEMM.
    Peak extra memory is ``chunk_size * M * 4`` bytes.

    Args:
        queries: (Q, D).
        bank: (M, D).
        k: neighbours per query (<= M).
        chunk_size: queries per GEMM.

    Returns:
        distances (Q, k) ascending, not squared; indices (Q, k) into ``bank``.
    """
    if bank.shape[0] == 0:
        raise ValueError('the memory bank is empty: fit the model first')
    k = min(k, bank.shape[0])
    q = queries.float()
    b = bank.float()
    b_sq = (b * b).sum(1)  # (M,)
    dists, idxs = [], []
    for start in range(0, q.shape[0], chunk_size):
        qc = q[start:start + chunk_size]  # (c, D)
        d = torch.addmm(b_sq[None], qc, b.t(), beta=1.0, alpha=-2.0)  # (c, M)
        if k == 1:
            v, i = d.min(1, keepdim=True)
        else:
            v, i = d.topk(k, dim=1, largest=False)
        v.add_((qc * qc).sum(1, keepdim=True)).clamp_min_(0.0)
        dists.append(v.sqrt_())
        idxs.append(i)
    return torch.cat(dists), torch.cat(idxs)
