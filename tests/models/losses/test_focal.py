"""FocalLoss against the written-out formula."""
import math

import pytest
import torch

from anomaly_plugin.models import FocalLoss


def written_out(logits, target, gamma, alpha):
    total = 0.0
    for x, y in zip(logits.flatten().tolist(), target.flatten().tolist()):
        p = 1 / (1 + math.exp(-x))
        pt = p if y == 1 else 1 - p
        a = 1.0 if alpha is None else (alpha if y == 1 else 1 - alpha)
        total += -a * (1 - pt) ** gamma * math.log(pt)
    return total / logits.numel()


@pytest.mark.parametrize('gamma,alpha', [(2.0, None), (0.0, None), (1.5, 0.25)])
def test_focal_loss_matches_the_formula(gamma, alpha):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 5, 7, generator=g) * 3
    target = (torch.rand(2, 1, 5, 7, generator=g) > 0.7).float()
    got = FocalLoss(gamma=gamma, alpha=alpha, loss_weight=2.0)(logits, target)
    assert got.item() == pytest.approx(2 * written_out(logits, target, gamma, alpha), rel=1e-5)


def test_gamma_zero_is_cross_entropy_and_confident_pixels_count_less():
    logits, target = torch.tensor([4.0, -4.0, 0.5]), torch.tensor([1.0, 0.0, 1.0])
    ce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    assert FocalLoss(gamma=0)(logits, target).item() == pytest.approx(ce.item(), rel=1e-6)
    easy = FocalLoss()(torch.tensor([4.0]), torch.tensor([1.0]))
    hard = FocalLoss()(torch.tensor([0.5]), torch.tensor([1.0]))
    assert easy < 0.01 * hard
    with pytest.raises(ValueError):
        FocalLoss(alpha=1.5)
