"""A config means what it says when MMEngine loads it."""
import copy
import glob
import importlib.util
import os.path as osp
import sys

import pytest
from conftest import ROOT
from mmengine.config import Config

from anomaly_plugin.engine import load_tool_config

# every config: configs/<family>/<name>.py (not the _base_ parts)
CONFIGS = sorted(osp.relpath(p, ROOT) for p in glob.glob(str(ROOT / 'configs/*/*.py'))
                 if '/_base_/' not in p and not p.endswith('__init__.py'))
#: configs whose model is built from another OpenMMLab package's registry
INTEROP = [c for c in CONFIGS if c.startswith('configs/interop/')]
KEYS = ('model', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'custom_hooks',
        'train_cfg', 'test_evaluator', 'img_size', 'holdout_ratio', 'data_root')


def _resizes(cfg):
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(key):
            for t in cfg[key].dataset.pipeline:
                if t['type'].__name__ == 'Resize':
                    yield key, tuple(t['size'])


def _datasets(cfg):
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(key):
            yield key, cfg[key].dataset


@pytest.mark.parametrize('config', CONFIGS)
def test_fromfile_equals_what_the_tools_use(config):
    plain = Config.fromfile(str(ROOT / config))
    tool = load_tool_config(str(ROOT / config))
    for key in KEYS:
        assert plain.get(key) == tool.get(key), key


@pytest.mark.parametrize('config', CONFIGS)
def test_top_level_values_match_what_they_describe(config):
    cfg = Config.fromfile(str(ROOT / config))
    resizes = list(_resizes(cfg))
    assert resizes and all(size == tuple(cfg.img_size) for _, size in resizes), resizes
    for key, ds in _datasets(cfg):
        assert ds.data_root == cfg.data_root, key
    assert cfg.train_dataloader.dataset.holdout_ratio == cfg.holdout_ratio


def test_feature_configs_run_at_256():
    for config in CONFIGS:
        if '/patchcore/' in config or '/padim/' in config:
            assert tuple(Config.fromfile(str(ROOT / config)).img_size) == (256, 256), config


def _image_sizes(node):
    if isinstance(node, dict):
        if 'image_size' in node:
            yield tuple(node['image_size'])
        for value in node.values():
            yield from _image_sizes(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _image_sizes(value)


SIZED = [c for c in CONFIGS if '/generative/' in c or '/fastflow/' in c
         or c.endswith('feature_editing_gan_mvtec.py')]


@pytest.mark.parametrize('config', SIZED)
def test_size_dependent_networks_follow_img_size(config):
    # the DCGAN / VAE stacks and FastFlow's LayerNorms are built for one input size:
    # every image_size in the model is the config's img_size, and the img_size shortcut
    # moves them all
    cfg = Config.fromfile(str(ROOT / config))
    sizes = list(_image_sizes(cfg.model))
    assert sizes and set(sizes) == {tuple(cfg.img_size)}, sizes
    tool = load_tool_config(str(ROOT / config), {'img_size': 32})
    assert set(_image_sizes(tool.model)) == {(32, 32)}
    assert {size for _, size in _resizes(tool)} == {(32, 32)}


def test_only_the_sized_configs_have_size_dependent_networks():
    for config in set(CONFIGS) - set(SIZED):
        assert not list(_image_sizes(Config.fromfile(str(ROOT / config)).model)), config


def test_every_config_is_trained_and_tested_by_a_detection_test():
    # every config but the interop ones (whose models need mmdet) is trained on obvious
    # defects by tests/configs/test_detection.py, which asserts that it detects them
    from test_detection import PLAN
    assert sorted(set(CONFIGS) - set(INTEROP)) == sorted(PLAN)
    families = {c.split('/')[1] for c in PLAN}
    assert {'ae', 'generative', 'latent', 'padim', 'patchcore', 'riad', 'tiling', 'stfpm',
            'reverse_distillation', 'fastflow', 'cflow', 'dfm', 'patch_svdd'} <= families
    assert 'configs/interop/patchcore_boxes_coco.py' in INTEROP


@pytest.mark.parametrize('config', INTEROP)
def test_interop_model_needs_its_package(config, monkeypatch):
    from anomaly_plugin.models.backbones.feature_extractor import BackboneImportError
    from anomaly_plugin.registry import MODELS

    cfg = Config.fromfile(str(ROOT / config))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.backbone.init_cfg = None  # no weights in tests
    scope = model_cfg.backbone.backbone.type.split('.')[0]
    with monkeypatch.context() as m:  # without the package: a clear error, not a KeyError
        for name in (scope, f'{scope}.models'):  # also when already imported
            m.setitem(sys.modules, name, None)
        with pytest.raises(BackboneImportError, match=f'needs {scope}'):
            MODELS.build(copy.deepcopy(model_cfg))
    if importlib.util.find_spec(scope) is None:
        pytest.skip(f'{config}: building its model needs {scope} (not installed)')
    try:
        MODELS.build(model_cfg)
    except BackboneImportError as err:  # e.g. mmdet with mmcv-lite
        pytest.skip(f'{config}: {err}')
