"""SimpleNet's core: the discriminator separates the adapted features from their
noisy copies, the noise is drawn per step from the saved counter, and the map is
minus the discriminator's score."""
import torch

from anomaly_plugin.models import SimpleNet


def model(noise_std=0.5):
    torch.manual_seed(0)
    return SimpleNet(
        backbone=dict(type='FeatureExtractor', pool_size=1,
                      backbone=dict(type='mmpretrain.ResNet', depth=18, out_indices=(1, ))),
        discriminator=dict(type='PatchDiscriminator', hidden_channels=32), noise_std=noise_std)


def test_training_separates_normal_from_noisy_features_and_the_map_follows():
    m = model()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-3)
    first = None
    for _ in range(30):
        loss = m.loss(x)['loss_tl1']
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    assert int(m.train_steps) == 30
    m.eval()
    with torch.no_grad():
        q = m.adapted(x)
        amap = m.anomaly_map(x)
        torch.testing.assert_close(amap, -m.discriminator(q))
        noisy = -m.discriminator(q + 0.5 * torch.randn_like(q))
    assert amap.shape == (4, 1, 4, 4) and noisy.mean() > amap.mean() + 0.5


def test_noise_depends_only_on_the_step_counter():
    a, b = model(), model()
    x = torch.randn(2, 3, 32, 32)
    b.train_steps.fill_(5)
    la, lb = a.loss(x)['loss_tl1'], b.loss(x)['loss_tl1']
    assert la.item() != lb.item()  # other steps, other noise
    a.train_steps.fill_(5)
    b.train_steps.fill_(5)
    assert a.loss(x)['loss_tl1'].item() == b.loss(x)['loss_tl1'].item()
