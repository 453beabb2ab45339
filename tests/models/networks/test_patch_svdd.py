"""Patch SVDD's encoder: the dense maps are the patches' embeddings."""
import torch

from anomaly_plugin.models.networks import PatchPositionClassifier, PatchSVDDEncoder


def test_dense_maps_equal_the_embeddings_of_the_crops():
    torch.manual_seed(0)
    enc = PatchSVDDEncoder(dim=8).eval()
    x = torch.randn(1, 3, 80, 72)
    small = enc(x, 32)  # (1, 8, 25, 21)
    big = enc(x, 64)  # (1, 8, 9, 5)
    assert small.shape == (1, 8, 25, 21) and big.shape == (1, 8, 9, 5)
    for i, j in ((0, 0), (3, 7), (24, 20)):
        crop = x[:, :, 2 * i:2 * i + 32, 2 * j:2 * j + 32]
        assert torch.allclose(enc(crop, 32)[0, :, 0, 0], small[0, :, i, j], atol=1e-5)
    for i, j in ((0, 0), (4, 2), (8, 4)):
        crop = x[:, :, 2 * i:2 * i + 64, 2 * j:2 * j + 64]
        assert enc(crop, 64).shape == (1, 8, 1, 1)
        assert torch.allclose(enc(crop, 64)[0, :, 0, 0], big[0, :, i, j], atol=1e-5)
    # the big patch's vector depends on all four quadrants
    crop = x[:, :, :64, :64].clone()
    before = enc(crop, 64)
    crop[:, :, 40:, 40:] += 1.0  # the bottom-right quadrant only
    assert not torch.allclose(enc(crop, 64), before)


def test_classifier_reads_the_difference():
    clf = PatchPositionClassifier(dim=8)
    h1, h2 = torch.randn(5, 8, 1, 1), torch.randn(5, 8, 1, 1)
    assert clf(h1, h2).shape == (5, 8)
    assert torch.allclose(clf(h1 + 1, h2 + 1), clf(h1, h2), atol=1e-6)


def test_single_big_patches_use_their_quadrants_with_the_dense_weights():
    # a batch of exact 64x64 patches takes the quadrant path: the same vectors
    # as the dense path reading the same patch inside a larger image
    torch.manual_seed(1)
    enc = PatchSVDDEncoder(dim=8).eval()
    x = torch.randn(3, 3, 64, 66)
    dense = enc(x, 64)[..., 0]  # (3, 8, 1): the 64x66 input's first position
    quads = enc(x[..., :64].contiguous(), 64)  # (3, 8, 1, 1)
    assert quads.shape == (3, 8, 1, 1)
    assert torch.allclose(quads[..., 0], dense, atol=1e-5)
