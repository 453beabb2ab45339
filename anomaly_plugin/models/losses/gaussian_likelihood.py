"""Gaussian likelihood and KL divergence of the variational autoencoder."""
import math

import torch

from ..utils import float32_compute


@float32_compute
def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Element-wise negative log-density of ``x`` under N(mean, exp(logvar)).

    ``0.5 * (log(2 pi) + logvar + (x - mean)^2 / exp(logvar))``; shapes
    broadcast, the result has the broadcast shape.
    """
    return 0.5 * (math.log(2 * math.pi) + logvar + (x - mean).pow(2) * torch.exp(-logvar))


@float32_compute
def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per sample, summed over the latent.

    Args:
        mu: (B, ...) posterior means.
        logvar: (B, ...) posterior log-variances.

    Returns:
        (B,) closed form ``0.5 * sum(mu^2 + exp(logvar) - 1 - logvar)``.
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).flatten(1).sum(1)
