import os.path as osp

import numpy as np
import pytest
import torch
from conftest import UnsafePayload
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner import CheckpointLoader

import anomaly_plugin  # noqa: F401
from anomaly_plugin.engine import UnsafeCheckpointError, safe_load
from anomaly_plugin.engine.hooks.plain_checkpoint_hook import (
    buffers_from_plain,
    buffers_to_plain,
)


def test_malicious_checkpoint_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'x': UnsafePayload(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        safe_load(str(path))
    # the MMEngine loader used by Runner / load_checkpoint is routed through it
    with pytest.raises(UnsafeCheckpointError, match='not plain data'):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert not marker.exists()


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        safe_load(str(tmp_path / 'nope.pth'))


def test_message_hub_state_round_trips_as_plain_data(tmp_path):
    hub = MessageHub.get_instance('plain_ckpt_test')
    for v in (1.0, 0.5, 0.25):
        hub.update_scalar('train/loss', v)
    hub.update_info('iter', np.int64(3))
    state = buffers_to_plain(hub.state_dict())
    path = tmp_path / 'hub.pth'
    torch.save({'message_hub': state}, path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == []
    loaded = buffers_from_plain(safe_load(str(path))['message_hub'])
    buf = loaded['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    np.testing.assert_allclose(buf.data[0], [1.0, 0.5, 0.25])
    assert buf.mean() == pytest.approx(hub.get_scalar('train/loss').mean())
    assert loaded['runtime_info']['iter'] == 3


def test_pretrained_urls_and_the_download_message():
    """The ResNet configs name torchvision URLs; a failed download gets a message
    naming each URL, where it is looked up and the --cfg-options key to set."""
    import urllib.error

    from mmengine.config import Config

    from anomaly_plugin.engine import pretrained_urls, weights_download_message
    cfg = Config.fromfile('configs/padim/padim_resnet18_mvtec.py')
    key = 'model.backbone.backbone.init_cfg.checkpoint'
    url = 'https://download.pytorch.org/models/resnet18-f37072fd.pth'
    assert pretrained_urls(cfg) == [(key, url)]
    err = urllib.error.URLError(OSError(-2, 'Name or service not known'))
    msg = weights_download_message(err, cfg, 'padim_resnet18_mvtec.py')
    assert msg.startswith('padim_resnet18_mvtec.py needs pretrained weights that could not '
                          'be downloaded (')
    assert 'Name or service not known' in msg and f'{key}=LOCAL_PATH' in msg
    assert osp.join(torch.hub.get_dir(), 'checkpoints', 'resnet18-f37072fd.pth') in msg
    # other errors, and configs with local weights only, are left alone
    assert weights_download_message(ValueError('x'), cfg, 'c.py') is None
    local = Config.fromfile('configs/padim/padim_mobilenetv2_mvtec.py')
    assert pretrained_urls(local) == []
    assert weights_download_message(err, local, 'c.py') is None
