import cv2
import numpy as np
import pytest
import torch

from anomaly_plugin.datasets.transforms import (
    CenterCrop,
    LoadAnomalyImage,
    LoadAnomalyMask,
    PackAnomalyInputs,
    RandomFlip,
    RandomRotate90,
    Resize,
)
from anomaly_plugin.registry import TRANSFORMS
from anomaly_plugin.structures import AnomalyDataSample


def _pattern(shape=(32, 24), block=4, seed=0):
    """Random block pattern (H, W) {0, 1}, not symmetric under flips."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 2, (shape[0] // block, shape[1] // block))
    blocks[0, 0], blocks[0, -1], blocks[-1, 0], blocks[-1, -1] = 1, 0, 0, 0
    return np.kron(blocks, np.ones((block, block))).astype(np.uint8)


def _results(mask):
    """Results whose image content equals the mask pattern."""
    img = np.dstack([mask * 255, mask * 200, 255 - mask * 255]).astype(np.uint8)
    return dict(img=img, gt_mask=mask.copy(), img_shape=mask.shape,
                ori_shape=mask.shape, img_path='x.png')


def _assert_aligned(results):
    img, mask = results['img'], results['gt_mask']
    assert img.shape[:2] == mask.shape == tuple(results['img_shape'])
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    np.testing.assert_array_equal((img[:, :, 0] > 127).astype(np.uint8), mask)
    np.testing.assert_array_equal((img[:, :, 2] < 128).astype(np.uint8), mask)


@pytest.mark.parametrize('size,factor', [((16, 12), 0.5), ((64, 48), 2)])
def test_resize_keeps_alignment(size, factor):
    mask = _pattern()
    out = Resize(size=size)(_results(mask))
    _assert_aligned(out)
    assert out['img_shape'] == size and out['img'].shape == size + (3,)
    # The 4x4 blocks become (4 * factor) blocks exactly.
    expected = _pattern(shape=size, block=int(4 * factor))
    np.testing.assert_array_equal(out['gt_mask'], expected)


def test_resize_nearest_mask_and_interpolation_choice():
    mask = _pattern()
    out = Resize(size=(10, 7), interpolation='area')(_results(mask))
    assert out['gt_mask'].shape == (10, 7)
    assert set(np.unique(out['gt_mask'])) <= {0, 1}
    assert out['scale_factor'] == pytest.approx((7 / 24, 10 / 32))
    with pytest.raises(ValueError, match='interpolation'):
        Resize(size=8, interpolation='lanczos9')
    with pytest.raises(ValueError, match='size'):
        Resize(size=(0, 4))


def test_center_crop():
    mask = _pattern()
    out = CenterCrop(size=(16, 8))(_results(mask))
    _assert_aligned(out)
    np.testing.assert_array_equal(out['gt_mask'], mask[8:24, 8:16])
    with pytest.raises(ValueError, match='larger than the image'):
        CenterCrop(size=40)(_results(mask))


@pytest.mark.parametrize('direction,expected', [
    ('horizontal', lambda m: m[:, ::-1]),
    ('vertical', lambda m: m[::-1]),
    ('both', lambda m: m[::-1, ::-1]),
])
def test_random_flip_always(direction, expected):
    mask = _pattern()
    out = RandomFlip(prob=1.0, direction=direction)(_results(mask))
    _assert_aligned(out)
    assert out['flip'] is True
    np.testing.assert_array_equal(out['gt_mask'], expected(mask))
    assert not np.array_equal(out['gt_mask'], mask)
    assert out['img'].flags['C_CONTIGUOUS']


def test_random_flip_never_and_errors():
    mask = _pattern()
    out = RandomFlip(prob=0.0, direction='both')(_results(mask))
    np.testing.assert_array_equal(out['gt_mask'], mask)
    assert out['flip'] is False and out['flip_direction'] is None
    with pytest.raises(ValueError, match='direction'):
        RandomFlip(direction='diagonal')
    with pytest.raises(ValueError, match='prob'):
        RandomFlip(prob=1.5)


def test_random_rotate90():
    mask = _pattern()
    np.random.seed(0)
    seen = set()
    for _ in range(12):
        out = RandomRotate90(prob=1.0)(_results(mask))
        k = out['rotate90_k']
        seen.add(k)
        _assert_aligned(out)
        np.testing.assert_array_equal(out['gt_mask'], np.rot90(mask, k))
        assert out['img_shape'] == ((32, 24) if k == 2 else (24, 32))
    assert seen == {1, 2, 3}
    out = RandomRotate90(prob=0.0)(_results(mask))
    assert out['rotate90_k'] == 0
    np.testing.assert_array_equal(out['gt_mask'], mask)


def test_transforms_without_mask():
    results = _results(_pattern())
    del results['gt_mask']
    out = RandomFlip(prob=1.0)(Resize(size=8)(results))
    assert 'gt_mask' not in out and out['img'].shape == (8, 8, 3)


def _write(path, arr):
    assert cv2.imwrite(str(path), arr)
    return str(path)


def test_load_and_pack(tmp_path):
    mask = _pattern(shape=(16, 12))
    img = _results(mask)['img']
    info = dict(img_path=_write(tmp_path / 'a.png', img[:, :, ::-1]),
                mask_path=_write(tmp_path / 'a_mask.png', mask * 255),
                gt_label=1, defect_type='crack')
    results = LoadAnomalyMask()(LoadAnomalyImage()(dict(info)))
    assert results['ori_shape'] == (16, 12)
    _assert_aligned(results)
    packed = PackAnomalyInputs()(Resize(size=(8, 6))(results))
    inputs, sample = packed['inputs'], packed['data_samples']
    assert inputs.dtype == torch.uint8 and inputs.shape == (3, 8, 6)
    assert inputs.is_contiguous()
    assert isinstance(sample, AnomalyDataSample)
    np.testing.assert_array_equal(inputs.permute(1, 2, 0).numpy(),
                                  results['img'])
    np.testing.assert_array_equal(sample.gt_mask.numpy(), mask[::2, ::2])
    assert int(sample.gt_label) == 1 and sample.gt_label.dtype == torch.long
    assert sample.img_path == info['img_path']
    assert sample.mask_path == info['mask_path']
    assert sample.ori_shape == (16, 12) and sample.img_shape == (8, 6)
    assert sample.defect_type == 'crack'


def test_load_mask_cases(tmp_path):
    img_path = _write(tmp_path / 'n.png', np.zeros((6, 5, 3), np.uint8))
    normal = LoadAnomalyImage()(dict(img_path=img_path, mask_path=None,
                                     gt_label=0))
    out = LoadAnomalyMask()(dict(normal))
    assert out['gt_mask'].shape == (6, 5) and out['gt_mask'].sum() == 0
    no_mask = LoadAnomalyMask()(dict(normal, gt_label=1, no_mask=True))
    assert 'gt_mask' not in no_mask
    packed = PackAnomalyInputs()(no_mask)
    assert 'gt_mask' not in packed['data_samples']
    with pytest.raises(ValueError, match=r'n\.png.*no mask_path'):
        LoadAnomalyMask()(dict(normal, gt_label=1))
    with pytest.raises(ValueError, match='after the image was resized'):
        LoadAnomalyMask()(Resize(size=4)(dict(normal)))
    with pytest.raises(KeyError, match='LoadAnomalyImage'):
        LoadAnomalyMask()(dict(img_path=img_path, mask_path=None, gt_label=0))
    small = _write(tmp_path / 'small_mask.png', np.zeros((3, 5), np.uint8))
    with pytest.raises(ValueError, match=r'small_mask\.png.*3x5.*n\.png.*6x5'):
        LoadAnomalyMask()(dict(normal, mask_path=small, gt_label=1))


def test_pack_rejects_misaligned_mask():
    results = _results(_pattern())
    results['gt_mask'] = results['gt_mask'][:8]
    with pytest.raises(ValueError, match='differ in size'):
        PackAnomalyInputs()(results)


def test_registry_gives_plugin_transforms_that_work():
    mask = _pattern()  # (32, 24)
    resize = TRANSFORMS.build(dict(type='Resize', size=8))
    assert isinstance(resize, Resize)
    out = resize(_results(mask))
    assert out['img'].shape == (8, 8, 3) and out['gt_mask'].shape == (8, 8)
    flip = TRANSFORMS.build(dict(type='RandomFlip', prob=1.0))
    assert isinstance(flip, RandomFlip)
    out = flip(_results(mask))
    assert out['flip'] and np.array_equal(out['gt_mask'], mask[:, ::-1])
    _assert_aligned(out)
    crop = TRANSFORMS.build(dict(type='CenterCrop', size=4))
    assert isinstance(crop, CenterCrop)
    out = crop(_results(mask))
    assert np.array_equal(out['gt_mask'], mask[14:18, 10:14])
    _assert_aligned(out)


def test_load_mask_warns_about_empty_defect_masks(tmp_path, monkeypatch):
    from anomaly_plugin.datasets.transforms import loading
    logged = []
    monkeypatch.setattr(loading, 'print_log', lambda msg, **kw: logged.append(msg))
    img = str(tmp_path / 'bad.png')
    cv2.imwrite(img, np.zeros((6, 6, 3), np.uint8))
    empty = str(tmp_path / 'bad_mask.png')
    cv2.imwrite(empty, np.zeros((6, 6), np.uint8))
    load = [LoadAnomalyImage(), LoadAnomalyMask()]
    out = dict(img_path=img, mask_path=empty, gt_label=1)
    for t in load:
        out = t(out)
    assert len(logged) == 1 and 'bad.png' in logged[0] and 'bad_mask.png' in logged[0]
    # a normal image with an empty mask is expected: no warning
    normal = str(tmp_path / 'ok_mask.png')
    cv2.imwrite(normal, np.zeros((6, 6), np.uint8))
    results = dict(img_path=img, mask_path=normal, gt_label=0)
    for t in load:
        results = t(results)
    assert len(logged) == 1 and not out.get('gt_mask').any()
