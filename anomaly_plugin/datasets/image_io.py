"""Reading images and ground-truth masks from disk.

Both readers decode with OpenCV (``cv2.IMREAD_UNCHANGED``) from bytes read by
NumPy, so any path (including non-ASCII ones) and any format OpenCV can
decode works. Pixels are taken as stored: EXIF orientation tags are not
applied, which keeps an image and its mask aligned when both were written
by the same tool.
"""
import os
from typing import Optional

import cv2
import numpy as np

#: File extensions (lower case, with dot) recognised as images or masks.
IMAGE_EXTENSIONS = frozenset({
    '.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.pgm', '.ppm'
})


def is_image_file(path: str) -> bool:
    """Whether ``path`` names a visible file with an image extension.

    Args:
        path: a file name or path; only its base name is inspected.

    Returns:
        True when the extension (any case) is in :data:`IMAGE_EXTENSIONS`
        and the name does not start with a dot.
    """
    name = os.path.basename(path)
    if name.startswith('.'):
        return False
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _decode(path: str, what: str) -> np.ndarray:
    """Decode ``path`` with all its channels and bit depth."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f'{what} file not found: {path!r}')
    if not os.path.isfile(path):
        raise ValueError(f'{what} path is not a file: {path!r}')
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise ValueError(f'Cannot read {what} file {path!r}: {err}') from err
    if buf.size == 0:
        raise ValueError(f'{what} file {path!r} is empty (0 bytes)')
    try:
        arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as err:
        arr = None
        detail = f': {err}'
    else:
        detail = ''
    if arr is None or arr.size == 0:
        raise ValueError(
            f'Cannot decode {what} file {path!r}: not a valid image or a '
            f'format OpenCV cannot read (corrupt or truncated?){detail}')
    if np.issubdtype(arr.dtype, np.floating):
        raise ValueError(
            f'{what} file {path!r} holds floating-point pixels ({arr.dtype}); '
            'only 8-bit and 16-bit unsigned integer images are supported, '
            'convert it first')
    if arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f'{what} file {path!r} has unsupported pixel type {arr.dtype}; '
            'only 8-bit and 16-bit unsigned integer images are supported')
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (2, 3, 4)):
        raise ValueError(
            f'{what} file {path!r} has unsupported shape {arr.shape}; '
            'expected 1 to 4 channels')
    return arr


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale 16-bit values to 8 bit (``round(x / 257)``), keep 8-bit ones."""
    if arr.dtype == np.uint16:
        # round(x / 257) maps 0 -> 0, 65535 -> 255 and 257 * k -> k exactly.
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return arr


def _to_rgb_uint8(arr: np.ndarray) -> np.ndarray:
    """Convert a decoded OpenCV array to (H, W, 3) uint8 RGB.

    Gray (H, W) is repeated over 3 channels; gray + alpha (H, W, 2) keeps the
    gray channel; BGR is reordered to RGB; BGRA drops the alpha channel
    (pixels are not composited over any background).
    """
    arr = _to_uint8(arr)
    if arr.ndim == 2:
        gray = arr
    elif arr.shape[2] == 2:
        gray = arr[:, :, 0]
    else:
        return np.ascontiguousarray(arr[:, :, 2::-1])  # BGR(A) -> (H, W, 3) RGB
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def as_rgb(image: np.ndarray, what: str = 'image') -> np.ndarray:
    """An image given as an array -> (H, W, 3) uint8 RGB.

    Args:
        image: (H, W), (H, W, 1) or (H, W, 3) uint8.
        what: how error messages name the array.

    Returns:
        The (H, W, 3) uint8 RGB array (gray repeated), contiguous.

    Raises:
        ValueError: another dtype or shape.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f'{what} must be uint8, got {image.dtype}')
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        return np.ascontiguousarray(np.repeat(image[..., None], 3, axis=2))
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'{what} must be (H, W) or (H, W, 3) RGB, got shape {image.shape}')
    return np.ascontiguousarray(image)


def read_image(path: str) -> np.ndarray:
    """Read an image as RGB.

    Conversions: gray -> 3 equal channels; gray + alpha -> gray; RGBA/BGRA
    -> the alpha channel is dropped (colour values kept as stored, not
    blended); 16-bit -> 8-bit by ``round(x / 257)``. Floating-point images
    are rejected.

    Args:
        path: image file.

    Returns:
        (H, W, 3) uint8 array in RGB order.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is empty, cannot be decoded, or has an
            unsupported pixel type or channel count.
    """
    return _to_rgb_uint8(_decode(path, 'Image'))


def read_mask(path: str, threshold: Optional[float] = None) -> np.ndarray:
    """Read a ground-truth mask and binarise it.

    A pixel is anomalous when any colour channel is ``> threshold`` (an
    alpha channel is ignored). Values are compared at the file's own bit
    depth, without rescaling.

    The default rule (``threshold=None``) reads both common encodings: a
    mask whose values are all 0 or 1 is a 0/1 mask (anomalous where 1);
    any other mask is thresholded at half the dtype's maximum (``> 127``
    for 8 bit, ``> 32767`` for 16 bit), so 0/255 masks and anti-aliased
    edges read as usual.

    Args:
        path: mask file, any channel count, 8 or 16 bit.
        threshold: binarisation threshold in the file's units; None for the
            default rule above.

    Returns:
        (H, W) uint8 array with values in {0, 1}.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded or has an unsupported type.
    """
    arr = _decode(path, 'Mask')
    if arr.ndim == 3:
        colour = arr[:, :, :1] if arr.shape[2] == 2 else arr[:, :, :3]
        arr = colour.max(axis=2)  # (H, W), any channel counts
    if threshold is None:
        threshold = 0 if arr.max() <= 1 else np.iinfo(arr.dtype).max // 2
    return (arr > threshold).astype(np.uint8)
