import pytest
import torch

import anomaly_plugin  # noqa: F401
from anomaly_plugin.models.losses import CombinedLoss, L2Loss, MSGMSLoss, SSIMLoss, WFDLoss
from anomaly_plugin.registry import MODELS

CFG = dict(type='CombinedLoss',
           losses=[dict(type='L2Loss', loss_weight=1.0),
                   dict(type='SSIMLoss', loss_weight=0.5),
                   dict(type='MSGMSLoss', loss_weight=2.0, mean_filter_size=3),
                   dict(type='WFDLoss', loss_weight=0.25)])


def _pair(seed=0, size=24):
    torch.manual_seed(seed)
    return torch.rand(2, 3, size, size), torch.rand(2, 3, size, size)


def test_scalar_is_sum_of_weighted_members_and_terms_are_logged():
    pred, target = _pair()
    loss = MODELS.build(CFG)
    expected = (L2Loss()(pred, target) + 0.5 * SSIMLoss()(pred, target)
                + 2.0 * MSGMSLoss()(pred, target) + 0.25 * WFDLoss()(pred, target))
    assert loss(pred, target).item() == pytest.approx(expected.item(), rel=1e-5)
    terms = loss.forward_terms(pred, target)
    assert list(terms) == ['loss_l2', 'loss_ssim', 'loss_msgms', 'loss_wfd']
    assert terms['loss_ssim'].item() == pytest.approx(0.5 * SSIMLoss()(pred, target).item(),
                                                      rel=1e-5)
    assert sum(terms.values()).item() == pytest.approx(expected.item(), rel=1e-5)


def test_map_defaults_to_loss_weights_and_accepts_explicit_weights():
    pred, target = _pair(1)
    members = [L2Loss(), SSIMLoss(), MSGMSLoss(mean_filter_size=3), WFDLoss()]
    maps = [m.map(pred, target) for m in members]
    default = MODELS.build(CFG).map(pred, target)
    assert default.shape == (2, 1, 24, 24)
    ref = maps[0] + 0.5 * maps[1] + 2.0 * maps[2] + 0.25 * maps[3]
    assert torch.allclose(default, ref, atol=1e-5)
    custom = MODELS.build(dict(CFG, map_weights=[0, 1, 0, 0])).map(pred, target)
    assert torch.allclose(custom, maps[1], atol=1e-6)


def test_duplicate_names_and_outer_weight():
    pred, target = _pair(2)
    loss = CombinedLoss([dict(type='L2Loss'), dict(type='L2Loss', loss_weight=3.0)],
                        loss_weight=0.5)
    terms = loss.forward_terms(pred, target)
    assert list(terms) == ['loss_l2_0', 'loss_l2_1']
    mse = (pred - target).pow(2).mean().item()
    assert terms['loss_l2_1'].item() == pytest.approx(1.5 * mse, rel=1e-5)
    assert loss(pred, target).item() == pytest.approx(2.0 * mse, rel=1e-5)


@pytest.mark.parametrize('same', [True, False])
def test_gradients_finite(same):
    target = torch.rand(1, 3, 16, 16)
    pred = (target.clone() if same else torch.rand(1, 3, 16, 16)).requires_grad_(True)
    loss = MODELS.build(CFG)
    (loss(pred, target) + loss.map(pred, target).mean()).backward()
    assert torch.isfinite(pred.grad).all()
    if same:
        assert loss(pred, target).item() == pytest.approx(0.0, abs=1e-5)


def test_bad_config():
    with pytest.raises(ValueError, match='at least one'):
        CombinedLoss([])
    with pytest.raises(ValueError, match='map_weights'):
        CombinedLoss([dict(type='L2Loss')], map_weights=[1.0, 2.0])
    with pytest.raises(TypeError, match='map'):
        CombinedLoss([torch.nn.MSELoss()])


def test_combined_loss_logs_each_term_and_sums_to_the_loss():
    model = MODELS.build(dict(
        type='ConvAutoEncoder',
        encoder=dict(type='ConvEncoder', channels=(8, 16), latent_channels=4),
        decoder=dict(type='ConvDecoder', latent_channels=4, channels=(16, 8)),
        loss=dict(type='CombinedLoss', losses=[dict(type='L2Loss', loss_weight=2.0),
                                               dict(type='SSIMLoss')])))
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    losses = model(x, mode='loss')
    assert set(losses) == {'loss_l2', 'loss_ssim'}
    total, log_vars = model.parse_losses(losses)
    target = model.data_preprocessor.denormalize(x)
    expected = model.loss_fn(model.reconstruct(x), target)
    assert float(total) == pytest.approx(float(expected), rel=1e-5)
    assert float(log_vars['loss']) == pytest.approx(float(expected), rel=1e-5)
    assert float(losses['loss_l2']) > 0 and float(losses['loss_ssim']) > 0
