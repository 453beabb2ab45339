from .panel import colorize, colour_scale, render_panel, resize_map
from .synthesis import synthesis_panel
from .visualizer import AnomalyVisualizer, write_image

__all__ = ['colorize', 'colour_scale', 'render_panel', 'resize_map', 'synthesis_panel',
           'AnomalyVisualizer', 'write_image']
