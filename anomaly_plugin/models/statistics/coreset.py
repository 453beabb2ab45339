"""Greedy k-center coreset selection (PatchCore's memory-bank subsampling).

The points are reduced with a Gaussian random projection (as in the PatchCore
paper) and the greedy 2-approximation of k-center picks, one at a time, the
point farthest from everything selected so far.

``mode='exact'`` runs that greedy exactly (float32). On the torch path each
step streams all projected points once (one GEMV), so it is memory-bandwidth
bound. Peak memory: ``N * d * 4`` bytes for the projected points plus
``4 * N * 4`` bytes of per-point state.

``mode='approx'`` (opt-in) trades exactness for speed: distances are computed
from bfloat16 copies of the points (half the memory traffic, and about 3x the
GEMV speed on CPUs with bf16 dot products), and sets larger than
``block_size`` points are split into random blocks that are reduced
independently with the same ratio (each step then streams one block only).
Peak memory: ``N * d * 6`` bytes plus ``4 * N * 4``.

On the CPU both modes run in the compiled kernel of
:mod:`~anomaly_plugin.models.statistics.kernels` when it is built (all steps in
one call; points whose nearest centre is over twice as far from the new
centre as from them are skipped, which keeps the greedy's result), otherwise
in the torch loop below (one GEMV per step).

Everything runs on the device of the given points: on a GPU the selection
never moves the points to the host and never waits for the host between
steps (the next centre stays a device tensor). The projection is computed in
row chunks, so only the (N, d) projected points are allocated besides the
input (512 MB for one million patches at d = 128).
"""
from typing import Optional

import torch
from mmengine.utils import ProgressBar

MODES = ('exact', 'approx')
KERNELS = ('auto', 'compiled', 'torch')


def random_projection(x: torch.Tensor, dim: Optional[int], seed: int = 0,
                      chunk_size: int = 65_536) -> torch.Tensor:
    """Gaussian random projection ``x @ R``, R ~ N(0, 1 / dim).

    Args:
        x: (N, D) points, on any device.
        dim: target dimension; None or >= D returns ``x`` (as float32).
        seed: seed of the projection matrix (drawn on the CPU, so the same
            on every device).
        chunk_size: rows projected at a time (bounds the float32 copy of
            a lower-precision input).

    Returns:
        (N, min(dim, D)) float32 points on ``x``'s device.
    """
    if dim is None or dim >= x.shape[1]:
        return x.float()
    gen = torch.Generator().manual_seed(seed)
    proj = torch.randn(x.shape[1], dim, generator=gen) / dim ** 0.5  # (D, dim)
    proj = proj.to(x.device)
    out = torch.empty(x.shape[0], dim, device=x.device)  # (N, dim)
    for start in range(0, x.shape[0], chunk_size):
        torch.mm(x[start:start + chunk_size].float(), proj, out=out[start:start + chunk_size])
    return out


def _kernel(device: torch.device, kernel: str):
    """The compiled greedy steps for ``kernel`` on ``device``, or None."""
    if kernel not in KERNELS:
        raise ValueError(f'coreset kernel must be one of {KERNELS}, got {kernel!r}')
    if kernel == 'torch' or device.type != 'cpu':
        if kernel == 'compiled':
            raise ValueError(f'the compiled coreset kernel runs on the CPU, not {device}')
        return None
    from .kernels import greedy_kernel, kernel_error
    fn = greedy_kernel()
    if fn is None and kernel == 'compiled':
        raise RuntimeError(f'the compiled coreset kernel is not available: {kernel_error()}')
    return fn


def _greedy_compiled(fn, z: torch.Tensor, num: int, first: int, low_precision: bool,
                     bar: Optional[ProgressBar], chunk: int = 1024) -> torch.Tensor:
    """:func:`_greedy` through the compiled kernel, ``chunk`` steps per call."""
    zc = (z.to(torch.bfloat16) if low_precision else z).contiguous()  # (N, d)
    sq = torch.cat([p.float().pow(2).sum(1) for p in zc.split(65_536)])  # (N,)
    mind = torch.full((z.shape[0],), float('inf'))
    assign = torch.full((z.shape[0],), -1, dtype=torch.long)  # step of the nearest centre
    selected = torch.empty(num, dtype=torch.long)
    nxt = first
    for start in range(0, num, chunk):
        stop = min(start + chunk, num)
        nxt, _ = fn(zc, sq, mind, assign, selected, start, stop, nxt, True)
        if bar is not None:
            bar.update(stop - start)
    return selected


def _greedy(z: torch.Tensor, num: int, first: int, low_precision: bool,
            bar: Optional[ProgressBar], kernel: str = 'auto') -> torch.Tensor:
    """Greedy k-center on (N, d) float32 points ``z``, starting at ``first``."""
    fn = _kernel(z.device, kernel)
    if fn is not None:
        return _greedy_compiled(fn, z, num, first, low_precision, bar)
    n, dev = z.shape[0], z.device
    # on the CPU a Python int indexes fastest; elsewhere the index stays on
    # the device, so no step waits for the host
    on_host = dev.type == 'cpu'
    zc = z.to(torch.bfloat16) if low_precision else z  # (N, d) what the GEMV reads
    sq = (z * z).sum(1)  # (N,)
    mind = torch.full((n,), float('inf'), device=dev)  # squared distance to the nearest centre
    dist = torch.empty(n, device=dev)
    selected = torch.empty(num, dtype=torch.long, device=dev)
    # a Python int on the CPU, a (1,) device tensor elsewhere
    nxt = first if on_host else torch.tensor([first], device=dev)
    for k in range(num):
        selected[k:k + 1] = nxt
        centre = zc[nxt] if on_host else zc.index_select(0, nxt)[0]  # (d,)
        if low_precision:
            dist = (zc @ centre).float().mul_(-2.0).add_(sq)
        else:
            torch.addmv(sq, zc, centre, alpha=-2.0, out=dist)  # |x|^2 - 2 x.c
        dist.add_(sq[nxt])
        torch.minimum(mind, dist, out=mind)
        mind[nxt] = 0.0
        nxt = int(torch.argmax(mind)) if on_host else torch.argmax(mind).view(1)
        if bar is not None and (k + 1) % 256 == 0:
            bar.update(256)
    return selected


def greedy_coreset(x: torch.Tensor, num: int, projection_dim: Optional[int] = 128,
                   seed: int = 0, mode: str = 'exact', block_size: int = 65_536,
                   progress: bool = False, kernel: str = 'auto') -> torch.Tensor:
    """Indices of ``num`` points chosen by greedy k-center.

    Args:
        x: (N, D) points.
        num: how many to select (1 <= num <= N).
        projection_dim: random projection before selection (None: none).
        seed: seeds the projection, the first point and the blocks.
        mode: ``'exact'`` or ``'approx'`` (see the module docstring).
        block_size: largest block of ``'approx'`` mode.
        progress: show a progress bar.
        kernel: ``'auto'`` (the compiled kernel of
            :mod:`~anomaly_plugin.models.statistics.kernels` on the CPU when it is
            available, else the torch path), ``'compiled'`` (an error when it
            is not available) or ``'torch'``.

    Returns:
        (num,) int64 indices on ``x``'s device; in selection order for
        ``'exact'``.
    """
    n = x.shape[0]
    if mode not in MODES:
        raise ValueError(f'coreset mode must be one of {MODES}, got {mode!r}')
    if not 1 <= num <= n:
        raise ValueError(f'cannot select {num} of {n} points')
    if num == n:
        return torch.arange(n, device=x.device)
    z = random_projection(x, projection_dim, seed).contiguous()  # (N, d)
    gen = torch.Generator().manual_seed(seed)
    bar = ProgressBar(num) if progress else None
    if mode == 'exact' or n <= block_size:
        first = int(torch.randint(n, (1,), generator=gen))
        out = _greedy(z, num, first, mode == 'approx', bar, kernel)
    else:
        perm = torch.randperm(n, generator=gen).to(z.device)
        blocks = torch.tensor_split(perm, -(-n // block_size))
        # each block keeps its share of ``num`` (largest remainders first)
        share = torch.tensor([len(b) for b in blocks], dtype=torch.float64) * num / n
        counts = share.floor().long()
        rest = num - int(counts.sum())
        counts[torch.argsort(share - counts, descending=True)[:rest]] += 1
        picks = []
        for b, c in zip(blocks, counts.tolist()):
            if c:
                first = int(torch.randint(len(b), (1,), generator=gen))
                picks.append(b[_greedy(z[b], c, first, True, bar, kernel)])
        out = torch.cat(picks)
    if bar is not None and num > bar.completed:
        bar.update(num - bar.completed)  # the steps since the last multiple of 256
    return out


def covering_radius(x: torch.Tensor, subset: torch.Tensor, chunk: int = 8192) -> float:
    """Largest distance from a point of ``x`` to its nearest point of ``x[subset]``."""
    from .knn import knn
    dist, _ = knn(x, x[subset], k=1, chunk_size=chunk)
    return float(dist.max())
