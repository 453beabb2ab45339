"""Score images with a trained checkpoint: OK/NG, heat-maps and masks.

Writes to ``--out``:

* ``results.csv``: one row per input file, written (and flushed) as soon as
  the file is scored, so an interrupted run keeps what it did; columns
  ``image, score, norm_score, decision, heatmap, mask, error, warning``.
  ``decision`` is ``OK``/``NG`` (calibrated checkpoint), ``n/a`` (no
  threshold in the checkpoint) or ``error`` (the file could not be read or
  decoded, or its outputs not written: ``error`` holds the reason naming the
  file, there is no score and no image). ``warning`` holds what was noticed
  in a scored file (several frames, a 16-bit image using under 1 % of its
  range, a partly decoded JPEG when the config loads with ``strict=False``).
  Names are written as printable UTF-8 (bytes of a file name that are not
  UTF-8 as ``\\xNN``).
* ``results.json``: the same rows as a list (written at the end, also when
  files failed or the run stopped early; always valid JSON).
* ``<name>_heatmap.png`` (JET colours on the calibration scale, at the
  image's size) and ``<name>_mask.png`` (0/255, the saved pixel threshold),
  where ``<name>`` is the input's path relative to the input folder, with
  its extension (``a.jpg`` -> ``a.jpg_heatmap.png``, ``sub/a.jpg`` ->
  ``sub/a.jpg_heatmap.png``), so different inputs never share an output; a
  name too long for the file system with the suffix is cut and given a hash
  of the whole name (:func:`~anomaly_plugin.apis.results.fit_name`).
  ``heatmap`` and ``mask`` in the rows are these paths relative to ``--out``.

Hidden files (``.*``, e.g. macOS ``._x.png``) in a folder are skipped; every
other entry with an image extension that is not a folder gets a row (a link
that cannot be followed, a FIFO: an error row naming it). Exit
status 0 when at least one image was scored, 1 when none could be.

Parts found by a detector: ``--boxes RESULTS.json`` scores each box of each
image of INPUT (the image folder the detector's COCO file names its images
in) instead of the whole images. RESULTS is an mmdet COCO results file (a list
of ``{image_id, bbox [x, y, w, h], score, category_id}``, with ``--ann-file``
the COCO file naming the images and categories), a ``DetInferencer``
prediction JSON or folder of them (``preds/<image stem>.json``), or a COCO
annotation file itself (its annotations are the boxes). Boxes below
``--score-thr`` or not in ``--categories`` are skipped; each crop is the box
grown by ``--margin`` of its size per side (as in
:class:`~anomaly_plugin.datasets.BoxCropDataset`; use the training margin).
``results.csv`` then has one row per box (:data:`BOX_FIELDS`); per image,
``<name>_heatmap.png`` (and ``<name>_map.npy``, the raw float32 scores) is the
full image's map with each box's map, resized to its crop, pasted at the crop
(maximum where crops overlap, 0 elsewhere), and ``<name>_mask.png`` the pasted
masks when calibrated. A missing or unreadable image gives an error row.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.utils import ProgressBar

from anomaly_plugin.apis import AnomalyInferencer, checkpoint_error_message, list_images
from anomaly_plugin.apis.box_scoring import BOX_FIELDS, load_boxes, score_boxes
from anomaly_plugin.apis.results import ResultsWriter, error_row, output_names, score_row
from anomaly_plugin.datasets.image_io import display_path
from anomaly_plugin.engine.config_utils import merge_options

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
    parser.add_argument('--boxes', help='score the boxes of a detector results JSON (or a '
                        'COCO annotation file) in the images of INPUT, one row per box')
    parser.add_argument('--ann-file', help='with --boxes: the COCO file naming the images '
                        'and categories of the results')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='with --boxes: minimum detector score (default 0.3)')
    parser.add_argument('--categories', nargs='+',
                        help='with --boxes: category names or ids to score (default all)')
    parser.add_argument('--margin', type=float, default=0.1,
                        help='with --boxes: fraction of the box size added on each side '
                        '(default 0.1, as BoxCropDataset)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, as for tools/train.py and '
                        'tools/test.py (e.g. img_size=256 model.xxx=...)')
    return parser.parse_args(argv)


def main_boxes(args, inferencer) -> None:
    """``--boxes``: one row per box, one pasted heat-map per image."""
    try:
        coco, by_image = load_boxes(args.boxes, args.ann_file, args.score_thr, args.categories)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f'error: {e}') from e
    if not osp.isdir(args.input):
        raise SystemExit(f'error: with --boxes, INPUT must be the image folder, got {args.input}')
    bar = ProgressBar(len(by_image))
    with ResultsWriter(args.out, BOX_FIELDS) as results:
        for image_id, dets in by_image.items():
            file_name = str(coco.images[image_id].get('file_name', ''))
            img_path = osp.join(args.input, file_name)
            for row in score_boxes(inferencer, img_path, dets, coco,
                                   output_names([img_path], args.input)[0], args.out,
                                   args.margin, args.batch_size):
                results.write(row)
            bar.update()
    rows = results.rows
    failed = [r for r in rows if r['decision'] == 'error']
    ng = sum(r['decision'] == 'NG' for r in rows)
    print(f'\n{len(rows)} boxes in {len(by_image)} images: {len(rows) - len(failed)} scored '
          f'({ng} NG), {len(failed)} failed; results in {args.out}')
    for r in failed[:MAX_LISTED_ERRORS]:
        print(f"error: {display_path(r['image'])} box {r['box_id']}: {r['error']}",
              file=sys.stderr)
    if rows and len(failed) == len(rows):
        raise SystemExit(f'error: none of the {len(rows)} boxes could be scored (see above '
                         'and results.csv)')
    if not rows:
        raise SystemExit(f'error: no box of {args.boxes} passed --score-thr {args.score_thr} '
                         'and --categories')


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
        why = getattr(inferencer.model, 'checkpoint_meta', {}).get('calibration')
        print('warning: the checkpoint has no calibrated threshold'
              + (f' ({why})' if why else '') + "; decisions are 'n/a' and no masks are written")
    if args.boxes:
        main_boxes(args, inferencer)
        return
    try:
        images = list_images(args.input, recursive=args.recursive, exclude=[args.out])
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f'error: {e}') from e
    names = iter(output_names(images, args.input if osp.isdir(args.input)
                              else osp.dirname(args.input) or '.'))
    bar = ProgressBar(len(images))
    with ResultsWriter(args.out) as results:
        for part in inferencer.stream(images, batch_size=args.batch_size, return_maps=True):
            for pred in part['predictions']:
                name = next(names)
                if pred['error'] is None:
                    row = score_row(pred, name, args.out, post)
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
        named = r['image'] is None or r['image'] in r['error']
        print(f"error: {r['error']}" if named else f"error: {r['image']}: {r['error']}",
              file=sys.stderr)
    if len(failed) > MAX_LISTED_ERRORS:
        print(f'... and {len(failed) - MAX_LISTED_ERRORS} more (the error column of '
              'results.csv)', file=sys.stderr)
    if not scored:
        raise SystemExit(f'error: none of the {len(rows)} images could be scored: '
                         'every file failed to load (see above and results.csv)')


if __name__ == '__main__':
    main()
