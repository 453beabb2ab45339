from .panel import colorize, render_panel

__all__ = ['colorize', 'render_panel']
