import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from anomaly_plugin.models.ops import gaussian_blur, resize_blur
from anomaly_plugin.models.postprocess import AnomalyPostProcessor


def test_blur_matches_scipy_mirror_mode():
    rng = np.random.default_rng(0)
    x = rng.random((2, 1, 40, 50)).astype(np.float32)
    ours = gaussian_blur(torch.from_numpy(x), 2.0).numpy()
    ref = np.stack([ndimage.gaussian_filter(x[i, 0], 2.0, mode='mirror', truncate=4.0)
                    for i in range(2)])[:, None]
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_blur_off_and_constant():
    x = torch.full((1, 1, 8, 8), 3.0)
    assert gaussian_blur(x, 0) is x
    torch.testing.assert_close(gaussian_blur(x, 4.0), x)  # replicate fallback


@pytest.mark.parametrize('reduction', ['max', 'mean', 'topk'])
def test_scores_and_upsampling(reduction):
    post = AnomalyPostProcessor(sigma=0, reduction=reduction, topk=5)
    raw = torch.rand(2, 1, 8, 8)
    maps, scores = post(raw, (32, 32))
    assert maps.shape == (2, 32, 32)
    flat = maps.flatten(1)
    expect = {'max': flat.max(1).values, 'mean': flat.mean(1),
              'topk': flat.topk(5, 1).values.mean(1)}[reduction]
    torch.testing.assert_close(scores, expect)


def test_calibration_buffers_round_trip_and_normalisation():
    post = AnomalyPostProcessor()
    assert not post.has_threshold and not post.has_normalization
    values = dict(image_threshold=2.0, pixel_threshold=1.0, image_min=0.0,
                  image_max=4.0, pixel_min=0.0, pixel_max=2.0)
    post.set_calibration(values)
    other = AnomalyPostProcessor()
    other.load_state_dict(post.state_dict())
    assert other.calibration() == values
    # the threshold maps to 0.5, the range to width 1, clipped to [0, 1]
    s = other.normalize_scores(torch.tensor([2.0, 3.0, 100.0, -100.0]))
    torch.testing.assert_close(s, torch.tensor([0.5, 0.75, 1.0, 0.0]))
    with pytest.raises(KeyError):
        post.set_calibration(dict(bogus=1.0))


def test_bad_score_name():
    with pytest.raises(ValueError, match='reduction'):
        AnomalyPostProcessor(reduction='median')


@pytest.mark.parametrize('shape,size,sigma', [
    ((3, 1, 32, 32), (256, 256), 4.0),  # PatchCore's map
    ((2, 1, 16, 24), (230, 565), 4.0),  # non-square, both axes up
    ((2, 2, 64, 64), (64, 64), 2.0),  # blur only
    ((1, 1, 40, 50), (20, 25), 1.5),  # down
    ((2, 1, 4, 4), (8, 8), 4.0),  # radius > size: replicate padding
    ((2, 1, 8, 8), (32, 32), 0.0),  # resize only
    ((1, 1, 16, 16), (16, 16), 0.0),  # nothing to do
])
def test_resize_blur_equals_interpolate_then_blur(shape, size, sigma):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 10
    ref = x if tuple(shape[-2:]) == size else F.interpolate(
        x, size=size, mode='bilinear', align_corners=False)
    ref = gaussian_blur(ref, sigma)
    out = resize_blur(x, size, sigma)
    assert out.shape == ref.shape and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-5)
    with torch.autocast('cpu', dtype=torch.bfloat16):  # the maps stay float32
        torch.testing.assert_close(resize_blur(x, size, sigma), out)
