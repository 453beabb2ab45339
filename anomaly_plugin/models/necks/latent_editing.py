"""Latent feature editing: pull latent vectors towards normal cluster centres.

The formulation is the project's own, after the anomaly-feature-editing idea
(Tsai et al., WACV 2022 and IEEE TII): k-means centres of the latent
vectors of normal training images stand for normal content; at test time
every latent vector ``z`` becomes ``z + alpha * (c - z)`` with ``c`` its
nearest centre (``alpha = 1`` replaces it), so the decoder rebuilds a
normal-looking image from an anomalous latent.
"""
from typing import Dict, List, Optional, Union

import torch
from mmengine.model import BaseModule

from anomaly_plugin.registry import MODELS

from ..statistics.kmeans import assign, kmeans


@MODELS.register_module()
class LatentKMeansEditor(BaseModule):
    """Identity until fitted; then edits each latent vector of a (B, C, h, w) map.

    Training sees the identity (the autoencoder learns to reconstruct); the
    centres are fitted afterwards (:meth:`fit`) and saved as buffers.

    Args:
        in_channels: latent channels C.
        num_clusters: k of k-means.
        alpha: editing strength in [0, 1] (1: replace by the centre).
        iters: Lloyd iterations of the fit.
        seed: seed of the k-means++ seeding.
        init_cfg: MMEngine initialisation config(s) that :meth:`init_weights`
            applies, e.g. ``dict(type='Pretrained', checkpoint=PATH,
            prefix='autoencoder.neck.')`` to take fitted centres from a
            detector's checkpoint; None keeps the unfitted identity.
    """

    def __init__(self, in_channels: int = 32, num_clusters: int = 32, alpha: float = 1.0,
                 iters: int = 50, seed: int = 0,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        if num_clusters < 1 or not 0.0 <= alpha <= 1.0:
            raise ValueError(f'LatentKMeansEditor: num_clusters must be >= 1 and alpha in '
                             f'[0, 1], got {num_clusters} and {alpha}')
        self.in_channels, self.num_clusters = int(in_channels), int(num_clusters)
        self.alpha, self.iters, self.seed = float(alpha), int(iters), int(seed)
        self.register_buffer('centres', torch.zeros(num_clusters, in_channels))  # (k, C)
        self.register_buffer('fitted', torch.tensor(False))

    @staticmethod
    def flatten(z: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B * h * w, C)."""
        return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])

    @torch.no_grad()
    def fit(self, latents: List[torch.Tensor]) -> Dict[str, List[float]]:
        """k-means on the vectors of latent maps [(B, C, h, w), ...] of normal images.

        Returns:
            ``{'cluster_sizes': [...]}`` (vectors per centre).
        """
        x = torch.cat([self.flatten(z).float().cpu() for z in latents])  # (N, C)
        if x.shape[1] != self.in_channels:
            raise ValueError(f'LatentKMeansEditor: latents have {x.shape[1]} channels, '
                             f'in_channels is {self.in_channels}')
        if x.shape[0] < self.num_clusters:
            raise ValueError(f'LatentKMeansEditor: {x.shape[0]} latent vectors for '
                             f'{self.num_clusters} clusters')
        centres = kmeans(x, self.num_clusters, iters=self.iters, seed=self.seed)
        sizes = torch.bincount(assign(x, centres), minlength=self.num_clusters)
        self.centres.copy_(centres)
        self.fitted.fill_(True)
        return dict(cluster_sizes=[float(s) for s in sizes])

    def edit(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, C, h, w) with every vector moved towards its centre."""
        b, c, h, w = z.shape
        flat = self.flatten(z)  # (N, C)
        nearest = self.centres[assign(flat.float(), self.centres)].to(z.dtype)  # (N, C)
        edited = flat + self.alpha * (nearest - flat)
        return edited.view(b, h, w, c).permute(0, 3, 1, 2).contiguous()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.training or not bool(self.fitted):
            return z
        return self.edit(z)
