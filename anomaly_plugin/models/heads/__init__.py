from .conv_decoder import ConvDecoder
from .fusion_decoder import MultiScaleFusionDecoder

__all__ = ['ConvDecoder', 'MultiScaleFusionDecoder']
