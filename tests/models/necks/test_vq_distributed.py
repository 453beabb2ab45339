"""The codebook under 2 gloo processes: EMA statistics summed over ranks, restarts shared."""
import socket

import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp

from anomaly_plugin.models import VectorQuantizer


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _batches():
    g = torch.Generator().manual_seed(0)
    return [torch.randn(2, 3, 4, 4, generator=g) for _ in range(2)]  # one per rank


def _quantizer(**kw):
    torch.manual_seed(1)  # the same initial codebook on every rank
    return VectorQuantizer(num_codes=6, code_dim=3, ema=True, decay=0.8, data_init=False,
                           **kw).train()


def _worker(rank, port, out):
    torch_dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                                  rank=rank, world_size=2)
    try:
        torch.set_num_threads(1)
        vq = _quantizer(restart_threshold=0.0)
        for _ in range(2):
            vq(_batches()[rank])
        out[f'ema{rank}'] = vq.codebook.clone()
        torch.manual_seed(10 + rank)  # ranks draw different restart candidates
        vq = _quantizer(restart_threshold=1e9)  # every entry is restarted
        vq(_batches()[rank])
        out[f'restart{rank}'] = vq.codebook.clone()
    finally:
        torch_dist.destroy_process_group()


def test_two_ranks_keep_one_codebook_equal_to_one_process_on_both_batches():
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(_free_port(), out), nprocs=2, join=True)
        out = dict(out)
    single = _quantizer(restart_threshold=0.0)
    for _ in range(2):
        single(torch.cat(_batches()))
    torch.testing.assert_close(out['ema0'], single.codebook)
    torch.testing.assert_close(out['ema1'], single.codebook)
    # restarts: rank 0's candidates on both ranks, taken from rank 0's batch
    assert torch.equal(out['restart0'], out['restart1'])
    flat = _batches()[0].permute(0, 2, 3, 1).reshape(-1, 3)
    assert all((flat - row).abs().sum(1).min() < 1e-6 for row in out['restart0'])
