from .anogan import AnoGAN, FAnoGAN
from .autoencoder import ConvAutoEncoder
from .base import BaseAnomalyDetector
from .cflow import CFlow
from .cutpaste import CutPaste
from .dfm import DFM
from .draem import DRAEM
from .fastflow import FastFlow
from .fcae import FeatureClusteringAE
from .feature_editing import FeatureEditingAE
from .fitted import FittedDetector
from .ganomaly import GANomaly, SkipGANomaly
from .memae import MemAE
from .mscdae import MultiScalePyramidAE
from .multi_part import MultiPartDetector
from .padim import PaDiM
from .patch_svdd import PatchSVDD
from .patchcore import PatchCore
from .reverse_distillation import ReverseDistillation
from .riad import RIAD
from .simplenet import SimpleNet
from .skip_ae import SkipAutoEncoder
from .stfpm import STFPM
from .tiled import TiledDetector
from .vae import VAE
from .vqvae import VQVAEPrior

__all__ = ['AnoGAN', 'BaseAnomalyDetector', 'CFlow', 'ConvAutoEncoder', 'CutPaste', 'DFM',
           'DRAEM', 'FAnoGAN', 'FastFlow', 'FeatureClusteringAE', 'FeatureEditingAE',
           'FittedDetector', 'GANomaly', 'MemAE', 'MultiPartDetector', 'MultiScalePyramidAE',
           'PaDiM', 'PatchCore', 'PatchSVDD', 'RIAD', 'ReverseDistillation', 'STFPM',
           'SimpleNet', 'SkipAutoEncoder', 'SkipGANomaly', 'TiledDetector', 'VAE', 'VQVAEPrior']
