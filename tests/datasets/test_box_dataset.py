"""BoxCropDataset: one crop per box of a COCO file or of a detector's results."""
import json
import math
import shutil

import cv2
import numpy as np
import pytest
from conftest import make_box_scenes

from anomaly_plugin.datasets import BoxCropDataset
from anomaly_plugin.datasets.boxes import paste_maps
from anomaly_plugin.datasets.transforms import (
    LoadAnomalyImage,
    LoadAnomalyMask,
    PackAnomalyInputs,
)

PIPELINE = [dict(type=LoadAnomalyImage), dict(type=LoadAnomalyMask),
            dict(type=PackAnomalyInputs)]


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    return make_box_scenes(tmp_path_factory.mktemp('boxes'))


def dataset(scenes, split='test', **kwargs):
    kwargs.setdefault('ann_file', 'test.json' if split == 'test' else 'train.json')
    return BoxCropDataset(data_root=scenes['root'], img_prefix='images', split=split,
                          pipeline=PIPELINE, **kwargs)


def expected_crop(bbox, margin, shape=(96, 128)):
    """The grown box, clipped: (x1, y1, x2, y2) by hand."""
    x, y, w, h = bbox
    return (max(0, math.floor(x - margin * w)), max(0, math.floor(y - margin * h)),
            min(shape[1], math.ceil(x + w + margin * w)),
            min(shape[0], math.ceil(y + h + margin * h)))


def square_mask(truth):
    """The defect's full-image mask (H, W) in {0, 1}."""
    mask = np.zeros((96, 128), np.uint8)
    if truth['square'] is not None:
        x, y, s = truth['square']
        mask[y:y + s, x:x + s] = 1
    return mask


def test_one_sample_per_box_with_its_crop_label_and_mask(scenes):
    ds = dataset(scenes, margin=0.25)
    assert len(ds) == len(scenes['truth']) == 12
    assert ds.metainfo['has_masks']
    for i, truth in enumerate(scenes['truth']):
        out = ds[i]
        sample = out['data_samples']
        x1, y1, x2, y2 = expected_crop(truth['bbox'], 0.25)
        assert tuple(sample.crop_box) == (x1, y1, x2, y2)
        img = cv2.imread(truth['file'])[:, :, ::-1]  # (96, 128, 3) RGB
        np.testing.assert_array_equal(out['inputs'].permute(1, 2, 0).numpy(), img[y1:y2, x1:x2])
        assert sample.img_path == truth['file']
        assert tuple(sample.ori_shape) == (y2 - y1, x2 - x1)
        assert tuple(sample.full_shape) == (96, 128)
        assert int(sample.gt_label) == truth['anomaly']
        assert sample.defect_type == ('spot' if truth['anomaly'] else 'good')
        gt = sample.gt_mask.numpy() if hasattr(sample.gt_mask, 'numpy') else sample.gt_mask
        np.testing.assert_array_equal(np.asarray(gt).reshape(y2 - y1, x2 - x1),
                                      square_mask(truth)[y1:y2, x1:x2])
    # the right-hand part touches the border: its margin is clipped there
    right = [ds[i]['data_samples'].crop_box for i in range(2, 12, 3)]
    assert all(box[2] == 128 for box in right)


def test_mask_folder_gives_the_same_masks_as_the_polygons(scenes):
    polygons, folder = dataset(scenes, margin=0.1), dataset(scenes, margin=0.1, mask_dir='masks')
    for i in range(len(polygons)):
        a, b = polygons[i]['data_samples'], folder[i]['data_samples']
        np.testing.assert_array_equal(np.asarray(a.gt_mask), np.asarray(b.gt_mask))
        assert (b.mask_path is not None) == bool(scenes['truth'][i]['anomaly'])


def test_train_split_keeps_normal_boxes_and_holds_some_out(scenes):
    assert len(dataset(scenes, split='train')) == 18
    train = dataset(scenes, split='train', holdout_ratio=0.2)
    held = dataset(scenes, split='holdout', holdout_ratio=0.2)
    assert (len(train), len(held)) == (14, 4)  # ceil(0.2 * 18) held out
    key = [(d['img_path'], d['box_id']) for d in (train.get_data_info(i) for i in range(14))]
    held_key = [(d['img_path'], d['box_id']) for d in (held.get_data_info(i) for i in range(4))]
    assert not set(key) & set(held_key)
    # a file with defective parts: only its normal boxes train
    mixed = dataset(scenes, split='train', ann_file='test.json')
    assert len(mixed) == 6
    assert all(mixed.get_data_info(i)['gt_label'] == 0 for i in range(6))


def test_categories_by_name_or_id(scenes):
    nuts = dataset(scenes, categories=['nut'])
    assert len(nuts) == 4 and {nuts[i]['data_samples'].category for i in range(4)} == {'nut'}
    assert len(dataset(scenes, categories=1)) == 8
    with pytest.raises(ValueError, match=r"unknown category 'screw'.*test\.json.*1:bolt"):
        dataset(scenes, categories=['bolt', 'screw'])


def test_results_file_scores_and_matching(scenes):
    ds = dataset(scenes, results_file='results.json', score_threshold=0.5)
    assert len(ds) == 12
    for i, truth in enumerate(scenes['truth']):
        info = ds.get_data_info(i)
        assert info['box_score'] == 0.9
        assert info['gt_label'] == truth['anomaly']  # label of the matched annotation
        assert max(abs(a - b) for a, b in zip(info['box'][:2], truth['bbox'][:2])) <= 1
    low = dataset(scenes, results_file='results.json', score_threshold=0.1)
    extra = [low.get_data_info(i) for i in range(len(low)) if low.get_data_info(i)['box_score']
             == 0.2]
    assert len(low) == 16 and len(extra) == 4
    assert all(d['gt_label'] == 0 and d['category'] == 'nut' for d in extra)


def test_det_inferencer_predictions(scenes, tmp_path):
    preds = tmp_path / 'preds'
    preds.mkdir()
    # DetInferencer: xyxy boxes, 0-based labels in category id order (1 = nut)
    json.dump(dict(labels=[1, 0], scores=[0.8, 0.3], bboxes=[[50, 40, 78, 68], [5, 5, 30, 30]]),
              open(preds / 'test_1.json', 'w'))
    ds = dataset(scenes, results_file=str(preds), score_threshold=0.5)
    assert len(ds) == 1
    info = ds.get_data_info(0)
    assert info['img_path'].endswith('test_1.png') and info['category'] == 'nut'
    assert info['box'] == (50.0, 40.0, 78.0, 68.0)


def test_defect_category_annotations_mark_parts(scenes, tmp_path):
    coco = json.load(open(scenes['test']))
    defects = []
    for ann in coco['annotations']:
        for key in ('anomaly', 'defect_type'):
            ann.pop(key)
        poly = ann.pop('defect_segmentation', None)
        if poly:
            x, y = poly[0][0], poly[0][1]
            defects.append(dict(id=1000 + len(defects), image_id=ann['image_id'],
                                category_id=3, bbox=[x, y, 8, 8], segmentation=poly))
    coco['annotations'] += defects
    path = tmp_path / 'defects.json'
    json.dump(coco, open(path, 'w'))
    root = scenes['root']
    ds = BoxCropDataset(ann_file=str(path), data_root=root, img_prefix='images', split='test',
                        defect_categories=['scratch'], pipeline=PIPELINE)
    assert len(ds) == 12
    for i, truth in enumerate(scenes['truth']):
        sample = ds[i]['data_samples']
        assert int(sample.gt_label) == truth['anomaly']
        assert sample.defect_type == ('scratch' if truth['anomaly'] else 'good')
        x1, y1, x2, y2 = sample.crop_box
        np.testing.assert_array_equal(np.asarray(sample.gt_mask),
                                      square_mask(truth)[y1:y2, x1:x2])
    plain = BoxCropDataset(ann_file=str(path), data_root=root, img_prefix='images',
                           split='test', categories=['bolt', 'nut'])
    assert len(plain) == 12 and not plain.metainfo['has_masks']  # no label source: all normal
    assert all(plain.get_data_info(i)['gt_label'] == 0 for i in range(12))


def edited(scenes, tmp_path, edit, name='edited.json'):
    coco = json.load(open(scenes['test']))
    edit(coco)
    path = tmp_path / name
    json.dump(coco, open(path, 'w'))
    return str(path)


def test_errors_name_the_file(scenes, tmp_path):
    bad = tmp_path / 'broken.json'
    bad.write_text('{"images": [')
    with pytest.raises(ValueError, match=r'broken\.json.*not valid JSON'):
        dataset(scenes, ann_file=str(bad))

    def missing_image(coco):
        coco['images'][1]['file_name'] = 'gone.png'
    with pytest.raises(FileNotFoundError, match=r'edited\.json.*gone\.png.*not found'):
        dataset(scenes, ann_file=edited(scenes, tmp_path, missing_image))

    def outside(coco):
        coco['annotations'][4]['bbox'] = [110, 10, 28, 28]
    with pytest.raises(ValueError, match=r'edited\.json: annotation 12 .*test_1\.png.*outside '
                                         r'the 128x96'):
        dataset(scenes, ann_file=edited(scenes, tmp_path, outside))

    def unknown_category(coco):
        coco['annotations'][0]['category_id'] = 9
    with pytest.raises(ValueError, match=r'edited\.json: annotation #0.*category_id 9'):
        dataset(scenes, ann_file=edited(scenes, tmp_path, unknown_category))

    results = tmp_path / 'results.json'
    json.dump([dict(image_id=77, bbox=[0, 0, 5, 5], score=1.0, category_id=1)],
              open(results, 'w'))
    with pytest.raises(ValueError, match=r'results\.json: detection #0 names image_id 77'):
        dataset(scenes, results_file=str(results))


def test_a_crop_outside_its_image_is_reported_at_load_time(scenes, tmp_path):
    ds = dataset(scenes)
    info = ds.get_data_info(0)
    small = tmp_path / 'small.png'
    shutil.copy(info['img_path'], small)
    cv2.imwrite(str(small), cv2.imread(str(small))[:20, :20])  # the image shrank since
    with pytest.raises(ValueError, match=r'crop_box .* outside the 20x20 .*small\.png'):
        LoadAnomalyImage()(dict(info, img_path=str(small)))


def test_paste_maps_takes_the_maximum_where_crops_overlap():
    maps = [np.full((4, 6), 1.0), np.full((5, 5), 2.0)]
    out = paste_maps((10, 12), [(0, 0, 6, 4), (3, 2, 8, 7)], maps)  # (10, 12)
    assert out[0, 0] == 1 and out[3, 4] == 2 and out[6, 7] == 2 and out[9, 11] == 0
    assert out[1, 5] == 1 and out[2, 5] == 2  # overlap: the larger value


def test_a_path_relative_to_the_working_folder_is_explained(scenes, tmp_path, monkeypatch):
    # results.json exists from the working folder, not under data_root
    results = tmp_path / 'dets' / 'results.json'
    results.parent.mkdir()
    shutil.copy(scenes['results'], results)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"results_file .* not found: a relative "
                                                r"results_file is relative to data_root.*give "
                                                r'that absolute path'):
        dataset(scenes, results_file='dets/results.json')
    assert len(dataset(scenes, results_file=str(results))) == 16  # the absolute path works
