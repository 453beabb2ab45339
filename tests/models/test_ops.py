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


def test_position_pairs_labels_point_to_the_second_patch():
    from anomaly_plugin.models.ops import NEIGHBOUR_DIRECTIONS, position_pairs
    g = torch.Generator().manual_seed(0)
    k = 32
    p1, p2, labels = position_pairs(2000, 1000, 1000, k, generator=g)
    assert set(labels.tolist()) == set(range(8))
    inside = ((p1 >= k) & (p1 <= 1000 - 2 * k)).all(1)  # no clipping for these
    assert inside.sum() > 1000
    d = (p2 - p1)[inside]
    dirs = torch.tensor(NEIGHBOUR_DIRECTIONS)[labels[inside]]
    assert torch.equal(torch.sign(d), dirs)
    moved = d[dirs != 0].abs()
    assert moved.min() >= 3 * k // 4 and moved.max() < k  # adjacent, with jitter
    assert (p2 >= 0).all() and (p2 <= 1000 - k).all()


def test_jitter_pairs_move_a_little_and_never_zero():
    from anomaly_plugin.models.ops import jitter_pairs
    g = torch.Generator().manual_seed(0)
    p1, p2 = jitter_pairs(500, 100, 120, 64, generator=g)
    d = p2 - p1
    assert (d.abs() <= 2).all()  # 64 // 32
    inside = ((p1 >= 2) & (p1 <= torch.tensor([100 - 66, 120 - 66]))).all(1)
    assert (d[inside].abs().sum(1) > 0).all()


def test_crop_patches_and_spread_scores_against_loops():
    from anomaly_plugin.models.ops import crop_patches, spread_patch_scores
    x = torch.randn(2, 3, 10, 12)
    which = torch.tensor([0, 1, 1])
    corners = torch.tensor([[0, 0], [3, 5], [6, 8]])
    crops = crop_patches(x, which, corners, 4)
    for i in range(3):
        y0, x0 = corners[i].tolist()
        assert torch.equal(crops[i], x[which[i], :, y0:y0 + 4, x0:x0 + 4])
    scores = torch.rand(1, 1, 3, 4)  # 4x4 patches every 2 px: 3 x 4 of them on 9 x 11
    amap = spread_patch_scores(scores, 4, 2, (9, 11))
    total, count = torch.zeros(9, 11), torch.zeros(9, 11)
    for i in range(3):
        for j in range(4):
            total[2 * i:2 * i + 4, 2 * j:2 * j + 4] += scores[0, 0, i, j]
            count[2 * i:2 * i + 4, 2 * j:2 * j + 4] += 1
    expected = total / count.clamp_min(1)
    # beyond the last patches (row 8, column 10): the nearest covered row / column
    expected[8, :] = expected[7, :]
    expected[:, 10] = expected[:, 9]
    assert torch.allclose(amap[0, 0], expected, atol=1e-6)
