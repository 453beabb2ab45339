import os

import numpy as np
import pytest
from conftest import make_visa

from anomaly_plugin.datasets import VisADataset


def test_train_and_test(tmp_path):
    make_visa(tmp_path)
    train = VisADataset(data_root=str(tmp_path), category='candle')
    paths = [train.get_data_info(i)['img_path'] for i in range(len(train))]
    assert len(paths) == 4 and paths == sorted(paths)
    assert all('candle' in p and 'Normal' in p for p in paths)
    test = VisADataset(data_root=str(tmp_path), category='pcb1', split='test')
    infos = [test.get_data_info(i) for i in range(len(test))]
    assert [d['gt_label'] for d in infos] == [0, 1, 1]
    assert infos[0]['mask_path'] is None and infos[0]['defect_type'] == 'good'
    assert all(d['defect_type'] == 'anomaly' and d['mask_path'].endswith('.png')
               for d in infos[1:])
    assert all('pcb1' in d['img_path'] for d in infos)


@pytest.mark.parametrize('mask_value', [1, 255])
def test_masks_0_1_and_0_255(tmp_path, mask_value):
    expected, _ = make_visa(tmp_path, mask_value=mask_value)
    ds = VisADataset(
        data_root=str(tmp_path), split='test',
        pipeline=[dict(type='LoadAnomalyImage'), dict(type='LoadAnomalyMask'),
                  dict(type='PackAnomalyInputs')])
    sample = ds[1]['data_samples']
    assert int(sample.gt_label) == 1
    np.testing.assert_array_equal(sample.gt_mask.numpy(), expected)
    # An explicit threshold overrides the dataset's 0: 0/1 masks vanish.
    strict = VisADataset(
        data_root=str(tmp_path), split='test',
        pipeline=[dict(type='LoadAnomalyImage'),
                  dict(type='LoadAnomalyMask', threshold=127)])
    assert int(strict[1]['gt_mask'].sum()) == (expected.sum()
                                               if mask_value == 255 else 0)


def test_csv_errors(tmp_path):
    _, csv_path = make_visa(tmp_path)
    with pytest.raises(FileNotFoundError, match='other.csv'):
        VisADataset(data_root=str(tmp_path), split_csv='split_csv/other.csv')
    with pytest.raises(ValueError, match=r"available: \['candle', 'pcb1'\]"):
        VisADataset(data_root=str(tmp_path), category='capsules')
    bad = tmp_path / 'bad.csv'
    bad.write_text('object,split,image,mask\ncandle,train,a.JPG,\n')
    with pytest.raises(ValueError, match=r"bad.csv.*\['label'\]"):
        VisADataset(data_root=str(tmp_path), split_csv=str(bad))


def test_row_errors(tmp_path):
    _, csv_path = make_visa(tmp_path)
    text = csv_path.read_text()
    rel = 'candle/Data/Images/Anomaly/000.JPG'
    csv_path.write_text(text + f'candle,train,anomaly,{rel},\n')
    with pytest.raises(ValueError, match='1cls.csv:.*must be normal'):
        VisADataset(data_root=str(tmp_path))
    csv_path.write_text(text.replace('candle/Data/Masks/Anomaly/001.png',
                                     'candle/Data/Masks/Anomaly/gone.png'))
    with pytest.raises(FileNotFoundError, match='gone.png'):
        VisADataset(data_root=str(tmp_path), split='test')
    csv_path.write_text(text + 'candle,test,weird,x.JPG,\n')
    with pytest.raises(ValueError, match="label 'weird'"):
        VisADataset(data_root=str(tmp_path), split='test')
    os.remove(tmp_path / 'candle/Data/Images/Normal/0001.JPG')
    csv_path.write_text(text)
    with pytest.raises(FileNotFoundError, match='0001.JPG'):
        VisADataset(data_root=str(tmp_path))
