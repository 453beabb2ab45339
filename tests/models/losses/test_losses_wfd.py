import math

import pytest
import torch

import anomaly_plugin  # noqa: F401
from anomaly_plugin.models.losses import WFDLoss
from anomaly_plugin.models.losses.wfd import frequency_weights
from anomaly_plugin.registry import MODELS


def _patterns(size=32):
    """Checkerboard and a one-period sinusoid with equal L2 norm, (1, 1, H, W)."""
    i = torch.arange(size, dtype=torch.float64)
    checker = 0.1 * (-1.0) ** (i[:, None] + i[None, :])
    smooth = torch.sin(2 * math.pi * i / size)[None, :].expand(size, size)
    smooth = smooth * checker.norm() / smooth.norm()
    return checker[None, None].float(), smooth[None, None].float()


def test_zero_for_identical_images():
    x = torch.rand(2, 3, 20, 24)
    assert WFDLoss()(x, x).item() == 0.0
    assert WFDLoss().map(x, x).abs().max().item() == 0.0


def test_high_frequency_error_costs_more_than_smooth_error_of_same_energy():
    checker, smooth = _patterns()
    base = torch.full((1, 1, 32, 32), 0.5)
    assert torch.allclose((checker ** 2).sum(), (smooth ** 2).sum())
    loss = WFDLoss()
    high, low = loss(base + checker, base).item(), loss(base + smooth, base).item()
    assert high > 10 * low > 0
    # the checkerboard lies at the (Nyquist, Nyquist) corner where the weight is 1
    assert high == pytest.approx((checker ** 2).mean().item(), rel=1e-5)


def test_uniform_weights_give_mse_by_parseval():
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 15, 22), torch.rand(2, 3, 15, 22)
    mse = (pred - target).pow(2).mean()
    assert WFDLoss(alpha=0)(pred, target).item() == pytest.approx(mse.item(), rel=1e-5)
    assert WFDLoss(alpha=2.0, floor=1.0)(pred, target).item() == pytest.approx(mse.item(),
                                                                               rel=1e-5)
    # alpha=0 map is the squared residual itself
    ref = (pred - target).pow(2).mean(1, keepdim=True)
    assert torch.allclose(WFDLoss(alpha=0).map(pred, target), ref, atol=1e-6)


def test_floor_prices_a_brightness_offset():
    x = torch.rand(1, 3, 16, 16)
    assert WFDLoss()(x + 0.1, x).item() == pytest.approx(0.0, abs=1e-8)
    assert WFDLoss(floor=0.5)(x + 0.1, x).item() == pytest.approx(0.5 * 0.01, rel=1e-4)


def test_weights_grid():
    w = frequency_weights(8, 8, alpha=1.0)
    assert w[0, 0] == 0 and w[4, 4] == pytest.approx(1.0)
    assert w[0, 1] < w[0, 2] < w[0, 4] < w[4, 4]
    assert torch.allclose(w[1:, 1:], w[1:, 1:].flip(0).flip(1))  # symmetric under (u, v) -> -(u, v)


def test_map_shape_and_mean_equals_loss():
    torch.manual_seed(1)
    pred, target = torch.rand(2, 3, 18, 26), torch.rand(2, 3, 18, 26)
    loss = WFDLoss(alpha=1.5, floor=0.1, loss_weight=4.0)
    m = loss.map(pred, target)
    assert m.shape == (2, 1, 18, 26) and (m >= 0).all()
    assert (4.0 * m.mean()).item() == pytest.approx(loss(pred, target).item(), rel=1e-4)


def test_map_localises_a_sharp_defect():
    target = torch.full((1, 3, 32, 32), 0.5)
    pred = target.clone()
    pred[..., 20:23, 5:8] = 0.9
    m = WFDLoss().map(pred, target)[0, 0]
    r, c = divmod(int(m.argmax()), 32)
    assert 18 <= r <= 24 and 3 <= c <= 9


@pytest.mark.parametrize('same', [True, False])
def test_gradients_finite(same):
    torch.manual_seed(0)
    target = torch.rand(2, 3, 16, 16)
    pred = (target.clone() if same else torch.rand(2, 3, 16, 16)).requires_grad_(True)
    loss = WFDLoss()
    (loss(pred, target) + loss.map(pred, target).mean()).backward()
    assert torch.isfinite(pred.grad).all()
    if not same:
        assert pred.grad.abs().sum() > 0


def test_registered_and_bad_input():
    assert isinstance(MODELS.build(dict(type='WFDLoss', alpha=2.0)), WFDLoss)
    with pytest.raises(ValueError, match='same'):
        WFDLoss()(torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match='floor'):
        WFDLoss(floor=1.5)
    with pytest.raises(ValueError, match='alpha'):
        WFDLoss(alpha=-1)
