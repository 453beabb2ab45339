"""Transforms that load images and ground-truth masks."""
import logging
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log

from anomaly_plugin.registry import TRANSFORMS

from ..boxes import crop, rasterize
from ..image_io import load_image, read_mask

_WARNED_EMPTY = set()


def _warn_empty_mask(img_path: str, mask_path: str, threshold) -> None:
    """Warn, once per mask file and process, that a defect image has an empty mask."""
    if mask_path in _WARNED_EMPTY:
        return
    _WARNED_EMPTY.add(mask_path)
    rule = f'threshold {threshold}' if threshold is not None else 'the default rule'
    print_log(f'Defective image {img_path!r} has an empty mask: no pixel of {mask_path!r} '
              f'is anomalous under {rule}; its pixels all count as normal in the pixel '
              'metrics', logger='current', level=logging.WARNING)


@TRANSFORMS.register_module()
class LoadAnomalyImage(BaseTransform):
    """Load ``results['img_path']`` as an RGB image.

    Sets ``img`` (H, W, 3) uint8 RGB, ``ori_shape`` and ``img_shape``
    (both (H, W)). See :func:`~anomaly_plugin.datasets.image_io.load_image`
    for the conversions and the errors. What was noticed while reading (a
    partly decoded JPEG with ``strict=False``, several frames, a 16-bit image
    using under 1 % of its range) is logged once per file and kept in
    ``load_warnings`` (a list of messages, only when there is one), which
    :class:`PackAnomalyInputs` copies into the sample's metainfo.

    With a ``crop_box`` ``(x1, y1, x2, y2)`` in ``results`` (e.g. from
    :class:`BoxCropDataset`) the image is ``img[y1:y2, x1:x2]``: ``img``,
    ``ori_shape`` and ``img_shape`` are the crop's, ``full_shape`` the whole
    image's (H, W). A crop outside the image raises a ValueError naming it.

    Args:
        strict: a JPEG that libjpeg decodes only partly ("Corrupt JPEG data:
            premature end of data segment", ...) raises an error naming the
            file (default). False loads what was decoded, with a warning.
        exif_orientation: apply the file's EXIF orientation tag. Off by
            default: pixels are taken as stored, as the masks of MVTec-style
            datasets are (a mask drawn on the stored pixels stays aligned);
            turn it on for photos whose camera records its rotation, with
            masks drawn on the turned image.
    """

    def __init__(self, strict: bool = True, exif_orientation: bool = False):
        self.strict = strict
        self.exif_orientation = exif_orientation

    def transform(self, results: dict) -> dict:
        img, warnings = load_image(results['img_path'], self.strict,
                                   self.exif_orientation)  # (H, W, 3) uint8
        if results.get('crop_box') is not None:
            results['full_shape'] = img.shape[:2]
            img = crop(img, results['crop_box'], results['img_path'])  # (h, w, 3)
        results['img'] = img
        results['ori_shape'] = img.shape[:2]
        results['img_shape'] = img.shape[:2]
        if warnings:
            results['load_warnings'] = list(warnings)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(strict={self.strict}, '
                f'exif_orientation={self.exif_orientation})')


@TRANSFORMS.register_module()
class LoadAnomalyMask(BaseTransform):
    """Load the ground-truth mask into ``results['gt_mask']``.

    Must follow :class:`LoadAnomalyImage` and precede any geometric
    transform. Cases:

    - ``no_mask`` is True (dataset without masks): ``gt_mask`` stays unset.
    - ``mask_path`` is None and ``gt_label`` is 0: all zeros (H, W).
    - ``mask_path`` is None and ``gt_label`` is 1: error.
    - ``mask_path`` is None and ``mask_segmentation`` is set (COCO polygons
      or uncompressed RLE in image coordinates, from :class:`BoxCropDataset`):
      anomalous samples get them rasterised onto the crop, normal ones zeros.
    - otherwise the mask file is read and binarised; its size must equal
      the image's (the full image's with a ``crop_box``, then cropped like
      the image). A defective image (``gt_label`` 1) whose mask has no
      anomalous pixel is logged as a warning naming both files (once per
      file and process).

    Args:
        threshold: binarisation threshold in the mask file's units (pixel
            anomalous when ``> threshold``). None uses
            ``results['mask_threshold']`` when the dataset provides it, else
            :func:`read_mask`'s default rule (0/1 masks read as 0/1,
            others ``> 127`` for 8 bit).
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
        crop_box = results.get('crop_box')
        if mask_path is None and results.get('mask_segmentation') \
                and int(results['gt_label']) != 0:
            box = crop_box if crop_box is not None else (0, 0, shape[1], shape[0])
            results['gt_mask'] = rasterize(results['mask_segmentation'], box,
                                           f'image {img_path!r}')  # (h, w)
            return results
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
        if crop_box is not None:
            full = tuple(results.get('full_shape', mask.shape))
            if mask.shape != full:
                raise ValueError(
                    f'Mask {mask_path!r} is {mask.shape[0]}x{mask.shape[1]} (HxW) but its '
                    f'image {img_path!r} is {full[0]}x{full[1]}')
            mask = crop(mask, crop_box, mask_path)  # (h, w)
        if mask.shape != shape:
            raise ValueError(
                f'Mask {mask_path!r} is {mask.shape[0]}x{mask.shape[1]} (HxW) '
                f'but its image {img_path!r} is {shape[0]}x{shape[1]}')
        if int(results.get('gt_label', 1)) == 1 and not mask.any():
            _warn_empty_mask(img_path, mask_path, threshold)
        results['gt_mask'] = mask
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(threshold={self.threshold})'
