import pytest
import torch
from mmengine.registry import MODELS as ROOT_MODELS

import anomaly_plugin  # noqa: F401
from anomaly_plugin.models import ConvAutoEncoder
from anomaly_plugin.registry import MODELS
from anomaly_plugin.structures import AnomalyDataSample

SMALL = dict(type='ConvAutoEncoder',
             encoder=dict(type='ConvEncoder', channels=(8, 16), latent_channels=4),
             decoder=dict(type='ConvDecoder', latent_channels=4, channels=(16, 8)),
             postprocess=dict(sigma=1.0))


def _batch(b=2, size=32):
    torch.manual_seed(0)
    return torch.randn(b, 3, size, size)


def test_scoped_build_from_root_registry():
    torch.manual_seed(0)
    model = ROOT_MODELS.build(dict(SMALL, type='anomaly_plugin.ConvAutoEncoder'))
    assert isinstance(model, ConvAutoEncoder)
    torch.manual_seed(0)
    ours = MODELS.build(SMALL)  # the same model as from the plugin's own registry
    x = _batch()
    model.eval(), ours.eval()
    assert model(x, mode='tensor').shape == (2, 1, 32, 32)
    assert torch.equal(model(x, mode='tensor'), ours(x, mode='tensor'))


def test_loss_has_gradient():
    model = MODELS.build(SMALL)
    losses = model(_batch(), mode='loss')
    assert set(losses) == {'loss_rec'}
    losses['loss_rec'].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_predict_maps_at_input_size_and_score_is_max():
    model = MODELS.build(SMALL).eval()
    x = _batch(3, 32)
    samples = model(x, [AnomalyDataSample() for _ in range(3)], mode='predict')
    assert len(samples) == 3
    for s in samples:
        assert s.anomaly_map.shape == (32, 32)
        assert float(s.pred_score) == pytest.approx(float(s.anomaly_map.max()))
        assert 'pred_label' not in s  # not calibrated yet
    raw = model(x, mode='tensor')
    assert raw.shape == (3, 1, 32, 32)
    # same input, same scores: no randomness at test time
    again = model(x, mode='predict')
    assert torch.equal(again[0].anomaly_map, samples[0].anomaly_map)


def test_calibrated_predict_sets_labels_and_masks():
    model = MODELS.build(SMALL).eval()
    x = _batch(2, 32)
    scores = [float(s.pred_score) for s in model(x, mode='predict')]
    thr = sum(scores) / 2
    model.postprocessor.set_calibration(dict(
        image_threshold=thr, pixel_threshold=thr, image_min=0, image_max=1,
        pixel_min=0, pixel_max=1))
    out = model(x, mode='predict')
    for s, score in zip(out, scores):
        assert int(s.pred_label) == int(score >= thr)
        assert torch.equal(s.pred_mask, (s.anomaly_map >= thr).to(torch.uint8))
        assert 0.0 <= float(s.norm_score) <= 1.0


def test_bad_mode():
    with pytest.raises(ValueError, match='mode'):
        MODELS.build(SMALL)(_batch(), mode='nope')
