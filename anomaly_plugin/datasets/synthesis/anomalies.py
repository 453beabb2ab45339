"""Kinds of synthetic anomaly, drawn on one normal image.

Each kind is called as ``kind(image, rng, foreground)`` with an (H, W, 3)
uint8 image, a ``np.random.Generator`` and an optional (H, W) bool mask of
where anomalies may go, and returns ``(out, mask)``: the (H, W, 3) uint8
image with the anomaly and the (H, W) bool mask of exactly the pixels that
changed (a pixel of the drawn region that happens to keep its value is not
in the mask; nothing outside the region changes).

* :class:`PerlinAnomaly` (DRAEM, Zavrtanik et al. 2021): a thresholded Perlin
  noise region filled with a texture at a random opacity.
* :class:`CutPasteAnomaly` and :class:`ScarAnomaly` (CutPaste and CutPaste-Scar,
  Li et al. 2021): a rectangle,
  or a thin rotated scar, cut from the image itself, colour-jittered and
  pasted at another random place.
"""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from .perlin import perlin_mask
from .textures import build_texture_source

Result = Tuple[np.ndarray, np.ndarray]


def _finish(image: np.ndarray, candidate: np.ndarray, region: np.ndarray,
            foreground: Optional[np.ndarray]) -> Result:
    """Keep ``candidate`` inside ``region`` (and the foreground), ``image``
    elsewhere; the mask is where the result differs from ``image``."""
    if foreground is not None:
        region = region & foreground
    out = np.where(region[..., None], candidate, image)
    return out, (out != image).any(-1)


def _paste(image: np.ndarray, patch: np.ndarray, valid: np.ndarray, top: int, left: int,
           foreground: Optional[np.ndarray]) -> Result:
    """Paste the ``valid`` pixels of ``patch`` (h, w, 3) with its top-left
    corner at (``top``, ``left``)."""
    h, w = valid.shape
    candidate = image.copy()
    candidate[top:top + h, left:left + w] = patch
    region = np.zeros(image.shape[:2], bool)
    region[top:top + h, left:left + w] = valid
    return _finish(image, candidate, region, foreground)


def color_jitter(patch: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Brightness, contrast and saturation factors uniform in ``1 +- strength``
    and a hue shift uniform in ``+-strength`` of the hue circle (torchvision's
    ``ColorJitter(b, c, s, h)`` with all four equal), in random order.

    Args:
        patch: (h, w, 3) uint8 RGB.
        rng: random generator.
        strength: jitter strength; 0 returns the patch unchanged.

    Returns:
        (h, w, 3) uint8.
    """
    if strength <= 0:
        return patch
    p = patch.astype(np.float32)
    for op in rng.permutation(4):
        f = rng.uniform(1 - strength, 1 + strength)
        gray = (p @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]  # (h, w, 1)
        if op == 0:
            p = p * f
        elif op == 1:
            p = gray.mean() + (p - gray.mean()) * f
        elif op == 2:
            p = gray + (p - gray) * f
        else:
            hsv = cv2.cvtColor(np.clip(np.rint(p), 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV)
            shift = int(round(rng.uniform(-strength, strength) * 180))
            hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + shift) % 180).astype(np.uint8)
            p = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
        p = np.clip(p, 0, 255)
    return np.rint(p).astype(np.uint8)


class PerlinAnomaly:
    """DRAEM's anomaly: a Perlin-noise region blended with a texture.

    ``out = image + opacity * (texture - image)`` inside the region, with
    ``opacity`` uniform in ``opacity`` (DRAEM's ``1 - beta``: the texture's
    share; 0 leaves the image unchanged) and the region from
    :func:`~.perlin.perlin_mask`.

    Args:
        source: texture source, see :func:`~.textures.build_texture_source`
            (``'procedural'``, ``'self'``, a folder, or a dict).
        opacity: (min, max) texture share; DRAEM draws ``beta`` in [0, 0.8],
            i.e. (0.2, 1.0).
        scale_exp: half-open range of the per-axis Perlin scale exponents.
        threshold: Perlin threshold.
    """

    def __init__(self, source='procedural', opacity: Sequence[float] = (0.2, 1.0),
                 scale_exp: Sequence[int] = (0, 6), threshold: float = 0.5):
        lo, hi = (float(v) for v in opacity)
        if not 0 <= lo <= hi <= 1:
            raise ValueError(f'PerlinAnomaly: opacity must be (min, max) in [0, 1], got {opacity}')
        self.source = build_texture_source(source)
        self.opacity, self.scale_exp = (lo, hi), tuple(int(v) for v in scale_exp)
        self.threshold = float(threshold)

    def __call__(self, image: np.ndarray, rng: np.random.Generator,
                 foreground: Optional[np.ndarray] = None) -> Result:
        region = perlin_mask(image.shape[:2], rng, self.scale_exp, self.threshold)  # (H, W)
        texture = self.source(image, rng).astype(np.float32)  # (H, W, 3)
        a = rng.uniform(*self.opacity)
        img = image.astype(np.float32)
        candidate = np.clip(np.rint(img + a * (texture - img)), 0, 255).astype(np.uint8)
        return _finish(image, candidate, region, foreground)

    def __repr__(self) -> str:
        return f'PerlinAnomaly(source={self.source!r}, opacity={self.opacity})'


class CutPasteAnomaly:
    """CutPaste's anomaly: a rectangle of the image, colour-jittered, pasted elsewhere.

    Area uniform in ``area`` (fraction of the image), aspect ratio (width /
    height) log-uniform in ``aspect``, source and target
    places uniform (the paper's setting: area 2-15 %, aspect 0.3-3.3, jitter
    0.1).

    Args:
        area: (min, max) fraction of the image area.
        aspect: (min, max) width / height.
        jitter: colour jitter strength (:func:`color_jitter`).
    """

    def __init__(self, area: Sequence[float] = (0.02, 0.15), aspect: Sequence[float] = (0.3, 3.3),
                 jitter: float = 0.1):
        self.area, self.aspect, self.jitter = tuple(area), tuple(aspect), float(jitter)

    def _size(self, h: int, w: int, rng: np.random.Generator) -> Tuple[int, int]:
        a = rng.uniform(*self.area) * h * w
        r = np.exp(rng.uniform(np.log(self.aspect[0]), np.log(self.aspect[1])))
        ph = int(np.clip(round(np.sqrt(a / r)), 1, h - 1))
        pw = int(np.clip(round(np.sqrt(a * r)), 1, w - 1))
        return ph, pw

    def __call__(self, image: np.ndarray, rng: np.random.Generator,
                 foreground: Optional[np.ndarray] = None) -> Result:
        h, w = image.shape[:2]
        ph, pw = self._size(h, w, rng)
        sy, sx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
        ty, tx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
        patch = color_jitter(image[sy:sy + ph, sx:sx + pw], rng, self.jitter)
        return _paste(image, patch, np.ones((ph, pw), bool), ty, tx, foreground)

    def __repr__(self) -> str:
        return f'CutPasteAnomaly(area={self.area}, aspect={self.aspect}, jitter={self.jitter})'


class ScarAnomaly:
    """CutPaste-Scar: a thin rectangle (``width`` x ``length`` px at an image
    whose shorter side is ``ref_size``, scaled with the shorter side for
    other sizes: the project's choice), colour-jittered, rotated by an angle
    uniform in ``rotation`` degrees and pasted elsewhere (the paper: width
    2-16, length 10-25, rotation +-45, at 256 px).

    Args:
        width: (min, max) width in px at ``ref_size``.
        length: (min, max) length in px at ``ref_size``.
        rotation: (min, max) degrees.
        jitter: colour jitter strength.
        ref_size: the shorter side at which ``width`` and ``length`` hold.
    """

    def __init__(self, width: Sequence[int] = (2, 16), length: Sequence[int] = (10, 25),
                 rotation: Sequence[float] = (-45, 45), jitter: float = 0.1,
                 ref_size: int = 256):
        self.width, self.length = tuple(width), tuple(length)
        self.rotation, self.jitter = tuple(rotation), float(jitter)
        self.ref_size = int(ref_size)

    def __call__(self, image: np.ndarray, rng: np.random.Generator,
                 foreground: Optional[np.ndarray] = None) -> Result:
        h, w = image.shape[:2]
        s = min(h, w) / self.ref_size
        sw = int(np.clip(round(rng.uniform(*self.width) * s), 1, w - 1))
        sl = int(np.clip(round(rng.uniform(*self.length) * s), 1, h - 1))
        sy, sx = int(rng.integers(0, h - sl + 1)), int(rng.integers(0, w - sw + 1))
        patch = color_jitter(image[sy:sy + sl, sx:sx + sw], rng, self.jitter)  # (sl, sw, 3)
        # rotate about the patch centre into a canvas that holds every angle
        side = int(np.ceil(np.hypot(sl, sw))) + 2
        m = cv2.getRotationMatrix2D((sw / 2, sl / 2), float(rng.uniform(*self.rotation)), 1.0)
        m[:, 2] += (side / 2 - sw / 2, side / 2 - sl / 2)
        rot = cv2.warpAffine(patch, m, (side, side), flags=cv2.INTER_NEAREST)
        valid = cv2.warpAffine(np.ones((sl, sw), np.uint8), m, (side, side),
                               flags=cv2.INTER_NEAREST).astype(bool)  # (side, side)
        ys, xs = np.nonzero(valid)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        rot, valid = rot[y0:y1, x0:x1], valid[y0:y1, x0:x1]
        rh, rw = valid.shape
        rh, rw = min(rh, h), min(rw, w)
        rot, valid = rot[:rh, :rw], valid[:rh, :rw]
        ty, tx = int(rng.integers(0, h - rh + 1)), int(rng.integers(0, w - rw + 1))
        return _paste(image, rot, valid, ty, tx, foreground)

    def __repr__(self) -> str:
        return (f'ScarAnomaly(width={self.width}, length={self.length}, '
                f'rotation={self.rotation}, jitter={self.jitter})')


KINDS = {'PerlinAnomaly': PerlinAnomaly, 'CutPasteAnomaly': CutPasteAnomaly,
         'ScarAnomaly': ScarAnomaly}


def build_anomaly_kind(cfg):
    """A kind from a dict (``type``: a name in :data:`KINDS` or a class) or an
    object called as ``kind(image, rng, foreground) -> (out, mask)``."""
    if not isinstance(cfg, dict):
        return cfg
    cfg = dict(cfg)
    kind = cfg.pop('type')
    cls = KINDS.get(kind, kind) if isinstance(kind, str) else kind
    if isinstance(cls, str):
        raise ValueError(f'unknown anomaly kind {kind!r}; choose from {sorted(KINDS)} '
                         'or give a class')
    return cls(**cfg)
