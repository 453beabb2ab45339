"""Store MMEngine's resume state as plain data, loadable weights-only."""
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer

from anomaly_plugin.registry import HOOKS

_TAG = '__history_buffer__'


def _plain(value):
    """numpy arrays / scalars -> tensors / Python numbers, recursively."""
    import numpy as np
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return type(value)((k, _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def buffers_to_plain(hub_state: dict) -> dict:
    """Replace each ``HistoryBuffer`` of a message-hub state by a dict."""
    scalars = hub_state.get('log_scalars', {})
    for key, buf in scalars.items():
        if isinstance(buf, HistoryBuffer):
            log, count = buf.data
            scalars[key] = {_TAG: True,
                            'log_history': torch.from_numpy(log.astype('float64')),
                            'count_history': torch.from_numpy(count.astype('int64')),
                            'max_length': int(buf.max_length)}
    hub_state['runtime_info'] = _plain(hub_state.get('runtime_info', {}))
    return hub_state


def buffers_from_plain(hub_state: dict) -> dict:
    """Inverse of :func:`buffers_to_plain`."""
    scalars = hub_state.get('log_scalars', {})
    for key, buf in scalars.items():
        if isinstance(buf, dict) and buf.get(_TAG):
            scalars[key] = HistoryBuffer(buf['log_history'].tolist(),
                                         buf['count_history'].tolist(),
                                         buf['max_length'])
    return hub_state


@HOOKS.register_module()
class PlainCheckpointHook(Hook):
    """Converts the message hub's history buffers on save and back on load.

    With it, checkpoints hold only tensors, numbers, strings and containers,
    so they load with ``weights_only=True`` and no extra allowed globals.
    """

    priority = 'VERY_HIGH'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if 'message_hub' in checkpoint:
            buffers_to_plain(checkpoint['message_hub'])
        if 'meta' in checkpoint:
            checkpoint['meta'] = _plain(checkpoint['meta'])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if 'message_hub' in checkpoint:
            buffers_from_plain(checkpoint['message_hub'])
