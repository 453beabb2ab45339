"""Dataset built from user folders of normal and anomalous images."""
import os
from typing import Dict, List, Optional, Sequence, Union

from anomaly_plugin.registry import DATASETS

from .base import BaseAnomalyDataset, anomalous_infos, list_images, normal_info

_Dirs = Union[str, Sequence[str]]


def _as_list(dirs: Optional[_Dirs]) -> List[str]:
    if dirs is None:
        return []
    if isinstance(dirs, (str, os.PathLike)):
        return [os.fspath(dirs)]
    return [os.fspath(d) for d in dirs]


def _same_dir(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _index_masks(mask_dir: str) -> Dict[str, List[str]]:
    """Map image stems to mask files named ``<stem>.*`` or ``<stem>_mask.*``."""
    index: Dict[str, List[str]] = {}
    for path in list_images(mask_dir, 'mask folder'):
        stem = os.path.splitext(os.path.basename(path))[0]
        index.setdefault(stem, []).append(path)
        if stem.endswith('_mask'):
            index.setdefault(stem[:-len('_mask')], []).append(path)
    return index


@DATASETS.register_module()
class FolderAnomalyDataset(BaseAnomalyDataset):
    """Anomaly dataset from plain folders of images.

    Training (and holdout) images are the normal images of ``normal_dir``.
    The test split holds the normal images of ``normal_test_dir`` (label 0)
    and the images of every folder in ``abnormal_dirs`` (label 1, defect
    type = folder name).

    Masks are optional. With ``mask_dirs`` (one folder per abnormal folder)
    every anomalous image needs exactly one mask named ``<stem>.<ext>`` or
    ``<stem>_mask.<ext>``. Without it no sample has a mask:
    ``metainfo['has_masks']`` is False, the mask loader sets no ``gt_mask``
    and only image-level metrics can be computed.

    Args:
        normal_dir: folder of normal training images.
        abnormal_dirs: folder(s) of anomalous test images.
        mask_dirs: mask folder(s), one per abnormal folder, or None.
        normal_test_dir: folder of normal test images (must differ from
            ``normal_dir``).
        split: ``'train'``, ``'holdout'`` or ``'test'``.
        data_root: prefix of relative folder paths.
        holdout_ratio: fraction of ``normal_dir`` held out as ``'holdout'``.
        holdout_seed: seed of the holdout permutation.
        **kwargs: other arguments of :class:`BaseAnomalyDataset`.
    """

    def __init__(self,
                 normal_dir: str,
                 abnormal_dirs: _Dirs = (),
                 mask_dirs: Optional[_Dirs] = None,
                 normal_test_dir: Optional[str] = None,
                 split: str = 'train',
                 data_root: str = '',
                 holdout_ratio: float = 0.0,
                 holdout_seed: int = 0,
                 **kwargs):
        self.data_root = data_root
        self.normal_dir = self._resolve(normal_dir)
        self.abnormal_dirs = [self._resolve(d) for d in _as_list(abnormal_dirs)]
        self.normal_test_dir = (None if normal_test_dir is None else
                                self._resolve(normal_test_dir))
        if mask_dirs is None:
            self.mask_dirs = None
            self.has_masks = False
        else:
            self.mask_dirs = [self._resolve(d) for d in _as_list(mask_dirs)]
            if len(self.mask_dirs) != len(self.abnormal_dirs):
                raise ValueError(
                    f'mask_dirs must give one folder per abnormal folder: got '
                    f'{len(self.mask_dirs)} mask folder(s) for '
                    f'{len(self.abnormal_dirs)} abnormal folder(s)')
            self.has_masks = True
        if (self.normal_test_dir is not None
                and os.path.isdir(self.normal_test_dir)
                and os.path.isdir(self.normal_dir)
                and _same_dir(self.normal_test_dir, self.normal_dir)):
            raise ValueError(
                f'normal_test_dir {self.normal_test_dir!r} is the training '
                'folder normal_dir; test images must not be training images')
        super().__init__(split=split, holdout_ratio=holdout_ratio,
                         holdout_seed=holdout_seed, data_root=data_root,
                         **kwargs)

    def load_normal_train_files(self) -> List[str]:
        files = list_images(self.normal_dir, 'normal_dir')
        if not files:
            raise ValueError(
                f'Training folder normal_dir {self.normal_dir!r} contains no '
                'image files')
        return files

    def load_test_list(self) -> List[dict]:
        if self.normal_test_dir is None and not self.abnormal_dirs:
            raise ValueError(
                "FolderAnomalyDataset split='test' needs normal_test_dir "
                'and/or abnormal_dirs')
        data_list: List[dict] = []
        if self.normal_test_dir is not None:
            data_list.extend(normal_info(p) for p in
                             list_images(self.normal_test_dir, 'normal_test_dir'))
        for i, folder in enumerate(self.abnormal_dirs):
            defect_type = os.path.basename(os.path.normpath(folder))
            images = list_images(folder, 'abnormal folder')
            if self.mask_dirs is None:
                data_list.extend(
                    dict(img_path=p, mask_path=None, gt_label=1,
                         defect_type=defect_type) for p in images)
                continue
            mask_dir = self.mask_dirs[i]
            if os.path.isdir(mask_dir) and _same_dir(mask_dir, folder):
                raise ValueError(
                    f'Mask folder {mask_dir!r} is the abnormal image folder '
                    'itself; keep masks in a separate folder')
            masks = _index_masks(mask_dir)
            data_list += anomalous_infos(
                images, masks, defect_type, 'Anomalous image',
                lambda stem, d=mask_dir: (f'{os.path.join(d, stem)}.<ext> or '
                                          f'{os.path.join(d, stem + "_mask")}.<ext>'))
        return data_list
