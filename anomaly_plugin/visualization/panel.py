"""Image | heat-map overlay | predicted mask | ground-truth mask panels."""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np


def resize_map(amap: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """(h, w) float map -> (H, W) float32 with bilinear interpolation."""
    amap = np.asarray(amap, np.float32)
    if tuple(amap.shape) == tuple(shape):
        return amap
    return cv2.resize(amap, (int(shape[1]), int(shape[0])),
                      interpolation=cv2.INTER_LINEAR)


def colorize(amap: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """Map scores to a JET heat-map with a fixed scale.

    Args:
        amap: (H, W) scores.
        vmin, vmax: the colour scale (shared by the whole run).

    Returns:
        (H, W, 3) uint8 RGB.
    """
    span = max(float(vmax) - float(vmin), 1e-12)
    u8 = np.clip((amap - vmin) / span * 255.0, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def _mask_tile(mask: Optional[np.ndarray], shape, text: str) -> np.ndarray:
    if mask is None:
        tile = np.full((*shape, 3), 64, np.uint8)
        cv2.putText(tile, text, (4, shape[0] // 2), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, (255, 255, 255), 1, cv2.LINE_AA)
        return tile
    return np.repeat((mask > 0).astype(np.uint8)[..., None] * 255, 3, axis=2)


def render_panel(image: np.ndarray, amap: np.ndarray, vmin: float, vmax: float,
                 pred_mask: Optional[np.ndarray] = None,
                 gt_mask: Optional[np.ndarray] = None, title: str = '',
                 alpha: float = 0.5) -> np.ndarray:
    """Four tiles side by side, all at the image's size.

    Args:
        image: (H, W, 3) uint8 RGB.
        amap: (H, W) anomaly map at the image's size.
        vmin, vmax: colour scale of the heat-map.
        pred_mask, gt_mask: (H, W) masks, or None (drawn as a grey tile).
        title: text written above the tiles.
        alpha: weight of the heat-map in the overlay.

    Returns:
        (H + 20, 4 * W, 3) uint8 RGB.
    """
    h, w = image.shape[:2]
    if amap.shape != (h, w):
        raise ValueError(f'anomaly map {amap.shape} does not match image {(h, w)}')
    overlay = cv2.addWeighted(image, 1.0 - alpha, colorize(amap, vmin, vmax), alpha, 0)
    tiles = [image, overlay, _mask_tile(pred_mask, (h, w), 'no threshold'),
             _mask_tile(gt_mask, (h, w), 'no mask')]
    row = np.concatenate(tiles, axis=1)
    header = np.zeros((20, row.shape[1], 3), np.uint8)
    cv2.putText(header, title, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([header, row], axis=0)


def colour_scale(post, lo: Optional[float] = None,
                 hi: Optional[float] = None) -> Tuple[Optional[float], Optional[float]]:
    """The colour scale ``(vmin, vmax)`` of heat-maps, one rule for every tool.

    Args:
        post: the model's ``AnomalyPostProcessor``.
        lo, hi: the maps' own range, used without a calibration (None: each
            map's own minimum / maximum, as the visualizer does).

    Returns:
        The checkpoint's calibrated pixel range when it has one, else ``(lo, hi)``.
    """
    if post.has_normalization:
        return float(post.pixel_min), float(post.pixel_max)
    return lo, hi
