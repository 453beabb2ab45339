"""Anomaly detection metrics: functional forms and MMEngine metrics."""
from .dump import PredictionDump
from .functional import (
    aupro,
    auroc,
    average_precision,
    f1_max,
    f1_max_threshold,
    pro_curve,
)
from .keys import METRIC_KEYS
from .metrics import ImageMetric, PixelMetric

__all__ = [
    'auroc', 'average_precision', 'f1_max', 'f1_max_threshold', 'pro_curve',
    'aupro', 'ImageMetric', 'PixelMetric', 'PredictionDump', 'METRIC_KEYS'
]
