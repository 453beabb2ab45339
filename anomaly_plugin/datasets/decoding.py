"""Decoding image files: the readers behind :mod:`~anomaly_plugin.datasets.image_io`.

OpenCV decodes (``cv2.IMREAD_UNCHANGED``) from bytes read by NumPy; a file
OpenCV cannot decode is tried with Pillow (ICO, TGA, tiled TIFF, ...). What
libjpeg and libpng print while decoding is caught and tied to the file.
Every failure is a :class:`BadImageError` (or ``FileNotFoundError``) naming
the file; :func:`probe_image` checks a file without decoding its pixels.
"""
import io
import logging
import os
import stat
import sys
import tempfile
import threading
from typing import List, Tuple

import cv2
import numpy as np
from mmengine.logging import print_log

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


def decode_file(path: str, what: str, strict: bool = True,
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

    def opencv():
        try:
            return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        except cv2.error:
            return None

    # libjpeg / libpng report damage only by printing it; OpenCV logs its failures
    arr, text = _capture_stderr(opencv)
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
    arr, _ = decode_file(path, what)
    return tuple(arr.shape[:2])


__all__ = ['BadImageError', 'apply_orientation', 'decode_file', 'display_path', 'probe_image',
           'warn_once']
