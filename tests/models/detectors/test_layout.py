"""Detectors only compose registered parts: no network is defined under
``models/detectors/`` and everything registered from there is a detector."""
import importlib
import pkgutil
import types

from torch import nn

import anomaly_plugin.models.detectors as detectors
from anomaly_plugin.models import BaseAnomalyDetector
from anomaly_plugin.registry import MODELS


def non_detector_modules(module: types.ModuleType) -> list:
    """Names of the ``nn.Module`` classes ``module`` defines that are not detectors."""
    return [name for name, obj in vars(module).items()
            if isinstance(obj, type) and issubclass(obj, nn.Module)
            and obj.__module__ == module.__name__
            and not issubclass(obj, BaseAnomalyDetector)]


def test_the_check_finds_a_network_defined_beside_a_detector():
    fake = types.ModuleType('fake_detector_module')

    class Net(nn.Module):
        pass

    class Detector(BaseAnomalyDetector):
        pass

    Net.__module__ = Detector.__module__ = fake.__name__
    fake.Net, fake.Detector, fake.Conv = Net, Detector, nn.Conv2d  # Conv2d: imported, not defined
    assert non_detector_modules(fake) == ['Net']


def test_no_module_under_detectors_defines_a_network():
    found = {}
    for info in pkgutil.iter_modules(detectors.__path__):
        module = importlib.import_module(f'{detectors.__name__}.{info.name}')
        if non_detector_modules(module):
            found[info.name] = non_detector_modules(module)
    assert not found, f'networks belong under models/networks (or their kind): {found}'


def test_everything_registered_from_detectors_is_a_detector():
    registered = {name: cls for name, cls in MODELS.module_dict.items()
                  if getattr(cls, '__module__', '').startswith(detectors.__name__ + '.')}
    assert 'PatchCore' in registered and 'RIAD' in registered
    others = [name for name, cls in registered.items()
              if not (isinstance(cls, type) and issubclass(cls, BaseAnomalyDetector))]
    assert not others, others


def test_checkpoints_with_a_part_under_its_earlier_name_load():
    import torch
    cfg = dict(type='RIAD', inpainter=dict(type='UNet', channels=[4, 8]))
    torch.manual_seed(0)
    trained = MODELS.build(cfg)
    old = {k.replace('inpainter.', 'generator.', 1): v for k, v in trained.state_dict().items()}
    assert any(k.startswith('generator.') for k in old)
    torch.manual_seed(1)
    fresh = MODELS.build(cfg)
    fresh.load_state_dict(old)  # strict: every key found under its new name
    for k, v in trained.state_dict().items():
        assert torch.allclose(fresh.state_dict()[k], v, equal_nan=True), k
