"""Per-position multivariate Gaussian of patch features (PaDiM)."""
import torch
from torch import nn

from anomaly_plugin.registry import MODELS

from .bank import DynamicBuffersMixin
from .moments import mean_and_covariance, reduce_moments


@MODELS.register_module()
class PatchGaussian(DynamicBuffersMixin, nn.Module):
    """Streaming mean / covariance per feature-map position, Mahalanobis map.

    Training embeddings are folded into float64 sums one batch at a time
    (``update``), so they are never held all at once; ``finish`` sums them
    over ranks and computes ``mean``, ``cov + eps * I`` and its inverse.

    Args:
        eps: ridge added to each covariance's diagonal.
    """

    _dynamic_buffers = ('mean', 'inv_cov')

    def __init__(self, eps: float = 0.01):
        super().__init__()
        self.eps = float(eps)
        self.register_buffer('mean', torch.empty(0, 0))
        self.register_buffer('inv_cov', torch.empty(0, 0, 0))
        self.reset()

    def reset(self) -> None:
        self._n = 0
        self._sum = None  # (P, D) float64
        self._outer = None  # (P, D, D) float64

    @property
    def is_fitted(self) -> bool:
        return self.mean.numel() > 0

    @torch.no_grad()
    def update(self, emb: torch.Tensor) -> None:
        """Fold in a batch ``emb`` (B, D, h, w)."""
        x = emb.flatten(2).permute(2, 0, 1).double().contiguous()  # (P, B, D)
        if self._sum is None:
            p, _, d = x.shape
            self._sum = x.new_zeros(p, d)
            self._outer = x.new_zeros(p, d, d)
        self._sum += x.sum(1)
        self._outer += torch.bmm(x.transpose(1, 2), x)  # (P, D, D)
        self._n += x.shape[1]

    @torch.no_grad()
    def finish(self) -> None:
        """Reduce over ranks and compute the mean and inverse covariances."""
        self._sum, self._outer, self._n = reduce_moments(self._sum, self._outer, self._n)
        if self._n < 2:
            raise ValueError(f'a Gaussian needs at least 2 training samples, got {self._n}')
        mean, cov = mean_and_covariance(self._sum, self._outer, self._n)  # (P, D), (P, D, D)
        eye = torch.eye(cov.shape[-1], dtype=cov.dtype)
        inv = torch.linalg.inv(cov + self.eps * eye)  # (P, D, D)
        self.mean = mean.float().to(self.mean.device)
        self.inv_cov = inv.float().to(self.inv_cov.device)
        self.reset()

    @torch.no_grad()
    def mahalanobis(self, emb: torch.Tensor) -> torch.Tensor:
        """Args:
            emb: (B, D, h, w) features.

        Returns:
            (B, 1, h, w) Mahalanobis distances.
        """
        if not self.is_fitted:
            raise RuntimeError('the Gaussian is not fitted: run the fit loop first')
        b, d, h, w = emb.shape
        delta = (emb.flatten(2).permute(2, 0, 1) - self.mean[:, None]).contiguous()  # (P, B, D)
        m = torch.bmm(delta, self.inv_cov)  # (P, B, D)
        d2 = (m * delta).sum(-1).clamp_min_(0)  # (P, B)
        return d2.sqrt().t().reshape(b, 1, h, w)
