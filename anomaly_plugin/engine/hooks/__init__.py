from .bad_file_hook import BadFileHook
from .calibration_hook import CalibrationHook
from .frozen_parts_hook import FrozenPartsHook
from .normal_fit_hook import NormalFitHook
from .plain_checkpoint_hook import PlainCheckpointHook
from .time_budget_hook import TimeBudgetHook
from .training_check_hook import TrainingCheckHook
from .visualization_hook import AnomalyVisualizationHook

__all__ = ['BadFileHook', 'CalibrationHook', 'FrozenPartsHook', 'NormalFitHook',
           'PlainCheckpointHook', 'TimeBudgetHook', 'TrainingCheckHook', 'AnomalyVisualizationHook']
