from .autoencoder import ConvAutoEncoder
from .base import BaseAnomalyDetector
from .corruptions import PixelNoise, StainNoise
from .fcae import FeatureClusteringAE
from .memae import MemAE
from .memory_bank import FittedDetector, PaDiM, PatchCore
from .mscdae import MultiScalePyramidAE
from .riad import RIAD, RIADUNet
from .skip_ae import SkipAutoEncoder

__all__ = ['BaseAnomalyDetector', 'ConvAutoEncoder', 'FeatureClusteringAE', 'FittedDetector',
           'MemAE', 'MultiScalePyramidAE', 'PaDiM', 'PatchCore', 'PixelNoise', 'RIAD',
           'RIADUNet', 'SkipAutoEncoder', 'StainNoise']
