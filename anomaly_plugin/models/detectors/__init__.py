from .autoencoder import ConvAutoEncoder
from .base import BaseAnomalyDetector
from .memory_bank import FittedDetector, PaDiM, PatchCore

__all__ = ['BaseAnomalyDetector', 'ConvAutoEncoder', 'FittedDetector', 'PaDiM', 'PatchCore']
