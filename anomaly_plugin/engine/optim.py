"""Mixed precision on CPU: bfloat16 autocast (MMEngine's AMP wrapper is CUDA-only)."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper

from anomaly_plugin.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUBF16OptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward passes run under CPU bfloat16 autocast.

    bfloat16 has float32's exponent range, so no loss scaling is needed.
    """

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), torch.autocast('cpu', dtype=torch.bfloat16):
            yield


def enable_amp(cfg) -> str:
    """Switch ``cfg.optim_wrapper`` to mixed precision for this machine.

    Returns:
        A message saying what was chosen.
    """
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
        return 'AMP: float16 autocast with dynamic loss scaling on CUDA'
    cfg.optim_wrapper.type = 'anomaly_plugin.CPUBF16OptimWrapper'
    return ('AMP: no CUDA device, training with bfloat16 autocast on CPU '
            '(float16 AMP needs a GPU)')
