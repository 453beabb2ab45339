"""Packing pipeline results into model inputs and data samples."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from anomaly_plugin.registry import TRANSFORMS
from anomaly_plugin.structures import AnomalyDataSample


@TRANSFORMS.register_module()
class PackAnomalyInputs(BaseTransform):
    """Pack the image and ground truth for the model.

    Returns ``dict(inputs=..., data_samples=...)``: ``inputs`` is a
    contiguous (3, H, W) uint8 tensor; ``data_samples`` an
    :class:`AnomalyDataSample` with ``gt_label``, ``gt_mask`` (only when
    ``results`` has one) and the ``meta_keys`` present in ``results``.

    The default ``meta_keys`` include the box keys of
    :class:`BoxCropDataset` samples (``crop_box``, ``box``, ``category``,
    ``box_score``, ``box_id``, ``full_shape``); ``img_path`` is then the
    full image the crop comes from; ``load_warnings`` (what
    :class:`LoadAnomalyImage` noticed while reading the file); and
    ``anomaly_kind`` (set by :class:`SynthesizeAnomaly`). A ``clean_img``
    (the image before :class:`SynthesizeAnomaly`) is packed as the sample's
    (3, H, W) uint8 ``clean_img``.

    Args:
        meta_keys: keys copied into the sample's metainfo (when present).
    """

    def __init__(self,
                 meta_keys: Sequence[str] = ('img_path', 'mask_path',
                                             'ori_shape', 'img_shape',
                                             'defect_type', 'mask_threshold',
                                             'crop_box', 'box', 'category',
                                             'box_score', 'box_id', 'full_shape',
                                             'load_warnings', 'anomaly_kind')):
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        if 'img' not in results:
            raise KeyError(
                f"PackAnomalyInputs: no 'img' for {results.get('img_path')!r}; "
                'the pipeline must load the image first')
        img = np.asarray(results['img'])
        if img.ndim != 3:
            raise ValueError(
                f'PackAnomalyInputs expects an (H, W, C) image, got shape '
                f'{img.shape} for {results.get("img_path")!r}')
        inputs = torch.from_numpy(
            np.ascontiguousarray(img.transpose(2, 0, 1)))  # (3, H, W)

        sample = AnomalyDataSample()
        if 'gt_label' in results:
            sample.set_gt_label(results['gt_label'])
        if 'gt_mask' in results:
            mask = results['gt_mask']
            if tuple(mask.shape) != img.shape[:2]:
                raise ValueError(
                    f'gt_mask {tuple(mask.shape)} and image {img.shape[:2]} '
                    f'of {results.get("img_path")!r} differ in size; a '
                    'transform changed only one of them')
            sample.set_gt_mask(mask)
        if 'clean_img' in results:
            clean = np.asarray(results['clean_img'])
            if clean.shape != img.shape:
                raise ValueError(f'clean_img {clean.shape} and image {img.shape} of '
                                 f'{results.get("img_path")!r} differ in shape')
            sample.clean_img = torch.from_numpy(
                np.ascontiguousarray(clean.transpose(2, 0, 1)))  # (3, H, W)
        sample.set_metainfo(
            {k: results[k] for k in self.meta_keys if k in results})
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
