import numpy as np
import pytest
import torch
from scipy import ndimage

import anomaly_plugin  # noqa: F401
from anomaly_plugin.models.losses import MSGMSLoss
from anomaly_plugin.registry import MODELS

C = 0.0026


def _gms_dissimilarity(a, b):
    """Reference 1 - GMS of (H, W) gray images, scaled Prewitt, zero padding."""
    kx = np.array([[1.0, 0.0, -1.0]] * 3) / 3
    mags = []
    for im in (a, b):
        gx = ndimage.correlate(im, kx, mode='constant', cval=0.0)
        gy = ndimage.correlate(im, kx.T, mode='constant', cval=0.0)
        mags.append(np.sqrt(gx ** 2 + gy ** 2))
    g1, g2 = mags
    return 1 - (2 * g1 * g2 + C) / (g1 ** 2 + g2 ** 2 + C)


def _block_mean(im):
    h, w = im.shape
    return im.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def _reference_loss(a, b, scales=4):
    """a, b: (H, W, C) -> mean over scales of mean(1 - GMS) of the gray images."""
    a, b = a.mean(-1), b.mean(-1)
    terms = []
    for s in range(scales):
        if s:
            a, b = _block_mean(a), _block_mean(b)
        terms.append(_gms_dissimilarity(a, b).mean())
    return np.mean(terms)


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float()[None]


def test_loss_matches_numpy_reference():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:48] / 32.0
    smooth = np.stack([0.5 + 0.3 * np.sin(3 * xx + c) * np.cos(2 * yy) for c in range(3)], -1)
    cases = [
        (rng.random((32, 32, 3)), rng.random((32, 32, 3))),
        (smooth, np.clip(smooth + 0.05 * rng.standard_normal(smooth.shape), 0, 1)),
        (rng.random((64, 40, 1)), rng.random((64, 40, 1))),
    ]
    for a, b in cases:
        ours = MSGMSLoss()(_t(a), _t(b)).item()
        assert ours == pytest.approx(_reference_loss(a, b), abs=1e-5)


def test_map_unsmoothed_single_scale_matches_reference():
    rng = np.random.default_rng(1)
    a, b = rng.random((24, 20, 3)), rng.random((24, 20, 3))
    m = MSGMSLoss(num_scales=1, mean_filter_size=1).map(_t(a), _t(b))[0, 0].numpy()
    np.testing.assert_allclose(m, _gms_dissimilarity(a.mean(-1), b.mean(-1)), atol=1e-5)


def test_map_is_smoothed_scale_average_at_input_size():
    rng = np.random.default_rng(2)
    pred, target = _t(rng.random((32, 32, 3))), _t(rng.random((32, 32, 3)))
    raw = MSGMSLoss(mean_filter_size=1).map(pred, target)
    smooth = MSGMSLoss(mean_filter_size=5).map(pred, target)
    assert raw.shape == smooth.shape == (1, 1, 32, 32)
    # interior pixel of the 5x5 box filter = mean of the raw neighbourhood
    assert smooth[0, 0, 10, 13].item() == pytest.approx(raw[0, 0, 8:13, 11:16].mean().item(),
                                                        abs=1e-6)
    assert smooth.std() < raw.std()
    # default filter (21) also keeps the size, even on an image smaller than 21
    assert MSGMSLoss().map(pred[..., :16, :16], target[..., :16, :16]).shape == (1, 1, 16, 16)


def test_localised_defect_peaks_in_map():
    target = torch.full((1, 3, 64, 64), 0.5)
    pred = target.clone()
    pred[..., 40:46, 10:16] = 1.0
    m = MSGMSLoss().map(pred, target)[0, 0]
    peak = np.unravel_index(int(m.argmax()), m.shape)
    assert 34 <= peak[0] <= 52 and 4 <= peak[1] <= 22
    assert m[5, 50] < 1e-3 * m.max()


@pytest.mark.parametrize('same', [True, False])
def test_gradients_finite(same):
    torch.manual_seed(0)
    target = torch.rand(2, 3, 16, 16)
    pred = (target.clone() if same else torch.rand(2, 3, 16, 16)).requires_grad_(True)
    loss = MSGMSLoss()
    (loss(pred, target) + loss.map(pred, target).mean()).backward()
    assert torch.isfinite(pred.grad).all()
    if same:
        assert loss(pred, target).item() == pytest.approx(0.0, abs=1e-6)
    else:
        assert pred.grad.abs().sum() > 0


def test_gradient_finite_on_flat_images():
    # flat images: every gradient is zero, the magnitude sits at sqrt(eps)
    pred = torch.full((1, 1, 16, 16), 0.3, requires_grad=True)
    MSGMSLoss()(pred, torch.full((1, 1, 16, 16), 0.3)).backward()
    assert torch.isfinite(pred.grad).all()


def test_registered_and_bad_input():
    loss = MODELS.build(dict(type='MSGMSLoss', loss_weight=3.0))
    assert isinstance(loss, MSGMSLoss)
    x, y = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    assert loss(x, y).item() == pytest.approx(3.0 * MSGMSLoss()(x, y).item(), rel=1e-6)
    with pytest.raises(ValueError, match='same'):
        loss(x, y[..., :15])
    with pytest.raises(ValueError, match='>= 8'):
        loss(torch.rand(1, 3, 4, 16), torch.rand(1, 3, 4, 16))
    with pytest.raises(ValueError, match='odd'):
        MSGMSLoss(mean_filter_size=4)
