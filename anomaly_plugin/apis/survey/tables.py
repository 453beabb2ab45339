"""The survey's tables: ``survey.csv`` (raw values), ``survey.json`` and
``survey.md`` (metrics and NG rate in percent)."""
import csv
import json
import os
import os.path as osp
from typing import List

from anomaly_plugin.evaluation import METRIC_KEYS

#: the columns of survey.csv, in order
COLUMNS = ('category', 'method', 'family', 'status', *METRIC_KEYS, 'train_s',
           'test_images_per_s', 'peak_rss_mb', 'parameters', 'image_threshold',
           'ng_rate_normal', 'schedule', 'config', 'error')


def _fmt(key: str, value) -> str:
    if value is None or value == '':
        return ''
    if key in METRIC_KEYS or key == 'ng_rate_normal':
        return f'{100 * float(value):.2f}'
    if isinstance(value, float):
        return f'{value:.4g}' if key == 'image_threshold' else f'{value:.1f}'
    return str(value)


def write_tables(rows: List[dict], work_dir: str) -> None:
    """``survey.csv`` (raw values), ``survey.json`` and ``survey.md`` (metrics and
    NG rate in percent) in ``work_dir``."""
    os.makedirs(work_dir, exist_ok=True)
    with open(osp.join(work_dir, 'survey.csv'), 'w', newline='', encoding='utf-8') as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, restval='', extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)
    with open(osp.join(work_dir, 'survey.json'), 'w') as f:
        json.dump(rows, f, indent=2)
    shown = [c for c in COLUMNS if c not in ('config', 'error')]
    lines = ['| ' + ' | '.join(shown) + ' |', '|' + ' --- |' * len(shown)]
    for r in rows:
        lines.append('| ' + ' | '.join(_fmt(c, r.get(c)) for c in shown) + ' |')
    failed = [r for r in rows if r.get('status') != 'ok']
    if failed:
        lines += [''] + [f'- {r["category"]}/{r["method"]}: {r.get("error", "")}'
                         for r in failed]
    with open(osp.join(work_dir, 'survey.md'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
