from .combined import CombinedLoss
from .msgms import MSGMSLoss
from .pixel_losses import L1Loss, L2Loss
from .ssim import SSIMLoss, ssim_map
from .wfd import WFDLoss

__all__ = ['CombinedLoss', 'L1Loss', 'L2Loss', 'MSGMSLoss', 'SSIMLoss', 'WFDLoss', 'ssim_map']
