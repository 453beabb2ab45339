"""Turning a model's raw anomaly map into scores, labels and masks.

Two separate steps live here:

* :meth:`AnomalyPostProcessor.forward`: upsample the raw map to the input
  size, blur it, reduce it to an image score. Pure function of the map.
* Calibration state (thresholds and min-max normalisation) held in buffers,
  so it is saved in and loaded from the checkpoint. It is filled by
  :func:`anomaly_plugin.engine.calibration.calibrate`, never by validation.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from .ops import resize_blur

_BUFFERS = ('image_threshold', 'pixel_threshold', 'image_min', 'image_max',
            'pixel_min', 'pixel_max')


class AnomalyPostProcessor(nn.Module):
    """Upsampling, smoothing, image score, thresholds and normalisation.

    Args:
        sigma: Gaussian blur of the upsampled map in pixels (0 = off).
        reduction: how the image score comes from the smoothed map:
            ``'max'``, ``'mean'`` or ``'topk'`` (mean of the ``topk``
            highest pixels).
        topk: pixel count for ``reduction='topk'``.
    """

    def __init__(self, sigma: float = 4.0, reduction: str = 'max', topk: int = 100):
        super().__init__()
        if reduction not in ('max', 'mean', 'topk'):
            raise ValueError(f"reduction must be 'max', 'mean' or 'topk', got {reduction!r}")
        self.sigma = float(sigma)
        self.reduction = reduction
        self.topk = int(topk)
        for name in _BUFFERS:
            self.register_buffer(name, torch.tensor(float('nan')))

    def forward(self, raw_map: torch.Tensor,
                size: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Args:
            raw_map: (B, 1, h, w) or (B, h, w) raw anomaly map.
            size: (H, W) input size.

        Returns:
            maps (B, H, W) and image scores (B,), both float32, unnormalised.
        """
        if raw_map.ndim == 3:
            raw_map = raw_map[:, None]
        # bilinear upsampling and the blur, fused into two matrix products
        amap = resize_blur(raw_map.float(), tuple(size), self.sigma)[:, 0]  # (B, H, W)
        flat = amap.flatten(1)  # (B, H*W)
        if self.reduction == 'max':
            scores = flat.amax(1)
        elif self.reduction == 'mean':
            scores = flat.mean(1)
        else:
            scores = flat.topk(min(self.topk, flat.shape[1]), dim=1).values.mean(1)
        return amap, scores

    # ----------------------------------------------------------- calibration
    @property
    def has_threshold(self) -> bool:
        return bool(torch.isfinite(self.image_threshold)
                    and torch.isfinite(self.pixel_threshold))

    @property
    def has_normalization(self) -> bool:
        return all(bool(torch.isfinite(getattr(self, n))) for n in _BUFFERS)

    def set_calibration(self, values: Dict[str, float]) -> None:
        """Store thresholds / min-max values (keys as the buffer names)."""
        unknown = set(values) - set(_BUFFERS)
        if unknown:
            raise KeyError(f'unknown calibration keys {sorted(unknown)}')
        for name, value in values.items():
            getattr(self, name).fill_(float(value))

    def calibration(self) -> Dict[str, Optional[float]]:
        """Current calibration, None where unset."""
        out = {}
        for name in _BUFFERS:
            v = float(getattr(self, name))
            out[name] = v if v == v else None
        return out

    @staticmethod
    def _normalize(x: torch.Tensor, thr: torch.Tensor, lo: torch.Tensor,
                   hi: torch.Tensor) -> torch.Tensor:
        # threshold -> 0.5, the calibration range -> width 1, clipped to [0, 1]
        span = torch.clamp(hi - lo, min=torch.finfo(torch.float32).eps)
        return ((x - thr) / span + 0.5).clamp(0.0, 1.0)

    def normalize_scores(self, scores: torch.Tensor) -> torch.Tensor:
        """Image scores mapped to [0, 1] with the image threshold at 0.5."""
        return self._normalize(scores, self.image_threshold, self.image_min,
                               self.image_max)

    def normalize_maps(self, maps: torch.Tensor) -> torch.Tensor:
        """Anomaly maps mapped to [0, 1] with the pixel threshold at 0.5."""
        return self._normalize(maps, self.pixel_threshold, self.pixel_min,
                               self.pixel_max)
