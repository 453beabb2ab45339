"""The survey: every chosen method trained and tested on a user's data, one table
and one report (:func:`run_survey`).

- :mod:`.catalogue`: the shipped methods by family, the categories of a data root;
- :mod:`.method`: one method's training and test in child processes, its row;
- :mod:`.loop`: the survey over categories and methods, resumable;
- :mod:`.tables`: ``survey.csv`` / ``.json`` / ``.md``;
- :mod:`.report`: ``report.html``.
"""
from .catalogue import (
    DEFAULT_METHODS,
    FAMILIES,
    categories,
    method_info,
    select_methods,
    shipped_methods,
    tools_root,
)
from .loop import run_survey
from .method import TRAIN_CLOCK, earlier_train_seconds, run_method, run_tool
from .tables import COLUMNS, write_tables

__all__ = ['COLUMNS', 'DEFAULT_METHODS', 'FAMILIES', 'TRAIN_CLOCK', 'categories',
           'earlier_train_seconds', 'method_info', 'run_method', 'run_survey', 'run_tool',
           'select_methods', 'shipped_methods', 'tools_root', 'write_tables']
