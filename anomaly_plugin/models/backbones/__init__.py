"""Pretrained feature extractors (frozen) and their offline weights."""
from .feature_extractor import FeatureExtractor

__all__ = ['FeatureExtractor']
