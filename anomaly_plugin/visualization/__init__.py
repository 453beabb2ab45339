from .panel import colorize, render_panel, resize_map
from .visualizer import AnomalyVisualizer, write_image

__all__ = ['colorize', 'render_panel', 'resize_map', 'AnomalyVisualizer', 'write_image']
