"""Reading images and ground-truth masks from disk.

Files are read by NumPy (any path, non-ASCII and non-UTF-8 names included)
and decoded by OpenCV (``cv2.IMREAD_UNCHANGED``); a file OpenCV cannot decode
is tried with Pillow (ICO, TGA, tiled TIFF, ...). Every failure is a
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
import io
import logging
import os
import stat
import sys
import tempfile
import threading
from typing import List, NamedTuple, Optional, Tuple

import cv2
import numpy as np
from mmengine.logging import print_log

#: File extensions (lower case, with dot) recognised as images or masks.
IMAGE_EXTENSIONS = frozenset({
    '.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.pgm', '.ppm', '.pbm',
    '.pnm', '.gif', '.tga', '.ico', '.pfm'
})

#: a 16-bit image whose largest value is below this share of 65535 is warned about
LOW_RANGE_SHARE = 0.01

#: EXIF tag number of the orientation
_EXIF_ORIENTATION = 0x0112

_JPEG_MAGIC = b'\xff\xd8\xff'
_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
_MULTI_FRAME_MAGIC = (b'GIF8', b'II*\x00', b'MM\x00*', b'RIFF')
#: the beginnings of libjpeg's warnings about damaged data
_JPEG_WARNINGS = ('Corrupt JPEG data', 'Premature end of JPEG file', 'Invalid SOS',
                  'Warning:')

_WARNED = set()
#: Pillow image modes that convert to 8- or 16-bit gray, RGB or RGBA
_PILLOW_MODES = frozenset({'1', 'L', 'P', 'RGB', 'RGBA', 'LA', 'PA', 'CMYK', 'YCbCr', 'I;16',
                           'I;16B', 'I;16L'})


class BadImageError(ValueError):
    """A file that cannot be used as an image or mask.

    Attributes:
        path: the file.
        reason: what is wrong, without the file name.
    """

    def __init__(self, path: str, reason: str, what: str = 'Image'):
        self.path = os.fspath(path)
        self.reason = reason
        self.what = what
        super().__init__(f"{what} file '{display_path(self.path)}': {reason}")

    def __reduce__(self):  # picklable and copyable (DataLoader workers, deepcopy)
        return type(self), (self.path, self.reason, self.what)


class LoadedImage(NamedTuple):
    """An image read by :func:`load_image`.

    Attributes:
        img: (H, W, 3) uint8 RGB.
        warnings: what was noticed while reading (empty when nothing).
    """

    img: np.ndarray
    warnings: List[str]


def display_path(path) -> str:
    """``path`` as printable text: bytes that are not UTF-8 (a Linux file name
    may hold any) are written as ``\\xNN`` escapes, so the text can always be
    printed and written to UTF-8 files."""
    if isinstance(path, bytes):
        return path.decode('utf-8', 'backslashreplace')
    path = os.fspath(path)
    try:
        path.encode('utf-8')
        return path
    except UnicodeEncodeError:
        return os.fsencode(path).decode('utf-8', 'backslashreplace')


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


def warn_once(path: str, message: str) -> None:
    """Log ``message`` about ``path`` as a warning, once per file and message
    in this process."""
    key = (path, message)
    if key in _WARNED:
        return
    _WARNED.add(key)
    print_log(f"'{display_path(path)}': {message}", logger='current', level=logging.WARNING)


class _StderrCapture:
    """Catch what C libraries print to file descriptor 2 during a call.

    libjpeg reports damaged data only as a printed warning; this ties it to
    the file being decoded. One temporary file per process is reused. File
    descriptor 2 is shared by the threads of a process, so captures are
    serialised by a lock: decoding through this module in several threads of
    one process runs one file at a time (DataLoader workers are processes and
    are not affected).
    """

    _file = None
    _pid = None
    _lock = threading.Lock()

    def __call__(self, fn):
        with self._lock:
            if self._pid != os.getpid():
                type(self)._file = tempfile.TemporaryFile()
                type(self)._pid = os.getpid()
            f = self._file
            f.seek(0)
            f.truncate()
            try:
                sys.stderr.flush()
            except (OSError, ValueError, AttributeError):
                pass
            saved = os.dup(2)
            os.dup2(f.fileno(), 2)
            try:
                result = fn()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            f.seek(0)
            return result, f.read().decode('utf-8', 'replace')


_capture_stderr = _StderrCapture()


def _read_bytes(path: str, what: str) -> np.ndarray:
    """The bytes of ``path`` (a regular, readable, non-empty file)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise BadImageError(path, 'a symbolic link to a missing file', what) from None
        raise FileNotFoundError(f'{what} file not found: {display_path(path)!r}') from None
    except OSError as err:  # e.g. a link to itself: too many levels of links
        raise BadImageError(path, f'cannot be opened: {err.strerror or err}', what) from err
    if stat.S_ISDIR(st.st_mode):
        raise BadImageError(path, 'path is not a file (a folder)', what)
    if not stat.S_ISREG(st.st_mode):
        raise BadImageError(path, 'path is not a file (a FIFO, socket or device), '
                            'not read', what)
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise BadImageError(path, f'cannot be read: {err.strerror or err}', what) from err
    if buf.size == 0:
        raise BadImageError(path, 'is empty (0 bytes)', what)
    return buf


def _pillow_decode(buf: np.ndarray, path: str, what: str, decode: bool = True,
                   detail: str = '') -> np.ndarray:
    """Decode with Pillow what OpenCV could not; classify the failure.

    Args:
        buf: the file's bytes.
        path, what: name the file in errors.
        decode: return Pillow's pixels when it decodes them (False for PNG
            and JPEG: OpenCV's libpng/libjpeg are the reference, a file they
            reject is damaged even when Pillow is more lenient).
        detail: what OpenCV's decoder printed, added to the reason.

    Returns:
        The pixels as OpenCV would give them (gray, BGR or BGRA; uint8 or
        uint16).

    Raises:
        BadImageError: ``format/mode not supported`` for a valid file of a
            kind that cannot be used, ``corrupt or truncated`` otherwise.
    """
    from PIL import Image, UnidentifiedImageError
    detail = f' ({detail})' if detail else ''
    try:
        im = Image.open(io.BytesIO(buf.tobytes()))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise BadImageError(path, _header_only_reason(buf) + detail, what) from None
    kind = f'{im.format} {im.size[0]}x{im.size[1]} mode {im.mode}'
    try:
        im.load()
    except Exception as err:  # noqa: BLE001  (Pillow raises many kinds)
        raise BadImageError(path, f'corrupt or truncated: the {kind} header is valid but '
                            f'its data cannot be decoded ({err}){detail}', what) from None
    if not decode:
        raise BadImageError(path, f'corrupt or truncated: the {kind} header is valid but '
                            f'the decoder rejects its data{detail}', what)
    if im.mode in _PILLOW_MODES:
        if im.mode in ('1', 'P', 'PA', 'CMYK', 'YCbCr'):
            im = im.convert('RGBA' if 'A' in im.mode or 'transparency' in im.info else 'RGB')
        arr = np.asarray(im)
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8) * 255
        if arr.dtype.byteorder == '>':
            arr = arr.astype(arr.dtype.newbyteorder('='))
        if arr.ndim == 3 and arr.shape[2] in (3, 4):
            arr = arr[:, :, [2, 1, 0, 3][:arr.shape[2]]]  # RGB(A) -> BGR(A), as OpenCV
        return np.ascontiguousarray(arr)
    raise BadImageError(path, f'format/mode not supported: {kind} (use 8- or 16-bit '
                        'gray, RGB or RGBA)', what)


def _header_only_reason(buf: np.ndarray) -> str:
    """Why a file no decoder takes failed: a TIFF header that says what it
    holds, or corrupt/not an image."""
    head = buf[:4].tobytes()
    if head in (b'II*\x00', b'MM\x00*'):
        try:
            import tifffile
            with tifffile.TiffFile(io.BytesIO(buf.tobytes())) as tif:
                page = tif.pages[0]
                return (f'format/mode not supported: TIFF with {page.samplesperpixel} '
                        f'sample(s) per pixel of type {page.dtype} (use 8- or 16-bit gray, '
                        'RGB or RGBA)')
        except Exception:  # noqa: BLE001  (no tifffile, or not a valid TIFF either)
            pass
    return ('corrupt or truncated: cannot decode it, no image reader recognises its '
            'contents (not an image?)')


def _frame_count(buf: np.ndarray) -> int:
    """Frames in a GIF, TIFF or WebP file (1 for other formats or on doubt)."""
    if not buf[:4].tobytes().startswith(_MULTI_FRAME_MAGIC):
        return 1
    from PIL import Image
    try:
        with Image.open(io.BytesIO(buf.tobytes())) as im:
            return int(getattr(im, 'n_frames', 1))
    except Exception:  # noqa: BLE001
        return 1


def _exif_orientation(buf: np.ndarray) -> int:
    """The EXIF orientation (1-8) of an encoded image; 1 when it has none."""
    from PIL import Image
    try:
        with Image.open(io.BytesIO(buf.tobytes())) as im:
            value = int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001
        return 1
    return value if 1 <= value <= 8 else 1


def apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Turn pixels as stored into the image an EXIF ``orientation`` (1-8) shows.

    Args:
        arr: (H, W) or (H, W, C).
        orientation: the EXIF value; 1 leaves ``arr`` as it is.

    Returns:
        The displayed image ((W, H, ...) for orientations 5-8).
    """
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: a[::-1].swapaxes(0, 1),  # 90 degrees clockwise
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: a[:, ::-1].swapaxes(0, 1),  # 90 degrees counter-clockwise
    }
    return np.ascontiguousarray(ops[orientation](arr))


def _decode(path: str, what: str, strict: bool = True,
            exif_orientation: bool = False) -> Tuple[np.ndarray, List[str]]:
    """Decode ``path`` with all its channels and bit depth.

    Returns:
        ``(array, warnings)``: gray (H, W), gray + alpha, BGR or BGRA pixels,
        uint8 or uint16; what was noticed while decoding.
    """
    path = os.fspath(path)
    buf = _read_bytes(path, what)
    warnings = []
    head = buf[:8].tobytes()
    is_jpeg, is_png = head.startswith(_JPEG_MAGIC), head.startswith(_PNG_MAGIC)

    def decode():
        try:
            return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        except cv2.error:
            return None

    # libjpeg / libpng report damage only by printing it; OpenCV logs its failures
    arr, text = _capture_stderr(decode)
    printed = [line.strip() for line in text.splitlines() if line.strip()]
    failed = arr is None or arr.size == 0
    damage = [line for line in printed if line.startswith(_JPEG_WARNINGS)] if is_jpeg else (
        [line for line in printed if line.startswith('libpng')] if failed else [])
    if not failed:  # what a decoder printed about a file it read is not ours to swallow
        other = [line for line in printed if line not in damage]
        if other:
            print('\n'.join(other), file=sys.stderr)
    if failed:
        arr = _pillow_decode(buf, path, what, decode=not (is_jpeg or is_png),
                             detail='; '.join(damage))
    elif damage:
        reason = ('corrupt JPEG data, the decoder filled in what it could not read: '
                  + '; '.join(damage))
        if strict:
            raise BadImageError(path, reason, what)
        warnings.append(reason)
    if np.issubdtype(arr.dtype, np.floating):
        raise BadImageError(path, f'format/mode not supported: floating-point pixels '
                            f'({arr.dtype}); only 8-bit and 16-bit unsigned integer images '
                            'are supported, convert it first', what)
    if arr.dtype not in (np.uint8, np.uint16):
        raise BadImageError(path, f'format/mode not supported: pixel type {arr.dtype}; only '
                            '8-bit and 16-bit unsigned integer images are supported', what)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (2, 3, 4)):
        raise BadImageError(path, f'format/mode not supported: shape {arr.shape}, '
                            'expected 1 to 4 channels', what)
    frames = _frame_count(buf)
    if frames > 1:
        warnings.append(f'{frames} frames: only the first is used')
    if what == 'Image' and arr.dtype == np.uint16 and arr.max() < LOW_RANGE_SHARE * 65535:
        warnings.append(f'16-bit image whose largest value is {int(arr.max())} (under '
                        f'{LOW_RANGE_SHARE:.0%} of the 16-bit range): scaled to 8 bit it is '
                        'nearly black; store it as 8 bit or rescale it')
    if exif_orientation:
        arr = apply_orientation(arr, _exif_orientation(buf))
    for w in warnings:
        warn_once(path, w)
    return arr, warnings


def _ends_complete(path: str, head: bytes) -> bool:
    """Whether a PNG ends with its IEND chunk, a JPEG with its EOI marker
    (other formats: True). Reads the last bytes only."""
    if head.startswith(_PNG_MAGIC):
        end, tail = b'IEND\xaeB`\x82', 8
    elif head.startswith(_JPEG_MAGIC):
        end, tail = b'\xff\xd9', 2
    else:
        return True
    with open(path, 'rb') as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(f.tell() - tail, 0))
        return f.read(tail) == end


def probe_image(path: str, what: str = 'Image') -> Tuple[int, int]:
    """Check ``path`` cheaply, without decoding its pixels when it looks sound.

    It must be a regular, readable, non-empty file whose header parses, and
    a PNG must end with its IEND chunk, a JPEG with its end marker. A file
    whose header Pillow does not know, or whose end is not the expected one
    (a truncated file, or a JPEG with data appended after the image), is
    decoded in full (``strict``) to decide. Damage inside the data of an
    otherwise complete file is found only by decoding it.

    Args:
        path: an image or mask file.
        what: how messages name the file ('Image', 'Mask').

    Returns:
        The (H, W) of the image.

    Raises:
        FileNotFoundError, BadImageError: as :func:`read_image`.
    """
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode) or st.st_size == 0:
        _read_bytes(path, what)  # raises the error that says what is wrong
    from PIL import Image
    try:
        with Image.open(path) as im:
            w, h = im.size
            mode = im.mode
            head = im.fp.seek(0) or im.fp.read(8)
        if mode in _PILLOW_MODES and _ends_complete(path, head):
            return int(h), int(w)
    except Exception:  # noqa: BLE001  (not Pillow's kind, or a broken header)
        pass
    arr, _ = _decode(path, what)
    return tuple(arr.shape[:2])


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
    arr, warnings = _decode(path, 'Image', strict, exif_orientation)
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
    arr, _ = _decode(path, 'Mask')
    if arr.ndim == 3:
        colour = arr[:, :, :1] if arr.shape[2] == 2 else arr[:, :, :3]
        arr = colour.max(axis=2)  # (H, W), any channel counts
    if threshold is None:
        threshold = 0 if arr.max() <= 1 else np.iinfo(arr.dtype).max // 2
    return (arr > threshold).astype(np.uint8)
