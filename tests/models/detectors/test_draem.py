"""DRAEM's core: its losses on a synthetic batch, the clear error without clean
images, the image score as the maximum of the mean-filtered map."""
import pytest
import torch
import torch.nn.functional as F

from anomaly_plugin.models import DRAEM
from anomaly_plugin.structures import AnomalyDataSample


def model(score_filter=5):
    torch.manual_seed(0)
    return DRAEM(
        reconstructive=dict(type='AutoEncoderNet',
                            encoder=dict(type='ConvEncoder', channels=(8, 16), latent_channels=8),
                            decoder=dict(type='ConvDecoder', latent_channels=8,
                                         channels=(16, 8))),
        discriminative=dict(type='UNet', in_channels=6, out_channels=1, channels=(4, 8),
                            out_act='none'),
        reconstruction_loss=dict(type='CombinedLoss', losses=[dict(type='L2Loss'),
                                                              dict(type='SSIMLoss')]),
        score_filter=score_filter)


def batch(n=2, size=16):
    g = torch.Generator().manual_seed(1)
    samples = []
    for _ in range(n):
        s = AnomalyDataSample()
        s.clean_img = torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
        mask = torch.zeros(size, size, dtype=torch.uint8)
        mask[4:9, 5:11] = 1
        s.set_gt_mask(mask)
        samples.append(s)
    return torch.randn(n, 3, size, size, generator=g), samples


def test_losses_are_the_reconstruction_terms_and_the_focal_loss():
    m = model()
    inputs, samples = batch()
    losses = m.loss(inputs, samples)
    assert set(losses) == {'loss_l2', 'loss_ssim', 'loss_focal'}
    clean = torch.stack([s.clean_img for s in samples]).float() / 255
    recon, logits = m.segment(inputs)
    assert losses['loss_l2'].item() == pytest.approx((recon - clean).pow(2).mean().item(),
                                                     rel=1e-5)
    mask = torch.stack([s.gt_mask for s in samples])[:, None].float()
    assert losses['loss_focal'].item() == pytest.approx(
        m.segmentation_loss(logits, mask).item(), rel=1e-6)
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in m.discriminative.parameters())
    assert all(p.grad is not None for p in m.reconstructive.parameters())


def test_training_without_clean_images_names_the_missing_transform():
    inputs, samples = batch()
    del samples[1].clean_img
    samples[1].set_metainfo({'img_path': 'train/good/007.png'})
    with pytest.raises(KeyError, match=r"007.png.*SynthesizeAnomaly\(keep_clean=True\)"):
        model().loss(inputs, samples)


def test_map_is_a_probability_and_the_score_the_max_of_its_mean_filtered_form():
    m = model(score_filter=5).eval()
    inputs, _ = batch(3)
    with torch.no_grad():
        amap, score = m.forward_maps(inputs)
    assert amap.shape == (3, 1, 16, 16) and 0 <= amap.min() and amap.max() <= 1
    box = F.avg_pool2d(F.pad(amap, (2, 2, 2, 2)), 5, stride=1)  # zero padding, then
    count = F.avg_pool2d(F.pad(torch.ones_like(amap), (2, 2, 2, 2)), 5, stride=1)
    torch.testing.assert_close(score, (box / count).flatten(1).amax(1))  # mean over the window
    with pytest.raises(ValueError):
        model(score_filter=4)
