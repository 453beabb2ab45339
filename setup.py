"""Build hook: ship ``configs/`` and ``tools/`` inside the package as ``anomaly_plugin/.mim``.

Metadata and options are in ``setup.cfg``; this file only adds the OpenMMLab
``mim`` layout (as mmdet and mmpretrain ship it), so that a wheel or a
non-editable ``pip install .`` contains ``anomaly_plugin/.mim/configs/...``
and ``anomaly_plugin/.mim/tools/...`` and ``mim train anomaly_plugin CONFIG``
finds both.

* Regular builds (wheel, ``pip install .``): the folders are copied into the
  build tree, next to the package's modules; the source tree is not touched.
* Editable installs (``pip install -e .``, as ``make install`` does): the
  package is imported from the source tree, so ``anomaly_plugin/.mim/`` is
  made there, with symbolic links to ``../../configs`` and ``../../tools``
  (copies where links cannot be made). It is listed in ``.gitignore``.
"""
import os
import os.path as osp
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))
PACKAGE = 'anomaly_plugin'
#: what ``.mim`` holds, relative to the repository root (missing entries are skipped)
MIM_ENTRIES = ('configs', 'tools', 'model-index.yml')
#: never shipped from configs/ or tools/
IGNORE = shutil.ignore_patterns('__pycache__', '*.pyc', '*.pyo')


def _remove(path: str) -> None:
    if osp.islink(path) or osp.isfile(path):
        os.remove(path)
    elif osp.isdir(path):
        shutil.rmtree(path)


def _copy(src: str, dst: str) -> None:
    if osp.isdir(src):
        shutil.copytree(src, dst, ignore=IGNORE)
    else:
        shutil.copyfile(src, dst)


def add_mim_extension(mim_dir: str, link: bool) -> list:
    """Fill ``mim_dir`` with the entries of :data:`MIM_ENTRIES`.

    Args:
        mim_dir: the ``<package>/.mim`` folder to fill (created if needed).
        link: make relative symbolic links (editable installs) instead of copies;
            falls back to copies where links are not supported.

    Returns:
        the paths made inside ``mim_dir``.
    """
    os.makedirs(mim_dir, exist_ok=True)
    made = []
    for name in MIM_ENTRIES:
        src = osp.join(HERE, name)
        if not osp.exists(src):
            continue
        dst = osp.join(mim_dir, name)
        _remove(dst)
        if link:
            try:
                os.symlink(osp.relpath(src, mim_dir), dst)
            except OSError:
                _copy(src, dst)
        else:
            _copy(src, dst)
        made.append(dst)
    return made


class BuildPyWithMim(build_py):
    """``build_py`` that also lays out ``anomaly_plugin/.mim``."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            add_mim_extension(osp.join(HERE, PACKAGE, '.mim'), link=True)
        else:
            add_mim_extension(osp.join(self.build_lib, PACKAGE, '.mim'), link=False)


setup(cmdclass={'build_py': BuildPyWithMim})
