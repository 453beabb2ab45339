"""Bad files of a dataset: found before the first iteration, reported together.

Two stages (see :class:`~anomaly_plugin.datasets.BaseAnomalyDataset`):

1. When the dataset is built, every image and mask of the split is checked
   cheaply (:func:`check_samples`: exists, readable, header, the end of a PNG
   or JPEG, a mask's size against its image's) and every failure is reported
   in one :class:`BadFilesError`.
2. A file that passes those checks and fails when decoded in full (damage
   inside its data) is replaced during the pass over the data and reported
   at the end of that pass (:func:`report_bad_files`, called by the train
   loops' hook, the fit loop and the metrics), together with the others found
   in the same pass.

With ``skip_bad_files=True`` both stages drop the files with a warning that
names them and states the count instead of raising.
"""
import logging
import os
from typing import Iterable, List, NamedTuple, Sequence

from mmengine.logging import print_log

from .decoding import BadImageError, display_path, probe_image

#: bad files listed in one error or warning (all are counted)
MAX_LISTED = 50
#: data lists at least this long show a progress bar while checked
PROGRESS_FROM = 2000
#: (path, what, inode, size, mtime) -> (H, W) or BadFile: the files checked in this
#: process (a run builds the same split several times: the tools' check, the runner,
#: calibration)
_CHECKED = {}


class BadFile(NamedTuple):
    """A file that cannot be used, and why."""

    path: str
    reason: str


class BadFilesError(ValueError):
    """Files of a dataset that cannot be used; ``bad`` lists them all."""

    def __init__(self, message: str, bad: Sequence[BadFile] = ()):
        super().__init__(message)
        self.bad = list(bad)

    def __reduce__(self):
        return type(self), (str(self), self.bad)


def bad_file(err: BaseException, path: str) -> BadFile:
    """A :class:`BadFile` from what reading ``path`` raised."""
    if isinstance(err, BadImageError):
        return BadFile(err.path, err.reason)
    if isinstance(err, FileNotFoundError):
        return BadFile(path, 'file not found')
    return BadFile(path, ' '.join(str(err).split()) or type(err).__name__)


def check_samples(data_list: Sequence[dict], progress: bool = True) -> List[BadFile]:
    """Check the image and mask files of data infos cheaply.

    Args:
        data_list: data infos (``img_path``, optional ``mask_path``,
            ``no_mask``).
        progress: show a progress bar for :data:`PROGRESS_FROM` infos or more.

    Returns:
        The bad files in data-list order, each once: unreadable images and
        masks (:func:`~anomaly_plugin.datasets.decoding.probe_image`) and
        masks whose size differs from their image's. A file already checked in
        this process and unchanged since (same inode, size and modification
        time) is not read again.
    """
    bar = None
    if progress and len(data_list) >= PROGRESS_FROM:
        from mmengine.utils import ProgressBar
        print_log(f'checking the files of {len(data_list)} samples', logger='current')
        bar = ProgressBar(len(data_list))
    bad, seen = [], set()

    def probe(path, what):
        try:  # a file checked before in this process, unchanged since, is not read again
            st = os.stat(path)
            key = (path, what, st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            key = None
        if key is None or key not in _CHECKED:
            try:
                result = probe_image(path, what)
            except (OSError, ValueError) as err:  # incl. FileNotFoundError, BadImageError
                result = bad_file(err, path)
            if key is None:
                return result
            _CHECKED[key] = result
        return _CHECKED[key]

    def add(entry):
        if entry not in seen:
            seen.add(entry)
            bad.append(entry)

    for info in data_list:
        img_size = probe(info['img_path'], 'Image')
        if isinstance(img_size, BadFile):
            add(img_size)
        mask_path = info.get('mask_path')
        if mask_path is not None and not info.get('no_mask', False):
            mask_size = probe(mask_path, 'Mask')
            if isinstance(mask_size, BadFile):
                image = display_path(info['img_path'])
                add(BadFile(mask_size.path, f"{mask_size.reason} (the mask of '{image}')"))
            elif not isinstance(img_size, BadFile) and mask_size != img_size:
                image = display_path(info['img_path'])
                add(BadFile(mask_path, f'mask is {mask_size[0]}x{mask_size[1]} (HxW) but its '
                            f"image '{image}' is {img_size[0]}x{img_size[1]}"))
        if bar is not None:
            bar.update()
    return bad


def bad_files_text(bad: Sequence[BadFile], limit: int = MAX_LISTED) -> str:
    """One line per bad file (the first ``limit``), then how many more."""
    lines = [f'  {display_path(b.path)}: {b.reason}' for b in bad[:limit]]
    if len(bad) > limit:
        lines.append(f'  ... and {len(bad) - limit} more ({len(bad)} in all)')
    return '\n'.join(lines)


def unique(bad: Iterable) -> List[BadFile]:
    """Bad files once each, in first-seen order (entries may be plain pairs)."""
    out, seen = [], set()
    for b in bad:
        b = BadFile(*b)
        if b not in seen:
            seen.add(b)
            out.append(b)
    return out


def report_bad_files(bad: Iterable, skip: bool, where: str, when: str) -> None:
    """Raise (or with ``skip`` warn) about bad files, all in one message.

    Args:
        bad: :class:`BadFile` entries (or ``(path, reason)`` pairs); nothing
            happens when empty.
        skip: the dataset's ``skip_bad_files``: warn and go on.
        where: what holds them (e.g. ``"MVTecADDataset split 'train'"``).
        when: when they were found (e.g. ``'decoding the first pass'``).

    Raises:
        BadFilesError: there are bad files and ``skip`` is False.
    """
    bad = unique(bad)
    if not bad:
        return
    head = f'{len(bad)} bad file(s) in {where}, found {when}:\n{bad_files_text(bad)}'
    if skip:
        print_log(f'{head}\nthey are skipped (skip_bad_files=True)', logger='current',
                  level=logging.WARNING)
        return
    raise BadFilesError(f'{head}\nFix or remove them, or set skip_bad_files=True in the '
                        'dataset config to leave them out with a warning.', bad)


def report_dataset_bad_files(bad: Iterable, dataset, when: str,
                             default: str = 'the data') -> None:
    """:func:`report_bad_files` for the files of ``dataset``: its
    ``skip_bad_files`` decides, its :meth:`describe` names it (``default``
    for a dataset of another kind)."""
    report_bad_files(bad, bool(getattr(dataset, 'skip_bad_files', False)),
                     dataset.describe() if hasattr(dataset, 'describe') else default, when)


def split_bad(results: Sequence) -> tuple:
    """Split gathered metric entries into usable ones and bad files.

    Args:
        results: per-sample entries; a stand-in for a bad file is
            ``{'bad_files': [(path, reason), ...]}``.

    Returns:
        ``(entries without the stand-ins, [BadFile, ...])``.
    """
    good, bad = [], []
    for r in results:
        if isinstance(r, dict) and 'bad_files' in r:
            bad += r['bad_files']
        else:
            good.append(r)
    return good, unique(bad)


def report_metric_bad_files(metric, results: Sequence) -> list:
    """The usable entries of a metric's results; its bad files reported (an
    error, or a warning when the dataset's ``skip_bad_files`` is set, read
    from ``metric.dataset_meta``)."""
    good, bad = split_bad(results)
    meta = getattr(metric, 'dataset_meta', None) or {}
    report_bad_files(bad, bool(meta.get('skip_bad_files', False)), 'the test data',
                     f'decoding the test pass ({type(metric).__name__})')
    return good


__all__ = ['BadFile', 'BadFilesError', 'MAX_LISTED', 'bad_file', 'bad_files_text',
           'check_samples', 'report_bad_files', 'report_dataset_bad_files',
           'report_metric_bad_files', 'split_bad',
           'unique']
