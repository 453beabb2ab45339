"""Texture sources that fill synthetic anomalies, all offline.

* :class:`ProceduralTexture` (the default): made at run time from fractal
  Perlin noise between two random colours, with random stripes mixed in.
* :class:`SelfTexture`: the image itself, shifted, flipped and re-coloured.
* :class:`FolderTexture`: a folder of texture images (e.g. DTD where the user
  has it); every file is checked when the source is built, and a file that
  cannot be read is an error naming it.

Every source returns an (H, W, 3) uint8 texture for an image of that size and
a ``np.random.Generator``; the colour augmentation (:func:`augment_texture`)
is the project's own subset of DRAEM's (three of gamma, brightness/contrast,
invert, posterize, solarize, rotation).
"""
import os
import os.path as osp
from typing import List

import cv2
import numpy as np

from ..image_io import is_image_file, read_image
from .perlin import fractal_noise, rotate


def _gamma(t, rng):
    g = rng.uniform(0.5, 2.0)
    return 255.0 * (t / 255.0) ** g


def _brightness_contrast(t, rng):
    return (t - 128.0) * rng.uniform(0.8, 1.2) + 128.0 + rng.uniform(-30, 30)


def _invert(t, rng):
    return 255.0 - t


def _posterize(t, rng):
    step = 2 ** (8 - int(rng.integers(4, 8)))
    return np.floor(t / step) * step


def _solarize(t, rng):
    thr = rng.uniform(32, 128)
    return np.where(t >= 255 - thr, 255.0 - t, t)


def _rotate(t, rng):
    return rotate(t, float(rng.uniform(-45, 45)))


AUGMENTATIONS = (_gamma, _brightness_contrast, _invert, _posterize, _solarize, _rotate)


def augment_texture(texture: np.ndarray, rng: np.random.Generator, num_ops: int = 3) -> np.ndarray:
    """Apply ``num_ops`` distinct colour / geometry operations in random order.

    Args:
        texture: (H, W, 3) uint8.
        rng: random generator.
        num_ops: how many of :data:`AUGMENTATIONS`.

    Returns:
        (H, W, 3) uint8.
    """
    t = texture.astype(np.float32)
    for i in rng.permutation(len(AUGMENTATIONS))[:num_ops]:
        t = np.clip(AUGMENTATIONS[i](t, rng), 0, 255)
    return np.clip(np.rint(t), 0, 255).astype(np.uint8)


class ProceduralTexture:
    """Fractal Perlin noise between two random colours, with random stripes.

    A texture is ``c0 + (c1 - c0) * t`` with ``t`` the fractal noise (2^1 to
    2^4 base cells, ``octaves`` octaves) rescaled to [0, 1]; with probability
    ``stripes`` a sine grating of random period (4 to 32 px) and direction is
    averaged into ``t``. The project's own source, used where no texture
    images are at hand.

    Args:
        octaves: octaves of the fractal noise.
        stripes: probability of the grating.
        augment: apply :func:`augment_texture` to the result.
    """

    def __init__(self, octaves: int = 4, stripes: float = 0.5, augment: bool = True):
        self.octaves = int(octaves)
        self.stripes = float(stripes)
        self.augment = bool(augment)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = image.shape[:2]
        res = 2 ** rng.integers(1, 5, size=2)
        t = fractal_noise((h, w), res, rng, octaves=self.octaves)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)  # (H, W) in [0, 1]
        if rng.random() < self.stripes:
            period, theta = rng.uniform(4, 32), rng.uniform(0, np.pi)
            yy, xx = np.mgrid[:h, :w]
            grating = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta))
                                         / period)
            t = 0.5 * (t + grating)
        c0, c1 = rng.uniform(0, 255, (2, 3))
        tex = c0 + (c1 - c0) * t[..., None]  # (H, W, 3)
        tex = np.clip(np.rint(tex), 0, 255).astype(np.uint8)
        return augment_texture(tex, rng) if self.augment else tex

    def __repr__(self) -> str:
        return f'ProceduralTexture(octaves={self.octaves}, stripes={self.stripes})'


class SelfTexture:
    """The image itself as texture: cyclically shifted by a quarter to three
    quarters of each side, flipped at random and colour-augmented."""

    def __init__(self, augment: bool = True):
        self.augment = bool(augment)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = image.shape[:2]
        dy = int(rng.integers(h // 4, max(h // 4 + 1, 3 * h // 4)))
        dx = int(rng.integers(w // 4, max(w // 4 + 1, 3 * w // 4)))
        tex = np.roll(image, (dy, dx), axis=(0, 1))
        if rng.random() < 0.5:
            tex = tex[:, ::-1]
        if rng.random() < 0.5:
            tex = tex[::-1]
        tex = np.ascontiguousarray(tex)
        return augment_texture(tex, rng) if self.augment else tex

    def __repr__(self) -> str:
        return 'SelfTexture()'


class FolderTexture:
    """Texture images from a folder (searched recursively, sorted), resized
    to the image. Every file is read once when the source is built, so a bad
    file stops the run before training with an error naming it.

    Args:
        root: the folder.
        augment: apply :func:`augment_texture`.
        max_side: textures are stored with their longer side at most this.
    """

    def __init__(self, root: str, augment: bool = True, max_side: int = 512):
        if not osp.isdir(root):
            raise FileNotFoundError(f'FolderTexture: texture folder {root!r} does not exist')
        paths: List[str] = sorted(
            osp.join(d, f) for d, _, files in os.walk(root) for f in files
            if is_image_file(osp.join(d, f)))
        if not paths:
            raise ValueError(f'FolderTexture: no image files in {root!r}')
        self.root, self.augment, self.paths = root, bool(augment), paths
        self.textures = [self._read(p, max_side) for p in paths]

    @staticmethod
    def _read(path: str, max_side: int) -> np.ndarray:
        try:
            img = read_image(path)  # (H, W, 3) uint8
        except (OSError, ValueError) as err:
            raise ValueError(f'FolderTexture: texture file {path!r} cannot be used: {err}') \
                from err
        scale = max_side / max(img.shape[:2])
        if scale < 1:
            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        return img

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = image.shape[:2]
        tex = self.textures[int(rng.integers(len(self.textures)))]
        tex = cv2.resize(tex, (w, h), interpolation=cv2.INTER_LINEAR)
        return augment_texture(tex, rng) if self.augment else tex

    def __repr__(self) -> str:
        return f'FolderTexture(root={self.root!r}, {len(self.paths)} files)'


def build_texture_source(cfg) -> object:
    """``'procedural'``, ``'self'``, a folder path, a dict (``type`` one of
    ``'procedural'``, ``'self'``, ``'folder'`` plus the class's arguments) or
    a callable ``(image, rng) -> texture``."""
    if callable(cfg):
        return cfg
    if isinstance(cfg, str):
        cfg = {'procedural': dict(type='procedural'), 'self': dict(type='self')}.get(
            cfg, dict(type='folder', root=cfg))
    cfg = dict(cfg)
    kind = cfg.pop('type', None)
    classes = {'procedural': ProceduralTexture, 'self': SelfTexture, 'folder': FolderTexture}
    if kind not in classes:
        raise ValueError(f"texture source type must be one of {sorted(classes)}, got {kind!r}")
    return classes[kind](**cfg)

