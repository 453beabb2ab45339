"""Optimizer wrappers: CPU bfloat16 autocast (MMEngine's AMP wrapper is
CUDA-only) and one optimizer per model part for adversarial training."""
import copy
from contextlib import contextmanager
from typing import Optional

import torch
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper, OptimWrapperDict

from anomaly_plugin.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUBF16OptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward passes run under CPU bfloat16 autocast.

    bfloat16 has float32's exponent range, so no loss scaling is needed.
    """

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), torch.autocast('cpu', dtype=torch.bfloat16):
            yield


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MultiOptimWrapperConstructor:
    """One optimizer wrapper per model part, gathered in an ``OptimWrapperDict``.

    The config names each part by its attribute on the model::

        optim_wrapper = dict(
            constructor='MultiOptimWrapperConstructor',
            generator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=2e-4)),
            discriminator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=2e-4)))

    Each part is built by MMEngine's ``DefaultOptimWrapperConstructor`` (a
    part's own ``paramwise_cfg`` goes inside its dict). Every trainable
    parameter of the model must belong to one part: a parameter no optimizer
    steps would silently stay at its initial value.

    Args:
        optim_wrapper_cfg: part name -> wrapper config.
        paramwise_cfg: not supported at the top level (give it per part).
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        if paramwise_cfg is not None:
            raise ValueError('MultiOptimWrapperConstructor: give paramwise_cfg inside each '
                             "part's wrapper config, not at the top level")
        bad = [k for k, v in optim_wrapper_cfg.items() if not isinstance(v, dict)]
        if bad or not optim_wrapper_cfg:
            raise ValueError('MultiOptimWrapperConstructor: optim_wrapper must map each model '
                             f'part to a wrapper config dict; not dicts: {bad}')
        self.optim_wrapper_cfg = optim_wrapper_cfg

    def __call__(self, model: torch.nn.Module) -> OptimWrapperDict:
        if is_model_wrapper(model):
            model = model.module
        wrappers, covered = {}, set()
        for name, cfg in self.optim_wrapper_cfg.items():
            part = getattr(model, name, None)
            if not isinstance(part, torch.nn.Module):
                raise KeyError(f'optim_wrapper has a part {name!r} but {type(model).__name__} '
                               f'has no submodule of that name')
            cfg = copy.deepcopy(dict(cfg))
            paramwise = cfg.pop('paramwise_cfg', None)
            wrappers[name] = DefaultOptimWrapperConstructor(cfg, paramwise)(part)
            covered.update(id(p) for p in part.parameters())
        left = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in covered]
        if left:
            raise ValueError(f'{type(model).__name__}: trainable parameters in no optimizer '
                             f'part: {left[:5]}{" ..." if len(left) > 5 else ""}; add their '
                             'module to optim_wrapper')
        return OptimWrapperDict(**wrappers)


def _wrapper_cfgs(optim_wrapper) -> list:
    """The single wrapper config, or each part's of a multi-optimizer config
    (``constructor='MultiOptimWrapperConstructor'``: one sub-dict per part)."""
    constructor = optim_wrapper.get('constructor')
    name = constructor if isinstance(constructor, str) else getattr(constructor, '__name__', '')
    if name.split('.')[-1] == 'MultiOptimWrapperConstructor':
        return [v for k, v in optim_wrapper.items()
                if k not in ('constructor', 'paramwise_cfg') and isinstance(v, dict)]
    return [optim_wrapper]


def enable_amp(cfg) -> str:
    """Switch ``cfg.optim_wrapper`` (every part's wrapper of a multi-optimizer
    config) to mixed precision for this machine.

    Returns:
        A message saying what was chosen.
    """
    wrappers = _wrapper_cfgs(cfg.optim_wrapper)
    if torch.cuda.is_available():
        for w in wrappers:
            w['type'] = 'AmpOptimWrapper'
            w.setdefault('loss_scale', 'dynamic')
        return 'AMP: float16 autocast with dynamic loss scaling on CUDA'
    for w in wrappers:
        w['type'] = 'anomaly_plugin.CPUBF16OptimWrapper'
    return ('AMP: no CUDA device, training with bfloat16 autocast on CPU '
            '(float16 AMP needs a GPU)')
