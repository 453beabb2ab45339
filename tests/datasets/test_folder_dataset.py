import os

import cv2
import numpy as np
import pytest

from anomaly_plugin.datasets import FolderAnomalyDataset

SIZE = (8, 8)
PIPELINE = [dict(type='LoadAnomalyImage'), dict(type='LoadAnomalyMask'),
            dict(type='PackAnomalyInputs')]


def _write(path, arr):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), arr)


def make_folders(root):
    """normal/, normal_test/, scratch/ + scratch_masks/ (<stem>.png),
    dent/ + dent_masks/ (<stem>_mask.bmp)."""
    img = np.full(SIZE + (3,), 90, np.uint8)
    for i in range(5):
        _write(root / 'normal' / f'n{i}.png', img)
    (root / 'normal' / 'info.txt').write_text('x')
    for i in range(2):
        _write(root / 'normal_test' / f't{i}.jpg', img)
    mask = np.zeros(SIZE, np.uint8)
    mask[2:5, 3:6] = 255
    for i in range(2):
        _write(root / 'scratch' / f's{i}.png', img)
        _write(root / 'scratch_masks' / f's{i}.png', mask)
        _write(root / 'dent' / f'd{i}.jpg', img)
        _write(root / 'dent_masks' / f'd{i}_mask.bmp', mask)
    return mask // 255


def test_train_and_test_with_masks(tmp_path):
    mask = make_folders(tmp_path)
    kwargs = dict(normal_dir='normal', abnormal_dirs=['scratch', 'dent'],
                  mask_dirs=['scratch_masks', 'dent_masks'],
                  normal_test_dir='normal_test', data_root=str(tmp_path),
                  serialize_data=False)
    train = FolderAnomalyDataset(split='train', **kwargs)
    assert len(train) == 5
    assert all(train.get_data_info(i)['gt_label'] == 0 for i in range(5))
    test = FolderAnomalyDataset(split='test', pipeline=PIPELINE, **kwargs)
    assert test.metainfo['has_masks'] is True
    infos = [test.get_data_info(i) for i in range(len(test))]
    assert len(infos) == 6
    assert sorted(d['defect_type'] for d in infos) == [
        'dent', 'dent', 'good', 'good', 'scratch', 'scratch']
    for d in infos:
        if d['defect_type'] == 'good':
            assert d['gt_label'] == 0 and d['mask_path'] is None
            continue
        assert d['gt_label'] == 1
        stem = os.path.splitext(os.path.basename(d['img_path']))[0]
        expected = (f'{stem}.png' if d['defect_type'] == 'scratch'
                    else f'{stem}_mask.bmp')
        assert os.path.basename(d['mask_path']) == expected
    for i, d in enumerate(infos):
        sample = test[i]['data_samples']
        want = np.zeros(SIZE, np.uint8) if d['gt_label'] == 0 else mask
        np.testing.assert_array_equal(sample.gt_mask.numpy(), want)


def test_without_masks_leaves_gt_mask_unset(tmp_path):
    make_folders(tmp_path)
    ds = FolderAnomalyDataset(
        normal_dir=str(tmp_path / 'normal'), abnormal_dirs=str(tmp_path / 'dent'),
        normal_test_dir=str(tmp_path / 'normal_test'), split='test',
        pipeline=PIPELINE)
    assert ds.metainfo['has_masks'] is False
    assert len(ds) == 4
    labels = []
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert info['mask_path'] is None and info['no_mask'] is True
        sample = ds[i]['data_samples']
        assert 'gt_mask' not in sample
        labels.append(int(sample.gt_label))
    assert sorted(labels) == [0, 0, 1, 1]


def test_missing_mask_names_image(tmp_path):
    make_folders(tmp_path)
    os.remove(tmp_path / 'dent_masks' / 'd1_mask.bmp')
    with pytest.raises(FileNotFoundError, match=r'd1\.jpg.*no mask'):
        FolderAnomalyDataset(normal_dir='normal', abnormal_dirs=['dent'],
                             mask_dirs=['dent_masks'], split='test',
                             data_root=str(tmp_path))


def test_ambiguous_mask(tmp_path):
    make_folders(tmp_path)
    _write(tmp_path / 'dent_masks' / 'd0.png', np.zeros(SIZE, np.uint8))
    with pytest.raises(ValueError, match='several masks'):
        FolderAnomalyDataset(normal_dir='normal', abnormal_dirs=['dent'],
                             mask_dirs=['dent_masks'], split='test',
                             data_root=str(tmp_path))


def test_argument_errors(tmp_path):
    make_folders(tmp_path)
    with pytest.raises(ValueError, match='one folder per abnormal folder'):
        FolderAnomalyDataset(normal_dir='normal',
                             abnormal_dirs=['dent', 'scratch'],
                             mask_dirs=['dent_masks'], data_root=str(tmp_path))
    with pytest.raises(ValueError, match='must not be training images'):
        FolderAnomalyDataset(normal_dir='normal', normal_test_dir='normal',
                             split='test', data_root=str(tmp_path))
    with pytest.raises(ValueError, match='normal_test_dir'):
        FolderAnomalyDataset(normal_dir='normal', split='test',
                             data_root=str(tmp_path))


def test_empty_or_missing_normal_dir(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='empty.*no image files'):
        FolderAnomalyDataset(normal_dir=str(tmp_path / 'empty'))
    with pytest.raises(FileNotFoundError, match='absent'):
        FolderAnomalyDataset(normal_dir=str(tmp_path / 'absent'))


def test_holdout(tmp_path):
    make_folders(tmp_path)
    kwargs = dict(normal_dir=str(tmp_path / 'normal'), holdout_ratio=0.4,
                  holdout_seed=3, serialize_data=False)
    train = FolderAnomalyDataset(split='train', **kwargs)
    holdout = FolderAnomalyDataset(split='holdout', **kwargs)
    a = {train.get_data_info(i)['img_path'] for i in range(len(train))}
    b = {holdout.get_data_info(i)['img_path'] for i in range(len(holdout))}
    assert len(b) == 2 and len(a) == 3 and not a & b
    assert a | b == {str(tmp_path / 'normal' / f'n{i}.png') for i in range(5)}
