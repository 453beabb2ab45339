"""Networks of the generative detectors: DCGAN stacks, GANomaly / Skip-GANomaly
generators, the VAE's encoder and Gaussian decoder, an encoder-neck-decoder part."""
from .autoencoder_net import AutoEncoderNet
from .dcgan import DCGANDiscriminator, DCGANEncoder, DCGANGenerator, dcgan_init
from .ganomaly_nets import EncoderDecoderEncoder, UNetGenerator
from .vae_nets import VAEDecoder, VAEEncoder

__all__ = ['AutoEncoderNet', 'DCGANDiscriminator', 'DCGANEncoder', 'DCGANGenerator',
           'EncoderDecoderEncoder', 'UNetGenerator', 'VAEDecoder', 'VAEEncoder', 'dcgan_init']
