"""Patch SVDD's training loss against a written-out computation."""
import pytest
import torch

from anomaly_plugin.models import PatchSVDD
from anomaly_plugin.models.ops import NEIGHBOUR_DIRECTIONS
from anomaly_plugin.models.utils import step_generator


def _direct_loss(model, images, step, noise):
    """The loss of one step, recomputed crop by crop from the step's draws.

    The draws are replayed from the step's generator in the detector's order:
    per patch size, the position pairs (corners, labels, jitter), the shift and
    per-pixel noise of the position patches, then the SVDD' pairs.
    """
    b, c, h, w = images.shape
    n = b * model.pairs_per_image
    which = [i // model.pairs_per_image for i in range(n)]
    gen = step_generator(torch.tensor(step))
    svdd, pos = 0.0, 0.0
    for size, clf in zip((64, 32), (model.classifier_big, model.classifier_small)):
        def clamp(r, col, size=size):
            return min(max(r, 0), h - size), min(max(col, 0), w - size)

        def corners(size=size):
            u = torch.rand(n, 2, generator=gen).tolist()  # uniform over the top-left corners
            return [(min(int(a * (h - size + 1)), h - size), min(int(b * (w - size + 1)), w - size))
                    for a, b in u]

        p1 = corners()
        labels = torch.randint(0, 8, (n, ), generator=gen)
        jitter = torch.randint(0, size // 4, (n, 2), generator=gen)
        p2 = []
        for (r, col), lab, jit in zip(p1, labels.tolist(), jitter.tolist()):
            dy, dx = NEIGHBOUR_DIRECTIONS[lab]
            p2.append(clamp(r + dy * (3 * size // 4 + jit[0]), col + dx * (3 * size // 4 + jit[1])))
        crops1 = [images[which[i], :, r:r + size, col:col + size] for i, (r, col) in enumerate(p1)]
        crops2 = [images[which[i], :, r:r + size, col:col + size] for i, (r, col) in enumerate(p2)]
        pair = torch.stack(crops1 + crops2)  # (2n, C, K, K)
        if noise > 0:
            shift = torch.randn(2 * n, c, 1, 1, generator=gen)
            pixel = torch.randn(pair.shape, generator=gen)
            pair = pair + noise * (shift + pixel)
        emb = torch.stack([model.encoder(p[None], size)[0, :, 0, 0] for p in pair])  # (2n, D)
        logits = clf(emb[:n, :, None, None], emb[n:, :, None, None])  # (n, 8)
        log_p = logits - logits.exp().sum(1, keepdim=True).log()
        pos = pos - log_p[torch.arange(n), labels].mean()
        # SVDD': a patch and the same patch moved by at most max(1, K/32) px
        q1 = corners()
        j = max(1, size // 32)
        offsets = [(dy, dx) for dy in range(-j, j + 1) for dx in range(-j, j + 1) if dy or dx]
        pick = torch.randint(0, len(offsets), (n, ), generator=gen).tolist()
        dist = []
        for i, ((r, col), k) in enumerate(zip(q1, pick)):
            r2, c2 = clamp(r + offsets[k][0], col + offsets[k][1])
            e1 = model.encoder(images[which[i], None, :, r:r + size, col:col + size], size)
            e2 = model.encoder(images[which[i], None, :, r2:r2 + size, c2:c2 + size], size)
            dist.append(((e1 - e2) ** 2).sum().sqrt())  # the norm, not its square
        svdd = svdd + torch.stack(dist).mean()
    return svdd, pos


@pytest.mark.parametrize('noise,weight', [(0.02, 1e-3), (0.0, 1.0)])
def test_loss_equals_the_written_out_computation(noise, weight):
    torch.manual_seed(0)
    model = PatchSVDD(encoder=dict(type='PatchSVDDEncoder', dim=8), svdd_weight=weight,
                      pairs_per_image=2, position_noise=noise).eval()
    images = torch.randn(2, 3, 80, 96)
    with torch.no_grad():
        losses = model.loss(images)
        assert int(model.train_steps) == 1
        svdd, pos = _direct_loss(model, images, step=0, noise=noise)
    assert torch.allclose(losses['loss_svdd'], weight * svdd, rtol=1e-4, atol=1e-7)
    assert torch.allclose(losses['loss_pos'], pos, rtol=1e-4, atol=1e-6)
    assert losses['loss_svdd'] > 0


def test_position_noise_changes_only_the_position_task():
    torch.manual_seed(0)
    kwargs = dict(encoder=dict(type='PatchSVDDEncoder', dim=8), pairs_per_image=2)
    quiet = PatchSVDD(position_noise=0.0, **kwargs).eval()
    noisy = PatchSVDD(position_noise=0.5, **kwargs).eval()
    noisy.load_state_dict(quiet.state_dict())
    images = torch.randn(2, 3, 80, 96)
    with torch.no_grad():
        a, b = quiet.loss(images), noisy.loss(images)
    assert not torch.allclose(a['loss_pos'], b['loss_pos'])
