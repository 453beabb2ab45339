"""Transforms that load images and ground-truth masks."""
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform

from anomaly_plugin.registry import TRANSFORMS

from ..image_io import read_image, read_mask


@TRANSFORMS.register_module()
class LoadAnomalyImage(BaseTransform):
    """Load ``results['img_path']`` as an RGB image.

    Sets ``img`` (H, W, 3) uint8 RGB, ``ori_shape`` and ``img_shape``
    (both (H, W)). See :func:`read_image` for the conversions.
    """

    def transform(self, results: dict) -> dict:
        img = read_image(results['img_path'])  # (H, W, 3) uint8
        results['img'] = img
        results['ori_shape'] = img.shape[:2]
        results['img_shape'] = img.shape[:2]
        return results


@TRANSFORMS.register_module()
class LoadAnomalyMask(BaseTransform):
    """Load the ground-truth mask into ``results['gt_mask']``.

    Must follow :class:`LoadAnomalyImage` and precede any geometric
    transform. Cases:

    - ``no_mask`` is True (dataset without masks): ``gt_mask`` stays unset.
    - ``mask_path`` is None and ``gt_label`` is 0: all zeros (H, W).
    - ``mask_path`` is None and ``gt_label`` is 1: error.
    - otherwise the mask file is read and binarised; its size must equal
      the image's.

    Args:
        threshold: binarisation threshold in the mask file's units (pixel
            anomalous when ``> threshold``). None uses
            ``results['mask_threshold']`` when the dataset provides it, else
            half the dtype's maximum (127 for 8 bit).
    """

    def __init__(self, threshold: Optional[float] = None):
        self.threshold = threshold

    def transform(self, results: dict) -> dict:
        if results.get('no_mask', False):
            return results
        img_path = results.get('img_path')
        if 'ori_shape' not in results:
            raise KeyError(
                f'LoadAnomalyMask needs the image loaded first (no '
                f"'ori_shape' for {img_path!r}); put LoadAnomalyImage before it")
        shape = tuple(results['ori_shape'])
        if tuple(results.get('img_shape', shape)) != shape:
            raise ValueError(
                f'LoadAnomalyMask for {img_path!r} runs after the image was '
                f'resized or cropped ({shape} -> {tuple(results["img_shape"])}); '
                'put it right after LoadAnomalyImage')
        mask_path = results.get('mask_path')
        if mask_path is None:
            if int(results['gt_label']) != 0:
                raise ValueError(
                    f'Anomalous image {img_path!r} has no mask_path, but the '
                    'dataset provides masks')
            results['gt_mask'] = np.zeros(shape, dtype=np.uint8)
            return results
        threshold = self.threshold
        if threshold is None:
            threshold = results.get('mask_threshold')
        mask = read_mask(mask_path, threshold)  # (H, W) uint8 {0, 1}
        if mask.shape != shape:
            raise ValueError(
                f'Mask {mask_path!r} is {mask.shape[0]}x{mask.shape[1]} (HxW) '
                f'but its image {img_path!r} is {shape[0]}x{shape[1]}')
        results['gt_mask'] = mask
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(threshold={self.threshold})'
