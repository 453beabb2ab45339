"""Tiles, stitching and the TiledDetector wrapper."""
import copy

import pytest
import torch
from conftest import ROOT, make_mvtec
from mmengine.config import Config
from mmengine.runner import Runner

from anomaly_plugin.engine import merge_options
from anomaly_plugin.models.tiling import Tiler, tile_starts
from anomaly_plugin.registry import MODELS

PATCHCORE = str(ROOT / 'configs/tiling/patchcore_mobilenetv2_tiled_mvtec.py')
PADIM = str(ROOT / 'configs/tiling/padim_mobilenetv2_tiled_mvtec.py')


def test_tile_starts_cover_the_side_and_end_at_the_border():
    assert tile_starts(640, 256, 192) == [0, 192, 384]
    assert tile_starts(512, 256, 192) == [0, 192, 256]
    assert tile_starts(256, 256, 100) == [0]
    assert tile_starts(300, 100, 100) == [0, 100, 200]
    with pytest.raises(ValueError, match='smaller than the tile'):
        tile_starts(200, 256, 128)
    with pytest.raises(ValueError, match='uncovered'):
        Tiler(64, 80)


def test_merge_of_split_gives_the_image_back():
    tiler = Tiler((16, 24), (10, 14))
    x = torch.rand(2, 3, 40, 61)
    tiles = tiler.split(x)
    n = tiler.num_tiles((40, 61))
    assert n == len(tile_starts(40, 16, 10)) * len(tile_starts(61, 24, 14))
    assert tiles.shape == (2 * n, 3, 16, 24)
    y, x0 = tiler.positions((40, 61))[n - 1]
    torch.testing.assert_close(tiles[2 * n - 1], x[1, :, y:y + 16, x0:x0 + 24])
    torch.testing.assert_close(tiler.merge(tiles, (40, 61)), x)


def test_merge_averages_where_tiles_overlap():
    tiler = Tiler((4, 4), (2, 3))
    size = (6, 7)
    pos = tiler.positions(size)
    values = torch.arange(1.0, len(pos) + 1)
    maps = values[:, None, None, None].expand(-1, 1, 2, 2)  # (T, 1, 2, 2): one value per tile
    out = tiler.merge(maps, size)[0, 0]
    for i in range(size[0]):
        for j in range(size[1]):
            covering = [v for v, (y, x) in zip(values.tolist(), pos)
                        if y <= i < y + 4 and x <= j < x + 4]
            assert out[i, j].item() == pytest.approx(sum(covering) / len(covering))


def tiled_cfg(config, data, work_dir, **extra):
    """The shipped tiled config for 64 x 128 images in 64 x 64 tiles, 32 apart
    (1 x 3 tiles), no pretrained weights."""
    cfg = Config.fromfile(config)
    opts = {'data_root': data, 'img_size': [64, 128], 'work_dir': str(work_dir),
            'model.detector.backbone.backbone.init_cfg': None,
            'model.tile_size': [64, 64], 'model.stride': [32, 32],
            'model.detector.postprocess.sigma': 1.0,
            'train_dataloader.batch_size': 4, 'test_dataloader.batch_size': 4}
    merge_options(cfg, {**opts, **extra})
    cfg.experiment_name = f'tiled_{id(cfg)}'
    return cfg


@pytest.mark.parametrize('config', [PATCHCORE, PADIM])
def test_tiled_config_detects_a_small_defect(config, tmp_path):
    data = make_mvtec(tmp_path / 'cat', size=64, width=128, n_train=8, n_good=4, n_bad=4)
    runner = Runner.from_cfg(tiled_cfg(config, data, tmp_path / 'work'))
    runner.train()
    model = runner.model
    assert tuple(model.input_size.tolist()) == (64, 128)
    assert tuple(model.detector.input_size.tolist()) == (64, 64)
    if model.detector.__class__.__name__ == 'PatchCore':
        # the bank holds 1 % (the config) of the patches of all 3 tiles of the 7 fitting images
        # (one of 8 held out for calibration)
        h = w = model.detector.extract(torch.zeros(1, 3, 64, 64)).shape[-1]
        assert model.detector.memory_bank.bank.shape[0] == round(7 * 3 * h * w * 0.01)
    metrics = runner.test()
    assert metrics['image/AUROC'] > 0.9
    assert metrics['pixel/AUROC'] > 0.9


def test_one_tile_equals_the_untiled_detector(tmp_path):
    """Tile = image: same bank, same map as the wrapped detector's own prediction
    (its post-processor with the score taken from the map)."""
    data = make_mvtec(tmp_path / 'cat', size=64, n_train=6)
    cfg = tiled_cfg(PATCHCORE, data, tmp_path / 'work', img_size=64, **{'model.stride': 64})
    runner = Runner.from_cfg(cfg)
    runner.train()
    tiled = runner.model.eval()
    x = torch.randn(2, 3, 64, 64)
    inner = tiled.detector
    maps, scores = inner.postprocessor(inner.anomaly_map(x), (64, 64))
    out = tiled.predict(x)
    torch.testing.assert_close(torch.stack([s.anomaly_map for s in out]), maps)
    torch.testing.assert_close(torch.stack([s.pred_score for s in out]), scores)


def test_tiled_autoencoder_trains_on_tiles():
    ae = Config.fromfile(str(ROOT / 'configs/ae/conv_ae_mvtec.py')).model
    ae.encoder.update(channels=[8, 16], latent_channels=8)
    ae.decoder.update(channels=[16, 8], latent_channels=8)
    model = MODELS.build(dict(type='TiledDetector', detector=ae, tile_size=32, stride=16))
    seen = []
    model.detector.encoder.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    losses = model(torch.rand(2, 3, 32, 80), mode='loss')
    assert seen == [(2 * 4, 3, 32, 32)]  # starts 0, 16, 32, 48 along the width
    assert all(v.requires_grad for v in losses.values()) and losses
    assert tuple(model.detector.input_size.tolist()) == (32, 32)
    out = model.eval().predict(torch.rand(1, 3, 32, 80))
    assert out[0].anomaly_map.shape == (32, 80)
    with pytest.raises(ValueError, match='was trained on 32x80'):
        model.predict(torch.rand(1, 3, 32, 96))


@pytest.mark.parametrize('config', ['configs/generative/ganomaly_mvtec.py',
                                    'configs/latent/vqvae_prior_mvtec.py',
                                    'configs/latent/feature_editing_ae_mvtec.py'])
def test_detectors_with_their_own_training_are_refused(config):
    inner = copy.deepcopy(Config.fromfile(str(ROOT / config)).model)
    with pytest.raises(ValueError, match='TiledDetector cannot wrap'):
        MODELS.build(dict(type='TiledDetector', detector=inner, tile_size=32))
