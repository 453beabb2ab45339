"""OpenMMLab plugin for unsupervised image anomaly detection and localization.

``import anomaly_plugin`` registers every module in the ``anomaly_plugin``
registry scope and routes MMEngine's checkpoint loading through weights-only
unpickling.
"""
from . import datasets, demo, engine, evaluation, models, structures, visualization
from .engine.checkpoint import install_safe_loader
from .version import __version__

install_safe_loader()

__all__ = ['datasets', 'demo', 'engine', 'evaluation', 'models', 'structures',
           'visualization', '__version__']
