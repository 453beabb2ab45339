"""The coupling block and flow stack: exact inverse, exact log-determinant, float32 maths."""
import math

import pytest
import torch
from torch.autograd.functional import jacobian

from anomaly_plugin.models.networks import AffineCouplingBlock, FlowStack, flow_nll
from anomaly_plugin.registry import MODELS


def randomise(module, seed=0):
    """Non-trivial weights (the default init starts near the identity map)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return module


@pytest.mark.parametrize('channels,cond', [(4, 0), (5, 0), (6, 3)])
def test_block_inverse_and_log_det_against_autograd(channels, cond):
    torch.manual_seed(0)
    block = randomise(AffineCouplingBlock(channels, cond_channels=cond, kernel_size=3)).double()
    x = torch.randn(1, channels, 3, 2, dtype=torch.float64)
    c = torch.randn(1, cond, 3, 2, dtype=torch.float64) if cond else None
    y, log_det = block(x, c)
    assert y.dtype == torch.float32 or y.dtype == torch.float64
    # the inverse recovers the input
    assert torch.allclose(block.inverse(y.double(), c), x, atol=1e-5)
    # the log-determinant is the log |det| of the full Jacobian of the map
    jac = jacobian(lambda v: block(v.view_as(x), c)[0].double().flatten(),
                   x.flatten())  # (D, D)
    _, expected = torch.linalg.slogdet(jac)
    assert torch.allclose(log_det.double(), expected.reshape(1), atol=1e-4)


def test_stack_inverse_log_det_and_vectors():
    torch.manual_seed(0)
    stack = randomise(FlowStack(6, num_blocks=4, kernel_sizes=(3, 1)), seed=1).double()
    x = torch.randn(2, 6, 4, 4, dtype=torch.float64)
    z, log_det = stack(x)
    assert z.shape == x.shape and log_det.shape == (2,)
    assert (z - x).abs().max() > 0.1  # it transforms
    assert torch.allclose(stack.inverse(z.double()), x, atol=1e-5)
    jac = jacobian(lambda v: stack(v.view(1, 6, 4, 4))[0].double().flatten(), x[:1].flatten())
    assert torch.allclose(log_det[:1].double(), torch.linalg.slogdet(jac)[1].reshape(1),
                          atol=1e-4)
    # vectors with a condition (CFLOW-style): (N, C, 1, 1), 1x1 sub-networks, a
    # condition of its own per vector
    vec = randomise(FlowStack(4, num_blocks=3, kernel_sizes=(1,), cond_channels=2), seed=2)
    v, c = torch.randn(5, 4, 1, 1), torch.randn(5, 2, 1, 1)
    zv, _ = vec(v, c)
    assert torch.allclose(vec.inverse(zv, c), v, atol=1e-5)
    assert not torch.allclose(vec(v, torch.zeros_like(c))[0], zv)  # the condition matters
    with pytest.raises(ValueError, match='conditional'):
        vec(v)


def test_permutations_differ_per_block_and_are_saved():
    stack = FlowStack(8, num_blocks=3)
    perms = [b.perm.tolist() for b in stack.blocks]
    assert len({tuple(p) for p in perms}) == 3
    assert all(sorted(p) == list(range(8)) for p in perms)
    assert 'blocks.0.perm' in stack.state_dict()


def test_nll_matches_standard_normal_log_density():
    torch.manual_seed(0)
    z = torch.randn(3, 2, 2, 2)
    log_det = torch.randn(3)
    expected = -(torch.distributions.Normal(0, 1).log_prob(z).flatten(1).sum(1) + log_det) \
        - 0.5 * 8 * torch.log(torch.tensor(2 * torch.pi))
    assert torch.allclose(flow_nll(z, log_det), expected, atol=1e-5)


def test_log_det_stays_float32_under_autocast():
    torch.manual_seed(0)
    stack = randomise(FlowStack(4, num_blocks=2)).float()
    x = torch.randn(2, 4, 8, 8)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        z, log_det = stack(x)
    assert z.dtype == torch.float32 and log_det.dtype == torch.float32
    z32, ld32 = stack(x)
    # only the sub-networks' convolutions ran in 16 bits
    assert torch.allclose(log_det, ld32, rtol=0.05)


def test_registered_and_rejects_bad_shapes():
    assert MODELS.get('FlowStack') is FlowStack
    with pytest.raises(ValueError, match='at least 2'):
        AffineCouplingBlock(1)
    with pytest.raises(ValueError, match='odd'):
        AffineCouplingBlock(4, kernel_size=2)


def test_positional_encoding_against_the_formula():
    from anomaly_plugin.models.networks import PositionalEncoding2D
    pe = PositionalEncoding2D(8)(3, 5)  # (8, 3, 5)
    assert pe.shape == (8, 3, 5)
    for k in range(2):  # D/4 = 2 frequencies per axis
        w = 10000 ** (-2 * k / 4)
        for y in range(3):
            for x in range(5):
                assert pe[2 * k, y, x].item() == pytest.approx(math.sin(x * w), abs=1e-6)
                assert pe[2 * k + 1, y, x].item() == pytest.approx(math.cos(x * w), abs=1e-6)
                assert pe[4 + 2 * k, y, x].item() == pytest.approx(math.sin(y * w), abs=1e-6)
                assert pe[4 + 2 * k + 1, y, x].item() == pytest.approx(math.cos(y * w), abs=1e-6)
    with pytest.raises(ValueError, match='divisible by 4'):
        PositionalEncoding2D(6)


def test_cflow_log_likelihood_per_dimension():
    """CFlow's per-vector log p / C against a direct Gaussian log-density plus log-det,
    and its map: positions far from the training vectors score higher."""
    from anomaly_plugin.models.detectors import CFlow
    z = torch.randn(4, 6, 1, 1)
    log_det = torch.randn(4)
    expected = (torch.distributions.Normal(0, 1).log_prob(z).flatten(1).sum(1) + log_det) / 6
    assert torch.allclose(CFlow.log_prob_per_dim(z, log_det), expected, atol=1e-5)
