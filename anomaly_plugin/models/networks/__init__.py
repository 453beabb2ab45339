"""Trainable networks, one file per kind: the conv block, encoders, decoders,
the encoder-neck-decoder part, the U-Net, DCGAN stacks, GANomaly's generator, the
VAE's networks and the PixelCNN prior."""
from .autoencoder import AutoEncoderNet
from .blocks import act_layer, conv_norm_act, norm_layer
from .dcgan import DCGANDiscriminator, DCGANEncoder, DCGANGenerator, dcgan_init
from .decoders import ConvDecoder, MultiScaleFusionDecoder
from .encoders import ConvEncoder, MultiScaleConvEncoder
from .ganomaly import EncoderDecoderEncoder
from .pixelcnn import GatedMaskedLayer, GatedPixelCNN, resample_codes
from .unet import UNet
from .vae import VAEDecoder, VAEEncoder

__all__ = ['AutoEncoderNet', 'ConvDecoder', 'ConvEncoder', 'DCGANDiscriminator', 'DCGANEncoder',
           'DCGANGenerator', 'EncoderDecoderEncoder', 'GatedMaskedLayer', 'GatedPixelCNN',
           'MultiScaleConvEncoder', 'MultiScaleFusionDecoder', 'UNet', 'VAEDecoder', 'VAEEncoder',
           'act_layer', 'conv_norm_act', 'dcgan_init', 'norm_layer', 'resample_codes']
