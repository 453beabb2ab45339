from .bad_file_hook import BadFileHook
from .calibration_hook import CalibrationHook
from .normal_fit_hook import NormalFitHook
from .plain_checkpoint_hook import PlainCheckpointHook
from .training_check_hook import TrainingCheckHook
from .visualization_hook import AnomalyVisualizationHook

__all__ = ['BadFileHook', 'CalibrationHook', 'NormalFitHook', 'PlainCheckpointHook',
           'TrainingCheckHook', 'AnomalyVisualizationHook']
