"""Networks with weights are MMEngine ``BaseModule``s: ``init_cfg`` initialises them.

The default initialisation is unchanged: ``data/init_checksums.json`` holds, per
network, the digest of its *init recipe* (every random draw building it makes, in
order: which draw, into which weight, with which arguments; the same on any torch
build) and SHA-256 digests of the state dicts these configs gave at the same seeds
(compared where the torch version is the one they were recorded with, whatever its
local build tag). To recompute both for code of another version, put that code first
on ``PYTHONPATH`` and run ``python tests/models/networks/test_init_cfg.py --write
tests/models/networks/data/init_checksums.json``.
"""
import argparse
import copy
import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch
from mmengine.model import BaseModel, BaseModule
from torch import nn

import anomaly_plugin  # noqa: F401  (registers the modules, weights-only checkpoint loading)
from anomaly_plugin.registry import MODELS

CHECKSUMS = Path(__file__).parent / 'data' / 'init_checksums.json'
SEED = 0

ENC = dict(type='ConvEncoder', channels=[8, 16], latent_channels=8)
DEC = dict(type='ConvDecoder', latent_channels=8, channels=[16, 8])
DCGAN_ENC = dict(type='DCGANEncoder', image_size=16, out_dim=8, base_channels=8,
                 max_channels=16)
DCGAN_GEN = dict(type='DCGANGenerator', image_size=16, latent_dim=8, base_channels=8,
                 max_channels=16)

#: every registered network with weights (name -> small config); variants get a suffix
NETWORKS = {
    'ConvEncoder': ENC,
    'MultiScaleConvEncoder': dict(type='MultiScaleConvEncoder', channels=[8, 16]),
    'FeatureExtractor': dict(type='FeatureExtractor', num_channels=8, backbone=dict(
        type='mmpretrain.MobileNetV2', widen_factor=0.25, out_indices=(1, 2))),
    'ConvDecoder': DEC,
    'MultiScaleFusionDecoder': dict(type='MultiScaleFusionDecoder', in_channels=[8, 16],
                                    in_strides=[2, 4], channels=[16, 8]),
    'AutoEncoderNet': dict(type='AutoEncoderNet', encoder=ENC, decoder=DEC),
    'DCGANEncoder': DCGAN_ENC,
    'DCGANDiscriminator': dict(type='DCGANDiscriminator', image_size=16, base_channels=8,
                               max_channels=16, norm='layer'),
    'DCGANGenerator': DCGAN_GEN,
    'EncoderDecoderEncoder': dict(type='EncoderDecoderEncoder', encoder=DCGAN_ENC,
                                  decoder=DCGAN_GEN),
    'UNet-pix2pix': dict(type='UNet', channels=[8, 16, 16, 16], down='stride', down_kernel=4,
                         level_convs=1, act='leaky_relu', outer_norm=False, up_kernel=4,
                         up_norm=True, merge_convs=0, skip_first=False, init='dcgan'),
    'VAEEncoder': dict(type='VAEEncoder', image_size=16, channels=[8, 16], latent_dim=8),
    'VAEDecoder': dict(type='VAEDecoder', image_size=16, channels=[16, 8], latent_dim=8),
    'VAEDecoder-shared': dict(type='VAEDecoder', image_size=16, channels=[16, 8],
                              latent_dim=8, latent='spatial', variance='shared'),
    'FeatureClustering': dict(type='FeatureClustering', in_channels=[8, 16, 32],
                              in_indices=(1, 2), latent_channels=(4, 8), num_clusters=4),
    'LatentKMeansEditor': dict(type='LatentKMeansEditor', in_channels=8, num_clusters=4),
    'MemoryModule': dict(type='MemoryModule', in_channels=8, num_slots=16),
    'VectorQuantizer': dict(type='VectorQuantizer', num_codes=16, code_dim=8),
    'VectorQuantizer-ema': dict(type='VectorQuantizer', num_codes=16, code_dim=8, ema=True),
    'GatedPixelCNN': dict(type='GatedPixelCNN', num_codes=16, channels=8, num_layers=2,
                          kernel_size=3, hidden=16),
    'UNet': dict(type='UNet', channels=[4, 8, 16]),
    'AffineCouplingBlock': dict(type='AffineCouplingBlock', channels=6, cond_channels=2),
    'FlowStack': dict(type='FlowStack', channels=6, num_blocks=2),
    'TeacherStudent': dict(type='TeacherStudent', teacher=dict(
        type='FeatureExtractor', pool_size=1, backbone=dict(
            type='mmpretrain.MobileNetV2', widen_factor=0.25, out_indices=(1, 2)))),
    'OneClassBottleneck': dict(type='OneClassBottleneck', in_channels=[4, 8, 16],
                               out_channels=16),
    'ReverseDecoder': dict(type='ReverseDecoder', in_channels=16, out_channels=[4, 8, 16]),
    'PatchSVDDEncoder': dict(type='PatchSVDDEncoder', dim=8),
    'PatchPositionClassifier': dict(type='PatchPositionClassifier', dim=8),
    'FeatureAdaptor': dict(type='FeatureAdaptor', in_channels=8),
    'PatchDiscriminator': dict(type='PatchDiscriminator', in_channels=8, hidden_channels=16),
    'ProjectionHead': dict(type='ProjectionHead', in_channels=8, hidden_channels=[16],
                           out_channels=4),
    'UNet-skip': dict(type='UNet', channels=[4, 8, 8], down='stride', level_convs=1,
                      act='leaky_relu', up='bilinear', merge_convs=1, skip_first=False,
                      head_convs=1, out_kernel=3),
}

#: registered modules without learnable weights, or not converted on purpose
#: (models/statistics/* are fitted stores; the detectors are BaseModels already)
WEIGHTLESS_PACKAGES = ('anomaly_plugin.models.losses', 'anomaly_plugin.models.statistics',
                       'anomaly_plugin.models.data_preprocessors')
WEIGHTLESS = {'StainNoise', 'PixelNoise', 'PositionalEncoding2D'}

CONV = (nn.Conv2d, nn.ConvTranspose2d)


def build(name: str, seed: int = SEED, **extra) -> nn.Module:
    """``NETWORKS[name]`` (plus ``extra`` keys) built from the registry after seeding."""
    torch.manual_seed(seed)
    return MODELS.build(dict(copy.deepcopy(NETWORKS[name]), **extra))


def checksum(module: nn.Module) -> str:
    """SHA-256 of the state dict: names, dtypes, shapes and bytes, in order."""
    digest = hashlib.sha256()
    for key, value in module.state_dict().items():
        value = value.detach().cpu().contiguous()
        digest.update(f'{key}:{value.dtype}:{tuple(value.shape)}'.encode())
        digest.update(value.numpy().tobytes())
    return digest.hexdigest()


#: the random draws a network's initialisation can make: tensor methods and functions
DRAW_METHODS = ('uniform_', 'normal_', 'bernoulli_', 'random_', 'exponential_',
                'log_normal_', 'cauchy_', 'geometric_')
DRAW_FUNCTIONS = ('rand', 'randn', 'randint', 'randperm', 'rand_like', 'randn_like',
                  'randint_like', 'normal', 'bernoulli', 'multinomial')


def _plain(value):
    """An argument of a draw as plain data (floats to 6 significant digits)."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return float(f'{value:.6g}')
    if isinstance(value, (tuple, list, torch.Size)):
        return [_plain(v) for v in value]
    if torch.is_tensor(value):
        return f'tensor{list(value.shape)}'
    return type(value).__name__  # a generator, a dtype, ...


def init_recipe(name: str) -> list:
    """Every random draw that building ``NETWORKS[name]`` makes, in order:
    ``[draw, target, args, kwargs]`` with the target the state-dict entry drawn
    into ('kept nowhere' for a tensor that is not kept) and its shape.
    Independent of the numbers a torch build draws.
    """
    draws, patched = [], []

    def record(draw, tensor, args, kwargs):
        draws.append((draw, tensor, [_plain(a) for a in args],
                      {k: _plain(v) for k, v in sorted(kwargs.items())}))

    def method(draw, original):
        def wrapper(self, *args, **kwargs):
            record(draw, self, args, kwargs)  # the tensor is kept: its memory is not reused
            return original(self, *args, **kwargs)
        return wrapper

    def function(draw, original):
        def wrapper(*args, **kwargs):
            out = original(*args, **kwargs)
            record(draw, out, args, kwargs)
            return out
        return wrapper

    try:
        for draw in DRAW_METHODS:
            patched.append((torch.Tensor, draw, getattr(torch.Tensor, draw)))
            setattr(torch.Tensor, draw, method(draw, patched[-1][2]))
        for draw in DRAW_FUNCTIONS:
            patched.append((torch, draw, getattr(torch, draw)))
            setattr(torch, draw, function(draw, patched[-1][2]))
        module = build(name)
    finally:
        for owner, draw, original in reversed(patched):
            setattr(owner, draw, original)
    names = {(t.data_ptr(), tuple(t.shape)): k
             for k, t in module.state_dict(keep_vars=True).items() if t.numel()}
    return [[draw, f"{names.get((t.data_ptr(), tuple(t.shape)), 'kept nowhere')} "
                   f'{list(t.shape)}', args, kwargs] for draw, t, args, kwargs in draws]


def recipe_digest(name: str) -> str:
    return hashlib.sha256(json.dumps(init_recipe(name)).encode()).hexdigest()


def same_torch_version(recorded: str) -> bool:
    """The version the checksums were recorded with, its local tag (+cpu, +cu130) aside."""
    return recorded.split('+')[0] == torch.__version__.split('+')[0]


def state(module: nn.Module) -> dict:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_the_list_covers_every_registered_network():
    """A network registered later without ``BaseModule`` (or missing here) fails."""
    listed = {cfg['type'] for cfg in NETWORKS.values()}
    registered = set()
    for name, cls in MODELS.module_dict.items():
        if not isinstance(cls, type) or not issubclass(cls, nn.Module) \
                or not cls.__module__.startswith('anomaly_plugin.'):
            continue
        if issubclass(cls, BaseModel) or name in WEIGHTLESS \
                or cls.__module__.startswith(WEIGHTLESS_PACKAGES):
            continue
        registered.add(name)
    assert registered == listed


@pytest.mark.parametrize('name', sorted(NETWORKS))
def test_builds_from_the_registry_as_a_base_module_with_init_cfg(name):
    init_cfg = [dict(type='Kaiming', layer='Conv2d'), dict(type='Constant', val=1.0,
                                                             layer='BatchNorm2d')]
    module = build(name, init_cfg=init_cfg)
    assert isinstance(module, BaseModule)
    assert module.init_cfg == init_cfg
    assert not module.is_init


@pytest.mark.parametrize('name', sorted(NETWORKS))
def test_default_initialisation_is_unchanged(name):
    reference = json.loads(CHECKSUMS.read_text())
    # any torch build: the same draws into the same weights, in the same order
    assert recipe_digest(name) == reference['recipes'][name], init_recipe(name)
    module = build(name)
    if same_torch_version(reference['torch']):  # and then the same numbers
        assert checksum(module) == reference['checksums'][name]
    if name not in ('FeatureExtractor', 'TeacherStudent'):  # their backbones' own init_cfg run
        before = checksum(module)
        module.init_weights()  # no init_cfg: nothing changes
        assert checksum(module) == before


def test_the_recipe_sees_a_changed_initialisation():
    plain = init_recipe('ConvEncoder')
    assert plain and not any(target.startswith('kept nowhere') for _, target, _, _ in plain)
    assert any(draw == 'uniform_' and target.startswith('layers.0.0.weight ')
               for draw, target, _, _ in plain)
    changed = dict(NETWORKS['ConvEncoder'], latent_channels=4)
    NETWORKS['ConvEncoder-changed'] = changed
    try:
        assert init_recipe('ConvEncoder-changed') != plain
    finally:
        del NETWORKS['ConvEncoder-changed']


@pytest.mark.parametrize('name', ['ConvEncoder', 'DCGANGenerator', 'UNet-pix2pix', 'UNet',
                                  'GatedPixelCNN'])
def test_constant_init_cfg_sets_every_conv(name):
    init_cfg = dict(type='Constant', val=0.5, bias=0.0, layer=['Conv2d', 'ConvTranspose2d'])
    module = build(name, init_cfg=init_cfg)
    before = state(module)
    convs = [m for m in module.modules() if isinstance(m, CONV)]
    assert convs and not all(bool((m.weight == 0.5).all()) for m in convs)
    module.init_weights()
    assert module.is_init
    for m in convs:
        assert bool((m.weight == 0.5).all())
        assert m.bias is None or not m.bias.any()
    conv_keys = {f'{n}.{p}' for n, m in module.named_modules() if isinstance(m, CONV)
                 for p in ('weight', 'bias')}
    others = [k for k in before if k not in conv_keys]
    assert others  # BatchNorm, embeddings, ...: left as they were
    after = module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in others)


def test_a_part_init_cfg_applies_through_its_parent():
    """``AutoEncoderNet.init_weights`` runs the encoder's init_cfg, not on the decoder."""
    torch.manual_seed(SEED)
    net = MODELS.build(dict(type='AutoEncoderNet', decoder=DEC, encoder=dict(
        ENC, init_cfg=dict(type='Constant', val=0.5, layer='Conv2d'))))
    decoder_before = state(net.decoder)
    net.init_weights()
    encoder_convs = [m for m in net.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert encoder_convs and all(bool((m.weight == 0.5).all()) for m in encoder_convs)
    after = net.decoder.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in decoder_before.items())


@pytest.mark.parametrize('detector', [
    dict(type='ConvAutoEncoder', encoder=ENC, decoder=DEC),
    dict(type='GANomaly', generator=dict(type='EncoderDecoderEncoder', encoder=DCGAN_ENC,
                                         decoder=DCGAN_GEN),
         discriminator=dict(type='DCGANDiscriminator', image_size=16, base_channels=8,
                            max_channels=16)),
    dict(type='RIAD', inpainter=dict(type='UNet', channels=[4, 8, 16])),
])
def test_the_runner_init_of_a_detector_keeps_default_networks(detector):
    """``Runner.train`` calls ``model.init_weights()``; without init_cfg nothing changes."""
    torch.manual_seed(SEED)
    model = MODELS.build(detector)
    before = checksum(model)
    model.init_weights()
    assert checksum(model) == before


def saved_autoencoder(path: Path, **extra) -> nn.Module:
    """A ConvAutoEncoder saved as a runner checkpoint (``state_dict`` and ``meta``)."""
    torch.manual_seed(1)
    model = MODELS.build(dict(type='ConvAutoEncoder', encoder=ENC, decoder=DEC))
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=3, **extra)), path)
    return model


def test_pretrained_prefix_loads_a_part_of_a_detector_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / 'ae.pth'
    detector = saved_autoencoder(path)
    encoder = build('ConvEncoder', seed=2, init_cfg=dict(
        type='Pretrained', checkpoint=str(path), prefix='encoder.'))
    expected = detector.encoder.state_dict()
    assert not all(torch.equal(v, expected[k]) for k, v in encoder.state_dict().items())

    loads = []
    real_load = torch.load

    def spy(*args, **kwargs):
        loads.append(kwargs.get('weights_only'))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, 'load', spy)
    encoder.init_weights()
    got = encoder.state_dict()
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert loads == [True]  # one weights-only load, through the project's loader


def test_feature_extractor_init_cfg_comes_after_the_backbone_init_and_stays_frozen(tmp_path):
    """A fitted detector's ``backbone.`` entries (extractor and channel subset) load last."""
    fitted = build('FeatureExtractor', seed=3)
    path = tmp_path / 'patchcore.pth'
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in fitted.state_dict().items()}),
               path)
    extractor = build('FeatureExtractor', seed=4, channel_seed=5, init_cfg=dict(
        type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    assert not torch.equal(extractor.channel_indices, fitted.channel_indices)
    extractor.init_weights()  # the backbone's own Kaiming init first, then the checkpoint
    got, expected = extractor.state_dict(), fitted.state_dict()
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert not any(p.requires_grad for p in extractor.parameters())


def test_pretrained_refuses_a_checkpoint_with_pickled_code(tmp_path):
    from conftest import UnsafePayload

    from anomaly_plugin.engine import UnsafeCheckpointError
    marker = tmp_path / 'ran'
    path = tmp_path / 'evil.pth'
    saved_autoencoder(path, note=UnsafePayload(marker))
    encoder = build('ConvEncoder', init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                                 prefix='encoder.'))
    with pytest.raises(UnsafeCheckpointError, match='not plain data'):
        encoder.init_weights()
    assert not marker.exists()


def main(argv=None) -> None:
    """Write the checksums of the default initialisation of the code on ``sys.path``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument('--write', required=True, help='JSON file to write')
    args = parser.parse_args(argv)
    sums = {name: checksum(build(name)) for name in sorted(NETWORKS)}
    recipes = {name: recipe_digest(name) for name in sorted(NETWORKS)}
    Path(args.write).parent.mkdir(parents=True, exist_ok=True)
    Path(args.write).write_text(json.dumps(
        dict(torch=torch.__version__, checksums=sums, recipes=recipes), indent=2) + '\n')
    print(f'{len(sums)} checksums -> {args.write}', file=sys.stderr)


if __name__ == '__main__':
    main()
