import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity

import anomaly_plugin  # noqa: F401
from anomaly_plugin.models.losses import SSIMLoss, ssim_map
from anomaly_plugin.registry import MODELS

SK = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)


def _pairs(rng):
    """Gray (H, W) float64 pairs in [0, 1]: noisy, smooth, independent, shifted."""
    yy, xx = np.mgrid[0:40, 0:48] / 40.0
    smooth = 0.5 + 0.4 * np.sin(2 * np.pi * xx) * np.cos(np.pi * yy)
    blurred = ndimage.gaussian_filter(rng.random((33, 29)), 2.0)
    noisy = rng.random((24, 36))
    return [
        (noisy, np.clip(noisy + 0.1 * rng.standard_normal(noisy.shape), 0, 1)),
        (smooth, np.clip(smooth + 0.05 * np.cos(6 * np.pi * yy), 0, 1)),
        (blurred, ndimage.gaussian_filter(rng.random((33, 29)), 2.0)),
        (rng.random((16, 16)), rng.random((16, 16))),
        (smooth, np.roll(smooth, 3, axis=1)),
    ]


def _t(a):
    """(H, W) or (H, W, C) numpy -> (1, C, H, W) float32 tensor."""
    a = a[..., None] if a.ndim == 2 else a
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float()[None]


def test_gray_loss_matches_skimage():
    rng = np.random.default_rng(0)
    loss = SSIMLoss()
    for a, b in _pairs(rng):
        expected = 1 - structural_similarity(a, b, **SK)
        assert loss(_t(a), _t(b)).item() == pytest.approx(expected, abs=1e-4)


def test_full_map_matches_skimage_including_border():
    rng = np.random.default_rng(1)
    a, b = _pairs(rng)[0]
    _, full = structural_similarity(a, b, full=True, **SK)
    ours = ssim_map(_t(a), _t(b))[0, 0].numpy()
    assert ours.shape == a.shape
    np.testing.assert_allclose(ours, full, atol=1e-4)
    np.testing.assert_allclose(SSIMLoss().map(_t(a), _t(b))[0, 0].numpy(), 1 - full, atol=1e-4)


def test_colour_is_mean_over_channels_and_batch():
    rng = np.random.default_rng(2)
    imgs = [rng.random((20, 28, 3)) for _ in range(2)]
    refs = [np.clip(im + 0.15 * rng.standard_normal(im.shape), 0, 1) for im in imgs]
    per_image = [1 - structural_similarity(a, b, channel_axis=2, **SK) for a, b in zip(imgs, refs)]
    pred = torch.cat([_t(a) for a in imgs])  # (2, 3, 20, 28)
    target = torch.cat([_t(b) for b in refs])
    out = MODELS.build(dict(type='SSIMLoss', loss_weight=2.0))(pred, target)
    assert out.item() == pytest.approx(2.0 * np.mean(per_image), abs=2e-4)


def test_map_shape_and_identity():
    x = torch.rand(2, 3, 17, 23)
    m = SSIMLoss().map(x, torch.rand(2, 3, 17, 23))
    assert m.shape == (2, 1, 17, 23)
    assert torch.isfinite(m).all() and m.min() > 0
    assert SSIMLoss().map(x, x).abs().max() < 1e-5
    assert SSIMLoss()(x, x).abs() < 1e-5


@pytest.mark.parametrize('same', [True, False])
def test_gradients_finite(same):
    torch.manual_seed(0)
    target = torch.rand(2, 3, 16, 16)
    pred = (target.clone() if same else torch.rand(2, 3, 16, 16)).requires_grad_(True)
    loss = SSIMLoss()
    (loss(pred, target) + loss.map(pred, target).mean()).backward()
    assert torch.isfinite(pred.grad).all()
    if not same:
        assert pred.grad.abs().sum() > 0


def test_registered_and_bad_input():
    assert isinstance(MODELS.build(dict(type='SSIMLoss')), SSIMLoss)
    loss = SSIMLoss()
    with pytest.raises(ValueError, match='same'):
        loss(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 15))
    with pytest.raises(ValueError, match='>= 11'):
        loss(torch.rand(1, 1, 8, 16), torch.rand(1, 1, 8, 16))
    with pytest.raises(ValueError, match='odd'):
        SSIMLoss(window=10)
