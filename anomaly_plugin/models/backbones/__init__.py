from .conv_encoder import ConvEncoder
from .feature_extractor import FeatureExtractor

__all__ = ['ConvEncoder', 'FeatureExtractor']
