from .conv_encoder import ConvEncoder
from .feature_extractor import FeatureExtractor
from .ms_conv_encoder import MultiScaleConvEncoder

__all__ = ['ConvEncoder', 'FeatureExtractor', 'MultiScaleConvEncoder']
