from .calibration_hook import CalibrationHook
from .plain_checkpoint_hook import PlainCheckpointHook
from .visualization_hook import AnomalyVisualizationHook

__all__ = ['CalibrationHook', 'PlainCheckpointHook', 'AnomalyVisualizationHook']
