"""The compiled greedy k-center kernel against the torch path and a float64
reference, its fall-back, and PatchCore's float16 feature storage."""
import numpy as np
import pytest
import torch

from anomaly_plugin.models.statistics import coreset, kernels
from anomaly_plugin.models.statistics.coreset import greedy_coreset
from anomaly_plugin.registry import MODELS


def compiled_or_skip():
    fn = kernels.greedy_kernel()
    if fn is None:
        pytest.skip(f'compiled kernel not available: {kernels.kernel_error()}')
    return fn


def reference_greedy(points: np.ndarray, num: int, first: int) -> list:
    """Greedy k-center in float64, one centre at a time."""
    x = points.astype(np.float64)
    mind = np.full(len(x), np.inf)
    out, nxt = [], first
    for _ in range(num):
        out.append(nxt)
        mind = np.minimum(mind, ((x - x[nxt]) ** 2).sum(1))
        mind[nxt] = 0.0
        nxt = int(np.argmax(mind))
    return out


@pytest.mark.parametrize('threads', [1, 2])
def test_compiled_kernel_selects_like_float64_greedy(threads):
    fn = compiled_or_skip()
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.randn(3001, 24, generator=torch.Generator().manual_seed(threads))
        sel = torch.empty(150, dtype=torch.long)
        mind = torch.full((3001,), float('inf'))
        assign = torch.full((3001,), -1, dtype=torch.long)
        nxt, _ = fn(x, x.pow(2).sum(1), mind, assign, sel, 0, 150, 7, True)
    finally:
        torch.set_num_threads(old)
    expected = reference_greedy(x.numpy(), 151, 7)
    assert sel.tolist() == expected[:150]
    assert nxt == expected[150]
    # mind: squared distance to the nearest of the 150 centres (0 at the next one);
    # assign: that centre's step (151 centres: the next one is step 150)
    dist, step = torch.cdist(x.double(), x[sel].double()).min(1)
    nearest = dist ** 2
    nearest[nxt], step[nxt] = 0.0, 150
    torch.testing.assert_close(mind.double().clamp_min(0), nearest, atol=1e-4, rtol=1e-4)
    assert torch.equal(assign, step)


def run_kernel(fn, x, num, first, prune, chunks=1):
    """(selected, mind, assign, evaluated) of ``num`` steps in ``chunks`` calls."""
    n = x.shape[0]
    sel = torch.empty(num, dtype=torch.long)
    mind = torch.full((n,), float('inf'))
    assign = torch.full((n,), -1, dtype=torch.long)
    sq = x.float().pow(2).sum(1)
    evaluated, nxt = 0, first
    bounds = [round(i * num / chunks) for i in range(chunks + 1)]
    for start, stop in zip(bounds[:-1], bounds[1:]):
        nxt, count = fn(x, sq, mind, assign, sel, start, stop, nxt, prune)
        evaluated += count
    return sel, mind, assign, evaluated


def test_pruning_skips_points_and_keeps_the_selection():
    """Points near a 3-d subspace of 48-d space (patch features, too, have a low
    intrinsic dimension): late steps skip most points, and the selection, the
    distances and the assignment are those of computing every distance."""
    fn = compiled_or_skip()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6000, 3, generator=g) @ torch.randn(3, 48, generator=g) / 7
    x += 0.01 * torch.randn(6000, 48, generator=g)
    full = run_kernel(fn, x, 600, 11, prune=False)
    pruned = run_kernel(fn, x, 600, 11, prune=True, chunks=3)
    for a, b in zip(full[:3], pruned[:3]):
        assert torch.equal(a, b)
    assert full[3] == 600 * 6000
    assert pruned[3] < 0.3 * full[3]


def test_compiled_kernel_reads_bfloat16_points():
    fn = compiled_or_skip()
    x = torch.randn(2000, 16, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    sel = torch.empty(100, dtype=torch.long)
    fn(x, x.float().pow(2).sum(1), torch.full((2000,), float('inf')),
       torch.full((2000,), -1, dtype=torch.long), sel, 0, 100, 0, True)
    assert sel.tolist() == reference_greedy(x.float().numpy(), 100, 0)


def test_greedy_coreset_compiled_equals_torch_path_in_chunks():
    compiled_or_skip()
    x = torch.randn(5000, 200, generator=torch.Generator().manual_seed(2))
    torch_path = greedy_coreset(x, 700, projection_dim=32, kernel='torch')
    fn = kernels.greedy_kernel()
    z = coreset.random_projection(x, 32, 0)
    first = int(torch.randint(5000, (1,), generator=torch.Generator().manual_seed(0)))
    chunked = coreset._greedy_compiled(fn, z, 700, first, False, None, chunk=64)
    assert torch.equal(chunked, torch_path)
    assert torch.equal(greedy_coreset(x, 700, projection_dim=32, kernel='compiled'), torch_path)


def test_progress_bar_counts_the_compiled_steps(monkeypatch):
    import io

    from mmengine.utils import ProgressBar
    compiled_or_skip()
    bars = []

    def bar(n):
        bars.append(ProgressBar(n, file=io.StringIO()))
        return bars[-1]

    monkeypatch.setattr(coreset, 'ProgressBar', bar)
    greedy_coreset(torch.randn(6000, 8), 2100, None, progress=True, kernel='compiled')
    out = bars[0].file.getvalue()
    assert '1024/2100' in out and '2048/2100' in out and bars[0].completed == 2100


def test_fallback_to_torch_when_the_kernel_is_missing(monkeypatch):
    monkeypatch.setattr(kernels, '_state', {'tried': True, 'module': None,
                                            'error': 'OSError: no compiler'})
    x = torch.randn(800, 12, generator=torch.Generator().manual_seed(3))
    sel = greedy_coreset(x, 40, None, kernel='auto')
    first = int(torch.randint(800, (1,), generator=torch.Generator().manual_seed(0)))
    assert sel.tolist() == reference_greedy(x.numpy(), 40, first)
    with pytest.raises(RuntimeError, match='no compiler'):
        greedy_coreset(x, 40, None, kernel='compiled')


def test_kernel_argument_is_checked():
    x = torch.randn(50, 4)
    with pytest.raises(ValueError, match='coreset kernel must be one of'):
        greedy_coreset(x, 5, None, kernel='fast')
    with pytest.raises(ValueError, match='runs on the CPU'):
        greedy_coreset(x.to('meta'), 5, None, kernel='compiled')


@pytest.mark.parametrize('dtype', ['float16', 'float32'])
def test_patchcore_keeps_training_patches_as_feature_dtype(dtype):
    backbone = dict(type='FeatureExtractor', pool_size=3,
                    backbone=dict(type='mmpretrain.MobileNetV2', out_indices=(2, 4)))
    model = MODELS.build(dict(type='PatchCore', backbone=backbone, feature_dtype=dtype,
                              memory_bank=dict(type='KNNMemoryBank', coreset_ratio=0.25)))
    model.eval()
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    emb = model.extract(x)  # (3, D, 8, 8)
    model.fit_reset()
    model.fit_embeddings(emb, torch.arange(3))
    assert model._parts[0].dtype == getattr(torch, dtype)
    kept = emb.to(getattr(torch, dtype)).permute(0, 2, 3, 1).reshape(-1, emb.shape[1])
    model.fit_finish(progress=False)
    bank = model.memory_bank.bank
    assert bank.dtype == torch.float32 and bank.shape[0] == round(kept.shape[0] * 0.25)
    # every bank entry is one of the stored training patches, exactly
    assert bool((bank[:, None] == kept.float()[None]).all(-1).any(1).all())
    with pytest.raises(ValueError, match='feature_dtype'):
        MODELS.build(dict(type='PatchCore', backbone=backbone, feature_dtype='int8'))
