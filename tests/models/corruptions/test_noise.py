"""Training corruptions of the denoising autoencoders: StainNoise, PixelNoise."""
import pytest
import torch

from anomaly_plugin.models import PixelNoise, StainNoise


def _images(b=4, size=64, seed=0, low=0.0, high=1.0):
    g = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(b, 3, size, size, generator=g)


def test_stains_change_pixels_only_inside_their_mask():
    x = _images()
    torch.manual_seed(0)
    out, mask = StainNoise(num_stains=(1, 3), size_range=(0.05, 0.2))(x)
    assert out.shape == x.shape and mask.shape == (4, 1, 64, 64)
    assert mask.min() >= 0 and mask.max() <= 1
    changed = (out != x).any(1, keepdim=True)  # (B, 1, H, W)
    assert not (changed & (mask == 0)).any()
    # every image got at least one visible stain, covering a small part of it
    covered = (mask > 0).flatten(1).float().mean(1)
    assert (covered > 0).all() and (covered < 0.5).all()
    assert changed.flatten(1).any(1).all()
    assert out.min() >= 0 and out.max() <= 1


def test_stains_are_reproducible_with_the_global_seed():
    x = _images()
    noise = StainNoise()
    torch.manual_seed(123)
    a, ma = noise(x)
    torch.manual_seed(123)
    b, mb = noise(x)
    torch.manual_seed(124)
    c, _ = noise(x)
    assert torch.equal(a, b) and torch.equal(ma, mb)
    assert not torch.equal(a, c)


def test_stain_colours():
    x = _images(low=0.3, high=0.6)
    torch.manual_seed(0)
    out, mask = StainNoise(size_range=(0.1, 0.2), color_mode='image', noise_std=0.0)(x)
    full = (mask == 1).expand_as(x)
    assert full.any()
    inside = out[full]
    assert inside.min() >= x.min() - 1e-6 and inside.max() <= x.max() + 1e-6
    torch.manual_seed(0)
    out, mask = StainNoise(size_range=(0.1, 0.2), color_mode='gray', noise_std=0.0,
                           color_range=(0.9, 1.0))(x)
    full = (mask == 1)[:, 0]  # (B, H, W)
    vals = out.permute(0, 2, 3, 1)[full]  # (N, 3)
    assert torch.equal(vals[:, 0], vals[:, 1]) and torch.equal(vals[:, 0], vals[:, 2])
    assert vals.min() >= 0.9


def test_stain_probability_zero_and_bad_arguments():
    x = _images()
    out, mask = StainNoise(prob=0.0)(x)
    assert torch.equal(out, x) and not mask.any()
    with pytest.raises(ValueError, match='color_mode'):
        StainNoise(color_mode='pink')
    with pytest.raises(ValueError, match='num_stains'):
        StainNoise(num_stains=(3, 1))
    with pytest.raises(ValueError, match='StainNoise expects'):
        StainNoise()(torch.zeros(3, 8, 8))


def test_salt_and_pepper_noise():
    x = _images(b=2, size=128, low=0.25, high=0.75)
    torch.manual_seed(0)
    out, mask = PixelNoise(mode='salt_pepper', amount=0.1)(x)
    changed = (out != x).any(1, keepdim=True)
    assert torch.equal(changed, mask.bool())
    hit = out.permute(0, 2, 3, 1)[mask[:, 0].bool()]  # (N, 3)
    assert set(hit.unique().tolist()) == {0.0, 1.0}
    assert float(mask.mean()) == pytest.approx(0.1, abs=0.02)
    torch.manual_seed(0)
    gauss, _ = PixelNoise(mode='gaussian', std=0.05)(x)
    assert 0.03 < float((gauss - x).std()) < 0.07


