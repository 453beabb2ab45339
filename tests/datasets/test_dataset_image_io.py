import os

import cv2
import numpy as np
import pytest

from anomaly_plugin.datasets.image_io import (
    _to_rgb_uint8,
    is_image_file,
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
