from .panel import colorize, colour_scale, render_panel, resize_map
from .visualizer import AnomalyVisualizer, write_image

__all__ = ['colorize', 'colour_scale', 'render_panel', 'resize_map', 'AnomalyVisualizer',
           'write_image']
