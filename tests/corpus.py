"""A corpus of odd files, made at test time: every kind of input a user's folder
may hold (truncated, bit-flipped, empty, odd modes and containers, extreme
sizes, odd names, links, FIFOs, nested folders).

:func:`make_corpus` writes it and says, per listed entry, whether it must be
scored (and at what size) or get an error, and with which words.
"""
import io
import os

import cv2
import numpy as np
import tifffile
from PIL import Image


def smooth(h, w, seed):
    """An (h, w, 3) uint8 RGB image with some structure."""
    rng = np.random.default_rng(seed)
    img = rng.integers(60, 200, (h, w, 3), dtype=np.uint8)
    return cv2.GaussianBlur(img, (5, 5), 2) if min(h, w) >= 5 else img


def encode(ext, rgb):
    return cv2.imencode(ext, np.ascontiguousarray(rgb[..., ::-1]))[1].tobytes()


def pil_bytes(fmt, img, **kw):
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def tiff_bytes(arr, **kw):
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **kw)
    return buf.getvalue()


def premature_jpeg(seed=0, size=(48, 64)):
    """A JPEG whose data stops two thirds in, closed by an end marker: its header
    and end pass the cheap checks; libjpeg warns 'premature end of data segment'."""
    data = encode('.jpg', smooth(*size, seed))
    return data[:len(data) * 2 // 3] + b'\xff\xd9'


def bit_flips(data, n, seed):
    """``data`` with ``n`` bits flipped after its first 100 bytes."""
    rng = np.random.default_rng(seed)
    out = bytearray(data)
    for _ in range(n):
        out[int(rng.integers(100, len(out)))] ^= 1 << int(rng.integers(8))
    return bytes(out)


def make_corpus(root, nested=True):
    """Write the corpus under ``root``.

    Returns:
        ``{relative path (str, as os.listdir gives it): expectation}`` for every
        entry with an image name, where an expectation is
        ``('scored', (H, W))``, ``('scored?', None)`` (bit-flipped files: either
        scored or an error naming them) or ``('error', words)`` (the error
        row must hold these words).
    """
    os.makedirs(root, exist_ok=True)
    expect = {}

    def put(name, data, outcome):
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(data)
        expect[name] = outcome

    base = smooth(40, 48, 1)
    png = encode('.png', base)
    jpg = encode('.jpg', base)
    # readable files in every mode and container
    put('rgb.png', png, ('scored', (40, 48)))
    put('rgb.jpg', jpg, ('scored', (40, 48)))
    put('gray.png', cv2.imencode('.png', base[..., 0])[1].tobytes(), ('scored', (40, 48)))
    put('gray_alpha.png', pil_bytes('PNG', Image.fromarray(base[..., :2].copy(), 'LA')),
        ('scored', (40, 48)))
    put('rgba.png', pil_bytes('PNG', Image.fromarray(np.dstack([base, base[..., :1]]))),
        ('scored', (40, 48)))
    put('palette.png', pil_bytes('PNG', Image.fromarray(base).convert('P')),
        ('scored', (40, 48)))
    put('bilevel.png', pil_bytes('PNG', Image.fromarray(base[..., 0]).convert('1')),
        ('scored', (40, 48)))
    put('rgb16.png', cv2.imencode('.png', base.astype(np.uint16) * 257)[1].tobytes(),
        ('scored', (40, 48)))
    put('low16.png', cv2.imencode('.png', base.astype(np.uint16))[1].tobytes(),
        ('scored', (40, 48), 'under 1%'))
    put('rgb.bmp', encode('.bmp', base), ('scored', (40, 48)))
    put('rgb.webp', pil_bytes('WEBP', Image.fromarray(base), lossless=True),
        ('scored', (40, 48)))
    put('rgb.tif', tiff_bytes(base, photometric='rgb'), ('scored', (40, 48)))
    put('tiled.tif', tiff_bytes(base, tile=(16, 16), photometric='rgb'), ('scored', (40, 48)))
    put('icon.ico', pil_bytes('ICO', Image.fromarray(smooth(32, 32, 2)), sizes=[(32, 32)]),
        ('scored', (32, 32)))
    put('targa.tga', pil_bytes('TGA', Image.fromarray(base)), ('scored', (40, 48)))
    put('frames.gif', pil_bytes('GIF', Image.fromarray(base), save_all=True,
                                append_images=[Image.fromarray(255 - base)]),
        ('scored', (40, 48), 'frames'))
    put('frames.tif', tiff_bytes(np.stack([base, 255 - base]), photometric='rgb'),
        ('scored', (40, 48), 'frames'))
    put('gray.pgm', cv2.imencode('.pgm', base[..., 0])[1].tobytes(), ('scored', (40, 48)))
    # extreme sizes
    put('one_pixel.png', encode('.png', smooth(1, 1, 3)), ('scored', (1, 1)))
    put('one_row.png', encode('.png', smooth(1, 300, 4)), ('scored', (1, 300)))
    put('one_column.png', encode('.png', smooth(300, 1, 5)), ('scored', (300, 1)))
    # valid files of kinds the models cannot take
    put('five_channels.tif', tiff_bytes(np.dstack([base, base[..., :2]]),
                                        photometric='minisblack', planarconfig='contig'),
        ('error', 'format/mode not supported'))
    put('float16.tif', tiff_bytes(base.astype(np.float16) / 255, photometric='rgb'),
        ('error', 'format/mode not supported'))
    put('float32.tif', tiff_bytes(base.astype(np.float32) / 255, photometric='rgb'),
        ('error', 'format/mode not supported'))
    put('map.pfm', b'PF\n48 40\n-1.0\n' + (base / 255).astype('<f4')[::-1].tobytes(),
        ('error', 'format/mode not supported'))
    # broken files
    put('empty.png', b'', ('error', 'empty (0 bytes)'))
    put('text.png', b'this is not an image', ('error', 'corrupt or truncated'))
    put('random.jpg', np.random.default_rng(7).integers(0, 256, 2000, dtype=np.uint8)
        .tobytes(), ('error', 'corrupt or truncated'))
    put('truncated.png', png[:len(png) // 2], ('error', 'corrupt or truncated'))
    put('truncated.jpg', jpg[:len(jpg) // 2], ('error', 'corrupt or truncated'))
    put('header_only.png', png[:33], ('error', 'corrupt or truncated'))
    put('premature.jpg', premature_jpeg(), ('error', 'corrupt JPEG data'))
    for i in range(6):
        put(f'flipped_{i}.jpg', bit_flips(jpg, 4, 100 + i), ('scored?', None))
        put(f'flipped_{i}.png', bit_flips(png, 4, 200 + i), ('scored?', None))
    # odd names
    put('spaces and ünïcödé ✓.png', png, ('scored', (40, 48)))
    put('comma,quote"semicolon;.png', png, ('scored', (40, 48)))
    put('UPPER.PNG', png, ('scored', (40, 48)))
    long_name = 'l' * (255 - len('.png')) + '.png'  # 255 bytes, the longest allowed
    put(long_name, png, ('scored', (40, 48)))
    long_utf8 = 'é' * 120 + '.png'  # 244 bytes
    put(long_utf8, png, ('scored', (40, 48)))
    raw = os.fsdecode(b'latin1_caf\xe9.png')  # not UTF-8
    put(raw, png, ('scored', (40, 48)))
    # entries that are not regular files
    os.symlink('loop.png', os.path.join(root, 'loop.png'))  # a link to itself
    expect['loop.png'] = ('error', 'loop.png')
    os.symlink('nowhere.png', os.path.join(root, 'dangling.png'))
    expect['dangling.png'] = ('error', 'dangling.png')
    os.symlink('rgb.png', os.path.join(root, 'link_to_rgb.png'))
    expect['link_to_rgb.png'] = ('scored', (40, 48))
    os.mkfifo(os.path.join(root, 'pipe.png'))
    expect['pipe.png'] = ('error', 'not a file')
    os.makedirs(os.path.join(root, 'folder.png'))  # a folder with an image name: not listed
    if nested:
        put(os.path.join('sub', 'rgb.png'), png, ('scored', (40, 48)))
        put(os.path.join('sub', 'deeper', 'bad.png'), b'\x89PNG\r\n', ('error', 'corrupt'))
        put(os.path.join('sub', 'deeper', 'rgb.jpg'), jpg, ('scored', (40, 48)))
    return expect
