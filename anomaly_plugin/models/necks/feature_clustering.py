"""Multi-scale latent projection with learned cluster centres."""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from anomaly_plugin.registry import MODELS

CLUSTER_MODES = ('min', 'soft')


def cluster_distances(z: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Channel-mean squared distances of latent vectors to the centres.

    Args:
        z: (B, D, h, w) latent map.
        centres: (K, D) cluster centres.

    Returns:
        (B * h * w, K) ``||z - c_k||^2 / D``.
    """
    flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (N, D)
    # |z|^2 - 2 z.c + |c|^2, clamped against rounding below 0
    d = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ centres.t()
         + centres.pow(2).sum(1)[None])  # (N, K)
    return d.clamp_min(0) / z.shape[1]


def cluster_loss(z: torch.Tensor, centres: torch.Tensor, mode: str = 'min',
                 temperature: float = 1.0, scale_free: bool = True,
                 eps: float = 1e-6) -> torch.Tensor:
    """Mean distance of latent vectors to their cluster centres.

    Args:
        z: (B, D, h, w) latent map.
        centres: (K, D) cluster centres.
        mode: ``'min'``: distance to the nearest centre (the k-means
            objective); ``'soft'``: the distances weighted by
            ``softmax(-d / temperature)`` over the centres.
        temperature: softness of the ``'soft'`` assignment.
        scale_free: divide the squared distances by the batch's mean squared
            latent entry (``mean ||z||^2 / D``, with its gradient), so the
            loss is the same for ``(s * z, s * c)`` as for ``(z, c)``: a
            network can no longer lower it by shrinking its latents (which a
            following BatchNorm undoes for the reconstruction) instead of
            clustering them. ``False``: the raw squared distances.
        eps: added to that mean against division by zero.

    Returns:
        scalar, the mean over the B * h * w positions.
    """
    d = cluster_distances(z, centres)  # (N, K)
    if scale_free:
        d = d / (z.pow(2).mean() + eps)
    if mode == 'min':
        return d.min(1).values.mean()
    if mode == 'soft':
        return (F.softmax(-d / temperature, dim=1) * d).sum(1).mean()
    raise ValueError(f'cluster_loss: mode must be one of {CLUSTER_MODES}, got {mode!r}')


@MODELS.register_module()
class FeatureClustering(BaseModule):
    """Bottleneck projections of several encoder scales, each with K centres.

    For every selected encoder output ``i`` a 1x1 convolution maps its
    ``in_channels[i]`` channels to ``latent_channels[j]`` (the bottleneck of
    that scale) and ``num_clusters`` learned centres live in that latent
    space. :meth:`loss` pulls every latent vector towards the centres (see
    :func:`cluster_loss`), averaged over the scales and multiplied by
    ``loss_weight``, so normal texture maps to a few compact clusters while
    the reconstruction loss keeps the latents informative.

    Args:
        in_channels: channels of every encoder output, fine to coarse.
        in_indices: encoder outputs used, fine to coarse.
        latent_channels: bottleneck channels per used output.
        num_clusters: centres per scale, an int or one per used output.
        mode: ``'min'`` or ``'soft'`` assignment, see :func:`cluster_loss`.
        temperature: softness of the ``'soft'`` assignment.
        loss_weight: factor of the clustering loss.
        scale_free: distances relative to the latents' scale (see
            :func:`cluster_loss`); ``False`` gives the raw distances, which a
            network can lower by shrinking its latents alone.
        init_cfg: MMEngine initialisation config(s) that :meth:`init_weights`
            applies after the default initialisation (e.g.
            ``dict(type='Kaiming', layer='Conv2d')`` or ``dict(type='Pretrained',
            checkpoint=PATH, prefix='neck.')``); None keeps the default.
    """

    def __init__(self, in_channels: Sequence[int], in_indices: Sequence[int] = (1, 2, 3),
                 latent_channels: Sequence[int] = (4, 8, 16),
                 num_clusters: Union[int, Sequence[int]] = 8, mode: str = 'min',
                 temperature: float = 1.0, loss_weight: float = 0.1,
                 scale_free: bool = True, init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        in_channels = [int(c) for c in in_channels]
        self.in_indices = tuple(int(i) for i in in_indices)
        self.latent_channels = tuple(int(c) for c in latent_channels)
        if isinstance(num_clusters, int):
            num_clusters = [num_clusters] * len(self.in_indices)
        num_clusters = [int(k) for k in num_clusters]
        if not self.in_indices or any(not 0 <= i < len(in_channels) for i in self.in_indices):
            raise ValueError(f'FeatureClustering: in_indices {self.in_indices} must select '
                             f'among the {len(in_channels)} encoder outputs')
        if len(self.latent_channels) != len(self.in_indices) or \
                len(num_clusters) != len(self.in_indices):
            raise ValueError('FeatureClustering: latent_channels and num_clusters need one '
                             f'value per index of in_indices {self.in_indices}')
        if min(self.latent_channels) < 1 or min(num_clusters) < 1:
            raise ValueError('FeatureClustering: latent_channels and num_clusters must be >= 1')
        if mode not in CLUSTER_MODES:
            raise ValueError(f'FeatureClustering: mode must be one of {CLUSTER_MODES}, '
                             f'got {mode!r}')
        if not temperature > 0:
            raise ValueError(f'FeatureClustering: temperature must be > 0, got {temperature}')
        self.proj = nn.ModuleList(nn.Conv2d(in_channels[i], c, 1)
                                  for i, c in zip(self.in_indices, self.latent_channels))
        # centres start near the origin, where the freshly initialised projections land
        self.centres = nn.ParameterList(nn.Parameter(0.1 * torch.randn(k, c))
                                        for k, c in zip(num_clusters, self.latent_channels))
        self.mode = mode
        self.temperature = float(temperature)
        self.loss_weight = float(loss_weight)
        self.scale_free = bool(scale_free)

    def forward(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Project the selected encoder outputs.

        Args:
            feats: every encoder output, (B, in_channels[i], h_i, w_i).

        Returns:
            one (B, latent_channels[j], h, w) latent per index of
            ``in_indices``, fine to coarse.
        """
        return [proj(feats[i]) for proj, i in zip(self.proj, self.in_indices)]

    def loss(self, latents: Sequence[torch.Tensor]) -> torch.Tensor:
        """Weighted clustering loss.

        Args:
            latents: the output of :meth:`forward`.

        Returns:
            ``loss_weight`` times the scale mean of :func:`cluster_loss`.
        """
        terms = [cluster_loss(z, c, self.mode, self.temperature, self.scale_free)
                 for z, c in zip(latents, self.centres)]
        return self.loss_weight * torch.stack(terms).mean()
