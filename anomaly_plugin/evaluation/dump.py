"""Per-image predictions of a test run, written as CSV."""
import csv
import os
import os.path as osp
from typing import Dict, List, Sequence

from mmengine.evaluator import BaseMetric

from anomaly_plugin.registry import METRICS

FIELDS = ('image', 'defect_type', 'gt_label', 'score', 'norm_score', 'decision')


@METRICS.register_module()
class PredictionDump(BaseMetric):
    """Write one row per test image to ``out_file``; computes no metric.

    Columns: ``image, defect_type, gt_label, score, norm_score, decision``
    (``decision`` is ``OK``/``NG`` from the calibrated threshold, ``n/a``
    without one). Rows are gathered over ranks in dataset order; rank 0
    writes the file.

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
            label = s.get('pred_label')
            norm = s.get('norm_score')
            self.results.append(dict(
                image=s.get('img_path'), defect_type=s.get('defect_type', ''),
                gt_label=int(s['gt_label']) if s.get('gt_label') is not None else '',
                score=float(s['pred_score']),
                norm_score=float(norm) if norm is not None else '',
                decision='n/a' if label is None else ('NG' if int(label) else 'OK')))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        os.makedirs(osp.dirname(osp.abspath(self.out_file)), exist_ok=True)
        with open(self.out_file, 'w', newline='', encoding='utf-8') as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(results)
        return {}
