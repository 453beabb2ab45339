"""Losses shared by the adversarially trained detectors."""
import torch
import torch.nn.functional as F
from torch import nn

from anomaly_plugin.registry import MODELS

from ..utils import float32_compute


@MODELS.register_module()
class GANLoss(nn.Module):
    """Adversarial loss on discriminator logits.

    Args:
        mode: ``'vanilla'`` (binary cross-entropy on logits, DCGAN),
            ``'lsgan'`` (squared error to 1 / 0) or ``'wgan'`` (the critic's
            mean score, sign by target: ``-mean`` for real, ``+mean`` for fake).
        loss_weight: factor on the loss.

    Called as ``loss(logits, target_is_real)``; returns a scalar.
    """

    def __init__(self, mode: str = 'vanilla', loss_weight: float = 1.0):
        super().__init__()
        if mode not in ('vanilla', 'lsgan', 'wgan'):
            raise ValueError(f"GANLoss: mode must be 'vanilla', 'lsgan' or 'wgan', got {mode!r}")
        self.mode, self.loss_weight = mode, float(loss_weight)

    def forward(self, logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        logits = logits.float()
        if self.mode == 'wgan':
            loss = -logits.mean() if target_is_real else logits.mean()
        else:
            target = torch.full_like(logits, 1.0 if target_is_real else 0.0)
            loss = (F.binary_cross_entropy_with_logits(logits, target)
                    if self.mode == 'vanilla' else F.mse_loss(logits, target))
        return self.loss_weight * loss


@MODELS.register_module()
class FeatureMatchingLoss(nn.Module):
    """Distance between discriminator features of real and generated images.

    Args:
        norm: ``'l2'`` (mean squared difference) or ``'l1'`` (mean absolute).
        loss_weight: factor on the loss.

    ``loss(feat_real, feat_fake)`` is the scalar; ``loss.per_sample(...)``
    the (B,) mean over each sample's features (used as an anomaly score).
    """

    def __init__(self, norm: str = 'l2', loss_weight: float = 1.0):
        super().__init__()
        if norm not in ('l1', 'l2'):
            raise ValueError(f"FeatureMatchingLoss: norm must be 'l1' or 'l2', got {norm!r}")
        self.norm, self.loss_weight = norm, float(loss_weight)

    def per_sample(self, feat_real: torch.Tensor, feat_fake: torch.Tensor) -> torch.Tensor:
        diff = (feat_real.float() - feat_fake.float()).flatten(1)  # (B, N)
        return (diff.pow(2) if self.norm == 'l2' else diff.abs()).mean(1)

    def forward(self, feat_real: torch.Tensor, feat_fake: torch.Tensor) -> torch.Tensor:
        return self.loss_weight * self.per_sample(feat_real, feat_fake).mean()


@float32_compute
def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator = None) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): E[(||grad_x D(x_mix)||_2 - 1)^2].

    Args:
        critic: module mapping (B, C, H, W) images to (B,) scores, or to a
            tuple whose first element is the scores.
        real: (B, C, H, W) real images.
        fake: (B, C, H, W) generated images (detached or not).
        generator: random generator of the mixing weights (default RNG if None).

    Returns:
        Scalar penalty, differentiable w.r.t. the critic's parameters.
    """
    b = real.shape[0]
    eps = torch.rand(b, 1, 1, 1, device=real.device, dtype=real.dtype, generator=generator)
    mixed = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    out = critic(mixed)
    scores = out[0] if isinstance(out, (tuple, list)) else out
    grad, = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


@MODELS.register_module()
class GradientPenalty(nn.Module):
    """:func:`gradient_penalty` times ``loss_weight`` (lambda = 10 in WGAN-GP)."""

    def __init__(self, loss_weight: float = 10.0):
        super().__init__()
        self.loss_weight = float(loss_weight)

    def forward(self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return self.loss_weight * gradient_penalty(critic, real, fake)
