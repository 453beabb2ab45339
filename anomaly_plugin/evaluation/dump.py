"""Per-image predictions of a test run, written as CSV."""
import csv
import os
import os.path as osp
from typing import Dict, List, Sequence

from mmengine.evaluator import BaseMetric

from anomaly_plugin.registry import METRICS

FIELDS = ('image', 'defect_type', 'gt_label', 'score', 'norm_score', 'decision')
#: added after ``image`` when the samples are boxes (BoxCropDataset): the box
#: as ``x1, y1, x2, y2`` before the margin, its category and detection score
BOX_FIELDS = ('box_id', 'x1', 'y1', 'x2', 'y2', 'category', 'det_score')


@METRICS.register_module()
class PredictionDump(BaseMetric):
    """Write one row per test image to ``out_file``; computes no metric.

    Columns: ``image, defect_type, gt_label, score, norm_score, decision``
    (``decision`` is ``OK``/``NG`` from the calibrated threshold, ``n/a``
    without one). Stand-ins for files that did not decode are left out (the
    metrics report them). Samples that are boxes of an image (``BoxCropDataset``)
    get one row per box, with :data:`BOX_FIELDS` after ``image``
    (``det_score`` is empty for annotated boxes). Rows are gathered over
    ranks in dataset order; rank 0 writes the file.

    Args:
        out_file: CSV path (its folder is created).
        collect_device: device used to gather results across ranks.
    """

    default_prefix = 'dump'

    def __init__(self, out_file: str, collect_device: str = 'cpu') -> None:
        super().__init__(collect_device=collect_device)
        self.out_file = out_file

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for s in data_samples:
            if s.get('bad_files'):  # a stand-in for a file that did not decode
                continue
            label = s.get('pred_label')
            norm = s.get('norm_score')
            self.results.append(dict(
                image=s.get('img_path'), defect_type=s.get('defect_type', ''),
                gt_label=int(s['gt_label']) if s.get('gt_label') is not None else '',
                score=float(s['pred_score']),
                norm_score=float(norm) if norm is not None else '',
                decision='n/a' if label is None else ('NG' if int(label) else 'OK'),
                **self._box(s)))

    @staticmethod
    def _box(sample: dict) -> dict:
        """The :data:`BOX_FIELDS` of a box sample; empty for a whole image."""
        box = sample.get('box')
        if box is None:
            return {}
        score = sample.get('box_score')
        return dict(box_id=sample.get('box_id', ''),
                    **{k: float(v) for k, v in zip(('x1', 'y1', 'x2', 'y2'), box)},
                    category=sample.get('category', ''),
                    det_score='' if score is None else float(score))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        os.makedirs(osp.dirname(osp.abspath(self.out_file)), exist_ok=True)
        with open(self.out_file, 'w', newline='', encoding='utf-8') as f:
            fields = FIELDS
            if any('box_id' in r for r in results):
                fields = (FIELDS[0], *BOX_FIELDS, *FIELDS[1:])
            writer = csv.DictWriter(f, fieldnames=fields, restval='')
            writer.writeheader()
            writer.writerows(results)
        return {}
