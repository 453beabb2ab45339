"""Anomaly detection on the parts a detector (or an annotator) boxed."""
import logging
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Union

from mmengine.logging import print_log

from anomaly_plugin.registry import DATASETS

from .base import BaseAnomalyDataset
from .boxes import CocoIndex, box_iou, check_box, crop_box_of, load_detections
from .folder import _index_masks

_NORMAL_TYPES = ('', 'good', 'normal', 'ok')
Categories = Optional[Union[str, int, Sequence[Union[str, int]]]]


@DATASETS.register_module()
class BoxCropDataset(BaseAnomalyDataset):
    """One sample per box of a COCO annotation file or of a detector's results.

    Each sample is a crop of its image: the box grown by ``margin`` of its
    size on each side and clipped to the image. The crop happens when the
    image is loaded: every data info has ``crop_box`` ``(x1, y1, x2, y2)``
    (integers, ends exclusive), which :class:`LoadAnomalyImage` and
    :class:`LoadAnomalyMask` honour, so any model and the usual metrics run
    on the crops. ``img_path`` stays the full image; ``PackAnomalyInputs``
    puts ``crop_box``, ``box`` (the box as ``x1, y1, x2, y2`` before the
    margin), ``category``, ``box_score`` and ``box_id`` into the metainfo.

    Labels (of a part annotation, first rule that applies):

    1. ``"anomaly": 0 / 1`` (or true / false) on the annotation; an optional
       ``"defect_type"`` names the defect (default ``'anomaly'``);
    2. else ``"defect_type"`` alone: ``""``, ``"good"``, ``"normal"``, ``"ok"``
       (any case) are normal, anything else is that defect;
    3. else defect annotations: with ``defect_categories``, the annotations
       of those categories are defects, not samples; a part whose box
       overlaps one is anomalous, its defect type the defect's category name;
    4. else normal.

    Masks of anomalous samples (optional; without any, ``has_masks`` is False
    and only image metrics are computed): with ``mask_dir``, full-image masks
    ``<image stem>.<ext>`` or ``<image stem>_mask.<ext>``, cropped like the
    image; otherwise the annotation's ``mask_field`` (COCO polygons
    ``[[x, y, ...], ...]`` or uncompressed RLE, in image coordinates) plus the
    ``segmentation`` (or box) of the overlapping defect annotations,
    rasterised onto the crop. When some anomalous sample of the test split
    has a mask, every one must.

    With ``results_file`` the samples are the detections (score at least
    ``score_threshold``), not the annotations; a detection takes the label
    and mask of the part annotation of its image it overlaps most (IoU at
    least ``match_iou``), else of the defect annotations it overlaps, else
    it is normal.

    Splits mirror :class:`MVTecADDataset`: ``'train'`` keeps the normal
    samples (anomalous ones are dropped, with a log line), ``'holdout'`` the
    ``holdout_ratio`` of them kept back (seeded permutation of the normal
    samples), ``'test'`` all samples. Use one annotation file per split (as
    COCO's ``instances_train`` / ``instances_val``).

    Args:
        ann_file: COCO-format JSON (images with ``file_name``, ``width``,
            ``height``; categories; annotations with ``bbox`` [x, y, w, h]),
            relative to ``data_root`` or absolute.
        data_root: root folder of the data.
        img_prefix: folder of the images, relative to ``data_root``.
        results_file: mmdet detections (see :func:`load_detections`: COCO
            results JSON, a ``DetInferencer`` prediction JSON or a folder of
            them), relative to ``data_root``; None uses the annotations.
        categories: names or ids of the part categories to keep (None: all
            but ``defect_categories``).
        defect_categories: names or ids of categories that mark defects.
        score_threshold: minimum detector score of a detection.
        margin: fraction of the box size added on each side.
        min_size: boxes narrower or lower than this (pixels) are skipped.
        mask_dir: folder of full-image masks, relative to ``data_root``.
        mask_field: annotation key holding the defect polygons; set
            ``'segmentation'`` when the part annotations' own polygons mark
            their defects.
        match_iou: IoU for a detection to take an annotation's label.
        split: ``'train'``, ``'holdout'`` or ``'test'``.
        holdout_ratio: fraction of the normal samples held out.
        holdout_seed: seed of the holdout permutation.
        **kwargs: other arguments of :class:`BaseAnomalyDataset`.

    Raises:
        FileNotFoundError: a missing annotation, results, image or mask file.
        ValueError: bad JSON, an unknown category, a box outside its image,
            no sample left (messages name the file).
    """

    def __init__(self,
                 ann_file: str,
                 data_root: str = '',
                 img_prefix: str = '',
                 results_file: Optional[str] = None,
                 categories: Categories = None,
                 defect_categories: Categories = (),
                 score_threshold: float = 0.0,
                 margin: float = 0.1,
                 min_size: float = 1.0,
                 mask_dir: Optional[str] = None,
                 mask_field: str = 'defect_segmentation',
                 match_iou: float = 0.5,
                 split: str = 'train',
                 holdout_ratio: float = 0.0,
                 holdout_seed: int = 0,
                 **kwargs):
        if margin < 0:
            raise ValueError(f'margin must be >= 0, got {margin}')
        self.data_root = data_root
        self.ann_file_path = self._resolve(ann_file)
        self.img_dir = self._resolve(img_prefix) if img_prefix else data_root
        self.results_file = None if results_file is None else self._resolve(results_file)
        self._check_relative(results_file, self.results_file, 'results_file')
        self._check_relative(ann_file, self.ann_file_path, 'ann_file')
        self.score_threshold = float(score_threshold)
        self.margin = float(margin)
        self.min_size = float(min_size)
        self.mask_dir = None if mask_dir is None else self._resolve(mask_dir)
        self.mask_field = mask_field
        self.match_iou = float(match_iou)
        self.coco = CocoIndex(self.ann_file_path)
        self.defect_ids = self.coco.category_ids(defect_categories or None,
                                                 'defect_categories') or set()
        self.part_ids = self.coco.category_ids(categories, 'categories')
        self._samples = self._collect()
        masked = [s for s in self._samples if s['gt_label'] == 1
                  and (s['mask_path'] or s.get('mask_segmentation'))]
        self.has_masks = bool(masked)
        if split == 'test' and masked:
            missing = [s for s in self._samples if s['gt_label'] == 1
                       and not (s['mask_path'] or s.get('mask_segmentation'))]
            if missing:
                raise ValueError(
                    f'{self.ann_file_path}: box {missing[0]["box_id"]} of '
                    f'{missing[0]["img_path"]!r} is anomalous but has no mask while others '
                    f'have one; give every anomalous box a {mask_field!r} polygon (or an '
                    'overlapping defect annotation), or none')
        super().__init__(split=split, holdout_ratio=holdout_ratio, holdout_seed=holdout_seed,
                         data_root=data_root, **kwargs)

    def _check_relative(self, given: Optional[str], resolved: Optional[str], key: str) -> None:
        """A relative path missing under ``data_root`` but present from the
        working folder: FileNotFoundError that says how paths resolve."""
        if given is None or osp.exists(resolved) or not osp.exists(given):
            return
        raise FileNotFoundError(
            f'{key} {resolved!r} not found: a relative {key} is relative to data_root '
            f'({self.data_root!r}); for the file {osp.abspath(given)!r} give that '
            'absolute path')

    # ----------------------------------------------------------------- parsing
    def _image(self, image_id) -> str:
        """Path of an image; FileNotFoundError naming the annotation file when missing."""
        name = str(self.coco.images[image_id].get('file_name', ''))
        path = name if osp.isabs(name) else osp.join(self.img_dir, name)
        if not osp.isfile(path):
            raise FileNotFoundError(f'{self.ann_file_path}: image {image_id!r} file {path!r} '
                                    'not found (check data_root and img_prefix)')
        return path

    def _label(self, ann: Optional[dict], defects: List[dict]) -> Dict[str, Any]:
        """``gt_label``, ``defect_type`` and mask segmentations of a part (see the class doc)."""
        ann = ann or {}
        segs = []
        if ann.get(self.mask_field):
            seg = ann[self.mask_field]
            segs.append(seg if isinstance(seg, dict) else list(seg))
        if 'anomaly' in ann:
            label = int(bool(ann['anomaly']))
            kind = ann.get('defect_type') or ('anomaly' if label else 'good')
        elif 'defect_type' in ann:
            kind = str(ann['defect_type'] or 'good')
            label = int(kind.lower() not in _NORMAL_TYPES)
        else:
            label = int(bool(defects))
            kind = self.coco.categories[defects[0]['category_id']] if defects else 'good'
        if label:
            for d in defects:
                x, y, w, h = d['bbox']
                segs.append(d.get('segmentation') or [[x, y, x + w, y, x + w, y + h, x, y + h]])
        return dict(gt_label=label, defect_type=str(kind), segs=segs if label else [])

    def _collect(self) -> List[dict]:
        """Every kept box of the file as a data info (before the split)."""
        dets_by_image: Dict[Any, List[dict]] = {}
        if self.results_file is not None:
            for det in load_detections(self.results_file, self.coco):
                if det['score'] >= self.score_threshold:
                    dets_by_image.setdefault(det['image_id'], []).append(det)
        masks = _index_masks(self.mask_dir) if self.mask_dir else None
        samples = []
        for image_id in self.coco.images:
            anns = self.coco.annotations[image_id]
            defects = [a for a in anns if a['category_id'] in self.defect_ids]
            parts = [a for a in anns if a['category_id'] not in self.defect_ids]
            boxes = dets_by_image.get(image_id, []) if self.results_file else parts
            boxes = [b for b in boxes if (self.part_ids is None or b['category_id']
                                          in self.part_ids) and b['category_id']
                     not in self.defect_ids]
            if not boxes:
                continue
            img_path = self._image(image_id)
            shape = self.coco.image_size(image_id, img_path)  # (H, W)
            if self.results_file:
                ious = box_iou([b['bbox'] for b in boxes], [a['bbox'] for a in parts])
            for k, box in enumerate(boxes):
                what = 'detection' if self.results_file else 'annotation'
                where = (f'{self.results_file or self.ann_file_path}: {what} '
                         f'{box.get("id", box["index"])} of {img_path!r}')
                check_box(box['bbox'], shape, where)
                x, y, w, h = box['bbox']
                if min(w, h) < self.min_size:
                    continue
                ann = box
                if self.results_file:
                    best = int(ious[k].argmax()) if parts else -1
                    ann = parts[best] if best >= 0 and ious[k, best] >= self.match_iou else None
                overlapping = []
                if defects:
                    hits = box_iou([box['bbox']], [d['bbox'] for d in defects])[0] > 0  # (D,)
                    overlapping = [d for d, hit in zip(defects, hits) if hit]
                info = self._label(ann, overlapping)
                mask_path = None
                if info['gt_label'] and masks is not None:
                    stem = osp.splitext(osp.basename(img_path))[0]
                    found = masks.get(stem, [])
                    if len(found) != 1:
                        raise FileNotFoundError(
                            f'{where} is anomalous: expected one mask {stem}.<ext> or '
                            f'{stem}_mask.<ext> in {self.mask_dir!r}, found {found}')
                    mask_path = found[0]
                sample = dict(
                    img_path=img_path, crop_box=crop_box_of(box['bbox'], self.margin, shape),
                    box=(x, y, x + w, y + h), category=self.coco.categories[box['category_id']],
                    box_score=box.get('score'), box_id=box.get('id', box['index']),
                    gt_label=info['gt_label'], defect_type=info['defect_type'],
                    mask_path=mask_path)
                if info['segs'] and masks is None:
                    sample['mask_segmentation'] = info['segs']
                samples.append(sample)
        return samples

    # ------------------------------------------------------------------ splits
    def load_data_list(self) -> List[dict]:
        """The samples of the split (see the class doc)."""
        source = self.results_file or self.ann_file_path
        if self.split == 'test':
            data_list = list(self._samples)
        else:
            normal = [s for s in self._samples if s['gt_label'] == 0]
            dropped = len(self._samples) - len(normal)
            if dropped:
                print_log(f'{source}: {dropped} anomalous box(es) left out of the '
                          f'{self.split!r} split (training uses normal boxes only)',
                          logger='current', level=logging.INFO)
            keys = [f'{i:09d}' for i in range(len(normal))]
            kept = set(self.split_holdout(keys)) if normal else set()
            data_list = [s for s, key in zip(normal, keys) if key in kept]
        if not data_list:
            raise ValueError(f'BoxCropDataset: no {self.split!r} box in {source!r} (categories '
                             f'{sorted(self.part_ids) if self.part_ids else "all"}, '
                             f'score_threshold {self.score_threshold}, min_size {self.min_size})')
        for info in data_list:
            if not self.has_masks:
                info['no_mask'] = True
        return data_list

    def load_normal_train_files(self) -> List[str]:
        return sorted({s['img_path'] for s in self._samples if s['gt_label'] == 0})

    def load_test_list(self) -> List[dict]:
        return list(self._samples)

