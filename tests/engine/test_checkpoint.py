
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
