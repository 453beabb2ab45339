"""Common base of the anomaly detection datasets."""
import math
import os
from itertools import chain
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset

from anomaly_plugin.registry import TRANSFORMS

from .decoding import BadImageError, display_path, probe_image, warn_once
from .file_check import BadFilesError, bad_file, check_samples, report_bad_files
from .image_io import is_image_file

SPLITS = ('train', 'holdout', 'test')


def _is_dir(entry: os.DirEntry) -> bool:
    """Whether a folder entry is a folder (a link that cannot be followed is not)."""
    try:
        return entry.is_dir()
    except OSError:  # e.g. a link to itself: too many levels of links
        return False


def image_entries(folder: str) -> List[str]:
    """Sorted names of the entries of ``folder`` with an image name that are not
    folders: files, and also links that cannot be followed, FIFOs and the like,
    so that reading them gives an error naming each instead of skipping it
    silently."""
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if is_image_file(e.name) and not _is_dir(e))


def sub_folders(folder: str) -> List[str]:
    """Sorted names of the visible sub-folders of ``folder``."""
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if not e.name.startswith('.') and _is_dir(e))


def list_images(folder: str, what: str = 'image folder') -> List[str]:
    """List the image files directly inside ``folder``.

    Args:
        folder: directory to scan (not recursive).
        what: how the folder is named in error messages.

    Returns:
        Sorted full paths of the entries whose name has an image extension
        (any case) and that are not folders (see :func:`image_entries`);
        hidden files, other files and sub-folders are ignored.

    Raises:
        FileNotFoundError: ``folder`` does not exist or is not a directory.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f'{what} {folder!r} does not exist or is not '
                                'a directory')
    return [os.path.join(folder, n) for n in image_entries(folder)]


def normal_info(img_path: str) -> dict:
    """Data info of one normal image (no mask file, label 0)."""
    return dict(img_path=img_path, mask_path=None, gt_label=0,
                defect_type='good')


def anomalous_infos(images: Sequence[str], masks: dict, defect_type: str, what: str,
                    expected: Callable[[str], str]) -> List[dict]:
    """One data info per anomalous image, each matched to exactly one mask.

    Args:
        images: image paths.
        masks: image stem -> candidate mask paths.
        defect_type: recorded on every info.
        what: how error messages name an image (e.g. 'Defective test image').
        expected: image stem -> where its mask was looked for (for the error).

    Returns:
        data infos with ``gt_label=1``.
    """
    infos = []
    for img_path in images:
        stem = os.path.splitext(os.path.basename(img_path))[0]
        found = masks.get(stem, [])
        if not found:
            raise FileNotFoundError(
                f'{what} {img_path!r} has no mask: expected {expected(stem)}')
        if len(found) > 1:
            raise ValueError(
                f'{what} {img_path!r} matches several masks {found}; keep exactly one')
        infos.append(dict(img_path=img_path, mask_path=found[0], gt_label=1,
                          defect_type=defect_type))
    return infos


class BaseAnomalyDataset(BaseDataset):
    """Base of the datasets for unsupervised anomaly detection.

    Training images are all normal. The normal training images can be split
    deterministically into ``'train'`` and ``'holdout'`` (normal images kept
    out of training, e.g. to calibrate thresholds): the sorted file list is
    permuted with ``numpy.random.default_rng(holdout_seed)`` and the first
    ``ceil(holdout_ratio * n)`` images of the permutation form ``'holdout'``;
    ``'train'`` gets the others, so the two never overlap.

    Each data info is a dict with ``img_path`` (str), ``mask_path`` (str or
    None; None for normal images), ``gt_label`` (0 normal, 1 anomalous) and
    ``defect_type`` (``'good'`` for normal images). When the dataset has no
    masks at all (``metainfo['has_masks']`` False), every data info also has
    ``no_mask=True`` and the mask loader leaves ``gt_mask`` unset.

    Bad files: when the dataset is built, every image and mask of the split
    is checked cheaply (exists, readable, header, the end of a PNG or JPEG,
    each mask's size against its image's; a progress bar from 2,000 samples)
    and all failures are reported in one
    :class:`~anomaly_plugin.datasets.file_check.BadFilesError` (the first 50
    listed, each with its reason, and the count). A file that fails only when
    decoded in full is replaced in training by the next sample that loads (in
    testing by a blank stand-in that the metrics leave out); each such file
    is named in a warning when met, and all of them are reported together at
    the end of the pass (by :class:`~anomaly_plugin.engine.hooks.BadFileHook`,
    the fit loop, the metrics and the calibration). With
    ``skip_bad_files=True`` bad files are left out with a warning naming them
    instead of an error.

    Subclasses implement :meth:`load_normal_train_files` and
    :meth:`load_test_list`.

    Args:
        split: ``'train'``, ``'holdout'`` or ``'test'``.
        holdout_ratio: fraction of the normal training images held out,
            in [0, 1).
        holdout_seed: seed of the holdout permutation.
        check_files: check every file cheaply when the dataset is built.
        skip_bad_files: leave bad files out with a warning instead of
            stopping with an error that lists them.
        data_root: root folder of the data.
        metainfo: extra meta information merged into :attr:`METAINFO`.
        pipeline: transforms (config dicts, built from this package's
            ``TRANSFORMS`` registry, or callables).
        indices, serialize_data, test_mode, lazy_init, max_refetch: as in
            :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO = dict(classes=('good', 'anomalous'))
    #: Whether the samples come with ground-truth masks.
    has_masks = True

    def __init__(self,
                 split: str = 'train',
                 holdout_ratio: float = 0.0,
                 holdout_seed: int = 0,
                 check_files: bool = True,
                 skip_bad_files: bool = False,
                 data_root: str = '',
                 metainfo: Optional[dict] = None,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 serialize_data: bool = True,
                 test_mode: bool = False,
                 lazy_init: bool = False,
                 max_refetch: int = 1000):
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
        holdout_ratio = float(holdout_ratio)
        if not 0.0 <= holdout_ratio < 1.0:
            raise ValueError(
                f'holdout_ratio must be in [0, 1), got {holdout_ratio}')
        if split == 'holdout' and holdout_ratio == 0.0:
            raise ValueError(
                "split='holdout' needs holdout_ratio > 0; with "
                'holdout_ratio=0 no normal training image is held out')
        self.split = split
        self.holdout_ratio = holdout_ratio
        self.holdout_seed = int(holdout_seed)
        self.check_files = bool(check_files)
        self.skip_bad_files = bool(skip_bad_files)
        metainfo = dict(metainfo or {}, has_masks=self.has_masks,
                        skip_bad_files=self.skip_bad_files)
        super().__init__(
            ann_file='',
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=dict(),
            indices=indices,
            serialize_data=serialize_data,
            pipeline=self._build_pipeline(pipeline),
            test_mode=test_mode,
            lazy_init=lazy_init,
            max_refetch=max_refetch)

    @staticmethod
    def _build_pipeline(
            pipeline: Sequence[Union[dict, Callable]]) -> List[Callable]:
        """Build config dicts with this package's registry.

        Names are looked up here first, then in MMEngine's root registry, so
        a pipeline works without setting ``default_scope``.
        """
        return [TRANSFORMS.build(t) if isinstance(t, dict) else t
                for t in pipeline]

    def _resolve(self, path: str) -> str:
        """Join a relative ``path`` with ``data_root``."""
        path = os.fspath(path)
        if self.data_root and not os.path.isabs(path):
            return os.path.join(self.data_root, path)
        return path

    def load_normal_train_files(self) -> List[str]:
        """Return the sorted paths of all normal training images.

        Raises an error naming the folder when there are none.
        """
        raise NotImplementedError

    def load_test_list(self) -> List[dict]:
        """Return the data infos of the test split (normal and anomalous)."""
        raise NotImplementedError

    def split_holdout(self, files: Sequence[str]) -> List[str]:
        """Select the files of the current ``'train'`` / ``'holdout'`` split.

        Args:
            files: all normal training images.

        Returns:
            The selected files, in sorted order.
        """
        files = sorted(files)
        n = len(files)
        # Small tolerance so that e.g. 0.3 * 10 holds out 3 images, not 4.
        k = math.ceil(self.holdout_ratio * n - 1e-9) if self.holdout_ratio else 0
        if k >= n:
            raise ValueError(
                f'holdout_ratio={self.holdout_ratio} holds out all {n} normal '
                'training image(s) and leaves none for training; lower it or '
                'add images')
        held = np.zeros(n, dtype=bool)
        held[np.random.default_rng(self.holdout_seed).permutation(n)[:k]] = True
        keep = held if self.split == 'holdout' else ~held
        return [f for f, k_ in zip(files, keep) if k_]

    def load_data_list(self) -> List[dict]:
        """Build the data infos of the selected split."""
        if self.split == 'test':
            data_list = self.load_test_list()
            if not data_list:
                raise ValueError(
                    f'{type(self).__name__}: the test split holds no images')
        else:
            files = self.load_normal_train_files()
            data_list = [normal_info(f) for f in self.split_holdout(files)]
        if not self.has_masks:
            for info in data_list:
                info['no_mask'] = True
        return data_list

    # ------------------------------------------------------------- bad files
    def describe(self) -> str:
        """How messages name this dataset (class, split, data root)."""
        root = f' ({display_path(self.data_root)})' if self.data_root else ''
        return f'{type(self).__name__} split {self.split!r}{root}'

    def filter_data(self) -> List[dict]:
        """Check every file of the split cheaply (see the class doc).

        Returns:
            The data infos; without the bad ones when ``skip_bad_files``.

        Raises:
            BadFilesError: bad files were found (all listed, with reasons).
        """
        data_list = super().filter_data()
        if not self.check_files:
            return data_list
        bad = check_samples(data_list)
        if not bad:
            return data_list
        report_bad_files(bad, self.skip_bad_files, self.describe(),
                         'checking the files before the first iteration')
        paths = {b.path for b in bad}
        kept = [d for d in data_list
                if d['img_path'] not in paths and d.get('mask_path') not in paths]
        if not kept:
            raise BadFilesError(f'{self.describe()}: every sample has a bad file', bad)
        return kept

    def prepare_data(self, idx: int):
        """The sample ``idx`` through the pipeline; a file that fails when
        decoded in full is named in a warning and replaced (training: the next
        sample that loads; testing: a blank stand-in), and the sample that
        stands in carries ``bad_files`` (``[(path, reason), ...]``) in its
        metainfo for the end-of-pass report."""
        try:
            return super().prepare_data(idx)
        except BadImageError as err:
            bad = [bad_file(err, err.path)]
        warn_once(bad[0].path, f'{bad[0].reason}; found when decoding it in full '
                  f'({"left out" if self.skip_bad_files else "reported at the end of the pass"})')
        if self.test_mode:
            data = self._stand_in(idx)
        else:
            data = None
            for step in range(1, min(len(self), self.max_refetch + 1)):
                try:
                    data = super().prepare_data((idx + step) % len(self))
                    break
                except BadImageError as err:
                    bad.append(bad_file(err, err.path))
            if data is None:
                report_bad_files(bad, False, self.describe(), 'decoding the samples')
        entries = [tuple(b) for b in bad]
        if hasattr(data.get('data_samples'), 'set_metainfo'):
            data['data_samples'].set_metainfo(dict(bad_files=entries))
        else:  # a pipeline without PackAnomalyInputs
            data['bad_files'] = entries
        return data

    def _stand_in(self, idx: int) -> dict:
        """Sample ``idx`` with a blank image of its size and no mask, through
        the transforms after the image loading step (for the test loop, which
        needs one output per sample; the metrics leave it out)."""
        info = self.get_data_info(idx)
        steps = self.pipeline.transforms
        start = next((i + 1 for i, t in enumerate(steps)
                      if type(t).__name__ == 'LoadAnomalyImage'), 0)
        try:
            h, w = probe_image(info['img_path'])
        except (OSError, ValueError):
            h, w = 64, 64
        results = dict(info, img=np.zeros((h, w, 3), np.uint8), ori_shape=(h, w),
                       img_shape=(h, w), no_mask=True)
        for t in steps[start:]:
            results = t(results)
        return results


def bad_files_of(samples) -> list:
    """The ``bad_files`` entries carried by data samples (objects or dicts)."""
    return list(chain.from_iterable(
        (s.get('bad_files') or ()) for s in samples if s is not None))
