"""Trainable networks, one file per kind: the conv block, encoders, decoders,
the encoder-neck-decoder part, the U-Net, DCGAN stacks, GANomaly's generator, the
VAE's networks, the PixelCNN prior, normalizing flows and the teacher-student
parts."""
from .autoencoder import AutoEncoderNet
from .blocks import act_layer, conv_norm_act, norm_layer
from .dcgan import DCGANDiscriminator, DCGANEncoder, DCGANGenerator, dcgan_init
from .decoders import ConvDecoder, MultiScaleFusionDecoder
from .encoders import ConvEncoder, MultiScaleConvEncoder
from .flows import (
                    AffineCouplingBlock,
                    FlowStack,
                    PositionalEncoding2D,
                    coupling_subnet,
                    flow_nll,
                    mean_log_likelihood,
)
from .ganomaly import EncoderDecoderEncoder
from .patch_svdd import PatchPositionClassifier, PatchSVDDEncoder
from .pixelcnn import GatedMaskedLayer, GatedPixelCNN, resample_codes
from .simplenet import FeatureAdaptor, PatchDiscriminator
from .teacher_student import OneClassBottleneck, ReverseDecoder, TeacherStudent
from .unet import UNet
from .vae import VAEDecoder, VAEEncoder

__all__ = ['AffineCouplingBlock', 'AutoEncoderNet', 'ConvDecoder', 'ConvEncoder',
           'DCGANDiscriminator', 'DCGANEncoder', 'DCGANGenerator', 'EncoderDecoderEncoder',
           'FeatureAdaptor', 'FlowStack', 'GatedMaskedLayer', 'GatedPixelCNN',
           'MultiScaleConvEncoder', 'MultiScaleFusionDecoder', 'OneClassBottleneck',
           'PatchDiscriminator', 'PatchPositionClassifier', 'PatchSVDDEncoder',
           'PositionalEncoding2D', 'ReverseDecoder', 'TeacherStudent', 'UNet', 'VAEDecoder',
           'VAEEncoder', 'act_layer', 'conv_norm_act', 'coupling_subnet', 'dcgan_init',
           'flow_nll', 'mean_log_likelihood', 'norm_layer', 'resample_codes']
