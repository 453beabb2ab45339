from .calibration import calibrate, collect_predictions, compute_calibration
from .checkpoint import (
    UnsafeCheckpointError,
    install_safe_loader,
    pretrained_urls,
    safe_load,
    weights_download_message,
)
from .config_utils import apply_shortcuts, disable_validation, load_tool_config, merge_options
from .data_check import check_data_files
from .dist import setup_distributed, teardown_distributed
from .fitting import FIT_STAGES, fit_normal, fit_stage_of
from .hooks import *  # noqa: F401,F403
from .loops import FitLoop, MinItersEpochBasedTrainLoop
from .optim import CPUBF16OptimWrapper, MultiOptimWrapperConstructor, enable_amp

__all__ = ['FIT_STAGES', 'fit_normal', 'fit_stage_of', 'check_data_files', 'calibrate',
           'collect_predictions', 'compute_calibration',
           'UnsafeCheckpointError', 'install_safe_loader', 'pretrained_urls', 'safe_load',
           'weights_download_message',
           'setup_distributed', 'teardown_distributed', 'apply_shortcuts', 'merge_options',
           'disable_validation', 'load_tool_config', 'FitLoop', 'MinItersEpochBasedTrainLoop',
           'CPUBF16OptimWrapper',
           'MultiOptimWrapperConstructor', 'enable_amp']
