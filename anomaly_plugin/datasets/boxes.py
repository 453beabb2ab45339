"""Boxes of parts: COCO annotations, detector results, crops and paste-back.

Shared by :class:`~anomaly_plugin.datasets.BoxCropDataset` and
``tools/infer.py --boxes``. Boxes are COCO ``[x, y, w, h]`` in image pixels;
crops are integer ``(x1, y1, x2, y2)`` with exclusive ends, i.e. the pixels
``img[y1:y2, x1:x2]``.
"""
import json
import math
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

CropBox = Tuple[int, int, int, int]
#: how far (pixels) a box may reach past the image border before it is an error
BORDER_TOLERANCE = 1.0
#: polygons are filled at this many times the resolution, then area-averaged
SUPERSAMPLE = 4


def read_json(path: str, what: str) -> Any:
    """Parse a JSON file.

    Args:
        path: the file.
        what: how error messages name it (e.g. 'COCO annotation file').

    Returns:
        the parsed value.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not valid JSON (with the line and column).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} {path!r} not found')
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f'{what} {path!r} is not valid JSON: {err}') from err


def _as_box(value, where: str) -> Tuple[float, float, float, float]:
    """A ``[x, y, w, h]`` of 4 finite numbers, else a ValueError naming ``where``."""
    try:
        box = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        box = ()
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise ValueError(f'{where}: bbox must be 4 numbers [x, y, w, h], got {value!r}')
    return box


class CocoIndex:
    """Images, categories and annotations of a COCO-format file.

    Args:
        ann_file: the JSON file: ``{"images": [{"id", "file_name", "width",
            "height"}, ...], "categories": [{"id", "name"}, ...],
            "annotations": [{"id", "image_id", "category_id", "bbox"}, ...]}``
            (``annotations`` may be absent, e.g. in a file that only names
            the images of a results file).

    Raises:
        FileNotFoundError, ValueError: the file is missing, not JSON, lacks
            ``images`` / ``categories``, or an annotation names an unknown
            image or category (messages name the file).
    """

    def __init__(self, ann_file: str):
        self.ann_file = ann_file
        data = read_json(ann_file, 'COCO annotation file')
        if not isinstance(data, dict) or not isinstance(data.get('images'), list) \
                or not isinstance(data.get('categories'), list):
            raise ValueError(f'COCO annotation file {ann_file!r} must be an object with '
                             "'images' and 'categories' lists (and 'annotations')")
        try:
            self.images = {img['id']: img for img in data['images']}
            self.categories = {c['id']: str(c['name']) for c in data['categories']}
        except (KeyError, TypeError) as err:
            raise ValueError(f'COCO annotation file {ann_file!r}: every image needs an id and '
                             f'a file_name, every category an id and a name ({err!r})') from err
        self.by_stem = {osp.splitext(osp.basename(str(img.get('file_name', ''))))[0]: i
                        for i, img in self.images.items()}
        self.annotations: Dict[Any, List[dict]] = {i: [] for i in self.images}
        for k, ann in enumerate(data.get('annotations') or []):
            where = f'{ann_file}: annotation #{k} (id {ann.get("id")})'
            if ann.get('image_id') not in self.images:
                raise ValueError(f'{where} names image_id {ann.get("image_id")!r}, which is '
                                 "not in 'images'")
            if ann.get('category_id') not in self.categories:
                raise ValueError(f'{where} names category_id {ann.get("category_id")!r}, which '
                                 f"is not in 'categories' {sorted(self.categories)}")
            _as_box(ann.get('bbox'), where)
            self.annotations[ann['image_id']].append(dict(ann, index=k))

    def category_ids(self, wanted: Optional[Sequence[Union[str, int]]],
                     what: str = 'categories') -> Optional[set]:
        """Category ids of names or ids; None for None (keep all).

        Raises:
            ValueError: an unknown name or id (the message lists the known ones).
        """
        if wanted is None:
            return None
        wanted = [wanted] if isinstance(wanted, (str, int)) else list(wanted)
        by_name = {n: i for i, n in self.categories.items()}
        ids = set()
        for w in wanted:
            if w in self.categories and not isinstance(w, str):
                ids.add(w)
            elif str(w) in by_name:
                ids.add(by_name[str(w)])
            else:
                known = ', '.join(f'{i}:{n}' for i, n in sorted(self.categories.items()))
                raise ValueError(f'{what}: unknown category {w!r}; {self.ann_file!r} has {known}')
        return ids

    def image_size(self, image_id, img_path: str) -> Tuple[int, int]:
        """(H, W) of an image: its ``height`` / ``width``, else read from the file."""
        img = self.images[image_id]
        if img.get('height') and img.get('width'):
            return int(img['height']), int(img['width'])
        from .image_io import read_image
        return read_image(img_path).shape[:2]


def load_detections(results: str, coco: CocoIndex) -> List[dict]:
    """Detections of an mmdet results file, as ``{image_id, bbox, score, category_id, index}``.

    Accepted formats:

    * COCO results (mmdet's ``CocoMetric`` with ``format_only=True`` /
      ``outfile_prefix``, i.e. ``tools/test.py`` ``--cfg-options
      test_evaluator.format_only=True ...``, writes ``<prefix>.bbox.json``):
      a list of ``{"image_id", "bbox": [x, y, w, h], "score", "category_id"}``.
    * ``DetInferencer`` predictions (``mmdet`` 3.x ``demo/image_demo.py
      --out-dir OUT`` writes ``OUT/preds/<image stem>.json``): ``{"labels",
      "scores", "bboxes": [[x1, y1, x2, y2], ...]}``, one file or a folder of
      them; the image is the one of ``coco`` with the same file stem, and
      label ``i`` is the ``i``-th category of ``coco`` in id order (mmdet's
      class order for a COCO-format dataset).

    Args:
        results: the JSON file, or a folder of ``DetInferencer`` JSON files.
        coco: the COCO file that names the images and categories.

    Returns:
        the detections, in file order.

    Raises:
        FileNotFoundError, ValueError: a missing file, bad JSON, or an entry
            without the fields above or naming an unknown image or category
            (messages name the file and the entry).
    """
    if osp.isdir(results):
        files = sorted(osp.join(results, n) for n in os.listdir(results)
                       if n.endswith('.json') and not n.startswith('.'))
        if not files:
            raise ValueError(f'results folder {results!r} holds no .json file')
        return [d for f in files for d in load_detections(f, coco)]
    data = read_json(results, 'detection results file')
    dets = []
    if isinstance(data, dict) and 'bboxes' in data:
        stem = osp.splitext(osp.basename(results))[0]
        if stem not in coco.by_stem:
            raise ValueError(f'detection results file {results!r}: no image with file stem '
                             f'{stem!r} in {coco.ann_file!r}')
        order = sorted(coco.categories)
        labels, scores = data.get('labels') or [], data.get('scores') or []
        if not len(labels) == len(scores) == len(data['bboxes']):
            raise ValueError(f'{results}: labels, scores and bboxes differ in length')
        for k, (label, score, xyxy) in enumerate(zip(labels, scores, data['bboxes'])):
            x1, y1, x2, y2 = _as_box(xyxy, f'{results}: detection #{k}')
            if not 0 <= int(label) < len(order):
                raise ValueError(f'{results}: detection #{k} has label {label}, but '
                                 f'{coco.ann_file!r} has {len(order)} categories')
            dets.append(dict(image_id=coco.by_stem[stem], bbox=(x1, y1, x2 - x1, y2 - y1),
                             score=float(score), category_id=order[int(label)], index=k))
        return dets
    if not isinstance(data, list):
        raise ValueError(f'detection results file {results!r} must hold a list of '
                         '{image_id, bbox, score, category_id} (COCO results) or a '
                         'DetInferencer prediction {labels, scores, bboxes}')
    for k, det in enumerate(data):
        where = f'{results}: detection #{k}'
        if not isinstance(det, dict) or not {'image_id', 'bbox'} <= set(det):
            raise ValueError(f'{where} needs image_id and bbox, got {det!r}')
        if det['image_id'] not in coco.images:
            raise ValueError(f'{where} names image_id {det["image_id"]!r}, which is not in '
                             f'{coco.ann_file!r}')
        category = det.get('category_id', next(iter(sorted(coco.categories))))
        if category not in coco.categories:
            raise ValueError(f'{where} names category_id {category!r}, which is not in '
                             f'{coco.ann_file!r}')
        dets.append(dict(image_id=det['image_id'], bbox=_as_box(det['bbox'], where),
                         score=float(det.get('score', 1.0)), category_id=category, index=k))
    return dets


def check_box(bbox: Sequence[float], shape: Tuple[int, int], where: str) -> None:
    """Raise a ValueError naming ``where`` when ``bbox`` is empty or leaves the image.

    Args:
        bbox: ``[x, y, w, h]``.
        shape: (H, W) of the image.
        where: names the box in the message (file, annotation, image).
    """
    x, y, w, h = bbox
    height, width = shape
    if w <= 0 or h <= 0:
        raise ValueError(f'{where}: empty box [x, y, w, h] = {list(bbox)}')
    tol = BORDER_TOLERANCE
    if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
        raise ValueError(f'{where}: box [x, y, w, h] = {list(bbox)} lies outside the '
                         f'{width}x{height} (WxH) image')


def crop_box_of(bbox: Sequence[float], margin: float, shape: Tuple[int, int]) -> CropBox:
    """The crop of a box grown by ``margin`` of its size on each side, clipped to the image.

    Args:
        bbox: ``[x, y, w, h]``.
        margin: fraction of the width (height) added left and right (top
            and bottom).
        shape: (H, W) of the image.

    Returns:
        ``(x1, y1, x2, y2)`` integers, ends exclusive: the smallest pixel
        rectangle holding the grown box, inside the image.
    """
    x, y, w, h = bbox
    height, width = shape
    x1 = max(0, math.floor(x - margin * w))
    y1 = max(0, math.floor(y - margin * h))
    x2 = min(width, math.ceil(x + w + margin * w))
    y2 = min(height, math.ceil(y + h + margin * h))
    return x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)


def crop(array: np.ndarray, crop_box: Sequence[int], path: Optional[str]) -> np.ndarray:
    """``array[y1:y2, x1:x2]`` after checking the crop lies in it.

    Raises:
        ValueError: the crop is empty or leaves the array (names ``path``).
    """
    x1, y1, x2, y2 = (int(v) for v in crop_box)
    height, width = array.shape[:2]
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise ValueError(f'crop_box (x1, y1, x2, y2) = {(x1, y1, x2, y2)} is empty or outside '
                         f'the {width}x{height} (WxH) image {path!r}')
    return np.ascontiguousarray(array[y1:y2, x1:x2])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of (N, 4) and (M, 4) ``[x, y, w, h]`` boxes -> (N, M)."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2) - np.maximum(a[:, None, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2) - np.maximum(a[:, None, 1], b[:, 1]), 0, None)
    inter = iw * ih  # (N, M)
    union = (a[:, 2] * a[:, 3])[:, None] + b[:, 2] * b[:, 3] - inter
    return inter / np.maximum(union, 1e-12)


def rasterize(segmentations: Sequence[Any], crop_box: Sequence[int], where: str) -> np.ndarray:
    """Union of COCO segmentations (image coordinates) on a crop.

    Args:
        segmentations: each a list of polygons ``[[x1, y1, x2, y2, ...], ...]``
            or an uncompressed RLE ``{"size": [H, W], "counts": [...]}``.
        crop_box: ``(x1, y1, x2, y2)`` of the crop.
        where: names the sample in error messages.

    Returns:
        (y2 - y1, x2 - x1) uint8 mask in {0, 1}.

    Raises:
        ValueError: a segmentation of another form (e.g. compressed RLE).
    """
    x1, y1, x2, y2 = (int(v) for v in crop_box)
    mask = np.zeros((y2 - y1, x2 - x1), np.uint8)  # (h, w)
    for seg in segmentations:
        if isinstance(seg, dict) and isinstance(seg.get('counts'), list):
            height, width = (int(s) for s in seg['size'])
            counts = np.asarray(seg['counts'], np.int64)
            values = (np.arange(len(counts)) % 2).astype(np.uint8)  # runs: 0, 1, 0, ...
            full = np.repeat(values, counts)[:height * width]
            full = np.pad(full, (0, height * width - full.size)).reshape(width, height).T
            mask |= full[y1:y2, x1:x2]  # column-major RLE -> (H, W), cropped
        elif isinstance(seg, list) and all(isinstance(p, (list, tuple)) for p in seg):
            # vertices are pixel-edge coordinates: fill at SUPERSAMPLE x the resolution and
            # keep the pixels at least half covered, so a square (x, y)-(x+s, y+s) is s x s
            f = SUPERSAMPLE
            polys = [np.round((np.asarray(p, float).reshape(-1, 2) - (x1, y1)) * f)
                     .astype(np.int32) for p in seg if len(p) >= 6]
            if polys:
                fine = np.zeros((mask.shape[0] * f, mask.shape[1] * f), np.uint8)  # (h f, w f)
                cv2.fillPoly(fine, polys, 1)
                cover = fine.reshape(mask.shape[0], f, mask.shape[1], f).mean(axis=(1, 3))
                mask |= (cover >= 0.5).astype(np.uint8)  # (h, w)
        else:
            raise ValueError(f'{where}: segmentation must be polygons [[x, y, ...], ...] or an '
                             f'uncompressed RLE {{size, counts: [...]}}; got {str(seg)[:80]}. '
                             'Convert compressed RLE to polygons, or use a mask folder')
    return mask


def paste_maps(shape: Tuple[int, int], crop_boxes: Sequence[Sequence[int]],
               maps: Sequence[np.ndarray], fill: float = 0.0) -> np.ndarray:
    """Paste per-crop maps back into a full-image map.

    Args:
        shape: (H, W) of the image.
        crop_boxes: ``(x1, y1, x2, y2)`` of each crop.
        maps: each crop's map, already at the crop's size (h, w).
        fill: value where no crop lies.

    Returns:
        (H, W) map: the maximum of the maps where crops overlap, ``fill``
        elsewhere (float32; for uint8 masks pass them as they are and cast).
    """
    out = np.full(shape, -np.inf, np.float32)  # (H, W)
    for (x1, y1, x2, y2), m in zip(crop_boxes, maps):
        region = out[y1:y2, x1:x2]
        np.maximum(region, np.asarray(m, np.float32), out=region)
    out[np.isneginf(out)] = fill
    return out
