"""Backbones of mmdet and mmseg in FeatureExtractor, with the compiled mmcv (``make interop``).

Each backbone is built inside a full mmdet detector or mmseg segmentor by
that package's own registry, the whole model is saved as those packages
save checkpoints (``state_dict`` + ``meta``), and FeatureExtractor loads the
``backbone.`` entries: its features must be the model's own backbone's.
"""
import importlib.util

import pytest
import torch

pytestmark = pytest.mark.interop

MIT = dict(type='MixVisionTransformer', in_channels=3, embed_dims=32, num_stages=4,
           num_layers=[1, 1, 1, 1], num_heads=[1, 2, 5, 8], patch_sizes=[7, 3, 3, 3],
           sr_ratios=[8, 4, 2, 1], out_indices=(0, 1, 2, 3))
SEGFORMER = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor'),
    backbone=MIT,
    decode_head=dict(type='SegformerHead', in_channels=[32, 64, 160, 256], in_index=[0, 1, 2, 3],
                     channels=64, num_classes=2))
RETINANET_CSP = dict(
    type='RetinaNet',
    data_preprocessor=dict(type='DetDataPreprocessor'),
    backbone=dict(type='CSPDarknet', deepen_factor=0.33, widen_factor=0.25,
                  out_indices=(2, 3, 4)),
    neck=dict(type='FPN', in_channels=[64, 128, 256], out_channels=32, num_outs=3),
    bbox_head=dict(type='RetinaHead', num_classes=2, in_channels=32, feat_channels=32,
                   stacked_convs=1,
                   anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                         scales_per_octave=1, ratios=[1.0],
                                         strides=[8, 16, 32]),
                   bbox_coder=dict(type='DeltaXYWHBBoxCoder'),
                   loss_cls=dict(type='FocalLoss', use_sigmoid=True),
                   loss_bbox=dict(type='L1Loss')))


def _need(package):
    if importlib.util.find_spec(package) is None:
        pytest.skip(f'needs {package} and a compiled mmcv (make interop)')
    try:
        import mmcv.ops  # noqa: F401
    except ImportError as err:
        pytest.skip(f'needs the compiled mmcv ({err}): make interop')


def _full_model(scope, cfg):
    """A randomly initialised full model from ``scope``'s registry, BN statistics varied."""
    from mmengine.registry import DefaultScope, init_default_scope
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    __import__(f'{scope}.models')
    init_default_scope(scope)
    try:
        torch.manual_seed(0)
        model = registry.build(cfg)
        model.init_weights()
    finally:
        DefaultScope._instance_dict.pop(scope, None)
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


@pytest.mark.parametrize('scope,model_cfg,backbone,used', [
    ('mmdet', RETINANET_CSP, dict(type='mmdet.CSPDarknet', deepen_factor=0.33,
                                  widen_factor=0.25, out_indices=(2, 3)), 2),
    ('mmseg', SEGFORMER, dict(MIT, type='mmseg.MixVisionTransformer', out_indices=(0, 1)), 2),
])
def test_backbone_from_a_full_model_checkpoint(scope, model_cfg, backbone, used, tmp_path):
    _need(scope)
    from anomaly_plugin.models.backbones import FeatureExtractor

    model = _full_model(scope, model_cfg)
    path = tmp_path / f'{scope}_model.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': 1}}, path)
    fe = FeatureExtractor(backbone=dict(backbone, init_cfg=dict(
        type='Pretrained', checkpoint=str(path), prefix='backbone.')))
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    untrained = [t.clone() for t in fe.backbone(x)]
    fe.init_weights()
    with torch.no_grad():
        expected = model.backbone(x)[:used]
        got = fe.backbone(x)
    assert len(got) == used
    for a, b, u in zip(got, expected, untrained):
        torch.testing.assert_close(a, b)
        assert not torch.allclose(a, u)
    assert fe(x).shape[:2] == (2, sum(t.shape[1] for t in expected))
