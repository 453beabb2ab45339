"""Patch memory bank with coreset subsampling and exact kNN scoring."""
import logging
from typing import Optional, Tuple

import torch
from torch import nn

from anomaly_plugin.registry import MODELS

from .coreset import greedy_coreset
from .knn import knn


class DynamicBuffersMixin:
    """Buffers whose shape is known only after fitting.

    Loading a state dict resizes the listed buffers first, so a checkpoint
    loads into a freshly built (empty) module.
    """

    _dynamic_buffers: Tuple[str, ...] = ()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in self._dynamic_buffers:
            key = prefix + name
            if key in state_dict:
                buf = getattr(self, name)
                setattr(self, name, buf.new_empty(state_dict[key].shape))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


@MODELS.register_module()
class KNNMemoryBank(DynamicBuffersMixin, nn.Module):
    """Coreset-subsampled bank of normal patch features with kNN queries.

    Args:
        coreset_ratio: fraction of the fitted patches kept (1.0 keeps all).
        projection_dim: random projection used by the coreset selection.
        coreset_mode: ``'exact'`` greedy or the opt-in ``'approx'`` mode, see
            :mod:`anomaly_plugin.models.statistics.coreset`.
        exact_limit: the most patches ``'exact'`` selects from; a fit of more
            patches uses ``'approx'`` and says so in the log (exact greedy's
            time grows with patches x selections: see the README's coreset
            curve). None: exact at any size.
        block_size: block size of ``'approx'`` mode.
        coreset_kernel: ``'auto'`` (the compiled greedy kernel when it is
            built, else torch), ``'compiled'`` or ``'torch'``, see
            :func:`~anomaly_plugin.models.statistics.coreset.greedy_coreset`.
        seed: seed of the coreset selection.
        chunk_size: queries per distance GEMM (bounds memory).
        backend: ``'torch'`` (exact GEMM search) or ``'faiss'``
            (``IndexFlatL2``, needs the ``faiss`` package).
    """

    _dynamic_buffers = ('bank',)

    def __init__(self, coreset_ratio: float = 0.1, projection_dim: Optional[int] = 128,
                 coreset_mode: str = 'exact', block_size: int = 65_536, seed: int = 0,
                 chunk_size: int = 1024, backend: str = 'torch',
                 coreset_kernel: str = 'auto', exact_limit: Optional[int] = 1_000_000):
        super().__init__()
        if not 0 < coreset_ratio <= 1:
            raise ValueError(f'coreset_ratio must be in (0, 1], got {coreset_ratio}')
        if backend not in ('torch', 'faiss'):
            raise ValueError(f"backend must be 'torch' or 'faiss', got {backend!r}")
        self.coreset_ratio = coreset_ratio
        self.projection_dim = projection_dim
        self.coreset_mode = coreset_mode
        self.exact_limit = exact_limit
        self.block_size = block_size
        self.coreset_kernel = coreset_kernel
        self.seed = seed
        self.chunk_size = chunk_size
        self.backend = backend
        self._faiss_index = None
        self.register_buffer('bank', torch.empty(0, 0))

    @property
    def is_fitted(self) -> bool:
        return self.bank.numel() > 0

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        self._faiss_index = None  # built from the old bank: rebuilt on the next query
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def fit(self, features: torch.Tensor, progress: bool = False) -> torch.Tensor:
        """Select the coreset of ``features`` (N, D) and store it.

        Returns:
            (M,) indices of the kept rows.
        """
        n = features.shape[0]
        num = max(1, int(round(n * self.coreset_ratio)))
        mode = self.coreset_mode
        if mode == 'exact' and self.exact_limit is not None and n > self.exact_limit:
            from mmengine.logging import print_log
            print_log(f'coreset: {n:,} patches is more than exact_limit={self.exact_limit:,}: '
                      f"selecting {num:,} with coreset_mode='approx' (exact greedy's time "
                      'grows with patches x selections); exact_limit=None forces exact',
                      logger='current', level=logging.WARNING)
            mode = 'approx'
        idx = greedy_coreset(features, num, self.projection_dim, self.seed,
                             mode, self.block_size, progress, self.coreset_kernel)
        self.bank = features[idx].float().contiguous().to(self.bank.device)  # (M, D)
        self._faiss_index = None
        return idx

    def broadcast_from(self, src: int = 0) -> None:
        """Copy rank ``src``'s bank to every rank (collective)."""
        from mmengine import dist
        shape = [tuple(self.bank.shape)]
        dist.broadcast_object_list(shape, src=src)
        if dist.get_rank() != src:
            self.bank = self.bank.new_empty(shape[0])
        dist.broadcast(self.bank, src=src)
        self._faiss_index = None

    def _faiss_search(self, queries: torch.Tensor, k: int):
        try:
            import faiss
        except ImportError as err:
            raise ImportError("backend='faiss' needs the faiss package "
                              '(pip install faiss-cpu)') from err
        if self._faiss_index is None:
            index = faiss.IndexFlatL2(self.bank.shape[1])
            index.add(self.bank.cpu().numpy())
            self._faiss_index = index
        d2, i = self._faiss_index.search(queries.float().cpu().contiguous().numpy(), k)
        dist = torch.from_numpy(d2).clamp_min_(0).sqrt_().to(queries.device)
        return dist, torch.from_numpy(i).long().to(queries.device)

    @torch.no_grad()
    def query(self, queries: torch.Tensor, k: int = 1) -> Tuple[torch.Tensor, torch.Tensor]:
        """Distances (Q, k) and bank indices (Q, k) of the k nearest entries."""
        if not self.is_fitted:
            raise RuntimeError('the memory bank is empty: fit the model first')
        k = min(k, self.bank.shape[0])
        if self.backend == 'faiss':
            return self._faiss_search(queries, k)
        return knn(queries, self.bank, k, self.chunk_size)

    @torch.no_grad()
    def reweighted_scores(self, feats: torch.Tensor, patch_scores: torch.Tensor,
                          nn_index: torch.Tensor, num_neighbors: int) -> torch.Tensor:
        """Image scores with PatchCore's reweighting.

        For the patch with the largest distance ``s*`` to its nearest bank
        entry ``m*``, with ``N_b(m*)`` the ``num_neighbors`` bank entries
        nearest to ``m*``: ``s = (1 - exp|q - m*| / sum_{m in N_b} exp|q - m|) s*``.

        Args:
            feats: (B, P, D) patch features of each image.
            patch_scores: (B, P) nearest-neighbour distances.
            nn_index: (B, P) bank index of each patch's nearest entry.
            num_neighbors: size of ``N_b`` (1 = no reweighting).

        Returns:
            (B,) image scores.
        """
        s_star, p_star = patch_scores.max(1)  # (B,)
        if num_neighbors <= 1:
            return s_star
        b = torch.arange(feats.shape[0], device=feats.device)
        q = feats[b, p_star]  # (B, D) the most anomalous patch
        m_star = self.bank[nn_index[b, p_star]]  # (B, D)
        _, support = self.query(m_star, num_neighbors)  # (B, k) N_b(m*), m* included
        d = torch.cdist(q[:, None], self.bank[support])[:, 0]  # (B, k)
        # exp(s*) / sum exp(d), computed stably in log space
        ratio = torch.exp(s_star - torch.logsumexp(d, dim=1))
        return (1.0 - ratio) * s_star
