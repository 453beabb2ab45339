"""Launcher set-up that also works on CPU-only machines."""
import os

import torch
import torch.distributed as torch_dist


def setup_distributed(cfg, launcher: str) -> None:
    """Prepare ``cfg`` (in place) for MMEngine's launcher ``launcher``.

    On CUDA machines MMEngine's own initialisation is kept (nccl). Without
    CUDA, MMEngine's ``pytorch`` launcher would call ``torch.cuda.set_device``;
    here the gloo process group is initialised from the torchrun environment
    instead, and the DDP wrapper is told not to pin devices
    (``device_ids=None``).
    """
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise ValueError(f'launcher {launcher!r} needs CUDA; on CPU use '
                         "'pytorch' (torchrun)")
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo',
                                      rank=int(os.environ['RANK']),
                                      world_size=int(os.environ['WORLD_SIZE']))
    cfg.env_cfg = {**cfg.get('env_cfg', {}), 'dist_cfg': dict(backend='gloo')}
    if not cfg.get('model_wrapper_cfg'):
        cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel')
    cfg.model_wrapper_cfg['device_ids'] = None


def teardown_distributed() -> None:
    """Wait for every rank, then destroy the process group (clean exit)."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()
