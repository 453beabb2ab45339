from .anogan import AnoGAN, FAnoGAN
from .autoencoder import ConvAutoEncoder
from .base import BaseAnomalyDetector
from .fcae import FeatureClusteringAE
from .feature_editing import FeatureEditingAE
from .fitted import FittedDetector
from .ganomaly import GANomaly, SkipGANomaly
from .memae import MemAE
from .mscdae import MultiScalePyramidAE
from .multi_part import MultiPartDetector
from .padim import PaDiM
from .patchcore import PatchCore
from .riad import RIAD
from .skip_ae import SkipAutoEncoder
from .tiled import TiledDetector
from .vae import VAE
from .vqvae import VQVAEPrior

__all__ = ['AnoGAN', 'BaseAnomalyDetector', 'ConvAutoEncoder', 'FAnoGAN', 'FeatureClusteringAE',
           'FeatureEditingAE', 'FittedDetector', 'GANomaly', 'MemAE', 'MultiPartDetector',
           'MultiScalePyramidAE', 'PaDiM', 'PatchCore', 'RIAD', 'SkipAutoEncoder', 'SkipGANomaly',
           'TiledDetector', 'VAE', 'VQVAEPrior']
