"""The metric keys reported by ``tools/test.py`` (``metrics.json``), in order."""
METRIC_KEYS = ('image/AUROC', 'image/AP', 'image/F1max', 'pixel/AUROC', 'pixel/AP',
               'pixel/F1max', 'pixel/AUPRO')
