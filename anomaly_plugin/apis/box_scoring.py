"""Scoring the parts a detector found: one result row per box, one pasted map per image.

Used by ``tools/infer.py --boxes``; see
:class:`~anomaly_plugin.datasets.BoxCropDataset` for the crops' conventions.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from anomaly_plugin.datasets.boxes import (
    CocoIndex,
    check_box,
    crop,
    crop_box_of,
    load_detections,
    paste_maps,
    read_json,
)
from anomaly_plugin.datasets.image_io import read_image

from .results import decision, error_row, write_outputs

#: columns of the results with boxes: one row per box (x1..y2: the detector's box)
BOX_FIELDS = ('image', 'box_id', 'x1', 'y1', 'x2', 'y2', 'category', 'det_score', 'score',
              'norm_score', 'decision', 'heatmap', 'mask', 'error', 'warning')


def load_boxes(boxes: str, ann_file: Optional[str] = None, score_thr: float = 0.0,
               categories: Optional[Sequence[str]] = None) -> Tuple[CocoIndex, Dict]:
    """The boxes of a detector's results (or a COCO file) grouped by image.

    Args:
        boxes: an mmdet COCO results file, a ``DetInferencer`` prediction JSON
            or folder of them, or a COCO annotation file (its annotations are
            the boxes).
        ann_file: the COCO file naming the images and categories of a results
            file.
        score_thr: minimum detector score.
        categories: category names or ids (as text) to keep; None for all.

    Returns:
        ``(coco, {image_id: [detection, ...]})`` in the COCO file's image order
        (detections as :func:`~anomaly_plugin.datasets.boxes.load_detections`),
        images without a kept box left out.

    Raises:
        FileNotFoundError, ValueError: unreadable files, no ``ann_file`` for a
            results file, unknown categories (the message names the file).
    """
    data = read_json(boxes, 'boxes file') if osp.isfile(boxes) else None
    if isinstance(data, dict) and 'images' in data:  # a COCO annotation file
        coco = CocoIndex(boxes)
        dets = [dict(a, score=float(a.get('score', 1.0)))
                for anns in coco.annotations.values() for a in anns]
    else:
        if not ann_file:
            raise ValueError(f'--boxes {boxes} holds detections: give --ann-file '
                             'COCO.json, the file naming their images and categories')
        coco = CocoIndex(ann_file)
        dets = load_detections(boxes, coco)
    keep = coco.category_ids([int(c) if c.isdigit() else c for c in categories]
                             if categories else None, '--categories')
    by_image = {i: [] for i in coco.images}
    for det in dets:
        if det['score'] >= score_thr and (keep is None or det['category_id'] in keep):
            by_image[det['image_id']].append(det)
    return coco, {i: d for i, d in by_image.items() if d}


def box_row(img_path: str, det: dict, coco: CocoIndex) -> dict:
    """The detector's part of a box row (keys of :data:`BOX_FIELDS`)."""
    x, y, w, h = det['bbox']
    return dict(image=img_path, box_id=det.get('id', det.get('index')), x1=x, y1=y, x2=x + w,
                y2=y + h, category=coco.categories[det['category_id']],
                det_score=det['score'])


def score_boxes(inferencer, img_path: str, dets: List[dict], coco: CocoIndex, name: str,
                out_dir: str, margin: float, batch_size: int = 8) -> List[dict]:
    """Score the box crops of one image; write its pasted heat-map (and mask).

    Args:
        inferencer: an :class:`~anomaly_plugin.apis.AnomalyInferencer`.
        img_path: the image.
        dets: its boxes.
        coco: names the categories.
        name: the image's output name (:func:`~anomaly_plugin.apis.results.output_names`).
        out_dir: output folder.
        margin: share of the box size added on each side of a crop.
        batch_size: crops per forward pass.

    Returns:
        One row per box (keys: :data:`BOX_FIELDS`); error rows when the image
        cannot be read (one per box), a box leaves the image, or the outputs
        cannot be written.
    """
    post = inferencer.model.postprocessor
    try:
        img = read_image(img_path)  # (H, W, 3) RGB
    except Exception as e:  # one bad image must not stop the others
        return [dict(box_row(img_path, d, coco), **error_row(img_path, e)) for d in dets]
    shape = img.shape[:2]
    rows, boxes, crops = [], [], []
    for det in dets:
        try:
            check_box(det['bbox'], shape, f'box {det.get("id", det.get("index"))}')
        except ValueError as e:
            rows.append(dict(box_row(img_path, det, coco), **error_row(img_path, e)))
            continue
        boxes.append(crop_box_of(det['bbox'], margin, shape))
        crops.append(crop(img, boxes[-1], img_path))  # (h, w, 3)
        rows.append(box_row(img_path, det, coco))
    if not crops:
        return rows
    preds = inferencer(crops, batch_size=batch_size, return_maps=True)['predictions']
    amap = paste_maps(shape, boxes, [p['anomaly_map'] for p in preds])  # (H, W)
    mask = paste_maps(shape, boxes, [p['pred_mask'] for p in preds]) \
        if post.has_threshold else None  # (H, W)
    try:
        written = write_outputs(name, out_dir, amap, post, mask, save_map=True)
    except (OSError, ValueError) as e:  # one image's outputs must not stop the others
        return [dict(row, **error_row(img_path, f'cannot write its outputs: {e}'))
                for row in rows]
    scored = iter(preds)
    for row in rows:
        if row.get('decision') == 'error':
            continue
        pred = next(scored)
        row.update(score=pred['pred_score'], norm_score=pred.get('norm_score'),
                   decision=decision(pred, post), error=None, warning=pred.get('warning'),
                   **written)
    return rows


__all__ = ['BOX_FIELDS', 'box_row', 'load_boxes', 'score_boxes']
