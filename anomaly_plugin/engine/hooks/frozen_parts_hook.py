"""Frozen parts stay frozen: unchanged by training and identical on every rank."""
import hashlib
import logging
from typing import Dict

import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from torch import nn

from anomaly_plugin.registry import HOOKS


def frozen_tensors(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The model's frozen state: every parameter that does not require grad,
    and the buffers (BatchNorm statistics, ...) of every module whose
    parameters are all frozen (a pretrained teacher or feature extractor).

    Args:
        model: the model (unwrapped).

    Returns:
        ``{state-dict name: tensor}``.
    """
    out = {}
    for name, module in model.named_modules():
        frozen_module = bool(list(module.parameters())) and not any(
            p.requires_grad for p in module.parameters())
        prefix = f'{name}.' if name else ''
        for pname, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                out[prefix + pname] = p
        if frozen_module:
            for bname, b in module.named_buffers(recurse=False):
                if b is not None and b.is_floating_point():
                    out[prefix + bname] = b
    return out


def tensor_digests(tensors: Dict[str, torch.Tensor]) -> Dict[str, str]:
    """``{name: SHA-256 of the tensor's bytes}``."""
    return {k: hashlib.sha256(v.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
            for k, v in tensors.items()}


@HOOKS.register_module()
class FrozenPartsHook(Hook):
    """Checks after training that the model's frozen parts (see
    :func:`frozen_tensors`: a teacher, a pretrained feature extractor,
    including their BatchNorm statistics) are what they were before it, and
    the same on every rank; logs the result, or warns naming the tensors that
    changed or differ (training is kept either way). Models without frozen
    parts are left alone.
    """

    priority = 'LOW'

    def __init__(self):
        self._before = None

    @staticmethod
    def _model(runner) -> nn.Module:
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def before_train(self, runner) -> None:
        self._before = tensor_digests(frozen_tensors(self._model(runner)))

    def after_train(self, runner) -> None:
        if not self._before:
            return
        now = tensor_digests(frozen_tensors(self._model(runner)))
        changed = sorted(k for k in self._before if now.get(k) != self._before[k])
        ranks = dist.all_gather_object(now)
        differ = sorted(k for k in now if any(r.get(k) != now[k] for r in ranks))
        world = dist.get_world_size()
        if not changed and not differ:
            print_log(f'FrozenPartsHook: the {len(now)} frozen tensors are unchanged by '
                      f'training and identical on {world} rank(s)', logger='current')
            return
        parts = []
        if changed:
            parts.append(f'{len(changed)} changed during training ({", ".join(changed[:5])}'
                         + (', ...' if len(changed) > 5 else '') + ')')
        if differ:
            parts.append(f'{len(differ)} differ between ranks ({", ".join(differ[:5])}'
                         + (', ...' if len(differ) > 5 else '') + ')')
        print_log('FrozenPartsHook: frozen tensors ' + ' and '.join(parts) + ': a frozen part '
                  '(teacher, feature extractor) is being updated; the checkpoint is kept as '
                  'trained', logger='current', level=logging.WARNING)
