"""Corruptions of training batches (a batch of clean images in [0, 1] -> a
corrupted copy and the mask of what changed) for denoising autoencoders."""
from .noise import PixelNoise, StainNoise

__all__ = ['PixelNoise', 'StainNoise']
