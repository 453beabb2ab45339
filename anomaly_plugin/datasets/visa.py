"""The VisA dataset, read through its official split CSV."""
import csv
import os
from typing import List, Optional

from anomaly_plugin.registry import DATASETS

from .base import BaseAnomalyDataset, normal_info

_COLUMNS = ('object', 'split', 'label', 'image', 'mask')
_LABELS = {'normal': 0, 'anomaly': 1}


@DATASETS.register_module()
class VisADataset(BaseAnomalyDataset):
    """One category of VisA, selected from a split CSV.

    The CSV (e.g. ``split_csv/1cls.csv``) has the columns
    ``object,split,label,image,mask``: ``split`` is ``train`` or ``test``,
    ``label`` is ``normal`` or ``anomaly``, ``image`` and ``mask`` are paths
    relative to ``data_root`` (``mask`` is empty for normal images).
    Training rows must all be normal. VisA masks are stored as 0/255 in
    some releases and 0/1 in others, so every data info carries
    ``mask_threshold`` (default 0: any non-zero pixel is anomalous), which
    :class:`LoadAnomalyMask` uses unless it is given its own threshold.
    Defect types are not in the CSV; anomalous images get ``'anomaly'``.

    Args:
        data_root: VisA root folder (holding the category folders).
        category: value of the ``object`` column, e.g. ``'candle'``.
        split_csv: split CSV, relative to ``data_root`` or absolute.
        split: ``'train'``, ``'holdout'`` or ``'test'``.
        holdout_ratio: fraction of the training rows held out as
            ``'holdout'``.
        holdout_seed: seed of the holdout permutation.
        mask_threshold: mask binarisation threshold stored in the data
            infos (None: half the dtype's maximum).
        **kwargs: other arguments of :class:`BaseAnomalyDataset`.
    """

    def __init__(self,
                 data_root: str,
                 category: str = 'candle',
                 split_csv: str = 'split_csv/1cls.csv',
                 split: str = 'train',
                 holdout_ratio: float = 0.0,
                 holdout_seed: int = 0,
                 mask_threshold: Optional[float] = 0,
                 **kwargs):
        self.category = category
        self.split_csv = split_csv
        self.mask_threshold = mask_threshold
        super().__init__(split=split, holdout_ratio=holdout_ratio,
                         holdout_seed=holdout_seed, data_root=data_root,
                         **kwargs)

    def _read_rows(self, split: str) -> List[dict]:
        """Rows of ``self.category`` in ``split``, paths resolved."""
        csv_path = self._resolve(self.split_csv)
        if not os.path.isfile(csv_path):
            raise FileNotFoundError(
                f'VisA split CSV {csv_path!r} not found (data_root='
                f'{self.data_root!r}, split_csv={self.split_csv!r})')
        with open(csv_path, newline='', encoding='utf-8-sig') as f:
            reader = csv.DictReader(f)
            header = [(h or '').strip() for h in (reader.fieldnames or [])]
            missing = [c for c in _COLUMNS if c not in header]
            if missing:
                raise ValueError(
                    f'VisA split CSV {csv_path!r} lacks column(s) {missing}; '
                    f'expected {list(_COLUMNS)}, found {header}')
            reader.fieldnames = header
            rows, categories = [], set()
            for line, row in enumerate(reader, start=2):
                obj = (row['object'] or '').strip()
                categories.add(obj)
                if obj != self.category:
                    continue
                row_split = (row['split'] or '').strip().lower()
                label = (row['label'] or '').strip().lower()
                where = f'{csv_path}:{line}'
                if row_split not in ('train', 'test'):
                    raise ValueError(f'{where}: split {row["split"]!r} is '
                                     "neither 'train' nor 'test'")
                if label not in _LABELS:
                    raise ValueError(f'{where}: label {row["label"]!r} is '
                                     "neither 'normal' nor 'anomaly'")
                if row_split != split:
                    continue
                image = (row['image'] or '').strip()
                mask = (row['mask'] or '').strip()
                rows.append(dict(where=where, label=_LABELS[label],
                                 image=self._resolve(image) if image else '',
                                 mask=self._resolve(mask) if mask else None))
        if self.category not in categories:
            raise ValueError(
                f'Category {self.category!r} not found in VisA split CSV '
                f'{csv_path!r}; available: {sorted(categories)}')
        for row in rows:
            if not row['image'] or not os.path.isfile(row['image']):
                raise FileNotFoundError(
                    f'{row["where"]}: image file {row["image"]!r} not found')
        return rows

    def load_normal_train_files(self) -> List[str]:
        rows = self._read_rows('train')
        anomalous = [r for r in rows if r['label'] == 1]
        if anomalous:
            raise ValueError(
                f'{anomalous[0]["where"]}: training rows must be normal for '
                'unsupervised training, but this one is an anomaly; use a '
                'split CSV whose train split is normal only (e.g. 1cls.csv)')
        if not rows:
            raise ValueError(
                f'VisA split CSV has no training rows for category '
                f'{self.category!r}')
        return [r['image'] for r in rows]

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        for info in data_list:
            info['mask_threshold'] = self.mask_threshold
        return data_list

    def load_test_list(self) -> List[dict]:
        data_list = []
        for row in self._read_rows('test'):
            if row['mask'] is not None and not os.path.isfile(row['mask']):
                raise FileNotFoundError(
                    f'{row["where"]}: mask file {row["mask"]!r} of image '
                    f'{row["image"]!r} not found')
            if row['label'] == 0:
                info = normal_info(row['image'])
                info['mask_path'] = row['mask']
            else:
                if row['mask'] is None:
                    raise ValueError(
                        f'{row["where"]}: anomalous image {row["image"]!r} '
                        'has an empty mask column')
                info = dict(img_path=row['image'], mask_path=row['mask'],
                            gt_label=1, defect_type='anomaly')
            data_list.append(info)
        return data_list
