"""Score images with a trained checkpoint: OK/NG, heat-maps and masks.

Writes to ``--out``:

* ``results.csv``: one row per input file, written (and flushed) as soon as
  the file is scored, so an interrupted run keeps what it did; columns
  ``image, score, norm_score, decision, heatmap, mask, error``.
  ``decision`` is ``OK``/``NG`` (calibrated checkpoint), ``n/a`` (no
  threshold in the checkpoint) or ``error`` (the file could not be read or
  decoded: ``error`` holds the reason, there is no score and no image).
* ``results.json``: the same rows as a list (written at the end, also when
  files failed or the run stopped early).
* ``<name>_heatmap.png`` (JET colours on the calibration scale, at the
  image's size) and ``<name>_mask.png`` (0/255, the saved pixel threshold),
  where ``<name>`` is the input's path relative to the input folder, with
  its extension (``a.jpg`` -> ``a.jpg_heatmap.png``, ``sub/a.jpg`` ->
  ``sub/a.jpg_heatmap.png``), so different inputs never share an output.
  ``heatmap`` and ``mask`` in the rows are these paths relative to ``--out``.

Hidden files (``.*``, e.g. macOS ``._x.png``) in a folder are skipped. Exit
status 0 when at least one image was scored, 1 when none could be.
"""
import argparse
import csv
import json
import os
import os.path as osp
import sys

import cv2
import numpy as np
from mmengine.config import Config, DictAction
from mmengine.utils import ProgressBar

from anomaly_plugin.apis import AnomalyInferencer, checkpoint_error_message, list_images
from anomaly_plugin.engine.config_utils import merge_options
from anomaly_plugin.visualization import colorize

#: columns of results.csv (and keys of the results.json rows)
FIELDS = ('image', 'score', 'norm_score', 'decision', 'heatmap', 'mask', 'error')
#: failed files listed on the console at the end (all are in the results)
MAX_LISTED_ERRORS = 10


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Anomaly inference on images')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('input', help='an image file or a folder of images')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--recursive', action='store_true',
                        help='also score the images of the sub-folders of INPUT; '
                        'outputs mirror the sub-folders')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, as for tools/train.py and '
                        'tools/test.py (e.g. img_size=256 model.xxx=...)')
    return parser.parse_args(argv)


class ResultsWriter:
    """Write result rows to ``results.csv`` as they come, ``results.json`` at the end.

    A context manager: entering opens the CSV file and writes its header;
    :meth:`write` appends a row and flushes it; leaving (also through an
    exception) closes the CSV file and writes every row to
    ``results.json``.

    Args:
        out_dir: output folder (created if missing).
    """

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.rows = []
        self._file = self._writer = None

    def __enter__(self) -> 'ResultsWriter':
        os.makedirs(self.out_dir, exist_ok=True)
        self._file = open(osp.join(self.out_dir, 'results.csv'), 'w', newline='',
                          encoding='utf-8')
        self._writer = csv.DictWriter(self._file, fieldnames=FIELDS)
        self._writer.writeheader()
        self._file.flush()
        return self

    def write(self, row: dict) -> None:
        """Append ``row`` (keys: :data:`FIELDS`; None is written as empty)."""
        row = {k: row.get(k) for k in FIELDS}
        self.rows.append(row)
        self._writer.writerow(row)
        self._file.flush()

    def __exit__(self, *exc) -> None:
        self._file.close()
        with open(osp.join(self.out_dir, 'results.json'), 'w', encoding='utf-8') as f:
            json.dump(self.rows, f, indent=2, ensure_ascii=False)


def output_name(img_path: str, input_path: str) -> str:
    """The name the outputs of ``img_path`` start with.

    Args:
        img_path: an image that :func:`list_images` found for ``input_path``.
        input_path: the tool's INPUT (a file or a folder).

    Returns:
        The image's path relative to the ``input_path`` folder, extension
        included (its base name when ``input_path`` is the file itself),
        so two inputs never get the same name.
    """
    if osp.isdir(input_path):
        return osp.normpath(osp.relpath(img_path, input_path))
    return osp.basename(img_path)


def write_png(path: str, img: np.ndarray) -> None:
    """Write ``img`` (gray or BGR) as a PNG, creating its folder; any path works."""
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    ok, buf = cv2.imencode('.png', img)
    if not ok:
        raise OSError(f'cannot encode {path} as PNG')
    buf.tofile(path)


def score_row(pred: dict, name: str, out_dir: str, post) -> dict:
    """Write the heat-map (and mask) of one prediction; return its row.

    Args:
        pred: the inferencer's prediction for the image (a dict with
            ``img_path``, ``pred_score``, ``anomaly_map`` at the image's size,
            and when calibrated ``pred_label``, ``norm_score``, ``pred_mask``).
        name: from :func:`output_name`.
        out_dir: output folder.
        post: the model's postprocessor (calibration).

    Returns:
        The image's result row (keys: :data:`FIELDS`).
    """
    amap = pred['anomaly_map']  # (H, W)
    if post.has_normalization:
        vmin, vmax = float(post.pixel_min), float(post.pixel_max)
    else:
        vmin, vmax = float(amap.min()), float(amap.max())
    heatmap = f'{name}_heatmap.png'
    write_png(osp.join(out_dir, heatmap),
              cv2.cvtColor(colorize(amap, vmin, vmax), cv2.COLOR_RGB2BGR))
    row = dict(image=pred['img_path'], score=pred['pred_score'],
               norm_score=pred.get('norm_score'), decision='n/a', heatmap=heatmap,
               mask=None, error=None)
    if post.has_threshold:
        row['decision'] = 'NG' if pred['pred_label'] else 'OK'
        row['mask'] = f'{name}_mask.png'
        write_png(osp.join(out_dir, row['mask']), pred['pred_mask'] * np.uint8(255))
    return row


def error_row(img_path: str, err) -> dict:
    """The result row of a file that could not be loaded (``err``: an exception
    or its message)."""
    message = ' '.join(str(err).split()) or type(err).__name__
    return dict(image=img_path, score=None, norm_score=None, decision='error',
                heatmap=None, mask=None, error=message)


def main(argv=None):
    args = parse_args(argv)
    import anomaly_plugin  # noqa: F401  (registers the modules, safe checkpoint loading)
    cfg = Config.fromfile(args.config)
    merge_options(cfg, args.cfg_options)
    try:
        inferencer = AnomalyInferencer(cfg, args.checkpoint, args.device)
    except (RuntimeError, FileNotFoundError) as e:  # incl. UnsafeCheckpointError
        raise SystemExit(checkpoint_error_message(e, args.checkpoint, args.config)) from e
    post = inferencer.model.postprocessor
    if not post.has_threshold:
        print('warning: the checkpoint has no calibrated threshold; decisions are '
              "'n/a' and no masks are written")
    try:
        images = list_images(args.input, recursive=args.recursive, exclude=[args.out])
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f'error: {e}') from e
    bar = ProgressBar(len(images))
    with ResultsWriter(args.out) as results:
        for part in inferencer.stream(images, batch_size=args.batch_size, return_maps=True):
            for pred in part['predictions']:
                if pred['error'] is None:
                    row = score_row(pred, output_name(pred['img_path'], args.input),
                                    args.out, post)
                else:
                    row = error_row(pred['img_path'], pred['error'])
                results.write(row)
                bar.update()
    rows = results.rows
    failed = [r for r in rows if r['decision'] == 'error']
    scored = len(rows) - len(failed)
    ng = sum(r['decision'] == 'NG' for r in rows)
    print(f'\n{len(rows)} images: {scored} scored ({ng} NG), {len(failed)} could not be '
          f'read; results in {args.out}')
    for r in failed[:MAX_LISTED_ERRORS]:
        print(f"error: {r['image']}: {r['error']}", file=sys.stderr)
    if len(failed) > MAX_LISTED_ERRORS:
        print(f'... and {len(failed) - MAX_LISTED_ERRORS} more (the error column of '
              'results.csv)', file=sys.stderr)
    if not scored:
        raise SystemExit(f'error: none of the {len(rows)} images could be scored: '
                         'every file failed to load (see above and results.csv)')


if __name__ == '__main__':
    main()
