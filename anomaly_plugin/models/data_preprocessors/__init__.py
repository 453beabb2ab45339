from .data_preprocessor import AnomalyDataPreprocessor

__all__ = ['AnomalyDataPreprocessor']
