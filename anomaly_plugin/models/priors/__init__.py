"""Autoregressive priors over discrete latent maps."""
from .pixelcnn import GatedMaskedLayer, GatedPixelCNN, resample_codes

__all__ = ['GatedMaskedLayer', 'GatedPixelCNN', 'resample_codes']
