from .conv_decoder import ConvDecoder

__all__ = ['ConvDecoder']
