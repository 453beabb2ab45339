from .pixel_losses import L1Loss, L2Loss

__all__ = ['L1Loss', 'L2Loss']
