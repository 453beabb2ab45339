"""Score images with a trained checkpoint: OK/NG, heat-maps and masks.

Writes to ``--out``: ``results.csv`` and ``results.json`` (one row per image:
path, raw score, normalised score, decision), ``<stem>_heatmap.png`` (JET
colours on the calibration scale, at the image's size) and
``<stem>_mask.png`` (0/255, the saved pixel threshold).
"""
import argparse
import csv
import json
import os
import os.path as osp

import cv2
import numpy as np
from mmengine.utils import ProgressBar

from anomaly_plugin.apis import inference, init_detector, list_images, map_to_original
from anomaly_plugin.visualization import colorize


def parse_args():
    parser = argparse.ArgumentParser(description='Anomaly inference on images')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('input', help='an image file or a folder of images')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--batch-size', type=int, default=8)
    return parser.parse_args()


def main():
    args = parse_args()
    import anomaly_plugin  # noqa: F401
    model = init_detector(args.config, args.checkpoint, args.device)
    post = model.postprocessor
    if not post.has_threshold:
        print('warning: the checkpoint has no calibrated threshold; decisions are '
              "'n/a' and no masks are written")
    images = list_images(args.input)
    os.makedirs(args.out, exist_ok=True)
    rows, bar = [], ProgressBar(len(images))
    for s in inference(model, images, args.batch_size):
        stem = osp.splitext(osp.basename(s.img_path))[0]
        amap = map_to_original(s.anomaly_map, s.ori_shape)  # (H, W)
        if post.has_normalization:
            vmin, vmax = float(post.pixel_min), float(post.pixel_max)
        else:
            vmin, vmax = float(amap.min()), float(amap.max())
        heat = colorize(amap, vmin, vmax)
        cv2.imwrite(osp.join(args.out, f'{stem}_heatmap.png'),
                    cv2.cvtColor(heat, cv2.COLOR_RGB2BGR))
        row = dict(image=s.img_path, score=float(s.pred_score),
                   norm_score=float(s.norm_score) if 'norm_score' in s else None,
                   decision='n/a')
        if post.has_threshold:
            row['decision'] = 'NG' if int(s.pred_label) else 'OK'
            mask = (amap >= float(post.pixel_threshold)).astype(np.uint8) * 255
            cv2.imwrite(osp.join(args.out, f'{stem}_mask.png'), mask)
        rows.append(row)
        bar.update()
    with open(osp.join(args.out, 'results.json'), 'w') as f:
        json.dump(rows, f, indent=2)
    with open(osp.join(args.out, 'results.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    ng = sum(r['decision'] == 'NG' for r in rows)
    print(f'\n{len(rows)} images, {ng} NG; results in {args.out}')


if __name__ == '__main__':
    main()
