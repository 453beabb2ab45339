"""CutPaste's core: the 3-way loss, the Gaussian density against NumPy, the dense
patch embeddings and their map."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from anomaly_plugin.datasets.transforms import RandomCrop
from anomaly_plugin.models import CutPaste
from anomaly_plugin.structures import AnomalyDataSample


def model(**kw):
    torch.manual_seed(0)
    return CutPaste(backbone=dict(type='mmpretrain.ResNet', depth=18, out_indices=(3, )),
                    head=dict(type='ProjectionHead', hidden_channels=(32, ), out_channels=8),
                    density=dict(type='PatchGaussian', eps=0.01), **kw)


def test_loss_is_the_cross_entropy_of_the_three_classes():
    m = model(patch_size=16)
    x = torch.randn(6, 3, 16, 16)
    samples = [AnomalyDataSample().set_gt_label(i % 3) for i in range(6)]
    loss = m.loss(x, samples)['loss_cls']
    logits = m.classifier(m.embed(x))
    assert loss.item() == pytest.approx(F.cross_entropy(logits, torch.arange(6) % 3).item(),
                                        rel=1e-5)
    assert m.input_size.tolist() == [0, 0]
    m(x, samples, mode='loss')  # trained on patches: no image size noted
    assert m.input_size.tolist() == [0, 0]


def test_density_is_the_gaussian_of_the_patch_embeddings():
    m = model(patch_size=16, stride=8).eval()
    g = torch.Generator().manual_seed(1)
    train = [torch.randn(3, 3, 32, 32, generator=g) for _ in range(3)]
    m.fit_reset()
    with torch.no_grad():
        for i, x in enumerate(train):
            m.fit_update(x, torch.arange(3 * i, 3 * i + 3))
        m.fit_finish()
        emb = torch.cat([m.dense_embeddings(x) for x in train])  # (9, D, 3, 3)
        test = torch.randn(2, 3, 32, 32, generator=g)
        amap = m.anomaly_map(test)
        t = m.dense_embeddings(test)
    assert m.input_size.tolist() == [32, 32] and emb.shape[2:] == (3, 3)
    vecs = emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1]).double().numpy()  # (81, D)
    mean, cov = vecs.mean(0), np.cov(vecs, rowvar=False)
    inv = np.linalg.inv(cov + 0.01 * np.eye(cov.shape[0]))
    q = t.permute(0, 2, 3, 1).reshape(-1, t.shape[1]).double().numpy() - mean
    expected = np.sqrt(np.einsum('nd,de,ne->n', q, inv, q)).reshape(2, 1, 3, 3)
    # the map spreads each patch's distance over its pixels: the top-left 8x8 block is
    # covered by the first patch only
    np.testing.assert_allclose(amap[:, :, :8, :8].numpy(),
                               np.broadcast_to(expected[:, :, :1, :1], (2, 1, 8, 8)),
                               rtol=2e-3)
    assert amap.shape == (2, 1, 32, 32)


def test_random_crop_is_seeded_per_sample_and_epoch():
    img = np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3)
    crop = RandomCrop(8)
    a = crop(dict(img=img.copy(), sample_idx=3))['img']
    assert a.shape == (8, 8, 3)
    np.testing.assert_array_equal(a, crop(dict(img=img.copy(), sample_idx=3))['img'])
    others = [crop(dict(img=img.copy(), sample_idx=i))['img'] for i in range(4, 10)]
    assert any(not np.array_equal(a, o) for o in others)
    with pytest.raises(ValueError, match='larger'):
        RandomCrop(40)(dict(img=img.copy(), sample_idx=0))
