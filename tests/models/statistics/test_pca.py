"""FeaturePCA (DFM's statistic) against a numpy PCA."""
import numpy as np
import pytest
import torch

from anomaly_plugin.models.statistics import FeaturePCA


def data(n=60, d=10, seed=0):
    rng = np.random.default_rng(seed)
    scales = np.array([5, 3, 2, 1, 0.5, 0.3, 0.2, 0.1, 0.05, 0.01])[:d]
    return (rng.normal(size=(n, d)) * scales) @ np.linalg.qr(rng.normal(size=(d, d)))[0] + 2.0


def numpy_pca(x, fraction):
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    var = s ** 2 / (len(x) - 1)
    k = int(np.searchsorted(np.cumsum(var) / var.sum(), fraction) + 1)
    return mean, vt[:k].T, var[:k]


def fitted(x, n_components=0.97, chunks=(0, 17, 40)):
    pca = FeaturePCA(n_components)
    bounds = list(chunks) + [len(x)]
    for a, b in zip(bounds[:-1], bounds[1:]):  # streamed in uneven batches
        pca.update(torch.from_numpy(x[a:b]).float())
    pca.finish()
    return pca


def test_matches_numpy_pca():
    x = data()
    pca = fitted(x)
    mean, comps, var = numpy_pca(x, 0.97)
    assert pca.components.shape == comps.shape
    np.testing.assert_allclose(pca.mean.numpy(), mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pca.variances.numpy(), var, rtol=1e-4)
    # components agree up to sign
    np.testing.assert_allclose(np.abs((pca.components.numpy() * comps).sum(0)), 1, atol=1e-4)
    test = torch.from_numpy(data(5, seed=1)).float()
    proj = (test.numpy() - mean) @ comps
    recon = proj @ comps.T + mean
    np.testing.assert_allclose(pca.residual(test).numpy(), test.numpy() - recon, atol=1e-4)
    nll = (proj ** 2 / var).sum(1) + np.log(var).sum()
    np.testing.assert_allclose(pca.nll(test).numpy(), nll, rtol=1e-4)


def test_integer_components_and_reload():
    x = data()
    pca = fitted(x, n_components=3)
    assert pca.components.shape == (10, 3)
    fresh = FeaturePCA(3)
    fresh.load_state_dict(pca.state_dict())  # empty buffers take the fitted shapes
    t = torch.randn(4, 10)
    assert torch.equal(fresh.residual(t), pca.residual(t))


def test_errors():
    with pytest.raises(RuntimeError, match='not fitted'):
        FeaturePCA().transform(torch.zeros(1, 3))
    pca = FeaturePCA()
    pca.update(torch.zeros(1, 3))
    with pytest.raises(ValueError, match='at least 2'):
        pca.finish()
    with pytest.raises(ValueError, match='n_components'):
        FeaturePCA(1.5)
