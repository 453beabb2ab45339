"""Parameter-free image operations (models/ops.py)."""
import cv2
import numpy as np
import pytest
import torch

from anomaly_plugin.models.ops import gaussian_pyramid, pyr_down, random_patches


def test_pyramid_level_shapes_and_opencv_agreement():
    x = torch.rand(2, 3, 33, 24)
    levels = gaussian_pyramid(x, 4)
    assert [tuple(lv.shape) for lv in levels] == [
        (2, 3, 33, 24), (2, 3, 17, 12), (2, 3, 9, 6), (2, 3, 5, 3)]
    img = x[0].permute(1, 2, 0).numpy().copy()
    ref = cv2.pyrDown(img)
    np.testing.assert_allclose(pyr_down(x)[0].permute(1, 2, 0).numpy(), ref, atol=1e-5)
    with pytest.raises(ValueError, match='num_levels'):
        gaussian_pyramid(x, 0)


def test_random_patches_are_windows_of_the_image():
    b, c, h, w, p = 2, 3, 12, 10, 4
    x = torch.arange(b * c * h * w, dtype=torch.float32).view(b, c, h, w)
    torch.manual_seed(0)
    crops = random_patches(x, p, 5)  # (B * 5, C, P, P)
    assert crops.shape == (10, 3, 4, 4)
    for n, crop in enumerate(crops):
        img = x[n // 5]
        # the top-left value gives the window's position
        y0, x0 = divmod(int(crop[0, 0, 0]) - int(img[0, 0, 0]), w)
        assert torch.equal(crop, img[:, y0:y0 + p, x0:x0 + p])
