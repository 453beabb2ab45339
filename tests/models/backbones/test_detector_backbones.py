"""FeatureExtractor: backbones of other OpenMMLab packages, weights from a detector checkpoint.

The detector checkpoints are made here: the state dict of a seeded mmpretrain
ResNet-18 under ``backbone.``, next to ``neck.`` / ``head.`` entries, as
mmdet and mmseg save their full models.
"""
import sys
import types

import pytest
import torch
from conftest import UnsafePayload
from mmpretrain.models.backbones import ResNet

from anomaly_plugin.engine import UnsafeCheckpointError
from anomaly_plugin.models.backbones import FeatureExtractor
from anomaly_plugin.models.backbones import feature_extractor as fe_module
from anomaly_plugin.models.backbones.weight_conversion import WeightConversionError

BACKBONE = dict(type='mmpretrain.ResNet', depth=18, out_indices=(1, 2))


@pytest.fixture(scope='module')
def reference():
    """A ResNet-18 with seeded random weights and BatchNorm statistics."""
    torch.manual_seed(0)
    net = ResNet(depth=18, out_indices=(1, 2))
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    net.eval()  # mmpretrain's train() returns None
    return net


@pytest.fixture(scope='module')
def image():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))


def detector_state(backbone: torch.nn.Module) -> dict:
    """A full-model state dict: the backbone under ``backbone.`` plus a neck and a head."""
    state = {f'backbone.{k}': v.clone() for k, v in backbone.state_dict().items()}
    state['neck.lateral_convs.0.conv.weight'] = torch.randn(256, 128, 1, 1)
    state['head.fc.weight'] = torch.randn(10, 256)
    return state


def direct(reference, **kwargs) -> FeatureExtractor:
    """A FeatureExtractor whose backbone got the reference weights by load_state_dict."""
    fe = FeatureExtractor(backbone=dict(BACKBONE), **kwargs)
    fe.backbone.load_state_dict(reference.state_dict())
    return fe


@pytest.mark.parametrize('layout', ['state_dict', 'model', 'plain'])
def test_detector_checkpoint_gives_the_backbone_features(reference, image, tmp_path, layout):
    state = detector_state(reference)
    saved = state if layout == 'plain' else {layout: state, 'meta': {'epoch': 12}}
    path = tmp_path / 'faster_rcnn.pth'
    torch.save(saved, path)
    cfg = dict(BACKBONE, init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                       prefix='backbone.'))
    fe = FeatureExtractor(backbone=cfg)
    untrained = fe(image)
    fe.init_weights()
    expected = direct(reference)(image)  # (2, 128 + 256, 8, 8)
    assert fe(image).shape == expected.shape == (2, 384, 8, 8)
    torch.testing.assert_close(fe(image), expected)
    assert not torch.allclose(untrained, expected)  # the weights were loaded, not kept


def test_checkpoint_argument_equals_the_init_cfg_form(reference, image, tmp_path):
    path = tmp_path / 'det.pth'
    torch.save({'state_dict': detector_state(reference)}, path)
    fe = FeatureExtractor(backbone=dict(BACKBONE), checkpoint=str(path), fast_inference=False)
    fe.init_weights()
    torch.testing.assert_close(fe(image), direct(reference, fast_inference=False)(image))
    with pytest.raises(ValueError, match='not both'):
        FeatureExtractor(backbone=dict(BACKBONE, init_cfg=dict(
            type='Pretrained', checkpoint=str(path), prefix='backbone.')), checkpoint=str(path))


def test_checkpoint_without_backbone_keys_names_the_file(reference, tmp_path):
    path = tmp_path / 'classifier_only.pth'
    state = {k.replace('backbone.', 'encoder.'): v for k, v in detector_state(reference).items()}
    torch.save({'state_dict': state}, path)
    fe = FeatureExtractor(backbone=dict(BACKBONE), checkpoint=str(path))
    with pytest.raises(WeightConversionError, match=r"classifier_only\.pth.*'backbone\.'") as err:
        fe.init_weights()
    assert 'encoder.' in str(err.value) and 'head.' in str(err.value)


def test_checkpoint_of_another_backbone_lists_the_mismatches(tmp_path):
    narrow = ResNet(depth=18, base_channels=32, out_indices=(1, 2))  # half the channels
    path = tmp_path / 'narrow_det.pth'
    torch.save({'state_dict': detector_state(narrow)}, path)
    fe = FeatureExtractor(backbone=dict(BACKBONE), checkpoint=str(path))
    with pytest.raises(WeightConversionError, match=r'narrow_det\.pth.*shape mismatches') as err:
        fe.init_weights()
    assert 'layer1.0.conv2.weight (32, 32, 3, 3) vs (64, 64, 3, 3)' in str(err.value)
    deeper = tmp_path / 'r34_det.pth'
    torch.save(detector_state(ResNet(depth=34)), deeper)
    fe = FeatureExtractor(backbone=dict(BACKBONE), checkpoint=str(deeper))
    with pytest.raises(WeightConversionError, match=r'r34_det\.pth.*unexpected keys'):
        fe.init_weights()


def test_checkpoint_loads_weights_only(tmp_path):
    marker = tmp_path / 'ran'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'backbone.x': torch.zeros(1)}, 'evil': UnsafePayload(marker)},
               path)
    fe = FeatureExtractor(backbone=dict(BACKBONE), checkpoint=str(path))
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        fe.init_weights()
    assert not marker.exists()


def test_mmdet_backbone_without_mmdet_names_the_package(monkeypatch):
    # `import mmdet.models` fails, installed (and already imported) or not
    for name in ('mmdet', 'mmdet.models'):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(fe_module.BackboneImportError,
                       match=r"type='mmdet.ResNet' needs mmdet \(pip install mmdet==3.3.0 "
                             r'and a compiled mmcv, see README\)'):
        FeatureExtractor(backbone=dict(type='mmdet.ResNet', depth=50, out_indices=(1, 2)))


@pytest.mark.parametrize('backbone,missing,message', [
    # mmdet's models import mmcv.ops, which mmcv-lite lacks
    ('mmdet.CSPDarknet', 'mmcv._ext', r"type='mmdet.CSPDarknet' needs a compiled mmcv.*mmcv-lite"),
    # mmseg's multimodal models import ftfy and regex, which its wheel does not install
    ('mmseg.MixVisionTransformer', 'ftfy',
     r"importing mmseg.models needs the module 'ftfy'.*pip install ftfy regex"),
])
def test_a_module_the_package_imports_is_named(monkeypatch, backbone, missing, message):
    scope = backbone.split('.')[0]

    def import_module(name):
        assert name == f'{scope}.models'
        raise ModuleNotFoundError(f'No module named {missing!r}', name=missing)

    monkeypatch.setattr(fe_module, 'importlib', types.SimpleNamespace(import_module=import_module))
    with pytest.raises(fe_module.BackboneImportError, match=message):
        FeatureExtractor(backbone=dict(type=backbone))


def test_mmseg_backbone_without_mmseg_names_the_package(monkeypatch):
    for name in ('mmseg', 'mmseg.models'):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"'mmseg.MixVisionTransformer' needs mmseg "
                                          r'\(pip install mmsegmentation'):
        FeatureExtractor(backbone=dict(type='mmseg.MixVisionTransformer'))

