"""Reading images and ground-truth masks from disk.

Files are read by NumPy (any path, non-ASCII and non-UTF-8 names included)
and decoded by OpenCV (``cv2.IMREAD_UNCHANGED``); a file OpenCV cannot decode
is tried with Pillow (ICO, TGA, tiled TIFF, ...); see
:mod:`~anomaly_plugin.datasets.decoding`. Every failure is a
:class:`BadImageError` (or ``FileNotFoundError``) whose message names the
file and says what is wrong:

* ``format/mode not supported: <what>``: a valid file of a kind the models
  cannot take (floating-point pixels, more than 4 channels, ...);
* ``corrupt or truncated``: no reader recognises the file, or its header is
  valid and its data is not;
* ``corrupt JPEG data``: libjpeg decoded the file only partly (its warning,
  e.g. "premature end of data segment", tied to the file). With
  ``strict=True`` (what the datasets use) this is an error; otherwise the
  image is returned and the warning reported with it.

Warnings that leave the image usable (logged once per file and process, and
returned by :func:`load_image`): several frames (the first is used), a
16-bit image that uses under 1 % of its range (it reads as nearly black
after the 16 -> 8 bit scaling).

Pixels are taken as stored unless ``exif_orientation=True``: EXIF
orientation tags are not applied by default, which keeps an image and its
mask aligned when both were written by the same tool (industrial cameras
write no orientation; a phone photo may need it).
"""
import os
from typing import List, NamedTuple, Optional

import numpy as np

from .decoding import (  # noqa: F401  (re-exported: the readers' errors and checks)
    BadImageError,
    apply_orientation,
    decode_file,
    display_path,
    probe_image,
    warn_once,
)

#: File extensions (lower case, with dot) recognised as images or masks.
IMAGE_EXTENSIONS = frozenset({
    '.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.pgm', '.ppm', '.pbm',
    '.pnm', '.gif', '.tga', '.ico', '.pfm'
})


class LoadedImage(NamedTuple):
    """An image read by :func:`load_image`.

    Attributes:
        img: (H, W, 3) uint8 RGB.
        warnings: what was noticed while reading (empty when nothing).
    """

    img: np.ndarray
    warnings: List[str]


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


def load_image(path: str, strict: bool = True,
               exif_orientation: bool = False) -> LoadedImage:
    """Read an image as RGB, with what was noticed while reading it.

    Conversions: gray -> 3 equal channels; gray + alpha -> gray; RGBA/BGRA
    -> the alpha channel is dropped (colour values kept as stored, not
    blended); 16-bit -> 8-bit by ``round(x / 257)``; several frames -> the
    first. Floating-point images are rejected.

    Args:
        path: image file.
        strict: a JPEG that libjpeg decodes only partly is an error (False:
            the partly decoded image is returned with a warning).
        exif_orientation: apply the EXIF orientation tag (default: pixels
            as stored).

    Returns:
        :class:`LoadedImage`: ``img`` (H, W, 3) uint8 RGB and ``warnings``.

    Raises:
        FileNotFoundError: the file does not exist.
        BadImageError: the file is empty, not a regular file, cannot be
            decoded, or has an unsupported pixel type or channel count.
    """
    arr, warnings = decode_file(path, 'Image', strict, exif_orientation)
    return LoadedImage(_to_rgb_uint8(arr), warnings)


def read_image(path: str, strict: bool = True, exif_orientation: bool = False) -> np.ndarray:
    """:func:`load_image`'s image alone: (H, W, 3) uint8 RGB."""
    return load_image(path, strict, exif_orientation).img


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
        BadImageError: the file cannot be decoded or has an unsupported type.
    """
    arr, _ = decode_file(path, 'Mask')
    if arr.ndim == 3:
        colour = arr[:, :, :1] if arr.shape[2] == 2 else arr[:, :, :3]
        arr = colour.max(axis=2)  # (H, W), any channel counts
    if threshold is None:
        threshold = 0 if arr.max() <= 1 else np.iinfo(arr.dtype).max // 2
    return (arr > threshold).astype(np.uint8)
