"""Codebook, autoregressive prior, resampling and k-means editing against direct computations."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from anomaly_plugin.models import (
    GatedPixelCNN,
    LatentKMeansEditor,
    VectorQuantizer,
    kmeans,
    kmeans_plusplus,
    resample_codes,
)


def _quantizer(**kw):
    kw = {'num_codes': 4, 'code_dim': 3, 'data_init': False, 'restart_threshold': 0.0, **kw}
    vq = VectorQuantizer(**kw)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0, 0], [1, 1, 1], [-1, 0, 2], [3, -2, 0]]))
        if vq.ema:
            vq.ema_sum.copy_(vq.codebook)
            vq.ema_size.fill_(1.0)
    return vq


def _latents(seed=0, b=2, h=3, w=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, h, w, generator=g) * 1.5


def _nearest_direct(z, codebook):
    flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    d = torch.cdist(flat.double(), codebook.double())
    return flat, d.argmin(1)


def test_codebook_and_commitment_terms_equal_their_formulas():
    vq = _quantizer(beta=0.25)
    z = _latents()
    out, codes, losses = vq(z)
    flat, idx = _nearest_direct(z, vq.codebook.detach())
    assert torch.equal(codes.flatten(), idx)
    e = vq.codebook.detach()[idx]
    n = flat.numel()
    assert losses['loss_codebook'].item() == pytest.approx(((flat - e) ** 2).sum().item() / n)
    assert losses['loss_commit'].item() == pytest.approx(
        0.25 * ((flat - e) ** 2).sum().item() / n)
    # the forward value is the codebook entry
    torch.testing.assert_close(out.permute(0, 2, 3, 1).reshape(-1, 3), e)


def test_straight_through_gradients_reach_the_encoder_and_the_codebook():
    vq = _quantizer()
    z = _latents().requires_grad_(True)
    out, _, losses = vq(z)
    (out * 2).sum().backward(retain_graph=True)
    # straight-through: d out / d z is the identity
    torch.testing.assert_close(z.grad, torch.full_like(z, 2.0))
    assert vq.codebook.grad is None  # the straight-through path bypasses the codebook
    losses['loss_codebook'].backward()
    used = vq.codes(z.detach()).unique()
    grad_rows = vq.codebook.grad.abs().sum(1) > 0
    assert torch.equal(grad_rows.nonzero().flatten(), used)


def test_ema_update_equals_a_direct_computation():
    vq = _quantizer(ema=True, decay=0.9, eps=1e-5)
    z = _latents(seed=3, b=4)
    old_sum, old_size = vq.ema_sum.clone(), vq.ema_size.clone()
    flat, idx = _nearest_direct(z, vq.codebook)
    vq.train()
    _, codes, losses = vq(z)
    assert 'loss_codebook' not in losses and not any(p.requires_grad for p in vq.parameters())
    onehot = F.one_hot(idx, 4).double()
    size = 0.9 * old_size.double() + 0.1 * onehot.sum(0)
    sums = 0.9 * old_sum.double() + 0.1 * onehot.t() @ flat.double()
    n = size.sum()
    smoothed = (size + 1e-5) / (n + 4 * 1e-5) * n
    torch.testing.assert_close(vq.codebook.double(), sums / smoothed[:, None])
    torch.testing.assert_close(vq.ema_size.double(), size)
    # evaluation does not move the codebook
    before = vq.codebook.clone()
    vq.eval()
    vq(z)
    assert torch.equal(vq.codebook, before)


def test_dead_codes_are_restarted_on_encoder_vectors():
    vq = _quantizer(restart_threshold=1.0, usage_decay=0.5)
    with torch.no_grad():
        vq.codebook[1:] += 100.0  # only entry 0 is near the data
        vq.usage.fill_(5.0)
    z = _latents(seed=1, b=4)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 3)
    vq.train()
    restarted = 0
    for _ in range(6):
        vq(z)
        restarted += vq.last_restarts
    assert restarted >= 3
    # every far entry now is one of the batch's vectors
    for row in vq.codebook[1:]:
        assert (flat - row).abs().sum(1).min() < 1e-6
    assert vq.codes(z).unique().numel() > 1


def test_data_init_sets_the_codebook_from_the_first_batch():
    vq = VectorQuantizer(num_codes=8, code_dim=3, data_init=True)
    z = _latents(seed=2, b=4)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 3)
    vq.train()
    vq(z)
    assert bool(vq.initialized)
    assert all((flat - row).abs().sum(1).min() < 1e-6 for row in vq.codebook)


def _prior(k=7):
    torch.manual_seed(0)
    return GatedPixelCNN(num_codes=k, channels=8, num_layers=4, kernel_size=3, hidden=16)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_prior_is_causal_in_raster_order(seed):
    prior = _prior()
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 7, (2, 5, 6), generator=g)
    base = prior(codes)
    reached_later = 0
    for p in torch.randperm(30, generator=g)[:10].tolist():
        i, j = divmod(p, 6)
        other = codes.clone()
        other[:, i, j] = (other[:, i, j] + 1 + torch.randint(0, 6, (2,), generator=g)) % 7
        diff = (prior(other) - base).abs().amax(1).flatten(1)  # (B, 30)
        assert diff[:, :p + 1].max() == 0, p  # nothing at or before p moves
        reached_later += int(diff[:, p + 1:].max() > 0) if p < 29 else 1
    assert reached_later == 10  # and the prior does use earlier codes


def test_prior_nll_is_the_sum_of_per_position_cross_entropies():
    prior = _prior()
    codes = torch.randint(0, 7, (3, 4, 5), generator=torch.Generator().manual_seed(4))
    logits = prior(codes)
    direct = torch.zeros(3)
    for i in range(4):
        for j in range(5):
            direct += F.cross_entropy(logits[:, :, i, j], codes[:, i, j], reduction='none')
    torch.testing.assert_close(-prior.log_prob(codes).sum((1, 2)), direct)
    assert prior.loss(codes).item() == pytest.approx(direct.sum().item() / 60, rel=1e-5)


def test_resampling_keeps_likely_codes_and_is_deterministic():
    prior = _prior()
    codes = torch.randint(0, 7, (3, 4, 5), generator=torch.Generator().manual_seed(5))
    logp = prior.log_prob(codes)
    mask = logp < logp.median()
    out = resample_codes(prior, codes, mask, 'sample', seed=3)
    assert torch.equal(out[~mask], codes[~mask])
    assert not torch.equal(out[mask], codes[mask])
    assert torch.equal(out, resample_codes(prior, codes, mask, 'sample', seed=3))
    assert not torch.equal(out, resample_codes(prior, codes, mask, 'sample', seed=4))
    # an image's result does not depend on the batch it comes in
    alone = resample_codes(prior, codes[1:2], mask[1:2], 'sample', seed=3)
    assert torch.equal(alone, out[1:2])
    none = torch.zeros_like(mask)
    assert torch.equal(resample_codes(prior, codes, none), codes)


def test_argmax_resampling_takes_the_most_likely_code_given_the_restored_context():
    prior = _prior()
    codes = torch.randint(0, 7, (1, 3, 4), generator=torch.Generator().manual_seed(6))
    mask = torch.zeros_like(codes, dtype=torch.bool)
    mask[0, 1, 2] = mask[0, 2, 0] = True
    out = resample_codes(prior, codes, mask, 'argmax')
    assert out[0, 1, 2] == prior(codes)[0, :, 1, 2].argmax()
    partly = codes.clone()
    partly[0, 1, 2] = out[0, 1, 2]
    assert out[0, 2, 0] == prior(partly)[0, :, 2, 0].argmax()


def test_kmeans_matches_sklearn_from_the_same_start():
    sklearn = pytest.importorskip('sklearn.cluster')
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(40, 2, generator=g) + torch.tensor(c)
                   for c in ([0.0, 0.0], [20.0, 0.0], [0.0, 20.0])])
    init = kmeans_plusplus(x, 3, torch.Generator().manual_seed(1))
    ours = kmeans(x, 3, init=init, iters=100, tol=0.0)
    ref = sklearn.KMeans(3, init=init.numpy().astype(np.float64), n_init=1, max_iter=100,
                         tol=0.0, algorithm='lloyd').fit(x.double().numpy())
    np.testing.assert_allclose(ours.numpy(), ref.cluster_centers_, atol=1e-5)
    # well separated blobs: the centres are the blob means
    means = torch.stack([x[:40].mean(0), x[40:80].mean(0), x[80:].mean(0)])
    d = torch.cdist(ours, means)
    assert d.min(1).values.max() < 1e-5


def test_editor_keeps_centres_and_pulls_other_latents():
    editor = LatentKMeansEditor(in_channels=3, num_clusters=2, alpha=1.0)
    centres = torch.tensor([[0.0, 0.0, 0.0], [4.0, 4.0, 4.0]])
    editor.centres.copy_(centres)
    editor.fitted.fill_(True)
    editor.eval()
    z = centres[torch.tensor([[0, 1], [1, 1]])].permute(2, 0, 1)[None]  # (1, 3, 2, 2)
    assert torch.equal(editor(z), z)
    off = z + 0.5
    assert torch.equal(editor(off), z)
    editor.alpha = 0.5
    torch.testing.assert_close(editor(off), z + 0.25)
    editor.train()  # training sees the identity
    assert torch.equal(editor(off), off)


def test_editor_fit_and_checkpoint_round_trip(tmp_path):
    from anomaly_plugin.engine.checkpoint import safe_load
    g = torch.Generator().manual_seed(0)
    maps = [torch.randn(2, 4, 3, 3, generator=g) for _ in range(3)]
    editor = LatentKMeansEditor(in_channels=4, num_clusters=5, seed=2)
    stats = editor.fit(maps)
    assert sum(stats['cluster_sizes']) == 54 and bool(editor.fitted)
    x = torch.cat([m.permute(0, 2, 3, 1).reshape(-1, 4) for m in maps])
    torch.testing.assert_close(editor.centres, kmeans(x, 5, seed=2))
    torch.save({'state_dict': editor.state_dict()}, tmp_path / 'e.pth')
    other = LatentKMeansEditor(in_channels=4, num_clusters=5)
    other.load_state_dict(safe_load(str(tmp_path / 'e.pth'), map_location='cpu')['state_dict'])
    assert torch.equal(other.centres, editor.centres) and bool(other.fitted)
    with pytest.raises(ValueError, match='latent vectors for'):
        LatentKMeansEditor(in_channels=4, num_clusters=100).fit(maps)


class _CountingPrior(torch.nn.Module):
    def __init__(self, prior):
        super().__init__()
        self.prior, self.calls = prior, 0
        self.num_codes = prior.num_codes

    def forward(self, codes):
        self.calls += 1
        return self.prior(codes)


@pytest.mark.parametrize('mode', ['sample', 'argmax'])
def test_parallel_and_incremental_resampling_give_the_sequential_codes(mode):
    torch.manual_seed(0)
    prior = GatedPixelCNN(num_codes=7, channels=8, num_layers=3, kernel_size=3, hidden=16)
    g = torch.Generator().manual_seed(7)
    passes = []
    for seed in range(12):
        codes = torch.randint(0, 7, (3, 8, 9), generator=g)
        mask = torch.rand(3, 8, 9, generator=g) < (0.05 + 0.04 * seed)
        seq = _CountingPrior(prior)
        par = _CountingPrior(prior)
        a = resample_codes(seq, codes, mask, mode, seed=seed, solver='sequential')
        b = resample_codes(par, codes, mask, mode, seed=seed, solver='parallel')
        assert torch.equal(a, b), seed
        assert torch.equal(a, resample_codes(prior, codes, mask, mode, seed=seed)), seed
        assert par.calls <= int(mask.flatten(1).sum(1).max()) + 1
        passes.append((par.calls, seq.calls))
    # fewer prior passes in all (each parallel pass is a whole map, each sequential one
    # the rows up to its position)
    assert sum(p for p, _ in passes) < sum(s for _, s in passes)
    with pytest.raises(ValueError, match='solver'):
        resample_codes(prior, codes, mask, mode, solver='jacobi')


def test_row_logits_equal_the_full_pass_rows():
    torch.manual_seed(2)
    prior = GatedPixelCNN(num_codes=9, channels=8, num_layers=4, kernel_size=5, hidden=16)
    codes = torch.randint(0, 9, (3, 7, 6))
    with torch.no_grad():
        full = prior(codes)  # (3, 9, 7, 6)
        cache = prior.row_cache(3, 7, 6)
        other = torch.randint(0, 9, (3, 6))
        for i in range(7):
            prior.row_logits(cache, other, i)  # a first call with other codes is replaced
            assert torch.allclose(prior.row_logits(cache, codes[:, i], i), full[:, :, i],
                                  atol=1e-5), i


def test_incremental_solver_needs_a_row_prior():
    codes = torch.zeros(1, 3, 3, dtype=torch.long)
    mask = torch.ones(1, 3, 3, dtype=torch.bool)
    prior = torch.nn.Conv2d(1, 4, 1)
    with pytest.raises(ValueError, match="solver='parallel'"):
        resample_codes(prior, codes, mask, 'argmax')


def test_row_logits_of_some_cached_images():
    torch.manual_seed(3)
    prior = GatedPixelCNN(num_codes=5, channels=8, num_layers=3, kernel_size=3, hidden=16)
    codes = torch.randint(0, 5, (4, 5, 6))
    index = torch.tensor([1, 3])
    with torch.no_grad():
        full = prior(codes)
        cache = prior.row_cache(4, 5, 6)
        for i in range(5):
            prior.row_logits(cache, codes[:, i], i)
            # re-evaluating two images' row leaves the others' cache alone
            part = prior.row_logits(cache, codes[index, i], i, index)
            assert torch.allclose(part, full[index, :, i], atol=1e-5)
        assert torch.allclose(prior.row_logits(cache, codes[:, 4], 4), full[:, :, 4], atol=1e-5)

