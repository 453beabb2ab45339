"""Datasets in the MVTec AD folder layout."""
import os
from typing import Dict, List

from anomaly_plugin.registry import DATASETS

from .base import (
    BaseAnomalyDataset,
    anomalous_infos,
    image_entries,
    list_images,
    normal_info,
    sub_folders,
)

_LAYOUT = ('one category folder with train/good/<image>, '
           'test/<defect type>/<image> (defect type "good" = normal) and '
           'ground_truth/<defect type>/<image stem>_mask.<ext>')


def _index_masks(gt_dir: str) -> Dict[str, List[str]]:
    """Map image stems to the ``<stem>_mask.<ext>`` files in ``gt_dir``."""
    index: Dict[str, List[str]] = {}
    if not os.path.isdir(gt_dir):
        return index
    for name in image_entries(gt_dir):
        stem = os.path.splitext(name)[0]
        if stem.endswith('_mask'):
            index.setdefault(stem[:-len('_mask')], []).append(
                os.path.join(gt_dir, name))
    return index


@DATASETS.register_module()
class MVTecADDataset(BaseAnomalyDataset):
    """One category of a dataset in the MVTec AD layout.

    Layout under ``data_root``::

        train/good/*.<ext>
        test/good/*.<ext>                      # normal test images
        test/<defect type>/*.<ext>             # anomalous test images
        ground_truth/<defect type>/<stem>_mask.<ext>

    Any image extension is accepted for images and masks (e.g. ``.jpg``
    images with ``.png`` masks). Every anomalous test image must have
    exactly one mask.

    Args:
        data_root: the category folder.
        split: ``'train'``, ``'holdout'`` or ``'test'``.
        holdout_ratio: fraction of ``train/good`` held out as ``'holdout'``.
        holdout_seed: seed of the holdout permutation.
        **kwargs: other arguments of :class:`BaseAnomalyDataset`
            (``pipeline``, ``metainfo``, ``test_mode``, ...).
    """

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 holdout_ratio: float = 0.0,
                 holdout_seed: int = 0,
                 **kwargs):
        super().__init__(split=split, holdout_ratio=holdout_ratio,
                         holdout_seed=holdout_seed, data_root=data_root,
                         **kwargs)

    def _check_root(self) -> None:
        root = self.data_root
        if not root or not os.path.isdir(root):
            raise FileNotFoundError(
                f'MVTec AD data_root {root!r} does not exist or is not a '
                f'directory; expected {_LAYOUT}')
        if not (os.path.isdir(os.path.join(root, 'train'))
                or os.path.isdir(os.path.join(root, 'test'))):
            raise ValueError(
                f'MVTec AD data_root {root!r} has neither a train/ nor a '
                f'test/ folder; expected {_LAYOUT}')

    def load_normal_train_files(self) -> List[str]:
        self._check_root()
        folder = os.path.join(self.data_root, 'train', 'good')
        if not os.path.isdir(folder):
            raise FileNotFoundError(
                f'MVTec AD data_root {self.data_root!r} has no train/good/ '
                f'folder ({folder!r}); expected {_LAYOUT}')
        files = list_images(folder, 'training folder')
        if not files:
            raise ValueError(
                f'Training folder {folder!r} contains no image files')
        return files

    def load_test_list(self) -> List[dict]:
        self._check_root()
        test_dir = os.path.join(self.data_root, 'test')
        if not os.path.isdir(test_dir):
            raise FileNotFoundError(
                f'MVTec AD data_root {self.data_root!r} has no test/ folder '
                f'({test_dir!r}); expected {_LAYOUT}')
        stray = image_entries(test_dir)
        if stray:
            raise ValueError(
                f'Image {os.path.join(test_dir, stray[0])!r} lies directly in '
                f'{test_dir!r}; test images must be in test/<defect type>/ '
                'sub-folders (test/good/ for normal ones)')
        types = sub_folders(test_dir)
        data_list: List[dict] = []
        for defect_type in types:
            images = list_images(os.path.join(test_dir, defect_type))
            if defect_type == 'good':
                data_list.extend(normal_info(p) for p in images)
                continue
            gt_dir = os.path.join(self.data_root, 'ground_truth', defect_type)
            masks = _index_masks(gt_dir)
            data_list += anomalous_infos(
                images, masks, defect_type, 'Defective test image',
                lambda stem, d=gt_dir: (f'{os.path.join(d, stem + "_mask")}.<ext> '
                                        '(<ext> any of png, jpg, bmp, tif, ...)'))
        if not data_list:
            raise ValueError(
                f'MVTec AD test folder {test_dir!r} contains no images in its '
                'defect type sub-folders')
        return data_list
