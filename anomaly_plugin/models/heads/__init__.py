"""Heads on top of backbone features."""
from .projection import ProjectionHead

__all__ = ['ProjectionHead']
