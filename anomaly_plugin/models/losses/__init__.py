from .adversarial import FeatureMatchingLoss, GANLoss, GradientPenalty, gradient_penalty
from .combined import CombinedLoss, reconstruction_losses
from .distillation import CosineDistanceLoss, PyramidMatchingLoss
from .focal import FocalLoss
from .gaussian_likelihood import gaussian_kl, gaussian_nll
from .msgms import MSGMSLoss
from .pixel_losses import L1Loss, L2Loss
from .ssim import SSIMLoss, ssim_map
from .truncated_l1 import TruncatedL1Loss
from .wfd import WFDLoss

__all__ = ['CombinedLoss', 'CosineDistanceLoss', 'FeatureMatchingLoss', 'FocalLoss', 'GANLoss',
           'GradientPenalty', 'L1Loss', 'L2Loss', 'MSGMSLoss', 'PyramidMatchingLoss', 'SSIMLoss',
           'TruncatedL1Loss', 'WFDLoss', 'gaussian_kl', 'gaussian_nll', 'gradient_penalty',
           'reconstruction_losses', 'ssim_map']
