from .calibration import calibrate, collect_predictions, compute_calibration
from .checkpoint import UnsafeCheckpointError, install_safe_loader, safe_load
from .config_utils import apply_shortcuts, merge_options
from .dist import setup_distributed
from .optim import CPUBF16OptimWrapper, enable_amp
from .hooks import *  # noqa: F401,F403

__all__ = ['calibrate', 'collect_predictions', 'compute_calibration',
           'UnsafeCheckpointError', 'install_safe_loader', 'safe_load',
           'setup_distributed', 'apply_shortcuts', 'merge_options',
           'CPUBF16OptimWrapper', 'enable_amp']
