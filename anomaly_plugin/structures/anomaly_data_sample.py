"""Data sample carrying the ground truth and predictions of one image."""
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.structures import BaseDataElement

_ArrayLike = Union[torch.Tensor, np.ndarray, int, float, bool]


def _to_tensor(value: _ArrayLike, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    return torch.as_tensor(value).to(dtype)


class AnomalyDataSample(BaseDataElement):
    """One image's anomaly ground truth and predictions.

    Fields (all optional):
        gt_label: () long, 0 = normal, 1 = anomalous.
        gt_mask: (H, W) uint8 in {0, 1}, at the model input size.
        pred_score: () float, raw image anomaly score.
        anomaly_map: (H, W) float, raw per-pixel anomaly score.
        pred_label: () long, ``pred_score >= image threshold``.
        pred_mask: (H, W) uint8, ``anomaly_map >= pixel threshold``.
    Meta fields set by the pipeline: ``img_path``, ``mask_path``,
    ``ori_shape`` (H, W), ``img_shape`` (H, W), ``defect_type``.
    """

    def set_gt_label(self, value: _ArrayLike) -> 'AnomalyDataSample':
        self.gt_label = _to_tensor(value, torch.long).reshape(())
        return self

    def set_gt_mask(self, value: _ArrayLike) -> 'AnomalyDataSample':
        mask = _to_tensor(value, torch.uint8)
        if mask.ndim != 2:
            raise ValueError(f'gt_mask must be (H, W), got {tuple(mask.shape)}')
        self.gt_mask = mask
        return self

    def set_pred_score(self, value: _ArrayLike) -> 'AnomalyDataSample':
        self.pred_score = _to_tensor(value, torch.float32).reshape(())
        return self

    def set_anomaly_map(self, value: _ArrayLike) -> 'AnomalyDataSample':
        amap = _to_tensor(value, torch.float32)
        if amap.ndim != 2:
            raise ValueError(
                f'anomaly_map must be (H, W), got {tuple(amap.shape)}')
        self.anomaly_map = amap
        return self


def stack_masks(data_samples: Sequence[AnomalyDataSample],
                shape: Optional[Sequence[int]] = None) -> Optional[torch.Tensor]:
    """Stack the ``gt_mask`` of a batch into one tensor.

    Args:
        data_samples: the batch's samples.
        shape: (H, W) used for samples without a mask (filled with zeros).

    Returns:
        (B, H, W) uint8 tensor, or None when no sample has a mask and no
        shape is given.
    """
    masks: List[Optional[torch.Tensor]] = [
        s.gt_mask if 'gt_mask' in s else None for s in data_samples]
    ref = next((m for m in masks if m is not None), None)
    if ref is None and shape is None:
        return None
    size = tuple(ref.shape) if ref is not None else tuple(shape)
    device = ref.device if ref is not None else None
    out = [m if m is not None else torch.zeros(size, dtype=torch.uint8,
                                               device=device) for m in masks]
    return torch.stack(out)  # (B, H, W)
