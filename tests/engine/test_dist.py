"""Distributed teardown: nothing holding the process group outlives it."""
import weakref

import torch
import torch.distributed as torch_dist
from torch.nn.parallel import DistributedDataParallel

from anomaly_plugin.engine import teardown_distributed


class _Runner:
    """What teardown touches of an MMEngine Runner, in a reference cycle."""

    def __init__(self, model):
        self.model = model
        self.optim_wrapper = None
        self._hooks = [self]  # a cycle, as hooks and loops make with the runner
        self._train_loop = self._val_loop = self._test_loop = self


def test_teardown_frees_the_ddp_wrapper_before_destroying_the_group(tmp_path, monkeypatch):
    # the DDP wrapper holds the gloo group: left to interpreter shutdown it
    # aborted a rank now and then after the results were written
    torch_dist.init_process_group('gloo', init_method=f'file://{tmp_path / "store"}',
                                  rank=0, world_size=1)
    try:
        ddp = DistributedDataParallel(torch.nn.Linear(2, 2))
        alive = weakref.ref(ddp)
        runner = _Runner(ddp)
        del ddp
        seen = {}
        destroy = torch_dist.destroy_process_group

        def spy(*args, **kwargs):
            seen['alive'] = alive() is not None
            return destroy(*args, **kwargs)

        monkeypatch.setattr(torch_dist, 'destroy_process_group', spy)
        teardown_distributed(runner)
        monkeypatch.undo()
        assert seen == {'alive': False}
        assert not torch_dist.is_initialized()
    finally:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()
