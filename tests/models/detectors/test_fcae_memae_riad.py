"""MemAE, feature-clustering AE and RIAD: components, determinism, configs."""
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, make_mvtec, tiny_ae_options
from mmengine.config import Config
from mmengine.runner import Runner
from torch import nn

import anomaly_plugin  # noqa: F401
from anomaly_plugin.engine import disable_validation, merge_options
from anomaly_plugin.models.detectors.fcae import FeatureClusteringAE
from anomaly_plugin.models.detectors.memae import MemAE
from anomaly_plugin.models.detectors.riad import RIAD
from anomaly_plugin.models.necks import FeatureClustering, MemoryModule, cluster_loss
from anomaly_plugin.registry import MODELS


def _batch(b=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, size, size, generator=g)


# ---------------------------------------------------------------- MemAE


def _expected_weights(z, memory, lambd):
    """Softmax addressing, hard shrinkage and L1 renormalisation, written out."""
    w = torch.softmax(z @ memory.t(), dim=1)  # (N, M)
    kept = torch.where(w > lambd, w, torch.zeros_like(w))
    return w, kept / kept.sum(1, keepdim=True)


def test_memory_shrinkage_zeroes_small_weights_and_renormalises():
    mem = MemoryModule(in_channels=4, num_slots=6, shrink_thres=0.1)
    with torch.no_grad():
        mem.memory.copy_(torch.tensor([[3., 0, 0, 0], [0, 3, 0, 0], [0, 0, 0, 0],
                                       [0, 0, 0, -3], [-3, 0, 0, 0], [0, 0, 1, 0]]))
    z = torch.cat([torch.tensor([[1., 1, 0, 0]]),
                   torch.randn(7, 4, generator=torch.Generator().manual_seed(1))])
    raw, expected = _expected_weights(z, mem.memory, 0.1)
    assert (raw < 0.1).any() and ((raw > 0.1).sum(1) >= 1).all()
    w = mem.address(z)
    assert torch.equal(w == 0, raw <= 0.1)  # exactly the small weights vanish
    assert torch.allclose(w.sum(1), torch.ones(8), atol=1e-6)  # L1 = 1
    assert torch.allclose(w, expected, atol=1e-6)
    # the hand-made row: two equal logits of 3 survive, each at 1/2
    assert torch.allclose(w[0], torch.tensor([0.5, 0.5, 0, 0, 0, 0]), atol=1e-6)


def test_memory_readout_and_entropy_match_the_formula():
    torch.manual_seed(0)
    mem = MemoryModule(in_channels=5, num_slots=12, shrink_thres=0.05, loss_weight=0.3)
    z = 2 * torch.randn(2, 5, 3, 4)
    z_hat, w = mem(z)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 5)  # (24, 5)
    _, expected = _expected_weights(flat, mem.memory, 0.05)
    assert w.shape == (24, 12)
    assert torch.allclose(w, expected, atol=1e-6)
    read = (expected @ mem.memory).reshape(2, 3, 4, 5).permute(0, 3, 1, 2)
    assert torch.allclose(z_hat, read, atol=1e-6)
    entropy = -(expected * torch.log(expected + 1e-12)).sum(1).mean()
    assert mem.loss(w).item() == pytest.approx(0.3 * entropy.item(), rel=1e-5)
    assert entropy > 0


def test_memory_rejects_wrong_latent_channels():
    with pytest.raises(ValueError, match='MemoryModule'):
        MemoryModule(in_channels=4, num_slots=8)(torch.zeros(1, 3, 2, 2))


def test_memae_losses_reach_encoder_and_memory():
    model = MODELS.build(dict(
        type='MemAE', encoder=dict(type='ConvEncoder', channels=(8, 16), latent_channels=8),
        decoder=dict(type='ConvDecoder', latent_channels=8, channels=(16, 8)),
        neck=dict(type='MemoryModule', num_slots=20)))
    assert isinstance(model, MemAE) and model.neck.in_channels == 8
    losses = model(_batch(), mode='loss')
    assert set(losses) == {'loss_rec', 'loss_entropy'}
    sum(losses.values()).backward()
    assert model.neck.memory.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.encoder.parameters())


def test_parts_combine_across_models_by_config():
    # MemAE's memory between a conv encoder and decoder, trained with L2 + SSIM and
    # scored with the MSGMS map; every part comes from the registry by name
    model = MODELS.build(dict(
        type='MemAE', encoder=dict(type='ConvEncoder', channels=(8, 16), latent_channels=8),
        decoder=dict(type='ConvDecoder', latent_channels=8, channels=(16, 8)),
        neck=dict(type='MemoryModule', num_slots=20),
        loss=dict(type='CombinedLoss', losses=[dict(type='L2Loss'),
                                               dict(type='SSIMLoss', loss_weight=0.5)]),
        map_loss=dict(type='MSGMSLoss', mean_filter_size=3),
        postprocess=dict(sigma=1.0)))
    x = _batch()
    losses = model(x, mode='loss')
    assert set(losses) == {'loss_l2', 'loss_ssim', 'loss_entropy'}
    model.eval()
    with torch.no_grad():
        amap = model(x, mode='tensor')  # (B, 1, H, W)
        target = model.data_preprocessor.denormalize(x)
        expected = model.map_loss.map(model.reconstruct(x), target)
    assert amap.shape == (2, 1, 32, 32) and torch.equal(amap, expected)
    assert type(model.map_loss).__name__ == 'MSGMSLoss'


# ------------------------------------------------------- feature clustering


def test_cluster_loss_zero_at_centres():
    centres = torch.tensor([[1., -2, 0.5], [10., 10, 10]])
    z = centres[0].view(1, 3, 1, 1).expand(2, 3, 4, 5)
    assert cluster_loss(z, centres, 'min').item() == pytest.approx(0.0, abs=1e-6)
    # soft assignment: the far centre gets a vanishing weight
    assert cluster_loss(z, centres, 'soft').item() == pytest.approx(0.0, abs=1e-6)
    # half the positions at each centre: still 0 with the hard minimum
    mixed = torch.cat([z[:, :, :2], centres[1].view(1, 3, 1, 1).expand(2, 3, 2, 5)], dim=2)
    assert cluster_loss(mixed, centres, 'min').item() == pytest.approx(0.0, abs=1e-4)
    shifted = z + 1.0  # every channel 1 away from centre 0
    assert cluster_loss(shifted, centres, 'min', scale_free=False).item() == pytest.approx(
        1.0, abs=1e-4)
    # relative to the mean squared latent entry (2^2 + 1^2 + 1.5^2) / 3
    assert cluster_loss(shifted, centres, 'min').item() == pytest.approx(
        1.0 / (7.25 / 3), rel=1e-4)


@pytest.mark.parametrize('mode', ['min', 'soft'])
def test_shrinking_the_latents_does_not_lower_the_cluster_loss(mode):
    torch.manual_seed(0)
    z, centres = torch.randn(2, 4, 6, 6), torch.randn(3, 4)
    ref = cluster_loss(z, centres, mode)
    for s in (0.5, 0.1):
        # latents and centres shrunk together: the loss is unchanged (the raw
        # distances fall with s^2, which a network could exploit)
        # (to the eps against division by zero: 1e-6 / 0.01 at s = 0.1)
        torch.testing.assert_close(cluster_loss(s * z, s * centres, mode), ref, rtol=1e-3,
                                   atol=0)
        raw = cluster_loss(s * z, s * centres, mode, scale_free=False)
        assert raw < cluster_loss(z, centres, mode, scale_free=False)
        # latents shrunk alone move away from the centres, relatively
        assert cluster_loss(s * z, centres, mode) > ref


def test_fcae_cannot_lower_its_cluster_loss_by_shrinking_the_coarsest_latent():
    # the coarsest latent feeds a bias-free transposed conv and BatchNorm, so
    # halving it (projection and centres) leaves the reconstruction nearly
    # as it was; the clustering loss must not fall either
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='FeatureClusteringAE', encoder=dict(type='MultiScaleConvEncoder', channels=(4, 8, 8)),
        neck=dict(type='FeatureClustering', in_indices=(0, 2), latent_channels=(2, 4),
                  loss_weight=1.0),
        decoder=dict(type='MultiScaleFusionDecoder', channels=(8, 8, 4))))
    model.train()
    batch = _batch()
    before = model(batch, mode='loss')['loss_cluster']
    with torch.no_grad():
        model.neck.proj[-1].weight.mul_(0.5)
        model.neck.proj[-1].bias.mul_(0.5)
        model.neck.centres[-1].mul_(0.5)
    after = model(batch, mode='loss')['loss_cluster']
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize('mode', ['min', 'soft'])
def test_cluster_loss_decreases_after_a_step(mode):
    torch.manual_seed(0)
    neck = FeatureClustering(in_channels=[6, 8], in_indices=(0, 1), latent_channels=(3, 4),
                             num_clusters=(2, 3), mode=mode, loss_weight=1.0)
    feats = [torch.randn(2, 6, 8, 8), torch.randn(2, 8, 4, 4)]
    latents = neck(feats)
    assert [tuple(z.shape) for z in latents] == [(2, 3, 8, 8), (2, 4, 4, 4)]
    opt = torch.optim.SGD(neck.parameters(), lr=0.05)
    before = neck.loss(latents)
    assert before > 0
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = neck.loss(neck(feats))
    assert after < before


def test_fcae_losses_and_maps():
    model = MODELS.build(dict(
        type='FeatureClusteringAE', encoder=dict(type='MultiScaleConvEncoder', channels=(4, 8, 8)),
        neck=dict(type='FeatureClustering', in_indices=(0, 2), latent_channels=(2, 4)),
        decoder=dict(type='MultiScaleFusionDecoder', channels=(8, 8, 4))))
    assert isinstance(model, FeatureClusteringAE)
    losses = model(_batch(), mode='loss')
    assert set(losses) == {'loss_rec', 'loss_cluster'}
    sum(losses.values()).backward()
    assert all(c.grad is not None for c in model.neck.centres)
    model.eval()
    assert model(_batch(size=36), mode='tensor').shape == (2, 1, 36, 36)


# --------------------------------------------------------------------- RIAD


def _tiny_riad(**kw):
    return MODELS.build(dict(type='RIAD', inpainter=dict(type='UNet', channels=(4, 8, 16)),
                             map_loss=dict(type='MSGMSLoss', mean_filter_size=3), **kw))


@pytest.mark.parametrize('hw', [(32, 32), (40, 27)])
def test_riad_masks_disjoint_covering_cells(hw):
    model = _tiny_riad(ref_size=64)
    for size in model.cutout_sizes:
        kh, kw = model.cell_size(size, hw)
        for masks in (model.make_masks(3, hw, size), model.test_masks(hw, size)):
            assert masks.shape[1:] == (3, *hw)
            assert torch.equal(masks.sum(1), torch.ones(masks.shape[0], *hw))  # cover, disjoint
            assert set(masks.unique().tolist()) <= {0.0, 1.0}
            # constant on every cell: the top-left pixels rebuild the masks
            corners = masks[..., ::kh, ::kw]
            rebuilt = corners.repeat_interleave(kh, 2).repeat_interleave(kw, 3)
            assert torch.equal(rebuilt[..., :hw[0], :hw[1]], masks)
            counts = corners.sum((2, 3))  # cells per mask
            assert (counts.max(1).values - counts.min(1).values <= 1).all()


def test_riad_cell_sizes_scale_with_the_image():
    model = _tiny_riad()
    assert [model.cell_size(s, (128, 128)) for s in model.cutout_sizes] == \
        [(1, 1), (2, 2), (4, 4), (8, 8)]
    assert model.cell_size(2, (64, 64)) == (1, 1)  # never below one pixel
    assert _tiny_riad(ref_size=None).cell_size(4, (64, 64)) == (4, 4)


def test_riad_takes_each_region_from_the_copy_hiding_it():
    class HiddenDetector(nn.Module):
        def forward(self, x):  # 1 where the input was hidden, 0 where it is visible
            return (x == 0).all(1, keepdim=True).float().expand_as(x)

    model = _tiny_riad()
    model.inpainter = HiddenDetector()
    x = torch.rand(2, 3, 16, 16) + 1.0
    masks = model.make_masks(2, (16, 16), 8)
    assert torch.equal(model.inpaint(x, masks), torch.ones_like(x))


def test_riad_test_maps_are_deterministic_and_batch_independent():
    model = _tiny_riad().eval()
    x = _batch(3, 32)
    torch.manual_seed(1)
    first = model(x, mode='predict')
    torch.manual_seed(2)
    second = model(x, mode='predict')
    for a, b in zip(first, second):
        assert a.anomaly_map.shape == (32, 32)
        assert torch.equal(a.anomaly_map, b.anomaly_map)
    alone = model(x[1:2], mode='tensor')
    assert torch.allclose(alone, model(x, mode='tensor')[1:2], atol=1e-5)


def test_riad_training_partitions_are_random():
    model = _tiny_riad()
    a, b = model.make_masks(4, (32, 32), 64), model.make_masks(4, (32, 32), 64)
    assert not torch.equal(a, b)
    losses = model(_batch(), mode='loss')
    assert set(losses) == {'loss_l2', 'loss_ssim', 'loss_msgms'}


# ------------------------------------------------------------------ configs

CONFIGS = {
    'memae': ('configs/ae/memae_mvtec.py', MemAE, {'model.neck.num_slots': 20}),
    'fcae': ('configs/ae/fcae_mvtec.py', FeatureClusteringAE, {
        'model.encoder.channels': [4, 8, 8, 8], 'model.neck.latent_channels': [2, 2, 4],
        'model.decoder.channels': [8, 8, 4, 4]}),
    'riad': ('configs/riad/riad_mvtec.py', RIAD, {
        'model.inpainter.channels': [4, 8, 16],
        'model.map_loss.mean_filter_size': 3}),
}


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_config_builds_trains_and_predicts(name, tmp_path):
    path, cls, extra = CONFIGS[name]
    # 9 normal images: 1 held out for calibration, 8 train = 2 iterations of 4
    data = make_mvtec(tmp_path / 'cat', size=32, n_train=9, n_good=1, n_bad=1)
    opts = tiny_ae_options(data, tmp_path / 'work', epochs=1)
    if name != 'memae':  # the AE shrink keys name ConvEncoder / ConvDecoder arguments
        opts = {k: v for k, v in opts.items() if not k.startswith(('model.encoder',
                                                                   'model.decoder'))}
    opts.update(extra)
    cfg = merge_options(Config.fromfile(str(ROOT / path)), opts)
    assert isinstance(MODELS.build(cfg.model), cls)
    runner = Runner.from_cfg(disable_validation(cfg))
    runner.train()
    assert runner.iter == 2
    model = runner.model.eval()
    assert model.postprocessor.has_threshold  # calibrated on the held-out image
    x = F.interpolate(_batch(2, 16), size=(32, 32))
    samples = model(x, mode='predict')
    assert [tuple(s.anomaly_map.shape) for s in samples] == [(32, 32)] * 2
