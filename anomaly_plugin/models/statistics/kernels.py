"""The compiled greedy k-center kernel (``csrc/greedy_kcenter.cpp``).

Built with ``torch.utils.cpp_extension`` (g++ and ninja) into
``csrc/build`` next to the source: ``make install`` builds it, and the first
use builds it when that did not happen. Where it cannot be built or loaded,
:func:`greedy_kernel` returns None (with one warning naming the reason) and
the selection runs on the torch path, which selects the same points.

    python -m anomaly_plugin.models.statistics.kernels   # build (verbose) and check
"""
import os
import os.path as osp
import warnings
from typing import Callable, Optional

_SOURCE = osp.join(osp.dirname(osp.abspath(__file__)), 'csrc', 'greedy_kcenter.cpp')
_BUILD_DIR = osp.join(osp.dirname(_SOURCE), 'build')
_NAME = 'anomaly_plugin_greedy_kcenter'

_state = {'tried': False, 'module': None, 'error': None}


def build(verbose: bool = False):
    """Compile (when the source changed) and import the extension module."""
    from torch.utils.cpp_extension import load
    os.makedirs(_BUILD_DIR, exist_ok=True)
    return load(name=_NAME, sources=[_SOURCE], build_directory=_BUILD_DIR,
                extra_cflags=['-O3', '-fopenmp'], extra_ldflags=['-fopenmp'],
                verbose=verbose)


def greedy_kernel() -> Optional[Callable]:
    """The compiled ``greedy_kcenter(points, sq, mind, assign, selected, start,
    stop, first, prune) -> (next, evaluated)``, or None when the extension is not available (the
    reason is warned once and kept in :func:`kernel_error`).

    It runs greedy steps ``start .. stop - 1`` on contiguous CPU (N, d)
    float32 or bfloat16 ``points`` with squared norms ``sq`` (N,) float32:
    step k takes centre ``next`` (``first`` at step ``start``) into
    ``selected[k]`` (``selected[:start]`` holds the earlier centres), lowers
    ``mind`` (N,) float32, the squared distance of each point to its nearest
    centre, and ``assign`` (N,) int64, that centre's step (-1: none), in
    place, and picks the next centre, the first arg-max of ``mind``, which it
    returns (so a selection can go on in chunks) with the number of
    point-centre distances it computed. With ``prune``, points whose nearest
    centre is more than twice their distance away from the new centre (plus a
    rounding margin) are skipped: by the triangle inequality it cannot be
    nearer, so the selection is the one of computing every distance.
    """
    if not _state['tried']:
        _state['tried'] = True
        try:
            _state['module'] = build()
        except Exception as err:  # no compiler, no ninja, read-only install, ...
            _state['error'] = f'{type(err).__name__}: {err}'
            warnings.warn('the compiled greedy k-center kernel is not available, the torch '
                          f'path is used instead ({_state["error"].splitlines()[0]})')
    module = _state['module']
    return None if module is None else module.greedy_kcenter


def kernel_error() -> Optional[str]:
    """Why the compiled kernel could not be loaded (None: loaded or not tried)."""
    return _state['error']


if __name__ == '__main__':
    import torch
    module = build(verbose=True)
    pts = torch.randn(1000, 16)
    sel = torch.empty(5, dtype=torch.long)
    module.greedy_kcenter(pts, pts.pow(2).sum(1), torch.full((1000,), float('inf')),
                          torch.full((1000,), -1, dtype=torch.long), sel, 0, 5, 0, True)
    print('built', module.__file__, 'selects', sel.tolist())
