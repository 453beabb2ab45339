"""Data transforms of the anomaly detection pipelines."""
from .formatting import PackAnomalyInputs
from .loading import LoadAnomalyImage, LoadAnomalyMask
from .processing import CenterCrop, RandomCrop, RandomFlip, RandomRotate90, Resize
from .synthesis import SynthesizeAnomaly

__all__ = [
    'LoadAnomalyImage', 'LoadAnomalyMask', 'Resize', 'CenterCrop',
    'RandomCrop', 'RandomFlip', 'RandomRotate90', 'PackAnomalyInputs', 'SynthesizeAnomaly'
]
