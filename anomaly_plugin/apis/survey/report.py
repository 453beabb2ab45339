"""The survey's ``report.html``: one self-contained page (no external scripts,
styles or fonts) beside its images.

It shows the table (sortable by any column: click a header), per category the
image ROC, pixel ROC and PRO curves of every method (one plot each, methods
overlaid, drawn as inline SVG from the curves ``tools/test.py --curves-dir``
wrote), and for a selection of test images (the highest- and the lowest-scoring
image of each defect type and of the normal ones, ranked by the mean of the
methods' score ranks) the image, its ground truth and every method's heat-map
(``tools/infer.py``, each method on its own calibrated colour scale).
"""
import csv
import html
import json
import os
import os.path as osp
import shutil
from typing import Callable, Dict, List, Sequence

import cv2
import numpy as np

from anomaly_plugin.datasets import read_image, read_mask
from anomaly_plugin.visualization import write_image

COLOURS = ('#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2',
           '#7f7f7f', '#bcbd22', '#17becf')
THUMB = 160  # px, the longer side of the report's images

_SORT_JS = '''
function sortTable(th) {
  const table = th.closest('table'), col = Array.from(th.parentNode.children).indexOf(th);
  const body = table.tBodies[0], rows = Array.from(body.rows);
  const asc = th.dataset.order !== 'asc';
  th.dataset.order = asc ? 'asc' : 'desc';
  const key = r => { const t = r.cells[col].textContent.trim(); const n = parseFloat(t);
                     return (t !== '' && !isNaN(n) && /^[-+0-9.eE]+$/.test(t)) ? n : t; };
  rows.sort((a, b) => { const x = key(a), y = key(b);
    if (typeof x === 'number' && typeof y === 'number') return asc ? x - y : y - x;
    return asc ? String(x).localeCompare(String(y)) : String(y).localeCompare(String(x)); });
  rows.forEach(r => body.appendChild(r));
}
'''
_STYLE = '''
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 13px; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; }
th { background: #eee; cursor: pointer; }
td.text { text-align: left; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
.grid td { text-align: center; font-size: 12px; }
.grid img { display: block; max-width: 160px; max-height: 160px; }
'''


def _thumb(img: np.ndarray) -> np.ndarray:
    scale = THUMB / max(img.shape[:2])
    if scale >= 1:
        return img
    return cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def _svg_plot(title: str, series: Dict[str, tuple], xlabel: str, ylabel: str,
              xmax: float = 1.0) -> str:
    """A 320x260 SVG line plot; ``series``: name -> (x list, y list)."""
    w, h, left, bottom, top, right = 320, 260, 40, 35, 25, 10
    pw, ph = w - left - right, h - top - bottom
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
             f'font-size="11"><text x="{w // 2}" y="14" text-anchor="middle">'
             f'{html.escape(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
             'stroke="#999"/>']
    for t in (0, 0.5, 1):
        parts.append(f'<text x="{left - 4}" y="{top + ph * (1 - t) + 4:.1f}" '
                     f'text-anchor="end">{t:g}</text>')
        parts.append(f'<text x="{left + pw * t:.1f}" y="{top + ph + 14}" '
                     f'text-anchor="middle">{t * xmax:g}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{h - 4}" text-anchor="middle">{xlabel}</text>')
    parts.append(f'<text x="10" y="{top + ph / 2}" transform="rotate(-90 10 {top + ph / 2})" '
                 f'text-anchor="middle">{ylabel}</text>')
    for k, (name, (xs, ys)) in enumerate(series.items()):
        pts = [(x, y) for x, y in zip(xs, ys) if x <= xmax + 1e-9]
        coords = ' '.join(f'{left + pw * x / xmax:.1f},{top + ph * (1 - y):.1f}'
                          for x, y in pts)
        colour = COLOURS[k % len(COLOURS)]
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" '
                     'stroke-width="1.5"/>')
        parts.append(f'<text x="{left + pw - 4}" y="{top + ph - 6 - 13 * k}" fill="{colour}" '
                     f'text-anchor="end">{html.escape(name)}</text>')
    parts.append('</svg>')
    return ''.join(parts)


def _predictions(test_dir: str) -> List[dict]:
    with open(osp.join(test_dir, 'predictions.csv'), newline='', encoding='utf-8') as f:
        return list(csv.DictReader(f))


def select_images(per_method: Dict[str, List[dict]]) -> List[dict]:
    """The highest- and the lowest-scoring test image of each defect type
    (normal images: ``'good'``), ranked by the mean over methods of each
    image's score rank (0 lowest, 1 highest).

    Args:
        per_method: method -> rows of its ``predictions.csv``.

    Returns:
        ``[{image, defect_type, which}]`` (``which``: ``'highest'`` / ``'lowest'``).
    """
    ranks: Dict[str, List[float]] = {}
    types: Dict[str, str] = {}
    for rows in per_method.values():
        scores = np.array([float(r['score']) for r in rows])
        order = scores.argsort().argsort() / max(len(scores) - 1, 1)  # (N,) in [0, 1]
        for r, q in zip(rows, order):
            ranks.setdefault(r['image'], []).append(float(q))
            types[r['image']] = r['defect_type'] or ('good' if r['gt_label'] == '0' else '')
    chosen = []
    for t in sorted(set(types.values())):
        imgs = sorted((np.mean(ranks[i]), i) for i in ranks if types[i] == t)
        picks = [('highest', imgs[-1][1])] + ([('lowest', imgs[0][1])] if len(imgs) > 1 else [])
        chosen += [dict(image=i, defect_type=t, which=w) for w, i in picks]
    return chosen


def _mask_for(image: str, defect_type: str) -> str:
    """``ground_truth/<type>/<stem>_mask.png`` of an MVTec-layout test image, if any."""
    cat = osp.dirname(osp.dirname(osp.dirname(image)))
    stem = osp.splitext(osp.basename(image))[0]
    path = osp.join(cat, 'ground_truth', defect_type, f'{stem}_mask.png')
    return path if osp.isfile(path) else ''


def write_report(rows: List[dict], work_dir: str, run_tool: Callable[..., None],
                 columns: List[str], fmt: Callable[[str, object], str],
                 cfg_options: Sequence[str] = ()) -> str:
    """Write ``<work_dir>/report.html`` and its images under ``report/``.

    Args:
        rows: the survey's rows (``status``, ``category``, ``method``, ``config``,
            ``checkpoint``, ...).
        work_dir: the survey's work dir (``<category>/<method>/test`` inside).
        run_tool: ``run_tool(tool, args, log)`` runs ``tools/<tool>``.
        columns: the table's columns.
        fmt: ``fmt(column, value) -> str`` for the table's cells.
        cfg_options: the survey's ``KEY=VALUE`` options (for ``tools/infer.py``).

    Returns:
        The path of ``report.html``.
    """
    assets = osp.join(work_dir, 'report')
    shutil.rmtree(assets, ignore_errors=True)
    os.makedirs(assets)
    body = [f'<h1>Survey</h1><p>{len(rows)} run(s); click a column header to sort.</p>',
            '<table id="survey"><thead><tr>'
            + ''.join(f'<th onclick="sortTable(this)">{html.escape(c)}</th>' for c in columns)
            + '</tr></thead><tbody>']
    for r in rows:
        cells = []
        for c in columns:
            value = fmt(c, r.get(c))
            cls = '' if value.replace('.', '', 1).lstrip('-').isdigit() else ' class="text"'
            cells.append(f'<td{cls}>{html.escape(value)}</td>')
        body.append('<tr>' + ''.join(cells) + '</tr>')
    body.append('</tbody></table>')
    for cat in sorted({r['category'] for r in rows}):
        ok = [r for r in rows if r['category'] == cat and r.get('status') == 'ok']
        if not ok:
            continue
        body.append(f'<h2>{html.escape(cat)}</h2><div class="plots">')
        tests = {r['method']: osp.join(work_dir, cat, r['method'], 'test') for r in ok}
        curves = {}
        for m, d in tests.items():
            for kind in ('image', 'pixel'):
                path = osp.join(d, 'curves', f'{kind}_curve.json')
                if osp.isfile(path):
                    with open(path) as f:
                        curves.setdefault(kind, {})[m] = json.load(f)
        if 'image' in curves:
            body.append(_svg_plot('image ROC', {m: (c['fpr'], c['tpr'])
                                                for m, c in curves['image'].items()},
                                  'FPR', 'TPR'))
        if 'pixel' in curves:
            body.append(_svg_plot('pixel ROC', {m: (c['fpr'], c['tpr'])
                                                for m, c in curves['pixel'].items()},
                                  'FPR', 'TPR'))
            body.append(_svg_plot('PRO (FPR up to 0.3)', {
                m: (c['fpr'], c['pro']) for m, c in curves['pixel'].items() if 'pro' in c},
                'FPR', 'PRO', xmax=0.3))
        body.append('</div>')
        chosen = select_images({m: _predictions(d) for m, d in tests.items()})
        cat_dir = osp.join(assets, cat)
        inputs = osp.join(cat_dir, 'inputs')
        os.makedirs(inputs)
        names = []
        for k, c in enumerate(chosen):
            name = f'{k:02d}_{c["defect_type"]}_{c["which"]}'
            ext = osp.splitext(c['image'])[1]
            os.symlink(osp.abspath(c['image']), osp.join(inputs, name + ext))
            write_image(osp.join(cat_dir, f'{name}_image.png'), _thumb(read_image(c['image'])))
            mask = _mask_for(c['image'], c['defect_type'])
            if mask:
                write_image(osp.join(cat_dir, f'{name}_gt.png'),
                           _thumb((read_mask(mask) > 0).astype(np.uint8) * 255))
            names.append((name, bool(mask)))
        heat = {}
        for r in ok:
            out = osp.join(cat_dir, r['method'])
            opts = ['--cfg-options', *cfg_options] if cfg_options else []
            run_tool('infer.py', [r['config'], r['checkpoint'], inputs, '--out', out, *opts],
                     osp.join(work_dir, cat, r['method'], 'survey.log'))
            with open(osp.join(out, 'results.json'), encoding='utf-8') as f:
                for row in json.load(f):
                    if row.get('heatmap'):
                        stem = osp.splitext(osp.basename(row['image']))[0]
                        src = osp.join(out, row['heatmap'])
                        write_image(src, _thumb(read_image(src)))
                        heat[(stem, r['method'])] = osp.relpath(src, work_dir)
        body.append('<table class="grid"><tr><th>image</th><th>ground truth</th>'
                    + ''.join(f'<th>{html.escape(r["method"])}</th>' for r in ok) + '</tr>')
        for (name, has_mask), c in zip(names, chosen):
            rel = osp.relpath(osp.join(cat_dir, name), work_dir)
            if has_mask:
                gt = f'<img src="{html.escape(rel)}_gt.png" alt="ground truth">'
            else:
                gt = 'no defect' if c['defect_type'] == 'good' else 'no mask found'
            row = [f'<td><img src="{html.escape(rel)}_image.png" alt="{name}">'
                   f'{html.escape(c["defect_type"])}, {c["which"]}</td>', f'<td>{gt}</td>']
            for r in ok:
                src = heat.get((name, r['method']))
                row.append(f'<td><img src="{html.escape(src)}" alt="{r["method"]}"></td>'
                           if src else '<td>-</td>')
            body.append('<tr>' + ''.join(row) + '</tr>')
        body.append('</table>')
    page = ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Survey</title>'
            f'<style>{_STYLE}</style><script>{_SORT_JS}</script></head><body>'
            + '\n'.join(body) + '</body></html>\n')
    path = osp.join(work_dir, 'report.html')
    with open(path, 'w', encoding='utf-8') as f:
        f.write(page)
    return path
