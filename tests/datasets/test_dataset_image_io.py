import os
import pickle

import cv2
import numpy as np
import pytest
from corpus import encode, pil_bytes, premature_jpeg, smooth, tiff_bytes
from PIL import Image, ImageOps

from anomaly_plugin.datasets.decoding import decode_file
from anomaly_plugin.datasets.image_io import (
    BadImageError,
    _to_rgb_uint8,
    is_image_file,
    load_image,
    probe_image,
    read_image,
    read_mask,
)


def _write(path, arr):
    path = os.fspath(path)
    ok, buf = cv2.imencode(os.path.splitext(path)[1], arr)
    assert ok
    buf.tofile(path)
    return path


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)  # (H, W, 3) RGB


def test_rgb_png_is_returned_in_rgb_order(tmp_path, rgb):
    path = _write(tmp_path / 'a.png', rgb[:, :, ::-1])  # cv2 writes BGR
    img = read_image(path)
    assert img.dtype == np.uint8 and img.shape == (6, 9, 3)
    np.testing.assert_array_equal(img, rgb)
    assert img.flags['C_CONTIGUOUS']


def test_gray_matches_equivalent_rgb(tmp_path, rgb):
    gray = rgb[:, :, 0]
    from_gray = read_image(_write(tmp_path / 'g.png', gray))
    from_rgb = read_image(_write(tmp_path / 'c.png', np.dstack([gray] * 3)))
    assert from_gray.shape == (6, 9, 3)
    np.testing.assert_array_equal(from_gray, from_rgb)


def test_rgba_drops_alpha(tmp_path, rgb):
    alpha = np.arange(54, dtype=np.uint8).reshape(6, 9)
    bgra = np.dstack([rgb[:, :, ::-1], alpha])
    img = read_image(_write(tmp_path / 'a.png', bgra))
    np.testing.assert_array_equal(img, read_image(_write(tmp_path / 'b.png',
                                                         rgb[:, :, ::-1])))


def test_16bit_scaled_to_8bit(tmp_path, rgb):
    img16 = rgb[:, :, ::-1].astype(np.uint16) * 257
    np.testing.assert_array_equal(read_image(_write(tmp_path / 'a.png', img16)),
                                  rgb)
    gray16 = img16[:, :, 0]
    np.testing.assert_array_equal(read_image(_write(tmp_path / 'g.tif', gray16)),
                                  np.dstack([rgb[:, :, 2]] * 3))
    bgra16 = np.dstack([img16, np.full((6, 9), 65535, np.uint16)])
    np.testing.assert_array_equal(read_image(_write(tmp_path / 'b.png', bgra16)),
                                  rgb)


def test_16bit_rounding():
    values = np.random.default_rng(1).integers(0, 65536, (5, 7), dtype=np.uint16)
    out = _to_rgb_uint8(values)
    np.testing.assert_array_equal(out[:, :, 0], np.rint(values / 257))


def test_two_channel_gray_alpha(tmp_path, rgb):
    gray = rgb[:, :, 1]
    ga = np.dstack([gray, np.full_like(gray, 200)])  # (H, W, 2)
    np.testing.assert_array_equal(_to_rgb_uint8(ga), np.dstack([gray] * 3))
    image_mod = pytest.importorskip('PIL.Image')
    path = tmp_path / 'la.png'
    image_mod.fromarray(ga, 'LA').save(path)
    np.testing.assert_array_equal(read_image(str(path)), np.dstack([gray] * 3))


def test_any_extension_and_path(tmp_path, rgb):
    path = _write(tmp_path / 'ïmage é.BMP', rgb[:, :, ::-1])
    np.testing.assert_array_equal(read_image(path), rgb)
    jpg = _write(tmp_path / 'x.JPG', rgb[:, :, ::-1])
    expected = cv2.imread(jpg)[:, :, ::-1]
    np.testing.assert_array_equal(read_image(jpg), expected)


def test_image_errors_name_the_file(tmp_path):
    garbage = tmp_path / 'bad.png'
    garbage.write_bytes(b'this is not an image at all')
    with pytest.raises(ValueError, match='bad.png.*decode|decode.*bad.png'):
        read_image(str(garbage))
    empty = tmp_path / 'empty.png'
    empty.write_bytes(b'')
    with pytest.raises(ValueError, match='empty'):
        read_image(str(empty))
    with pytest.raises(FileNotFoundError, match='missing.png'):
        read_image(str(tmp_path / 'missing.png'))
    with pytest.raises(ValueError, match='not a file'):
        read_image(str(tmp_path))
    flt = _write(tmp_path / 'f.tif', np.random.rand(4, 4).astype(np.float32))
    with pytest.raises(ValueError, match='f.tif.*floating'):
        read_image(flt)
    # A truncated PNG: valid header, missing data.
    good = _write(tmp_path / 'ok.png', np.zeros((8, 8, 3), np.uint8))
    data = open(good, 'rb').read()
    (tmp_path / 'trunc.png').write_bytes(data[:20])
    with pytest.raises(ValueError, match='trunc.png'):
        read_image(str(tmp_path / 'trunc.png'))


def test_read_mask_8bit_threshold(tmp_path):
    values = np.array([[0, 1, 127, 128, 255]], np.uint8)
    mask = read_mask(_write(tmp_path / 'm.png', values))
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, [[0, 0, 0, 1, 1]])
    np.testing.assert_array_equal(
        read_mask(_write(tmp_path / 'm01.png', values), threshold=0),
        [[0, 1, 1, 1, 1]])


def test_read_mask_16bit_and_colour(tmp_path):
    values = np.array([[0, 32767, 32768, 65535]], np.uint16)
    np.testing.assert_array_equal(read_mask(_write(tmp_path / 'm.png', values)),
                                  [[0, 0, 1, 1]])
    colour = np.zeros((2, 3, 3), np.uint8)
    colour[0, 0, 0] = 255   # blue only
    colour[0, 1, 2] = 200   # red only
    colour[1, 2, 1] = 100   # below threshold
    np.testing.assert_array_equal(read_mask(_write(tmp_path / 'c.png', colour)),
                                  [[1, 1, 0], [0, 0, 0]])
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[:, :, 3] = 255     # opaque but black -> normal
    rgba[1, 1, 2] = 255
    np.testing.assert_array_equal(read_mask(_write(tmp_path / 'a.png', rgba)),
                                  [[0, 0], [0, 1]])


def test_read_mask_errors(tmp_path):
    bad = tmp_path / 'bad_mask.png'
    bad.write_bytes(b'\x89PNG garbage')
    with pytest.raises(ValueError, match='bad_mask.png'):
        read_mask(str(bad))
    with pytest.raises(FileNotFoundError, match='nope_mask.png'):
        read_mask(str(tmp_path / 'nope_mask.png'))


def test_is_image_file():
    assert is_image_file('a.PNG') and is_image_file('dir/b.jpeg')
    assert is_image_file('c.TiFf') and is_image_file('d.webp')
    assert not is_image_file('notes.txt')
    assert not is_image_file('.hidden.png')
    assert not is_image_file('noext')


def test_read_mask_reads_0_1_masks(tmp_path):
    # masks stored as 0/1 used to read as empty under the > 127 rule
    values = np.array([[0, 1, 1, 0]], np.uint8)
    np.testing.assert_array_equal(read_mask(_write(tmp_path / 'm01.png', values)),
                                  [[0, 1, 1, 0]])
    np.testing.assert_array_equal(
        read_mask(_write(tmp_path / 'm16.png', values.astype(np.uint16))), [[0, 1, 1, 0]])
    # an explicit threshold still decides
    assert not read_mask(_write(tmp_path / 'm01b.png', values), threshold=1).any()


# ---------------------------------------------------------------- odd files
def _bytes(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.fixture
def base():
    return smooth(40, 48, 1)  # (H, W, 3) RGB


def test_pillow_reads_what_opencv_cannot(tmp_path, base):
    icon = smooth(32, 32, 2)
    ico = _bytes(tmp_path, 'i.ico', pil_bytes('ICO', Image.fromarray(icon), sizes=[(32, 32)]))
    np.testing.assert_array_equal(read_image(ico), icon)
    tga = _bytes(tmp_path, 't.tga', pil_bytes('TGA', Image.fromarray(base)))
    np.testing.assert_array_equal(read_image(tga), base)
    tiled = _bytes(tmp_path, 'tiled.tif', tiff_bytes(base, tile=(16, 16), photometric='rgb'))
    assert cv2.imdecode(np.fromfile(tiled, np.uint8), cv2.IMREAD_UNCHANGED) is None
    np.testing.assert_array_equal(read_image(tiled), base)


@pytest.mark.parametrize('name, data, words', [
    ('five.tif', lambda b: tiff_bytes(np.dstack([b, b[..., :2]]), photometric='minisblack',
                                      planarconfig='contig'), '5 sample(s)'),
    ('half.tif', lambda b: tiff_bytes(b.astype(np.float16), photometric='rgb'), 'float16'),
    ('float.tif', lambda b: tiff_bytes(b.astype(np.float32), photometric='rgb'),
     'floating-point'),
    ('map.pfm', lambda b: b'PF\n48 40\n-1.0\n' + b.astype('<f4').tobytes(), 'floating-point'),
])
def test_valid_files_of_unusable_kinds_say_not_supported(tmp_path, base, name, data, words):
    path = _bytes(tmp_path, name, data(base))
    with pytest.raises(BadImageError) as info:
        read_image(path)
    assert str(info.value).startswith(f"Image file '{path}': format/mode not supported")
    assert words in str(info.value) and 'corrupt' not in str(info.value)


@pytest.mark.parametrize('cut', [lambda d: d[:len(d) // 2], lambda d: d[:33],
                                 lambda d: b'not an image at all'])
@pytest.mark.parametrize('ext', ['.png', '.jpg'])
def test_broken_files_say_corrupt_or_truncated(tmp_path, base, cut, ext):
    path = _bytes(tmp_path, f'broken{ext}', cut(encode(ext, base)))
    with pytest.raises(BadImageError, match='corrupt or truncated') as info:
        read_image(path)
    assert 'broken' in str(info.value) and 'not supported' not in str(info.value)
    with pytest.raises(BadImageError, match='corrupt or truncated'):
        probe_image(path)  # the cheap check finds them too


def test_partly_decoded_jpeg_is_an_error_or_a_warning(tmp_path):
    path = _bytes(tmp_path, 'premature.jpg', premature_jpeg())
    assert probe_image(path) == (48, 64)  # header and end marker look sound
    with pytest.raises(BadImageError, match='premature.jpg.*premature end of data segment'):
        read_image(path)  # strict by default
    loaded = load_image(path, strict=False)
    assert loaded.img.shape == (48, 64, 3)
    assert len(loaded.warnings) == 1 and 'corrupt JPEG data' in loaded.warnings[0]
    sound = _bytes(tmp_path, 'sound.jpg', encode('.jpg', smooth(48, 64, 0)))
    assert load_image(sound).warnings == []


def test_jpeg_with_data_after_its_end_is_decoded_to_decide(tmp_path, base):
    path = _bytes(tmp_path, 'trailer.jpg', encode('.jpg', base) + b'camera trailer')
    assert probe_image(path) == (40, 48)
    np.testing.assert_array_equal(read_image(path), cv2.imread(path)[..., ::-1])


def test_several_frames_warn_and_give_the_first(tmp_path, base):
    gif = _bytes(tmp_path, 'f.gif', pil_bytes('GIF', Image.fromarray(base), save_all=True,
                                               append_images=[Image.fromarray(255 - base)]))
    loaded = load_image(gif)
    assert loaded.warnings == ['2 frames: only the first is used']
    first = np.asarray(Image.open(gif).convert('RGB'))
    np.testing.assert_array_equal(loaded.img, first)
    tif = _bytes(tmp_path, 'f.tif', tiff_bytes(np.stack([base, 255 - base]), photometric='rgb'))
    loaded = load_image(tif)
    assert loaded.warnings == ['2 frames: only the first is used']
    np.testing.assert_array_equal(loaded.img, base)
    assert load_image(_bytes(tmp_path, 'one.gif', pil_bytes('GIF', Image.fromarray(base)))
                      ).warnings == []


def test_16bit_image_using_little_of_its_range_warns(tmp_path, base):
    low = load_image(_write(tmp_path / 'low.png', base.astype(np.uint16)))
    assert len(low.warnings) == 1 and 'under 1%' in low.warnings[0]
    assert low.img.max() <= 1  # what the warning is about: nearly black
    full = load_image(_write(tmp_path / 'full.png', base.astype(np.uint16) * 257))
    assert full.warnings == []
    # a 0/1 16-bit mask is not an image: no warning
    mask = _write(tmp_path / 'm.png', (base[..., 0] > 128).astype(np.uint16))
    assert decode_file(mask, 'Mask')[1] == []


@pytest.mark.parametrize('orientation', range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    img = smooth(10, 16, orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _bytes(tmp_path, 'o.png', pil_bytes('PNG', Image.fromarray(img), exif=exif))
    np.testing.assert_array_equal(read_image(path), img)  # default: pixels as stored
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert('RGB'))
    np.testing.assert_array_equal(read_image(path, exif_orientation=True), expected)


def test_names_that_are_not_utf8_are_read_and_printed(tmp_path, base):
    path = os.path.join(os.fsdecode(bytes(tmp_path)), os.fsdecode(b'caf\xe9.png'))
    cv2.imencode('.png', base)[1].tofile(path)
    assert read_image(path).shape == (40, 48, 3)
    os.truncate(path, 20)
    with pytest.raises(BadImageError) as info:
        read_image(path)
    str(info.value).encode('utf-8')  # printable: the bad byte is escaped
    assert 'caf\\xe9.png' in str(info.value)


def test_links_fifos_and_folders_get_their_own_errors(tmp_path, base):
    os.symlink('loop.png', tmp_path / 'loop.png')
    with pytest.raises(BadImageError, match='loop.png.*cannot be opened'):
        read_image(str(tmp_path / 'loop.png'))
    os.symlink('nowhere.png', tmp_path / 'dangling.png')
    with pytest.raises(BadImageError, match='dangling.png.*link to a missing file'):
        read_image(str(tmp_path / 'dangling.png'))
    os.mkfifo(tmp_path / 'pipe.png')
    with pytest.raises(BadImageError, match='pipe.png.*not a file'):
        read_image(str(tmp_path / 'pipe.png'))  # not opened: reading would block
    with pytest.raises(BadImageError, match='pipe.png.*not a file'):
        probe_image(str(tmp_path / 'pipe.png'))


def test_bad_image_errors_survive_pickling(tmp_path):
    err = BadImageError(str(tmp_path / 'x.png'), 'corrupt or truncated: why', 'Mask')
    back = pickle.loads(pickle.dumps(err))
    assert (back.path, back.reason, back.what, str(back)) == (
        err.path, err.reason, err.what, str(err))


def test_decoding_in_threads_keeps_each_file_its_own_warning(tmp_path):
    from concurrent.futures import ThreadPoolExecutor
    bad = _bytes(tmp_path, 'premature.jpg', premature_jpeg())
    good = _bytes(tmp_path, 'sound.jpg', encode('.jpg', smooth(48, 64, 0)))
    paths = [bad, good] * 20
    before = os.fstat(2)
    with ThreadPoolExecutor(4) as pool:
        warnings = list(pool.map(lambda p: load_image(p, strict=False).warnings, paths))
    assert all(len(w) == 1 for w in warnings[::2]) and all(w == [] for w in warnings[1::2])
    after = os.fstat(2)  # standard error is where it was, not a capture file
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
