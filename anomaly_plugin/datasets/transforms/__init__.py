"""Data transforms of the anomaly detection pipelines."""
from .formatting import PackAnomalyInputs
from .loading import LoadAnomalyImage, LoadAnomalyMask
from .processing import CenterCrop, RandomFlip, RandomRotate90, Resize
from .synthesis import SynthesizeAnomaly

__all__ = [
    'LoadAnomalyImage', 'LoadAnomalyMask', 'Resize', 'CenterCrop',
    'RandomFlip', 'RandomRotate90', 'PackAnomalyInputs', 'SynthesizeAnomaly'
]
