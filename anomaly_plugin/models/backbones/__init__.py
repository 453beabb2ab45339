"""Pretrained feature extractors (frozen) and their offline weights."""
from .feature_extractor import FeatureExtractor, build_backbone

__all__ = ['FeatureExtractor', 'build_backbone']
