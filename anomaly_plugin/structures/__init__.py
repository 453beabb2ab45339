from .anomaly_data_sample import AnomalyDataSample, stack_masks

__all__ = ['AnomalyDataSample', 'stack_masks']
