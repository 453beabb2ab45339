import glob
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from conftest import run_tool

from anomaly_plugin.demo import (
    DEFECT_TYPES,
    TEXTURES,
    build_demo_dataset,
    generate_category,
    load_texture,
    paint_defect,
    sample_tiles,
    split_rows,
)

SMALL = dict(categories=('grass', ), tile=32, num_train=4, num_test_good=3,
             num_test_defect=2)


def _read_tree(root):
    """{relative path: bytes} of every file under root."""
    out = {}
    for path in sorted(glob.glob(osp.join(root, '**', '*'), recursive=True)):
        if osp.isfile(path):
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = f.read()
    return out


def _images(tree):
    return {k: v for k, v in tree.items() if k.endswith('.png')}


@pytest.fixture(scope='module')
def small_set(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('demo'))
    meta = build_demo_dataset(out, seed=3, **SMALL)
    return out, meta


def test_textures_load_offline():
    for name in TEXTURES:
        photo = load_texture(name)
        assert photo.dtype == np.uint8 and photo.shape == (512, 512)
        assert photo.std() > 10  # a real texture, not a blank image
    with pytest.raises(ValueError, match='Unknown demo texture'):
        load_texture('camera')


def test_layout(small_set):
    out, meta = small_set
    assert meta['built'] is True
    root = osp.join(out, 'grass')
    assert sorted(os.listdir(out)) == ['README.txt', 'grass', 'meta.json']
    assert sorted(os.listdir(root)) == ['ground_truth', 'test', 'train']
    assert os.listdir(osp.join(root, 'train')) == ['good']
    assert sorted(os.listdir(osp.join(root, 'test'))) == sorted(
        ('good', ) + DEFECT_TYPES)
    assert sorted(os.listdir(osp.join(root, 'ground_truth'))) == sorted(DEFECT_TYPES)
    assert len(os.listdir(osp.join(root, 'train', 'good'))) == 4
    assert len(os.listdir(osp.join(root, 'test', 'good'))) == 3

    for defect_type in DEFECT_TYPES:
        imgs = sorted(glob.glob(osp.join(root, 'test', defect_type, '*.png')))
        masks = sorted(glob.glob(osp.join(root, 'ground_truth', defect_type, '*')))
        assert len(imgs) == len(masks) == 2
        for img_path in imgs:
            stem = osp.splitext(osp.basename(img_path))[0]
            mask_path = osp.join(root, 'ground_truth', defect_type,
                                 f'{stem}_mask.png')
            img = cv2.imread(img_path, cv2.IMREAD_UNCHANGED)
            mask = cv2.imread(mask_path, cv2.IMREAD_UNCHANGED)
            assert img.shape == mask.shape == (32, 32)
            assert img.dtype == mask.dtype == np.uint8
            assert set(np.unique(mask).tolist()) == {0, 255}

    counts = meta['categories']['grass']['counts']
    assert counts['train/good'] == 4 and counts['test/scratch'] == 2
    with open(osp.join(out, 'meta.json')) as f:
        on_disk = json.load(f)
    assert on_disk['params']['seed'] == 3 and on_disk['params']['tile'] == 32
    # Normal images never get a mask.
    for rec in on_disk['categories']['grass']['records']['test_good']:
        assert 'mask' not in rec
    for split in ('train', 'test_good'):
        for rec in on_disk['categories']['grass']['records'][split]:
            assert '/good/' in rec['file'].replace(os.sep, '/')


def test_determinism(small_set, tmp_path):
    out, _ = small_set
    same = build_demo_dataset(str(tmp_path / 'same'), seed=3, **SMALL)
    assert same['built']
    ref = _read_tree(out)
    assert _read_tree(str(tmp_path / 'same')) == ref
    build_demo_dataset(str(tmp_path / 'other'), seed=4, **SMALL)
    other = _images(_read_tree(str(tmp_path / 'other')))
    assert other.keys() == _images(ref).keys()
    changed = [k for k in other if other[k] != ref[k]]
    assert len(changed) > len(other) // 2


def test_category_independent_of_others():
    kwargs = dict(tile=32, seed=1, num_train=2, num_test_good=1, num_test_defect=1)
    a = generate_category('brick', **kwargs)
    b = generate_category('brick', **kwargs)
    c = generate_category('gravel', **kwargs)
    np.testing.assert_array_equal(a['train'], b['train'])
    for d in DEFECT_TYPES:
        np.testing.assert_array_equal(a['defects'][d]['img'], b['defects'][d]['img'])
    assert not np.array_equal(a['train'], c['train'])


@pytest.mark.parametrize('defect_type', DEFECT_TYPES)
@pytest.mark.parametrize('size', [32, 64])
def test_defect_changes_exactly_the_mask(defect_type, size):
    rng = np.random.default_rng(7)
    photo = load_texture('gravel')
    source = load_texture('brick')
    # Include a saturated tile so the minimum-change rule is exercised.
    tiles = [photo[100:100 + size, 50:50 + size], np.full((size, size), 255, np.uint8),
             np.zeros((size, size), np.uint8)]
    for clean in tiles:
        clean_copy = clean.copy()
        for _ in range(5):
            img, mask = paint_defect(clean, defect_type, rng, source)
            np.testing.assert_array_equal(clean, clean_copy)  # input untouched
            assert img.shape == mask.shape == clean.shape
            assert set(np.unique(mask).tolist()) == {0, 255}
            inside = mask == 255
            np.testing.assert_array_equal(img[~inside], clean[~inside])
            delta = np.abs(img.astype(int) - clean.astype(int))
            assert delta[inside].min() >= 12
            frac = inside.mean()
            assert 0.001 < frac < 0.15, (defect_type, frac)


def test_defect_area_and_contrast_in_generated_set():
    data = generate_category('brick', tile=64, seed=0, num_train=1, num_test_good=1,
                             num_test_defect=6)
    for defect_type in DEFECT_TYPES:
        d = data['defects'][defect_type]
        inside = d['mask'] == 255  # (N, T, T)
        assert inside.any(axis=(1, 2)).all()
        np.testing.assert_array_equal(d['img'][~inside], d['clean'][~inside])
        delta = np.abs(d['img'].astype(int) - d['clean'].astype(int))[inside]
        # Clearly visible change, well above sensor-noise level.
        assert delta.mean() > 25, defect_type
    assert data['defects']['hole']['img'][data['defects']['hole']['mask'] > 0].mean() \
        < data['test_good'].mean() - 30


def test_paint_defect_errors():
    rng = np.random.default_rng(0)
    tile = np.zeros((16, 16), np.uint8)
    with pytest.raises(ValueError, match='Unknown defect type'):
        paint_defect(tile, 'crack', rng)
    with pytest.raises(ValueError, match='source photograph'):
        paint_defect(tile, 'foreign', rng)
    with pytest.raises(ValueError, match='square'):
        paint_defect(np.zeros((16, 8), np.uint8), 'hole', rng)


def test_no_test_tile_overlaps_train_tile(small_set):
    _, meta = small_set
    info = meta['categories']['grass']
    train_rows, test_rows = info['train_rows'], info['test_rows']
    assert train_rows[1] <= test_rows[0]
    records = info['records']
    train_boxes = np.array([r['box'] for r in records['train']])  # (N, 4)
    test_boxes = np.array([r['box'] for k, recs in records.items() if k != 'train'
                           for r in recs])  # (M, 4)
    assert (train_boxes[:, 0] >= train_rows[0]).all()
    assert (train_boxes[:, 2] <= train_rows[1]).all()
    assert (test_boxes[:, 0] >= test_rows[0]).all()
    assert (test_boxes[:, 2] <= test_rows[1]).all()
    # Pairwise box intersection area must be zero.
    y0 = np.maximum(train_boxes[:, None, 0], test_boxes[None, :, 0])
    x0 = np.maximum(train_boxes[:, None, 1], test_boxes[None, :, 1])
    y1 = np.minimum(train_boxes[:, None, 2], test_boxes[None, :, 2])
    x1 = np.minimum(train_boxes[:, None, 3], test_boxes[None, :, 3])
    assert (np.clip(y1 - y0, 0, None) * np.clip(x1 - x0, 0, None) == 0).all()


def test_sample_tiles_boxes_match_pixels():
    photo = load_texture('brick')
    rng = np.random.default_rng(0)
    tiles, records = sample_tiles(photo, (300, 512), 32, 20, rng)
    undo = {'identity': lambda t: t, 'hflip': lambda t: t[:, ::-1],
            'vflip': lambda t: t[::-1], 'rot180': lambda t: t[::-1, ::-1]}
    for tile, rec in zip(tiles, records):
        y0, x0, y1, x1 = rec['box']
        assert 300 <= y0 and y1 <= 512 and y1 - y0 == x1 - x0 == 32
        np.testing.assert_array_equal(undo[rec['augment']](tile),
                                      photo[y0:y1, x0:x1])
    assert len({r['augment'] for r in records}) > 1


def test_split_rows_rejects_big_tile():
    assert split_rows(512, 128) == ((0, 307), (307, 512))
    with pytest.raises(ValueError, match='does not fit the test region'):
        split_rows(512, 256)


def test_rebuild_skipping(tmp_path):
    out = str(tmp_path / 'demo')
    first = build_demo_dataset(out, seed=0, **SMALL)
    assert first['built']
    marker = osp.join(out, 'grass', 'train', 'good', '000.png')
    mtime = os.stat(marker).st_mtime_ns
    again = build_demo_dataset(out, seed=0, **SMALL)
    assert again['built'] is False
    assert again['params'] == first['params']
    assert os.stat(marker).st_mtime_ns == mtime

    # Other parameters: refuse without overwrite, rebuild with it.
    with pytest.raises(FileExistsError, match='overwrite=True'):
        build_demo_dataset(out, seed=1, **SMALL)
    rebuilt = build_demo_dataset(out, seed=1, overwrite=True, **SMALL)
    assert rebuilt['built'] and rebuilt['params']['seed'] == 1

    # A missing file makes the existing set incomplete.
    os.remove(marker)
    with pytest.raises(FileExistsError, match='missing files'):
        build_demo_dataset(out, seed=1, **SMALL)
    assert build_demo_dataset(out, seed=1, overwrite=True, **SMALL)['built']
    assert osp.isfile(marker)


def test_subset_of_an_existing_set_is_reused(tmp_path):
    out = str(tmp_path / 'demo')
    full = build_demo_dataset(out, seed=0, **dict(SMALL, categories=('grass', 'brick')))
    subset = dict(SMALL, categories=('brick', ))
    again = build_demo_dataset(out, seed=0, **subset)
    assert again['built'] is False and again['params'] == full['params']
    with pytest.raises(FileExistsError, match='overwrite=True'):
        build_demo_dataset(out, seed=1, **subset)


def test_rebuild_removes_stale_category(tmp_path):
    out = str(tmp_path / 'demo')
    build_demo_dataset(out, seed=0, **SMALL)
    small = dict(SMALL, categories=('brick', ))
    build_demo_dataset(out, seed=0, overwrite=True, **small)
    assert sorted(os.listdir(out)) == ['README.txt', 'brick', 'meta.json']


def test_refuses_foreign_content_and_bad_args(tmp_path):
    out = tmp_path / 'demo'
    (out / 'grass').mkdir(parents=True)
    with pytest.raises(FileExistsError, match='without a meta.json'):
        build_demo_dataset(str(out), **SMALL)
    with pytest.raises(ValueError, match='Unknown demo category'):
        build_demo_dataset(str(out), categories=('wood', ))
    with pytest.raises(ValueError, match='num_train'):
        build_demo_dataset(str(out), **dict(SMALL, num_train=0))


def test_cli(tmp_path):
    out = str(tmp_path / 'cli')
    args = ['tools/demo_data.py', out, '--seed', '2', '--tile', '16', '--categories', 'gravel']
    assert 'built in' in run_tool(args)
    with open(osp.join(out, 'meta.json')) as f:
        params = json.load(f)['params']
    assert params['seed'] == 2 and params['tile'] == 16
    assert params['categories'] == ['gravel']
    img = cv2.imread(osp.join(out, 'gravel', 'train', 'good', '000.png'),
                     cv2.IMREAD_UNCHANGED)
    assert img.shape == (16, 16)
    assert 'already up to date' in run_tool(args)
