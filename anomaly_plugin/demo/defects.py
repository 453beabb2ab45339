"""Synthetic defects with exact masks for the demo data set.

Each painter returns ``(image, mask)``: the mask is exactly the set of pixels
the defect changed. Every pixel outside it keeps its value, every pixel inside
changes by at least ``MIN_CHANGE`` gray levels. Each painter draws a boolean
shape and a float target image; ``_compose`` turns them into the defective
tile and its exact mask.
"""
import cv2
import numpy as np

DEFECT_TYPES = ('scratch', 'stain', 'foreign', 'hole')
# Smallest gray-level change of a defective pixel.
MIN_CHANGE = 12


def _compose(clean, shape, target, min_change=MIN_CHANGE):
    """Write ``target`` into ``clean`` inside ``shape`` with a minimum change.

    Pixels whose target differs from the clean value by less than
    ``min_change`` are pushed to exactly ``min_change`` away (in the target's
    direction when possible), so the mask equals the set of changed pixels.

    Args:
        clean (np.ndarray): (T, T) uint8 clean tile.
        shape (np.ndarray): (T, T) bool region to paint.
        target (np.ndarray): (T, T) float desired values inside ``shape``.
        min_change (int): Smallest absolute change, 1..127.

    Returns:
        tuple[np.ndarray, np.ndarray]: (T, T) uint8 defective tile and
        (T, T) uint8 mask in {0, 255}.
    """
    orig = clean.astype(np.int16)  # (T, T)
    want = np.clip(np.rint(target), 0, 255).astype(np.int16)  # (T, T)
    diff = want - orig
    can_up = orig + min_change <= 255
    can_down = orig - min_change >= 0
    sign = np.where(diff > 0, 1, np.where(diff < 0, -1, np.where(can_up, 1, -1)))
    sign = np.where((sign > 0) & ~can_up, -1, sign)
    sign = np.where((sign < 0) & ~can_down, 1, sign)
    want = np.where(np.abs(diff) < min_change, orig + sign * min_change, want)
    out = np.where(shape, want, orig).astype(np.uint8)
    changed = out != clean
    if np.any(changed != shape):
        raise AssertionError('Defect painting changed pixels outside its mask '
                             'or left mask pixels unchanged.')
    return out, shape.astype(np.uint8) * 255


def _blob(size, frac, rng):
    """Irregular star-shaped filled polygon covering about ``frac`` of the tile.

    Returns:
        np.ndarray: (T, T) bool mask, never empty.
    """
    radius = max(2.0, np.sqrt(frac * size * size / np.pi))
    margin = int(np.ceil(radius * 1.4)) + 1
    lo, hi = min(margin, size // 2), max(size - margin, size // 2 + 1)
    cy, cx = rng.integers(lo, hi, size=2)
    n = int(rng.integers(10, 18))
    theta = np.sort(rng.uniform(0, 2 * np.pi, n))  # (n,)
    # Smooth radial wobble from a few low-frequency harmonics.
    wobble = np.zeros(n)
    for k in (2, 3, 5):
        wobble += rng.uniform(0.05, 0.2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    radii = radius * rng.uniform(0.8, 1.2) * np.clip(1 + wobble, 0.5, 1.4)
    stretch = rng.uniform(0.7, 1.3)
    pts = np.stack([cx + radii * np.cos(theta) * stretch,
                    cy + radii * np.sin(theta) / stretch], axis=1)  # (n, 2) x, y
    canvas = np.zeros((size, size), np.uint8)
    cv2.fillPoly(canvas, [np.rint(pts).astype(np.int32)], 1, lineType=cv2.LINE_8)
    if not canvas.any():
        canvas[cy, cx] = 1
    return canvas.astype(bool)


def paint_scratch(clean, rng):
    """Thin bright or dark straight/curved line segments.

    Args:
        clean (np.ndarray): (T, T) uint8 clean tile.
        rng (np.random.Generator): Random generator.

    Returns:
        tuple[np.ndarray, np.ndarray]: defective tile and {0, 255} mask.
    """
    size = clean.shape[0]
    canvas = np.zeros_like(clean)
    thickness = 1 if size < 96 else int(rng.integers(1, 3))
    for _ in range(int(rng.integers(1, 3))):
        length = rng.uniform(0.3, 0.6) * size
        angle = rng.uniform(0, np.pi)
        mid = rng.uniform(0.3 * size, 0.7 * size, size=2)  # (x, y)
        d = 0.5 * length * np.array([np.cos(angle), np.sin(angle)])
        p0, p2 = mid - d, mid + d
        bend = rng.uniform(-0.25, 0.25) * length
        p1 = mid + bend * np.array([-np.sin(angle), np.cos(angle)])
        t = np.linspace(0, 1, 24)[:, None]  # (24, 1)
        curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2  # (24, 2)
        curve = np.clip(np.rint(curve), 0, size - 1).astype(np.int32)
        cv2.polylines(canvas, [curve], False, 1, thickness=thickness,
                      lineType=cv2.LINE_8)
    shape = canvas.astype(bool)
    level = 235.0 if rng.random() < 0.5 else 20.0
    alpha = rng.uniform(0.6, 0.85)
    target = clean * (1 - alpha) + level * alpha
    return _compose(clean, shape, target)


def paint_stain(clean, rng):
    """Smooth translucent darkening/brightening blob with a hard edge.

    Args:
        clean (np.ndarray): (T, T) uint8 clean tile.
        rng (np.random.Generator): Random generator.

    Returns:
        tuple[np.ndarray, np.ndarray]: defective tile and {0, 255} mask.
    """
    shape = _blob(clean.shape[0], rng.uniform(0.02, 0.06), rng)
    dist = cv2.distanceTransform(shape.astype(np.uint8), cv2.DIST_L2, 3)
    ramp = dist / max(float(dist.max()), 1.0)  # (T, T) 0 at edge .. 1 at center
    ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep
    alpha = rng.uniform(0.3, 0.4) + rng.uniform(0.25, 0.4) * ramp
    level = 25.0 if rng.random() < 0.6 else 215.0
    target = clean * (1 - alpha) + level * alpha
    return _compose(clean, shape, target)


def paint_foreign(clean, rng, source):
    """Paste an irregular patch of another texture photograph.

    The patch is matched to the tile's mean and contrast so that it differs in
    structure rather than in brightness.

    Args:
        clean (np.ndarray): (T, T) uint8 clean tile.
        rng (np.random.Generator): Random generator.
        source (np.ndarray): (H, W) uint8 photograph of another texture.

    Returns:
        tuple[np.ndarray, np.ndarray]: defective tile and {0, 255} mask.
    """
    size = clean.shape[0]
    shape = _blob(size, rng.uniform(0.03, 0.07), rng)
    y = int(rng.integers(0, source.shape[0] - size + 1))
    x = int(rng.integers(0, source.shape[1] - size + 1))
    patch = source[y:y + size, x:x + size].astype(np.float64)  # (T, T)
    patch = (patch - patch.mean()) / max(patch.std(), 1.0)
    target = clean.mean() + rng.uniform(-15, 15) + patch * clean.std() * 1.1
    return _compose(clean, shape, target)


def paint_hole(clean, rng):
    """Dark filled ellipse with a lighter one- or two-pixel rim.

    Args:
        clean (np.ndarray): (T, T) uint8 clean tile.
        rng (np.random.Generator): Random generator.

    Returns:
        tuple[np.ndarray, np.ndarray]: defective tile and {0, 255} mask.
    """
    size = clean.shape[0]
    area = rng.uniform(0.015, 0.04) * size * size
    ratio = rng.uniform(0.6, 1.0)
    a = max(2.0, np.sqrt(area / (np.pi * ratio)))
    b = max(1.5, a * ratio)
    rim = 1 if size < 96 else int(rng.integers(1, 3))
    margin = int(np.ceil(a)) + rim + 1
    lo, hi = min(margin, size // 2), max(size - margin, size // 2 + 1)
    cy, cx = rng.integers(lo, hi, size=2)
    inner = np.zeros_like(clean)
    cv2.ellipse(inner, (int(cx), int(cy)), (int(round(a)), int(round(b))),
                float(rng.uniform(0, 180)), 0, 360, 1, thickness=-1,
                lineType=cv2.LINE_8)
    inner = inner.astype(bool)
    kernel = np.ones((2 * rim + 1, 2 * rim + 1), np.uint8)
    outer = cv2.dilate(inner.astype(np.uint8), kernel).astype(bool)
    # A faint trace of the texture stays visible at the bottom of the hole.
    floor = rng.uniform(5, 20) + rng.uniform(0.1, 0.3) * clean  # (T, T)
    noise = rng.normal(0, 3, clean.shape)  # (T, T)
    target = np.where(inner, floor + noise, np.minimum(clean + 45.0, 255.0))
    return _compose(clean, outer, target)


def paint_defect(clean, defect_type, rng, source=None):
    """Paint one defect of the given type.

    Args:
        clean (np.ndarray): (T, T) uint8 clean tile.
        defect_type (str): One of ``DEFECT_TYPES``.
        rng (np.random.Generator): Random generator.
        source (np.ndarray, optional): (H, W) uint8 other texture photograph,
            required for ``'foreign'``.

    Returns:
        tuple[np.ndarray, np.ndarray]: (T, T) uint8 defective tile and
        (T, T) uint8 mask in {0, 255}; pixels are changed exactly where the
        mask is 255.
    """
    if clean.ndim != 2 or clean.dtype != np.uint8 or clean.shape[0] != clean.shape[1]:
        raise ValueError(f'Expected a square (T, T) uint8 tile, got {clean.dtype} '
                         f'{clean.shape}.')
    if defect_type == 'scratch':
        return paint_scratch(clean, rng)
    if defect_type == 'stain':
        return paint_stain(clean, rng)
    if defect_type == 'foreign':
        if source is None:
            raise ValueError("defect_type 'foreign' needs a source photograph.")
        return paint_foreign(clean, rng, source)
    if defect_type == 'hole':
        return paint_hole(clean, rng)
    raise ValueError(f'Unknown defect type {defect_type!r}; choose from '
                     f'{DEFECT_TYPES}.')
