"""Principal components of feature vectors, fitted in one streaming pass (DFM)."""
from typing import Union

import torch
from torch import nn

from anomaly_plugin.registry import MODELS

from .bank import DynamicBuffersMixin
from .moments import mean_and_covariance, reduce_moments


@MODELS.register_module()
class FeaturePCA(DynamicBuffersMixin, nn.Module):
    """Streaming PCA with a Gaussian in the principal subspace.

    Feature vectors are folded into float64 sums one batch at a time
    (:meth:`update`); :meth:`finish` sums them over ranks (so a distributed
    fit equals a one-process fit), forms the covariance and keeps its
    leading eigenvectors.

    Args:
        n_components: a float in (0, 1): keep the fewest components whose
            variances add up to this fraction of the total (DFM's 0.97); an
            int: keep this many.
    """

    _dynamic_buffers = ('mean', 'components', 'variances')

    def __init__(self, n_components: Union[float, int] = 0.97):
        super().__init__()
        if isinstance(n_components, float) and not 0 < n_components < 1:
            raise ValueError(f'a fraction n_components must be in (0, 1), got {n_components}')
        if isinstance(n_components, int) and n_components < 1:
            raise ValueError(f'n_components must be >= 1, got {n_components}')
        self.n_components = n_components
        self.register_buffer('mean', torch.empty(0))  # (D,)
        self.register_buffer('components', torch.empty(0, 0))  # (D, K), orthonormal columns
        self.register_buffer('variances', torch.empty(0))  # (K,)
        self.reset()

    def reset(self) -> None:
        self._n = 0
        self._sum = None  # (D,) float64
        self._outer = None  # (D, D) float64

    @property
    def is_fitted(self) -> bool:
        return self.mean.numel() > 0

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Fold in a batch of vectors ``x`` (N, D)."""
        x = x.double()
        if self._sum is None:
            self._sum = x.new_zeros(x.shape[1])
            self._outer = x.new_zeros(x.shape[1], x.shape[1])
        self._sum += x.sum(0)
        self._outer += x.t() @ x
        self._n += x.shape[0]

    @torch.no_grad()
    def finish(self) -> None:
        """Reduce over ranks; keep the mean and the leading components."""
        self._sum, self._outer, self._n = reduce_moments(self._sum, self._outer, self._n)
        if self._n < 2:
            raise ValueError(f'PCA needs at least 2 training vectors, got {self._n}')
        mean, cov = mean_and_covariance(self._sum, self._outer, self._n)  # (D,), (D, D)
        evals, evecs = torch.linalg.eigh(cov)  # ascending
        evals, evecs = evals.flip(0).clamp_min(0), evecs.flip(1)
        if isinstance(self.n_components, float):
            ratio = evals.cumsum(0) / evals.sum().clamp_min(1e-300)
            k = int((ratio < self.n_components).sum()) + 1
        else:
            k = self.n_components
        k = max(1, min(k, int((evals > 0).sum()) or 1, evals.numel()))
        device = self.mean.device
        self.mean = mean.float().to(device)
        self.components = evecs[:, :k].float().contiguous().to(device)
        self.variances = evals[:k].float().to(device)
        self.reset()

    def _check(self) -> None:
        if not self.is_fitted:
            raise RuntimeError('the PCA is not fitted: run the fit loop first')

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, K) coordinates in the principal subspace."""
        self._check()
        return (x - self.mean) @ self.components

    def inverse_transform(self, y: torch.Tensor) -> torch.Tensor:
        """(N, K) coordinates -> (N, D) vectors."""
        return y @ self.components.t() + self.mean

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, D): ``x`` minus its projection on the subspace."""
        return x - self.inverse_transform(self.transform(x))

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N,): negative log-likelihood (times 2, without the
        constant) under the Gaussian of the fitted components,
        ``sum_k y_k^2 / var_k + sum_k log var_k``."""
        return self.coords_nll(self.transform(x))

    def coords_nll(self, y: torch.Tensor) -> torch.Tensor:
        """:meth:`nll` from coordinates ``y = transform(x)``: (N, K) -> (N,)."""
        var = self.variances.clamp_min(1e-12)
        return (y.pow(2) / var).sum(1) + var.log().sum()
