"""The synthetic-anomaly generator: exact masks, opacity 0, seeding across
worker and rank layouts and epochs, foreground restriction, texture folders."""
import cv2
import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub

from anomaly_plugin.datasets.synthesis import (
    CutPasteAnomaly,
    FolderTexture,
    PerlinAnomaly,
    perlin_mask,
    perlin_noise,
)
from anomaly_plugin.datasets.transforms import PackAnomalyInputs, SynthesizeAnomaly

KINDS = {
    'perlin_procedural': dict(type='PerlinAnomaly'),
    'perlin_self': dict(type='PerlinAnomaly', source='self'),
    'cutpaste': dict(type='CutPasteAnomaly'),
    'scar': dict(type='ScarAnomaly'),
}


def image(seed=0, size=64):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    base = 120 + 50 * np.sin(xx / 4.0)[..., None] + rng.normal(0, 8, (size, size, 3))
    return np.clip(base + [0, 20, -20], 0, 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def epoch_zero():
    MessageHub.get_current_instance().update_info('epoch', 0)
    yield
    MessageHub.get_current_instance().update_info('epoch', 0)


def draw(transform, idx, img=None, **extra):
    return transform(dict(img=(image() if img is None else img).copy(), sample_idx=idx,
                          **extra))


@pytest.mark.parametrize('name', list(KINDS) + ['perlin_folder'])
def test_mask_is_exactly_where_the_image_changed(name, tmp_path):
    if name == 'perlin_folder':
        for i in range(2):
            cv2.imwrite(str(tmp_path / f'tex{i}.png'), image(seed=10 + i, size=40))
        kind = dict(type='PerlinAnomaly', source=str(tmp_path))
    else:
        kind = KINDS[name]
    t = SynthesizeAnomaly(kinds=[kind], prob=1.0, keep_clean=True)
    img = image()
    drawn = 0
    for idx in range(12):
        r = draw(t, idx, img)
        changed = (r['img'] != img).any(-1)
        np.testing.assert_array_equal(r['gt_mask'].astype(bool), changed)
        np.testing.assert_array_equal(r['clean_img'], img)
        assert r['gt_label'] == int(changed.any())
        drawn += changed.any()
    assert drawn >= 8  # nearly every draw changes something


def test_opacity_zero_leaves_the_image_unchanged():
    t = SynthesizeAnomaly(kinds=[dict(type='PerlinAnomaly', opacity=(0, 0))], prob=1.0)
    img = image()
    for idx in range(5):
        r = draw(t, idx, img)
        np.testing.assert_array_equal(r['img'], img)
        assert not r['gt_mask'].any() and r['gt_label'] == 0 and r['anomaly_kind'] == 'none'


def test_prob_and_kind_labels():
    t = SynthesizeAnomaly(kinds=[dict(type='CutPasteAnomaly'), dict(type='ScarAnomaly')],
                          prob=2 / 3, labels='kind')
    labels = [draw(t, i)['gt_label'] for i in range(300)]
    counts = np.bincount(labels, minlength=3)
    assert counts.sum() == 300 and all(70 < c < 130 for c in counts), counts
    kinds = {draw(t, i)['anomaly_kind'] for i in range(30)}
    assert kinds == {'none', 'CutPasteAnomaly', 'ScarAnomaly'}


def test_foreground_restriction():
    img = image()
    img[:, :32] = 0  # dark left half: background
    t = SynthesizeAnomaly(kinds=[dict(type='PerlinAnomaly'), dict(type='CutPasteAnomaly')],
                          prob=1.0, foreground=dict(threshold=10))
    assert sum(draw(t, i, img)['gt_mask'][:, 32:].sum() for i in range(10)) > 0
    for i in range(10):
        assert not draw(t, i, img)['gt_mask'][:, :32].any()
    inv = SynthesizeAnomaly(kinds=[dict(type='PerlinAnomaly')], prob=1.0,
                            foreground=dict(threshold=10, invert=True))
    for i in range(10):
        assert not draw(inv, i, img)['gt_mask'][:, 32:].any()
    given = np.zeros((64, 64), np.uint8)
    given[40:, 40:] = 1
    t = SynthesizeAnomaly(kinds=[dict(type='PerlinAnomaly')], prob=1.0, foreground='mask')
    for i in range(10):
        m = draw(t, i, foreground_mask=given)['gt_mask']
        assert not (m & (1 - given)).any()
    with pytest.raises(KeyError, match='foreground_mask'):
        draw(t, 0)


class Samples(torch.utils.data.Dataset):
    def __init__(self, transform, n=8):
        self.transform, self.n = transform, n

    def __len__(self):
        return self.n

    def __getitem__(self, idx):
        r = self.transform(dict(img=image(seed=idx), sample_idx=idx))
        return idx, r['img'], r['gt_mask']


def collect(loader):
    return {int(i): (img.numpy(), m.numpy()) for idx, img, m in loader
            for i, img, m in zip(idx, img, m)}


def test_same_anomaly_whatever_the_worker_and_rank_layout():
    from mmengine.dataset import DefaultSampler
    t = SynthesizeAnomaly(kinds=list(KINDS.values()), prob=1.0, seed=3)
    ds = Samples(t)
    one = collect(torch.utils.data.DataLoader(ds, batch_size=3, shuffle=False))
    workers = collect(torch.utils.data.DataLoader(ds, batch_size=2, shuffle=True,
                                                  num_workers=2))
    ranks = {}
    for rank in range(2):  # the index split of a 2-process run
        sampler = DefaultSampler(ds, shuffle=True, seed=1)
        sampler.rank, sampler.world_size = rank, 2
        sampler.num_samples = len(ds) // 2
        sampler.total_size = len(ds)
        part = collect(torch.utils.data.DataLoader(ds, batch_size=2, sampler=sampler))
        assert not set(part) & set(ranks)  # no sample (hence no draw) on two ranks
        ranks.update(part)
    assert set(one) == set(workers) == set(ranks) == set(range(8))
    for i in one:
        for other in (workers, ranks):
            np.testing.assert_array_equal(one[i][0], other[i][0])
            np.testing.assert_array_equal(one[i][1], other[i][1])
    masks = [one[i][1] for i in one]
    assert all(not np.array_equal(masks[0], m) for m in masks[1:])  # draws differ per sample


def test_epoch_and_seed_change_the_draw():
    t = SynthesizeAnomaly(kinds=[dict(type='PerlinAnomaly')], prob=1.0)
    first = draw(t, 0)['img']
    np.testing.assert_array_equal(draw(t, 0)['img'], first)
    MessageHub.get_current_instance().update_info('epoch', 1)
    assert not np.array_equal(draw(t, 0)['img'], first)
    MessageHub.get_current_instance().update_info('epoch', 0)
    assert not np.array_equal(draw(SynthesizeAnomaly(kinds=[dict(type='PerlinAnomaly')],
                                                     prob=1.0, seed=1), 0)['img'], first)
    with pytest.raises(KeyError, match='sample_idx'):
        t(dict(img=image(), img_path='a.png'))


def test_texture_folder_errors_name_the_file(tmp_path):
    cv2.imwrite(str(tmp_path / 'good.png'), image())
    (tmp_path / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0' * 20)
    with pytest.raises(ValueError, match='broken.png'):
        FolderTexture(str(tmp_path))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no image files'):
        FolderTexture(str(tmp_path / 'empty'))
    with pytest.raises(FileNotFoundError, match='missing'):
        PerlinAnomaly(source=str(tmp_path / 'missing'))


def test_perlin_noise_and_mask():
    rng = np.random.default_rng(0)
    n = perlin_noise((50, 70), (4, 8), rng)
    assert n.shape == (50, 70) and n.dtype == np.float32
    assert -1.01 < n.min() < -0.2 and 0.2 < n.max() < 1.01
    # zero at the lattice points (gradient noise), smooth in between
    np.testing.assert_allclose(perlin_noise((64, 64), (4, 4), np.random.default_rng(1))[::16, ::16],
                               0, atol=1e-6)
    assert np.abs(np.diff(n, axis=1)).max() < 0.5
    m = perlin_mask((64, 64), np.random.default_rng(2), threshold=0.5)
    assert m.dtype == bool and m.shape == (64, 64)
    np.testing.assert_array_equal(m, perlin_mask((64, 64), np.random.default_rng(2)))


def test_cutpaste_patch_comes_from_the_image():
    img = image()
    out, mask = CutPasteAnomaly(jitter=0)(img, np.random.default_rng(4))
    ys, xs = np.nonzero(mask)
    assert mask.any() and mask.sum() < 0.2 * mask.size
    patch = out[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    ph, pw = patch.shape[:2]
    windows = np.lib.stride_tricks.sliding_window_view(img, (ph, pw, 3))[..., 0, :, :, :]
    assert (windows == patch).all(axis=(-1, -2, -3)).any()  # an unjittered copy of a region


def test_packed_sample_carries_the_clean_image_and_kind():
    t = SynthesizeAnomaly(kinds=[dict(type='CutPasteAnomaly')], prob=1.0, keep_clean=True)
    packed = PackAnomalyInputs()(draw(t, 0))
    s = packed['data_samples']
    assert s.clean_img.shape == packed['inputs'].shape == (3, 64, 64)
    assert s.anomaly_kind == 'CutPasteAnomaly' and int(s.gt_label) == 1
    assert s.gt_mask.sum() > 0
