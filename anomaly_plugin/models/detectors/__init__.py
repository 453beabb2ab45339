from .autoencoder import ConvAutoEncoder
from .base import BaseAnomalyDetector

__all__ = ['BaseAnomalyDetector', 'ConvAutoEncoder']
