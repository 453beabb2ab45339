"""TruncatedL1Loss against a direct computation."""
import pytest
import torch

from anomaly_plugin.models import TruncatedL1Loss


def test_truncated_l1_matches_the_definition():
    normal = torch.tensor([0.9, 0.2, -0.3, 0.5])
    anomalous = torch.tensor([-0.9, -0.4, 0.1])
    # normal: max(0, 0.5 - s) = 0, 0.3, 0.8, 0; anomalous: max(0, 0.5 + s) = 0, 0.1, 0.6
    expected = (0.3 + 0.8) / 4 + (0.1 + 0.6) / 3
    assert TruncatedL1Loss()(normal, anomalous).item() == pytest.approx(expected)
    assert TruncatedL1Loss(th_pos=1.0, th_neg=0.0, loss_weight=2.0)(normal, anomalous).item() \
        == pytest.approx(2 * ((0.1 + 0.8 + 1.3 + 0.5) / 4 + 0.1 / 3))


def test_scores_beyond_the_margins_give_no_gradient():
    normal = torch.tensor([0.7, 0.2], requires_grad=True)
    anomalous = torch.tensor([-0.6, 0.0], requires_grad=True)
    TruncatedL1Loss()(normal, anomalous).backward()
    assert normal.grad.tolist() == [0.0, -0.5] and anomalous.grad.tolist() == [0.0, 0.5]
