"""Helpers shared by the models: float32 islands under autocast, frozen parts."""
import functools
from contextlib import contextmanager

import torch
from torch import nn


def float32_compute(fn):
    """Run ``fn`` in float32 with autocast off, whatever its caller runs in.

    For losses and maps whose arithmetic cancels in 16-bit floats (SSIM's
    ``E[x^2] - mu^2``, gradient magnitudes, spectra): floating-point tensor
    arguments are cast to float32 and autocast is disabled inside, so
    ``--amp`` gives the same values as float32 training. Gradients flow
    back through the casts.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        device = next((a.device.type for a in args if torch.is_tensor(a)), 'cpu')
        args = [a.float() if torch.is_tensor(a) and a.is_floating_point() else a
                for a in args]
        with torch.autocast(device_type=device, enabled=False):
            return fn(*args, **kwargs)
    return wrapper


@contextmanager
def frozen(*modules: nn.Module):
    """Parameters of ``modules`` do not require grad inside the block
    (the generator's step must not leave gradients on the discriminator)."""
    params = [p for m in modules for p in m.parameters()]
    states = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, s in zip(params, states):
            p.requires_grad_(s)


def step_generator(counter: torch.Tensor, seed: int = 0) -> torch.Generator:
    """A CPU random generator for one training step, and the step counted.

    Seeded by ``seed``, the step number held in ``counter`` (a 0-dim long
    buffer of the model, so it is saved with the checkpoint) and the rank:
    the draws of a step depend only on the saved state, so a resumed run
    draws exactly what the uninterrupted run drew, and ranks draw
    differently.

    Args:
        counter: the model's step counter, incremented in place.
        seed: base seed.

    Returns:
        The step's generator.
    """
    from mmengine import dist
    step = int(counter)
    counter.add_(1)
    gen = torch.Generator()
    gen.manual_seed((seed * 1_000_003 + step) * 4099 + dist.get_rank())
    return gen
