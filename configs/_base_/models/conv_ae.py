from anomaly_plugin.models import (
    ConvAutoEncoder,
    ConvDecoder,
    ConvEncoder,
    L2Loss,
)

# Convolutional autoencoder, L2 loss; anomaly map = squared residual, image
# score = max of the Gaussian-smoothed map. SSIM-AE swaps the loss only.
model = dict(
    type=ConvAutoEncoder,
    encoder=dict(type=ConvEncoder, channels=(32, 64, 128, 128), latent_channels=32),
    decoder=dict(type=ConvDecoder, latent_channels=32, channels=(128, 128, 64, 32)),
    loss=dict(type=L2Loss))
