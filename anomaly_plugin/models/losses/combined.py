"""Weighted sum of image-comparison losses."""
import re
from typing import Dict, List, Optional, Sequence, Union

import torch
from torch import nn

from anomaly_plugin.registry import MODELS


def _term_name(loss: nn.Module) -> str:
    """'SSIMLoss' -> 'loss_ssim', 'L2Loss' -> 'loss_l2'."""
    stem = re.sub(r'Loss$', '', type(loss).__name__) or type(loss).__name__
    return f'loss_{stem.lower()}'


@MODELS.register_module()
class CombinedLoss(nn.Module):
    """Sum of several losses, each with its own ``loss_weight``.

    The scalar is ``loss_weight * sum_i loss_i(pred, target)`` (each member
    already applies its own ``loss_weight``). The map is
    ``sum_i map_weights[i] * loss_i.map(pred, target)``.

    Args:
        losses: member configs (``dict(type='SSIMLoss', loss_weight=0.5)``)
            or built modules; each must provide ``map``.
        map_weights: one factor per member for the map; by default each
            member's ``loss_weight`` (1 where it has none).
        loss_weight: factor applied to the scalar and to every term.
    """

    def __init__(self, losses: Sequence[Union[dict, nn.Module]],
                 map_weights: Optional[Sequence[float]] = None, loss_weight: float = 1.0):
        super().__init__()
        if not losses:
            raise ValueError('CombinedLoss: `losses` must name at least one loss')
        members = [m if isinstance(m, nn.Module) else MODELS.build(m) for m in losses]
        for m in members:
            if not callable(getattr(m, 'map', None)):
                raise TypeError(f'CombinedLoss: {type(m).__name__} has no `map(pred, target)`')
        self.losses = nn.ModuleList(members)
        if map_weights is None:
            map_weights = [float(getattr(m, 'loss_weight', 1.0)) for m in members]
        if len(map_weights) != len(members):
            raise ValueError(f'CombinedLoss: {len(map_weights)} map_weights for '
                             f'{len(members)} losses')
        self.map_weights: List[float] = [float(w) for w in map_weights]
        self.loss_weight = float(loss_weight)
        names = [_term_name(m) for m in members]
        # a repeated name gets the member index appended: loss_l2_0, loss_l2_2
        self.term_names = [n if names.count(n) == 1 else f'{n}_{i}' for i, n in enumerate(names)]

    def forward_terms(self, pred: torch.Tensor, target: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Every weighted term separately, for logging.

        Args:
            pred: (B, C, H, W) images.
            target: (B, C, H, W) images.

        Returns:
            dict term name (``loss_<member>``) -> scalar; the values sum to
            ``forward(pred, target)``.
        """
        return {name: self.loss_weight * loss(pred, target)
                for name, loss in zip(self.term_names, self.losses)}

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss.

        Args:
            pred: (B, C, H, W) images.
            target: (B, C, H, W) images.

        Returns:
            sum of the weighted member losses.
        """
        return torch.stack(list(self.forward_terms(pred, target).values())).sum()

    def map(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Weighted sum of the member maps.

        Args:
            pred: (B, C, H, W) images.
            target: (B, C, H, W) images.

        Returns:
            (B, 1, H, W) combined anomaly map.
        """
        maps = [w * loss.map(pred, target) for w, loss in zip(self.map_weights, self.losses)]
        return torch.stack(maps).sum(0)


def reconstruction_losses(loss_fn: torch.nn.Module, pred: torch.Tensor,
                          target: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Loss dict of a reconstruction for MMEngine's ``parse_losses``.

    Args:
        loss_fn: the training loss.
        pred: (B, C, H, W) reconstruction in [0, 1].
        target: (B, C, H, W) clean images in [0, 1].

    Returns:
        ``{'loss_rec': scalar}``, or for a :class:`CombinedLoss` its weighted
        terms (``{'loss_l2': .., 'loss_ssim': ..}``) without their sum:
        MMEngine adds up every key containing ``'loss'``, so the total
        optimised is the same and each term is logged.
    """
    if isinstance(loss_fn, CombinedLoss):
        return loss_fn.forward_terms(pred, target)
    return dict(loss_rec=loss_fn(pred, target))
