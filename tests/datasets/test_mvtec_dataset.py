import os

import cv2
import numpy as np
import pytest
import torch

from anomaly_plugin.datasets import MVTecADDataset
from anomaly_plugin.registry import DATASETS
from anomaly_plugin.structures import AnomalyDataSample

SIZE = (12, 16)  # (H, W)


def _write(path, arr):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), arr)
    return str(path)


def _block_mask(seed, shape=SIZE):
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 2, (shape[0] // 4, shape[1] // 4), dtype=np.uint8)
    blocks[0, 0] = 1
    return np.kron(blocks, np.ones((4, 4), np.uint8))  # (H, W) {0, 1}


def make_mvtec(root, n_train=6, img_ext='.jpg', mask_ext='.png'):
    """Tiny MVTec-style category; returns the written masks by image stem."""
    rng = np.random.default_rng(0)

    def image():
        return rng.integers(0, 256, SIZE + (3,), dtype=np.uint8)

    for i in range(n_train):
        _write(root / 'train' / 'good' / f'{i:03d}{img_ext}', image())
    (root / 'train' / 'good' / 'readme.txt').write_text('not an image')
    (root / 'train' / 'good' / '.hidden.png').write_bytes(b'x')
    for i in range(2):
        _write(root / 'test' / 'good' / f'{i:03d}{img_ext}', image())
    masks = {}
    for i in range(2):
        _write(root / 'test' / 'crack' / f'{i:03d}{img_ext}', image())
        masks[f'{i:03d}'] = _block_mask(i)
        _write(root / 'ground_truth' / 'crack' / f'{i:03d}_mask{mask_ext}',
               masks[f'{i:03d}'] * 255)
    return masks


def test_train_split_lists_only_images(tmp_path):
    make_mvtec(tmp_path)
    ds = MVTecADDataset(data_root=str(tmp_path))
    assert len(ds) == 6
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert [os.path.basename(d['img_path']) for d in infos] == [
        f'{i:03d}.jpg' for i in range(6)]
    assert all(d['gt_label'] == 0 and d['mask_path'] is None
               and d['defect_type'] == 'good' for d in infos)
    assert ds.metainfo['classes'] == ('good', 'anomalous')
    assert ds.metainfo['has_masks'] is True


def test_test_split_jpg_images_png_masks(tmp_path):
    make_mvtec(tmp_path, img_ext='.jpg', mask_ext='.png')
    ds = MVTecADDataset(data_root=str(tmp_path), split='test')
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert len(infos) == 4
    by_type = {}
    for d in infos:
        by_type.setdefault(d['defect_type'], []).append(d)
    assert sorted(by_type) == ['crack', 'good']
    for d in by_type['good']:
        assert d['gt_label'] == 0 and d['mask_path'] is None
    for d in by_type['crack']:
        stem = os.path.splitext(os.path.basename(d['img_path']))[0]
        assert d['gt_label'] == 1
        assert d['mask_path'] == str(
            tmp_path / 'ground_truth' / 'crack' / f'{stem}_mask.png')


def test_build_from_config_and_pack(tmp_path):
    masks = make_mvtec(tmp_path, img_ext='.png', mask_ext='.bmp')
    ds = DATASETS.build(dict(
        type='MVTecADDataset', data_root=str(tmp_path), split='test',
        pipeline=[dict(type='LoadAnomalyImage'), dict(type='LoadAnomalyMask'),
                  dict(type='Resize', size=(6, 8)),
                  dict(type='PackAnomalyInputs')]))
    assert isinstance(ds, MVTecADDataset)
    seen_anomalous = 0
    for i in range(len(ds)):
        out = ds[i]
        inputs, sample = out['inputs'], out['data_samples']
        assert isinstance(inputs, torch.Tensor) and inputs.dtype == torch.uint8
        assert inputs.shape == (3, 6, 8) and inputs.is_contiguous()
        assert isinstance(sample, AnomalyDataSample)
        assert sample.ori_shape == SIZE and sample.img_shape == (6, 8)
        assert sample.gt_mask.shape == (6, 8)
        if sample.defect_type == 'good':
            assert int(sample.gt_label) == 0 and int(sample.gt_mask.sum()) == 0
        else:
            seen_anomalous += 1
            assert int(sample.gt_label) == 1
            stem = os.path.splitext(os.path.basename(sample.img_path))[0]
            expected = masks[stem][::2, ::2]  # 4x4 blocks halved -> exact
            np.testing.assert_array_equal(sample.gt_mask.numpy(), expected)
    assert seen_anomalous == 2


def test_holdout_disjoint_deterministic_complete(tmp_path):
    make_mvtec(tmp_path, n_train=10)

    def paths(split, seed=0, ratio=0.3):
        ds = MVTecADDataset(data_root=str(tmp_path), split=split,
                            holdout_ratio=ratio, holdout_seed=seed,
                            serialize_data=False)  # skips a slow gc.collect
        return [ds.get_data_info(i)['img_path'] for i in range(len(ds))]

    train, holdout = paths('train'), paths('holdout')
    assert len(holdout) == 3 and len(train) == 7  # ceil(0.3 * 10) = 3
    assert not set(train) & set(holdout)
    everything = paths('train', ratio=0.0)
    assert sorted(train + holdout) == sorted(everything) and len(everything) == 10
    assert paths('holdout') == holdout and paths('train') == train
    others = {s: paths('holdout', seed=s) for s in range(1, 6)}
    assert any(o != holdout for o in others.values())
    for seed, other in others.items():
        assert not set(other) & set(paths('train', seed=seed))
    assert len(paths('holdout', ratio=0.25)) == 3  # ceil(2.5)


def test_holdout_argument_errors(tmp_path):
    make_mvtec(tmp_path, n_train=2)
    with pytest.raises(ValueError, match='holdout_ratio'):
        MVTecADDataset(data_root=str(tmp_path), split='holdout')
    with pytest.raises(ValueError, match='holdout_ratio'):
        MVTecADDataset(data_root=str(tmp_path), holdout_ratio=1.0)
    with pytest.raises(ValueError, match='leaves none'):
        MVTecADDataset(data_root=str(tmp_path), holdout_ratio=0.9)
    with pytest.raises(ValueError, match='split'):
        MVTecADDataset(data_root=str(tmp_path), split='val')


def test_layout_errors(tmp_path):
    missing = tmp_path / 'nowhere'
    with pytest.raises(FileNotFoundError, match='nowhere.*train/good'):
        MVTecADDataset(data_root=str(missing))
    (tmp_path / 'other').mkdir()
    with pytest.raises(ValueError, match='neither a train/ nor a test/'):
        MVTecADDataset(data_root=str(tmp_path))
    (tmp_path / 'train' / 'good').mkdir(parents=True)
    (tmp_path / 'train' / 'good' / 'notes.txt').write_text('x')
    with pytest.raises(ValueError, match=r'train.good.*no image files'):
        MVTecADDataset(data_root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match='no test/ folder'):
        MVTecADDataset(data_root=str(tmp_path), split='test')


def test_missing_train_good_folder(tmp_path):
    (tmp_path / 'train' / 'bad').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match='no train/good/'):
        MVTecADDataset(data_root=str(tmp_path))


def test_defective_image_without_mask(tmp_path):
    make_mvtec(tmp_path)
    os.remove(tmp_path / 'ground_truth' / 'crack' / '001_mask.png')
    with pytest.raises(FileNotFoundError) as info:
        MVTecADDataset(data_root=str(tmp_path), split='test')
    msg = str(info.value)
    assert '001.jpg' in msg
    assert os.path.join('ground_truth', 'crack', '001_mask') in msg


def test_mask_size_mismatch_names_both_files(tmp_path):
    make_mvtec(tmp_path)
    _write(tmp_path / 'ground_truth' / 'crack' / '000_mask.png',
           np.zeros((8, 8), np.uint8))
    pipeline = [dict(type='LoadAnomalyImage'), dict(type='LoadAnomalyMask')]
    with pytest.raises(ValueError) as info:  # found when the dataset is built
        MVTecADDataset(data_root=str(tmp_path), split='test', test_mode=True,
                       pipeline=pipeline)
    msg = str(info.value)
    assert '000_mask.png' in msg and '000.jpg' in msg
    assert '8x8' in msg and f'{SIZE[0]}x{SIZE[1]}' in msg
    # without the up-front check, loading the sample says the same
    ds = MVTecADDataset(data_root=str(tmp_path), split='test', test_mode=True,
                        pipeline=pipeline, check_files=False)
    idx = next(i for i in range(len(ds))
               if ds.get_data_info(i)['img_path'].endswith(
                   os.path.join('crack', '000.jpg')))
    with pytest.raises(ValueError) as info:
        ds[idx]
    msg = str(info.value)
    assert '000_mask.png' in msg and '000.jpg' in msg
    assert '8x8' in msg and f'{SIZE[0]}x{SIZE[1]}' in msg


def test_corrupt_image_raises_on_load(tmp_path):
    make_mvtec(tmp_path, img_ext='.png')
    (tmp_path / 'train' / 'good' / '002.png').write_bytes(b'garbage bytes')
    with pytest.raises(ValueError, match='002.png'):  # when the dataset is built
        MVTecADDataset(data_root=str(tmp_path), pipeline=[dict(type='LoadAnomalyImage')])
    # unchecked: in training the next image stands in and carries the bad file
    ds = MVTecADDataset(data_root=str(tmp_path), check_files=False,
                        pipeline=[dict(type='LoadAnomalyImage'), dict(type='PackAnomalyInputs')])
    sample = ds[2]['data_samples']
    assert sample.img_path == ds.get_data_info(3)['img_path']
    (path, reason), = sample.bad_files
    assert path.endswith('002.png') and 'corrupt or truncated' in reason
    with pytest.raises(ValueError, match='002.png'):  # testing: the image alone
        MVTecADDataset(data_root=str(tmp_path), pipeline=[dict(type='LoadAnomalyImage')],
                       check_files=False, test_mode=True).pipeline(ds.get_data_info(2))
