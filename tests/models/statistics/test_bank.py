import numpy as np
import pytest
import torch

from anomaly_plugin.models.statistics import (
    KNNMemoryBank,
    PatchGaussian,
    covering_radius,
    greedy_coreset,
    knn,
)


def _points(n=600, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(8, d, generator=g) * 4
    return centres[torch.randint(8, (n,), generator=g)] + torch.randn(n, d, generator=g)


def test_coreset_deterministic_and_better_than_random():
    x = _points(d=3)
    a = greedy_coreset(x, 40, projection_dim=2, seed=3)
    b = greedy_coreset(x, 40, projection_dim=2, seed=3)
    assert torch.equal(a, b)
    assert len(set(a.tolist())) == 40
    g = torch.Generator().manual_seed(0)
    rand = torch.randperm(x.shape[0], generator=g)[:40]
    assert covering_radius(x, a) < covering_radius(x, rand)


def test_coreset_exact_equals_naive_greedy():
    x = _points(300, 12)
    got = greedy_coreset(x, 25, projection_dim=None, seed=1)
    # naive greedy from the same first point
    sel = [int(got[0])]
    mind = ((x - x[sel[0]]) ** 2).sum(1)
    for _ in range(24):
        mind[sel[-1]] = 0
        sel.append(int(torch.argmax(mind)))
        mind = torch.minimum(mind, ((x - x[sel[-1]]) ** 2).sum(1))
    assert got.tolist() == sel


def test_coreset_ratio_one_and_errors():
    x = _points(50)
    assert torch.equal(greedy_coreset(x, 50), torch.arange(50))
    with pytest.raises(ValueError):
        greedy_coreset(x, 0)
    with pytest.raises(ValueError, match='mode'):
        greedy_coreset(x, 5, mode='fast')


def test_approx_mode_blocks_and_count():
    x = _points(1000, 3)
    idx = greedy_coreset(x, 100, projection_dim=None, mode='approx', block_size=300)
    assert idx.numel() == 100 and len(set(idx.tolist())) == 100
    g = torch.Generator().manual_seed(0)
    rand = torch.randperm(1000, generator=g)[:100]
    assert covering_radius(x, idx) < covering_radius(x, rand)


@pytest.mark.parametrize('chunk', [1, 7, 64, 10_000])
def test_knn_matches_broadcast(chunk):
    g = torch.Generator().manual_seed(0)
    q, b = torch.randn(50, 9, generator=g), torch.randn(30, 9, generator=g)
    ref = (q[:, None] - b[None]).pow(2).sum(-1)  # (Q, M)
    d, i = knn(q, b, k=3, chunk_size=chunk)
    ref_d, ref_i = ref.topk(3, dim=1, largest=False)
    torch.testing.assert_close(d, ref_d.sqrt(), atol=1e-4, rtol=1e-4)
    assert torch.equal(i, ref_i)


def test_reweighting_matches_paper_formula():
    g = torch.Generator().manual_seed(0)
    bank = KNNMemoryBank(coreset_ratio=1.0)
    bank.fit(torch.randn(20, 4, generator=g))
    feats = torch.randn(2, 6, 4, generator=g)  # (B, P, D)
    d, i = bank.query(feats.reshape(-1, 4), 1)
    patch, nn_idx = d[:, 0].reshape(2, 6), i[:, 0].reshape(2, 6)
    got = bank.reweighted_scores(feats, patch, nn_idx, num_neighbors=3)
    for b in range(2):
        p = int(patch[b].argmax())
        q, s_star = feats[b, p], patch[b, p]
        m_star = bank.bank[nn_idx[b, p]]
        support = ((bank.bank - m_star) ** 2).sum(1).argsort()[:3]  # N_b(m*)
        e = torch.exp(((bank.bank[support] - q) ** 2).sum(1).sqrt())
        expect = (1 - torch.exp(s_star) / e.sum()) * s_star
        assert float(got[b]) == pytest.approx(float(expect), rel=1e-5)


def test_bank_loads_into_empty_module():
    bank = KNNMemoryBank(coreset_ratio=0.5)
    bank.fit(_points(40, 5))
    fresh = KNNMemoryBank()
    assert not fresh.is_fitted
    fresh.load_state_dict(bank.state_dict())
    assert torch.equal(fresh.bank, bank.bank)
    with pytest.raises(RuntimeError, match='empty'):
        KNNMemoryBank().query(torch.zeros(1, 5))


def test_faiss_backend_matches_torch():
    pytest.importorskip('faiss')
    x = _points(200, 8)
    a = KNNMemoryBank(coreset_ratio=0.5)
    a.fit(x)
    b = KNNMemoryBank(coreset_ratio=0.5, backend='faiss')
    b.load_state_dict(a.state_dict())
    q = _points(30, 8, seed=5)
    da, ia = a.query(q, 4)
    db, ib = b.query(q, 4)
    torch.testing.assert_close(da, db, atol=1e-3, rtol=1e-4)


def test_padim_gaussian_matches_numpy_and_streaming():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(12, 3, 2, 2, generator=g)  # (N, D, h, w)
    one = PatchGaussian(eps=0.01)
    one.update(emb)
    one.finish()
    stream = PatchGaussian(eps=0.01)
    for part in emb.split(5):
        stream.update(part)
    stream.finish()
    torch.testing.assert_close(one.mean, stream.mean)
    torch.testing.assert_close(one.inv_cov, stream.inv_cov, atol=1e-5, rtol=1e-5)
    x = emb.numpy().reshape(12, 3, 4)
    for p in range(4):
        np.testing.assert_allclose(one.mean[p].numpy(), x[:, :, p].mean(0), atol=1e-6)
        cov = np.cov(x[:, :, p], rowvar=False) + 0.01 * np.eye(3)
        np.testing.assert_allclose(one.inv_cov[p].numpy(), np.linalg.inv(cov), atol=1e-4)
    # Mahalanobis of the mean itself is zero; of a shifted point, the formula
    q = one.mean.t().reshape(1, 3, 2, 2).clone()
    assert float(one.mahalanobis(q).abs().max()) < 1e-4
    q[0, :, 0, 0] += 1.0
    p0 = one.inv_cov[0]
    expect = torch.sqrt(torch.ones(3) @ p0 @ torch.ones(3))
    assert float(one.mahalanobis(q)[0, 0, 0, 0]) == pytest.approx(float(expect), rel=1e-4)
    fresh = PatchGaussian()
    fresh.load_state_dict(one.state_dict())
    torch.testing.assert_close(fresh.mahalanobis(emb), one.mahalanobis(emb))


@pytest.mark.parametrize('num', [256, 512, 300, 100])
def test_coreset_progress_bar_any_size(num, monkeypatch):
    # the bar advances by 256; a size that is a multiple of 256 used to end
    # with update(0), which mmengine's ProgressBar refuses
    import io

    from mmengine.utils import ProgressBar

    from anomaly_plugin.models.statistics import coreset
    bars = []

    def bar(n):
        bars.append(ProgressBar(n, file=io.StringIO()))
        return bars[-1]

    monkeypatch.setattr(coreset, 'ProgressBar', bar)
    x = _points(1024, 8)
    for mode in ('exact', 'approx'):
        idx = greedy_coreset(x, num, projection_dim=None, mode=mode, block_size=400,
                             progress=True)
        assert len(set(idx.tolist())) == num
    assert [b.completed for b in bars] == [num, num]


@pytest.mark.parametrize('mode', ['exact', 'approx'])
def test_coreset_runs_on_the_device_of_its_points(mode):
    # 'meta' tensors have no data: any step that moved the points to the host
    # (.cpu(), .item(), int()) or mixed in a host tensor would raise
    x = torch.empty(1000, 16, device='meta')
    idx = greedy_coreset(x, 10, projection_dim=8, mode=mode, block_size=300)
    assert idx.device.type == 'meta' and idx.shape == (10,)


def test_patchcore_fit_keeps_features_on_their_device():
    from anomaly_plugin.models import PatchCore
    model = PatchCore(backbone=dict(type='FeatureExtractor', backbone=dict(
        type='mmpretrain.MobileNetV2', out_indices=(2,))),
        memory_bank=dict(type='KNNMemoryBank', coreset_ratio=0.1))
    model.memory_bank.to('meta')
    model.fit_reset()
    for i in range(3):
        model.fit_embeddings(torch.empty(4, 8, 5, 5, device='meta'), torch.arange(4) + 4 * i)
    model.fit_finish(progress=False)
    bank = model.memory_bank.bank
    assert bank.device.type == 'meta' and bank.shape == (30, 8)


def test_patchcore_fit_orders_patches_by_dataset_index():
    from anomaly_plugin.models import PatchCore
    model = PatchCore(backbone=dict(type='FeatureExtractor', backbone=dict(
        type='mmpretrain.MobileNetV2', out_indices=(2,))),
        memory_bank=dict(type='KNNMemoryBank', coreset_ratio=1.0), feature_dtype='float32')
    emb = torch.randn(6, 3, 2, 2)  # (N, D, h, w), sample i has dataset index i
    model.fit_reset()
    model.fit_embeddings(emb[[4, 1, 5]], torch.tensor([4, 1, 5]))
    model.fit_embeddings(emb[[0, 3, 2]], torch.tensor([0, 3, 2]))
    model.fit_finish(progress=False)
    expect = emb.permute(0, 2, 3, 1).reshape(-1, 3)  # (N*h*w, D) in dataset order
    assert torch.equal(model.memory_bank.bank, expect)


@pytest.mark.parametrize('backend', ['torch', 'faiss'])
def test_bank_scores_equal_after_reload(backend):
    if backend == 'faiss':
        pytest.importorskip('faiss')
    q = _points(30, 8, seed=5)
    a = KNNMemoryBank(coreset_ratio=0.5, backend=backend)
    a.fit(_points(200, 8))
    before = a.query(q, 3)
    # a bank that was used (its search index built) before loading the state
    b = KNNMemoryBank(coreset_ratio=0.5, backend=backend)
    b.fit(_points(200, 8, seed=9))
    b.query(q, 3)
    b.load_state_dict(a.state_dict())
    after = b.query(q, 3)
    torch.testing.assert_close(after[0], before[0])
    assert torch.equal(after[1], before[1])


def test_exact_gives_way_to_approx_above_the_limit(capsys):
    """Above exact_limit patches the bank selects with 'approx' (and says so);
    exact_limit=None keeps exact selection at any size."""
    from mmengine.logging import MMLogger

    from anomaly_plugin.models.statistics import greedy_coreset
    x = _points(300, 6)
    MMLogger.get_instance('bank_limit_test')  # the current logger, writing to captured stdout
    bank = KNNMemoryBank(coreset_ratio=0.1, exact_limit=200, block_size=64)
    idx = bank.fit(x)
    log = ''.join(capsys.readouterr())
    assert torch.equal(idx, greedy_coreset(x, 30, 128, 0, 'approx', 64))
    assert not torch.equal(idx, greedy_coreset(x, 30, 128, 0, 'exact'))
    assert '300 patches is more than exact_limit=200' in log
    assert 'exact_limit=None forces exact' in log
    forced = KNNMemoryBank(coreset_ratio=0.1, exact_limit=None, block_size=64)
    assert torch.equal(forced.fit(x), greedy_coreset(x, 30, 128, 0, 'exact'))
    under = KNNMemoryBank(coreset_ratio=0.1, exact_limit=300, block_size=64)
    assert torch.equal(under.fit(x), greedy_coreset(x, 30, 128, 0, 'exact'))
