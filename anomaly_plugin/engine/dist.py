"""Distributed helpers: launcher set-up that also works on CPU-only machines,
feature gathering for the fitted detectors."""
import gc
import os
from typing import List, Tuple

import torch
import torch.distributed as torch_dist
from mmengine import dist as mm_dist


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


def teardown_distributed(runner=None) -> None:
    """Wait for every rank, free the runner, then destroy the process group.

    The DDP wrapper (and its reducer) of ``runner.model`` holds the process
    group; left to the interpreter's shutdown, the group's gloo threads are torn
    down after Python has started finalising, which aborts the process now and
    then ("terminate called without an active exception", SIGABRT after the
    results were written). The runner is therefore emptied and collected while
    the interpreter is alive, before the group is destroyed.

    Args:
        runner: the tool's Runner, or None. Its model and hooks are released;
            the caller drops its own reference afterwards.
    """
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    torch_dist.barrier()
    if runner is not None:
        # cycles (hooks, message hub) would otherwise keep the wrapper alive
        runner.model = runner.optim_wrapper = None
        runner._hooks = []
        runner._train_loop = runner._val_loop = runner._test_loop = None
    gc.collect()
    torch_dist.destroy_process_group()


def gather_parts_to_main(parts: List[torch.Tensor], indices: torch.Tensor,
                         dtype: torch.dtype) -> Tuple[List[torch.Tensor], torch.Tensor]:
    """Every rank's feature parts and dataset indices on the main process.

    One process: the parts as given. Distributed: the other ranks send their
    parts to rank 0 one rank at a time and part by part, as tensors
    (point-to-point, no pickling, no concatenated copy), so no rank ever
    holds a second copy of its features and rank 0 holds nothing but what it
    has received besides its own.

    Args:
        parts: this rank's (b_i, D, h, w) feature batches, all of ``dtype``.
        indices: (sum b_i,) dataset index of each of their samples.
        dtype: dtype of the parts (the receiving buffers').

    Returns:
        On rank 0 every rank's parts in rank order and their indices; on the
        other ranks ``([], indices)``.
    """
    world = mm_dist.get_world_size()
    if world == 1:
        return parts, indices
    shapes = mm_dist.all_gather_object([tuple(p.shape) for p in parts])
    device = parts[0].device if parts else torch.device('cpu')
    if mm_dist.get_rank() != 0:
        for part in parts:
            torch_dist.send(part.contiguous(), dst=0)
        torch_dist.send(indices.to(device), dst=0)
        return [], indices
    parts, gathered = list(parts), [indices]
    for r in range(1, world):
        for shape in shapes[r]:  # (b, D, h, w) each
            buf = torch.empty(shape, dtype=dtype, device=device)
            torch_dist.recv(buf, src=r)
            parts.append(buf)
        ids = torch.empty(sum(s[0] for s in shapes[r]), dtype=torch.long, device=device)
        torch_dist.recv(ids, src=r)
        gathered.append(ids.cpu())
    return parts, torch.cat(gathered)


def patches_in_dataset_order(parts: List[torch.Tensor], indices: torch.Tensor) -> torch.Tensor:
    """The patches of ``parts`` as one matrix ordered by dataset index.

    Each part is copied into the result and freed (popped from ``parts``),
    so the peak is about one copy of the features.

    Args:
        parts: (b_i, D, h, w) feature batches; emptied.
        indices: (n,) dataset index of every sample of the parts, in order.

    Returns:
        (n*h*w, D) patches, those of the sample with the smallest index first.
    """
    d, h, w = parts[0].shape[1:]
    hw = h * w
    rank = torch.empty_like(indices)  # position of each sample in dataset order
    rank[torch.argsort(indices)] = torch.arange(len(indices))
    feats = parts[0].new_empty(len(indices) * hw, d)  # (n*h*w, D)
    offsets = torch.arange(hw, device=feats.device)
    start = 0
    while parts:
        part = parts.pop(0)  # (b, D, h, w)
        r = rank[start:start + part.shape[0]].to(feats.device)
        feats[(r[:, None] * hw + offsets).reshape(-1)] = part.permute(0, 2, 3, 1).reshape(-1, d)
        start += part.shape[0]
        del part
    return feats
