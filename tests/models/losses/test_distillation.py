"""STFPM's and Reverse Distillation's losses and maps against direct computations."""
import pytest
import torch

from anomaly_plugin.models.losses import CosineDistanceLoss, PyramidMatchingLoss


def pyramid():
    torch.manual_seed(0)
    shapes = [(2, 4, 8, 8), (2, 6, 4, 4)]
    return [torch.randn(s) for s in shapes], [torch.randn(s) for s in shapes]


def test_pyramid_matching_loss_and_map():
    teacher, student = pyramid()
    expected, maps = 0.0, []
    for t, s in zip(teacher, student):
        b, _, h, w = t.shape
        per_image = []
        for i in range(b):
            d = 0.0
            for y in range(h):
                for x in range(w):
                    tv, sv = t[i, :, y, x], s[i, :, y, x]
                    d += 0.5 * float(((tv / tv.norm() - sv / sv.norm()) ** 2).sum())
            per_image.append(d / (h * w))  # the paper's 1 / (2 w h) sum, with the 0.5
        expected += sum(per_image) / b
        dist = 0.5 * ((t / t.norm(dim=1, keepdim=True)
                       - s / s.norm(dim=1, keepdim=True)) ** 2).sum(1, keepdim=True)
        maps.append(torch.nn.functional.interpolate(dist, size=(16, 16), mode='bilinear'))
    loss = PyramidMatchingLoss()(teacher, student)['loss_stfpm']
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert torch.allclose(PyramidMatchingLoss().map(teacher, student, (16, 16)),
                          maps[0] * maps[1], atol=1e-6)
    # identical features: zero loss; the map is 0 everywhere
    assert PyramidMatchingLoss()(teacher, teacher)['loss_stfpm'].item() == pytest.approx(0)


def test_cosine_distance_loss_both_reductions_and_map():
    teacher, student = pyramid()
    cos = torch.nn.functional.cosine_similarity
    loc = sum(float((1 - cos(t, s, dim=1)).mean()) for t, s in zip(teacher, student))
    flat = sum(float((1 - cos(t.flatten(1), s.flatten(1), dim=1)).mean())
               for t, s in zip(teacher, student))
    assert loc != pytest.approx(flat)
    assert CosineDistanceLoss()(teacher, student)['loss_cos'].item() == pytest.approx(loc, 1e-5)
    assert CosineDistanceLoss('flatten')(teacher, student)['loss_cos'].item() == \
        pytest.approx(flat, 1e-5)
    expected = sum(torch.nn.functional.interpolate((1 - cos(t, s, dim=1))[:, None], size=(8, 8),
                                                   mode='bilinear')
                   for t, s in zip(teacher, student))
    assert torch.allclose(CosineDistanceLoss().map(teacher, student, (8, 8)), expected,
                          atol=1e-6)
    # scale-free: the cosine ignores each feature vector's length
    scaled = [s * 3.0 for s in student]
    assert CosineDistanceLoss()(teacher, scaled)['loss_cos'].item() == pytest.approx(loc, 1e-5)
    with pytest.raises(ValueError, match='reduction'):
        CosineDistanceLoss('mean')


def test_losses_stay_float32_under_autocast():
    teacher, student = pyramid()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        a = PyramidMatchingLoss()([t.bfloat16() for t in teacher],
                                  [s.bfloat16() for s in student])['loss_stfpm']
    assert a.dtype == torch.float32
