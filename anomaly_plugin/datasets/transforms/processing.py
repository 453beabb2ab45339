"""Geometric transforms applied identically to the image and its mask.

Each transform changes ``results['img']`` (H, W, 3) and, when present,
``results['gt_mask']`` (H, W) the same way, and updates ``img_shape``.
Random choices use NumPy's global generator, which MMEngine seeds, except
:class:`RandomCrop`, which draws from the sample's own generator (seeded by
sample and epoch, like :class:`SynthesizeAnomaly`).
"""
from typing import Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from anomaly_plugin.registry import TRANSFORMS

from .synthesis import sample_rng

_MASK_KEYS = ('gt_mask',)
_INTERPOLATIONS = {
    'bilinear': cv2.INTER_LINEAR,
    'area': cv2.INTER_AREA,
    'bicubic': cv2.INTER_CUBIC,
    'nearest': cv2.INTER_NEAREST_EXACT,
}


def _pair(size: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
    """Turn ``size`` (int or (h, w)) into a positive (h, w) tuple."""
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f'{name} must be a positive int or (h, w), got {size}')
    return size


def _apply(results: dict, fn) -> dict:
    """Apply ``fn`` to the image and the masks; update ``img_shape``."""
    results['img'] = np.ascontiguousarray(fn(results['img']))
    for key in _MASK_KEYS:
        if key in results:
            results[key] = np.ascontiguousarray(fn(results[key]))
    results['img_shape'] = results['img'].shape[:2]
    return results


@TRANSFORMS.register_module()
class Resize(BaseTransform):
    """Resize the image and mask to a fixed size.

    The image uses ``interpolation`` (default bilinear, ``cv2.INTER_LINEAR``;
    ``'area'`` anti-aliases strong downscaling better); the mask always uses
    nearest neighbour with pixel-centre alignment
    (``cv2.INTER_NEAREST_EXACT``), so it stays in {0, 1} and aligned.
    Sets ``img_shape`` and ``scale_factor`` (w_scale, h_scale).

    Args:
        size: output size, int or (h, w).
        interpolation: ``'bilinear'``, ``'area'``, ``'bicubic'`` or
            ``'nearest'``.
    """

    def __init__(self, size: Union[int, Sequence[int]],
                 interpolation: str = 'bilinear'):
        self.size = _pair(size, 'size')
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(f'interpolation must be one of '
                             f'{sorted(_INTERPOLATIONS)}, got {interpolation!r}')
        self.interpolation = interpolation

    def transform(self, results: dict) -> dict:
        h, w = self.size
        old_h, old_w = results['img'].shape[:2]
        results['img'] = cv2.resize(
            results['img'], (w, h),
            interpolation=_INTERPOLATIONS[self.interpolation])  # (h, w, 3)
        for key in _MASK_KEYS:
            if key in results:
                results[key] = cv2.resize(
                    results[key], (w, h),
                    interpolation=cv2.INTER_NEAREST_EXACT)  # (h, w)
        results['img_shape'] = (h, w)
        results['scale_factor'] = (w / old_w, h / old_h)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, '
                f'interpolation={self.interpolation!r})')


@TRANSFORMS.register_module()
class CenterCrop(BaseTransform):
    """Crop the centre of the image and mask.

    Args:
        size: crop size, int or (h, w); must fit in the image.
    """

    def __init__(self, size: Union[int, Sequence[int]]):
        self.size = _pair(size, 'size')

    def transform(self, results: dict) -> dict:
        h, w = self.size
        img_h, img_w = results['img'].shape[:2]
        if h > img_h or w > img_w:
            raise ValueError(
                f'CenterCrop size {(h, w)} is larger than the image '
                f'{(img_h, img_w)} of {results.get("img_path")!r}')
        top, left = (img_h - h) // 2, (img_w - w) // 2
        return _apply(results, lambda a: a[top:top + h, left:left + w])

    def __repr__(self) -> str:
        return f'{type(self).__name__}(size={self.size})'


@TRANSFORMS.register_module()
class RandomCrop(BaseTransform):
    """Crop a window of ``size`` at a random place of the image and mask.

    The place is drawn from the sample's own generator (seeded by ``seed``,
    the epoch and ``sample_idx``), so a run draws the same crops whatever
    its worker / rank layout, and a resumed run the same as an
    uninterrupted one.

    Args:
        size: crop size, int or (h, w); must fit in the image.
        seed: base seed.
    """

    def __init__(self, size: Union[int, Sequence[int]], seed: int = 0):
        self.size, self.seed = _pair(size, 'size'), int(seed)

    def transform(self, results: dict) -> dict:
        h, w = self.size
        img_h, img_w = results['img'].shape[:2]
        if h > img_h or w > img_w:
            raise ValueError(f'RandomCrop size {(h, w)} is larger than the image '
                             f'{(img_h, img_w)} of {results.get("img_path")!r}')
        rng = sample_rng(results, self.seed, 'RandomCrop', stream=1)
        top, left = int(rng.integers(img_h - h + 1)), int(rng.integers(img_w - w + 1))
        return _apply(results, lambda a: a[top:top + h, left:left + w])

    def __repr__(self) -> str:
        return f'{type(self).__name__}(size={self.size}, seed={self.seed})'


@TRANSFORMS.register_module()
class RandomFlip(BaseTransform):
    """Randomly flip the image and mask together.

    Sets ``flip`` (bool) and ``flip_direction`` (``'horizontal'``,
    ``'vertical'``, ``'diagonal'`` for both axes, or None).

    Args:
        prob: probability of each flip.
        direction: ``'horizontal'``, ``'vertical'`` or ``'both'`` (the two
            flips are drawn independently, each with ``prob``).
    """

    _DIRECTIONS = ('horizontal', 'vertical', 'both')

    def __init__(self, prob: float = 0.5, direction: str = 'horizontal'):
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        if direction not in self._DIRECTIONS:
            raise ValueError(f'direction must be one of {self._DIRECTIONS}, '
                             f'got {direction!r}')
        self.prob = prob
        self.direction = direction

    def transform(self, results: dict) -> dict:
        horizontal = (self.direction in ('horizontal', 'both')
                      and np.random.rand() < self.prob)
        vertical = (self.direction in ('vertical', 'both')
                    and np.random.rand() < self.prob)
        axes = tuple(ax for ax, on in ((1, horizontal), (0, vertical)) if on)
        if axes:
            _apply(results, lambda a: np.flip(a, axis=axes))
        results['flip'] = bool(axes)
        results['flip_direction'] = {
            (True, True): 'diagonal', (True, False): 'horizontal',
            (False, True): 'vertical', (False, False): None,
        }[(horizontal, vertical)]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(prob={self.prob}, '
                f'direction={self.direction!r})')


@TRANSFORMS.register_module()
class RandomRotate90(BaseTransform):
    """Randomly rotate the image and mask by 90, 180 or 270 degrees.

    With probability ``prob`` a multiple ``k`` in {1, 2, 3} of 90 degrees
    (counter-clockwise) is drawn uniformly; sets ``rotate90_k`` (0 when not
    rotated). Non-square images change shape.

    Args:
        prob: probability of rotating.
    """

    def __init__(self, prob: float = 0.5):
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.prob = prob

    def transform(self, results: dict) -> dict:
        k = 0
        if np.random.rand() < self.prob:
            k = int(np.random.randint(1, 4))
            _apply(results, lambda a: np.rot90(a, k, axes=(0, 1)))
        results['rotate90_k'] = k
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(prob={self.prob})'
