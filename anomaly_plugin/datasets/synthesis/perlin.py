"""Perlin gradient noise, vectorised in NumPy.

Used for the irregular shapes of synthetic anomalies (DRAEM's masks) and for
the procedural textures that fill them.
"""
from typing import Sequence, Tuple

import cv2
import numpy as np


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6 - 15) + 10)  # 6t^5 - 15t^4 + 10t^3


def perlin_noise(shape: Sequence[int], res: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """2-D Perlin noise (Perlin 2002, quintic fade) with ``res`` cells per axis.

    Args:
        shape: (H, W) of the output.
        res: (cells along H, cells along W), each >= 1.
        rng: the random generator of the gradient angles.

    Returns:
        (H, W) float32 noise, about in [-1, 1].
    """
    h, w = (int(v) for v in shape)
    ry, rx = (max(1, int(v)) for v in res)
    cy, cx = -(-h // ry), -(-w // rx)  # cell size in pixels (ceil): the grid covers H x W
    angles = rng.uniform(0, 2 * np.pi, (ry + 1, rx + 1))
    gy, gx = np.sin(angles), np.cos(angles)  # (ry+1, rx+1) unit gradients
    y = np.arange(h) / cy  # (H,) position in cells
    x = np.arange(w) / cx  # (W,)
    yi, xi = y.astype(np.int64), x.astype(np.int64)
    fy, fx = (y - yi)[:, None], (x - xi)[None, :]  # (H, 1), (1, W) offset in the cell

    def corner(oy: int, ox: int) -> np.ndarray:  # (H, W) dot product with a corner's gradient
        iy, ix = yi[:, None] + oy, xi[None, :] + ox
        return gy[iy, ix] * (fy - oy) + gx[iy, ix] * (fx - ox)

    uy, ux = _fade(fy), _fade(fx)
    top = corner(0, 0) * (1 - ux) + corner(0, 1) * ux
    bottom = corner(1, 0) * (1 - ux) + corner(1, 1) * ux
    return (np.sqrt(2) * (top * (1 - uy) + bottom * uy)).astype(np.float32)


def fractal_noise(shape: Sequence[int], res: Sequence[int], rng: np.random.Generator,
                  octaves: int = 3, persistence: float = 0.5) -> np.ndarray:
    """Sum of ``octaves`` Perlin noises, each at twice the previous frequency and
    ``persistence`` times its amplitude: (H, W) float32."""
    out = np.zeros(tuple(shape), np.float32)
    amp, total = 1.0, 0.0
    for k in range(octaves):
        out += amp * perlin_noise(shape, [r * 2 ** k for r in res], rng)
        total += amp
        amp *= persistence
    return out / total


def rotate(image: np.ndarray, angle: float, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Rotate about the centre by ``angle`` degrees, same size, reflected borders."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle, 1.0)
    return cv2.warpAffine(image, m, (w, h), flags=interpolation, borderMode=cv2.BORDER_REFLECT)


def perlin_mask(shape: Sequence[int], rng: np.random.Generator,
                scale_exp: Tuple[int, int] = (0, 6), threshold: float = 0.5,
                max_angle: float = 90.0) -> np.ndarray:
    """DRAEM's anomaly shape: Perlin noise with ``2^a x 2^b`` cells (``a``, ``b``
    drawn independently from ``[scale_exp[0], scale_exp[1])``), rotated by an
    angle uniform in ``+-max_angle`` degrees and thresholded.

    Args:
        shape: (H, W).
        rng: random generator.
        scale_exp: half-open range of the per-axis exponents.
        threshold: noise above it is the anomaly.
        max_angle: largest rotation in degrees.

    Returns:
        (H, W) bool mask (may be empty).
    """
    a, b = rng.integers(scale_exp[0], scale_exp[1], size=2)
    noise = perlin_noise(shape, (2 ** int(a), 2 ** int(b)), rng)
    noise = rotate(noise, float(rng.uniform(-max_angle, max_angle)))
    return noise > threshold
