from .adversarial import AdversarialDetector
from .anogan import AnoGAN, FAnoGAN
from .autoencoder import ConvAutoEncoder
from .base import BaseAnomalyDetector
from .corruptions import PixelNoise, StainNoise
from .fcae import FeatureClusteringAE
from .feature_editing import FeatureEditingAE
from .ganomaly import GANomaly, SkipGANomaly
from .memae import MemAE
from .memory_bank import FittedDetector, PaDiM, PatchCore
from .mscdae import MultiScalePyramidAE
from .riad import RIAD, RIADUNet
from .skip_ae import SkipAutoEncoder
from .tiled import TiledDetector
from .vae import VAE, gradient_attention
from .vqvae import VQVAEPrior

__all__ = ['AdversarialDetector', 'AnoGAN', 'BaseAnomalyDetector', 'ConvAutoEncoder', 'FAnoGAN',
           'FeatureClusteringAE', 'FeatureEditingAE', 'FittedDetector', 'GANomaly', 'MemAE',
           'MultiScalePyramidAE', 'PaDiM', 'PatchCore', 'PixelNoise', 'RIAD', 'RIADUNet',
           'SkipAutoEncoder', 'SkipGANomaly', 'StainNoise', 'TiledDetector', 'VAE', 'VQVAEPrior',
           'gradient_attention']
