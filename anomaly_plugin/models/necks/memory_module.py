"""Memory module of MemAE.

Gong et al., "Memorizing normality to detect anomaly: memory-augmented deep
autoencoder for unsupervised anomaly detection" (ICCV 2019). Every latent
vector is replaced by a sparse convex combination of learned memory slots,
so a decoder trained on normal data can only rebuild normal-looking content.
"""
import math
from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from anomaly_plugin.registry import MODELS


def hard_shrink_relu(weights: torch.Tensor, lambd: float, eps: float = 1e-12) -> torch.Tensor:
    """Hard shrinkage of non-negative addressing weights, written with a ReLU.

    ``relu(w - lambd) * w / (|w - lambd| + eps)``: ``w`` where ``w > lambd``
    (up to ``eps``), 0 elsewhere, with a gradient wherever ``w > lambd``.

    Args:
        weights: addressing weights, any shape, values >= 0.
        lambd: shrinkage threshold.
        eps: keeps the division finite at ``w == lambd``.

    Returns:
        tensor of the shape of ``weights``.
    """
    shifted = weights - lambd
    return F.relu(shifted) * weights / (shifted.abs() + eps)


@MODELS.register_module()
class MemoryModule(BaseModule):
    """Sparse memory addressing of a latent feature map.

    With the memory ``M`` (num_slots, C) and each latent vector ``z`` (one
    per position of the (B, C, h, w) map):

    * ``w = softmax(z M^T)`` over the slots (dot-product similarity, as in
      the authors' code, which uses ``F.linear(z, M)``);
    * when ``shrink_thres > 0``: ``w' = hard_shrink_relu(w, shrink_thres)``
      followed by L1 renormalisation ``w' / max(||w'||_1, eps)``;
    * output ``z_hat = w' M``.

    The slots are initialised uniformly in ``[-1/sqrt(C), 1/sqrt(C)]``.
    :meth:`loss` is the entropy of the weights, ``sum_k -w'_k log(w'_k + eps)``
    averaged over all positions and multiplied by ``loss_weight``.

    Args:
        in_channels: latent channels C.
        num_slots: number of memory slots (2000, the authors' default).
        shrink_thres: shrinkage threshold lambda (0.0025, the authors'
            default; 0 disables shrinkage and renormalisation). A position
            whose weights all lie below lambda (possible only when lambda >=
            1 / num_slots, as with the defaults, and the addressing is flat)
            reads out 0 and passes no gradient to the encoder or the memory.
        loss_weight: factor alpha of the entropy loss (0.0002, the authors'
            default).
        eps: numerical floor of the shrinkage, renormalisation and log.
        init_cfg: MMEngine initialisation config(s) that :meth:`init_weights`
            applies after the default initialisation (e.g.
            ``dict(type='Pretrained', checkpoint=PATH, prefix='neck.')``);
            None keeps the default.
    """

    def __init__(self, in_channels: int, num_slots: int = 2000, shrink_thres: float = 0.0025,
                 loss_weight: float = 0.0002, eps: float = 1e-12,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        if in_channels < 1 or num_slots < 1:
            raise ValueError('MemoryModule: in_channels and num_slots must be >= 1, got '
                             f'{in_channels} and {num_slots}')
        if not 0 <= shrink_thres < 1:
            raise ValueError(f'MemoryModule: shrink_thres must be in [0, 1), got {shrink_thres}')
        self.in_channels = int(in_channels)
        self.num_slots = int(num_slots)
        self.shrink_thres = float(shrink_thres)
        self.loss_weight = float(loss_weight)
        self.eps = float(eps)
        self.memory = nn.Parameter(torch.empty(self.num_slots, self.in_channels))  # (M, C)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_channels)
        nn.init.uniform_(self.memory, -bound, bound)

    def address(self, z: torch.Tensor) -> torch.Tensor:
        """Addressing weights of latent vectors.

        Args:
            z: (N, C) latent vectors.

        Returns:
            (N, num_slots) non-negative weights; each row sums to 1 unless
            shrinkage removed every slot (then the row is 0).
        """
        w = F.softmax(F.linear(z, self.memory), dim=1)  # (N, M)
        if self.shrink_thres > 0:
            w = hard_shrink_relu(w, self.shrink_thres, self.eps)
            w = w / w.sum(1, keepdim=True).clamp_min(self.eps)  # L1, w >= 0
        return w

    def forward(self, z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Replace every latent vector by its memory read-out.

        Args:
            z: (B, C, h, w) latent map.

        Returns:
            ``z_hat`` (B, C, h, w) and the weights (B * h * w, num_slots).
        """
        if z.dim() != 4 or z.shape[1] != self.in_channels:
            raise ValueError(f'MemoryModule: expected a (B, {self.in_channels}, h, w) latent '
                             f'map, got {tuple(z.shape)}')
        b, c, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, c)  # (B*h*w, C)
        weights = self.address(flat)  # (B*h*w, M)
        out = weights @ self.memory  # (B*h*w, C)
        return out.reshape(b, h, w, c).permute(0, 3, 1, 2), weights

    def loss(self, weights: torch.Tensor) -> torch.Tensor:
        """Weighted entropy of the addressing weights.

        Args:
            weights: (N, num_slots) weights from :meth:`forward`.

        Returns:
            ``loss_weight * mean_n sum_k -w_nk log(w_nk + eps)``.
        """
        entropy = -(weights * torch.log(weights + self.eps)).sum(1)  # (N,)
        return self.loss_weight * entropy.mean()
