from conftest import AE_CONFIG
from mmengine.config import Config

from anomaly_plugin.engine import merge_options


def _resizes(cfg):
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for t in cfg[key].dataset.pipeline:
            if t['type'].__name__ == 'Resize':
                yield t['size']


def test_shortcuts_reach_every_split():
    cfg = Config.fromfile(AE_CONFIG)
    merge_options(cfg, {'data_root': '/x/y', 'img_size': 48, 'visualize': True})
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[key].dataset.data_root == '/x/y'
    sizes = list(_resizes(cfg))
    assert sizes and all(tuple(s) == (48, 48) for s in sizes)
    vis = [h for h in cfg.custom_hooks
           if h['type'].__name__ == 'AnomalyVisualizationHook']
    assert vis[0]['enable'] is True


def test_direct_dataloader_override_keeps_other_splits():
    cfg = Config.fromfile(AE_CONFIG)
    before = cfg.test_dataloader.dataset.data_root
    merge_options(cfg, {'train_dataloader.dataset.data_root': '/only/train'})
    assert cfg.train_dataloader.dataset.data_root == '/only/train'
    assert cfg.test_dataloader.dataset.data_root == before
