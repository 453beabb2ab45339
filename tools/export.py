"""Export a trained checkpoint to ONNX: ``model.onnx`` + ``calibration.json``.

``model.onnx`` maps a normalised RGB batch (B, 3, H, W) to the anomaly map
(B, H, W) at the input size and the image score (B,), as ``tools/test.py``
computes them; ``calibration.json`` holds the thresholds and min-max
normalisation of the checkpoint, the input normalisation and size. With
``--check`` the exported graph is run with onnxruntime on random inputs and
compared with PyTorch.
"""
import argparse
import json
import os.path as osp
import sys

import numpy as np
import torch
from mmengine.config import Config, DictAction

from anomaly_plugin.apis import checkpoint_error_message, init_detector
from anomaly_plugin.engine.config_utils import merge_options


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Export a detector to ONNX')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--batch-size', type=int, default=1,
                        help='fixed batch size of the exported graph')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--check', action='store_true',
                        help='compare onnxruntime with PyTorch on random inputs')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys as for tools/test.py')
    return parser.parse_args(argv)


def input_size(model, cfg):
    """(H, W) the checkpoint was trained at, else the config's img_size."""
    trained = tuple(int(v) for v in model.input_size)
    if trained != (0, 0):
        return trained
    size = cfg.get('img_size')
    if size is None:
        raise SystemExit('error: the checkpoint records no input size and the config has no '
                         'img_size; give --cfg-options img_size=[H,W]')
    return (size, size) if isinstance(size, int) else tuple(size)


def compare(model, out_dir, batch_size, size, seed=0):
    """Max abs differences (map, score) between onnxruntime and PyTorch."""
    import onnxruntime as ort

    from anomaly_plugin.deploy import ExportWrapper
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, 3, *size, generator=g)
    with torch.no_grad():
        ref_map, ref_score = ExportWrapper(model.eval())(x)
    sess = ort.InferenceSession(osp.join(out_dir, 'model.onnx'),
                                providers=['CPUExecutionProvider'])
    got_map, got_score = sess.run(None, {'input': x.numpy()})
    return (float(np.abs(got_map - ref_map.numpy()).max()),
            float(np.abs(got_score - ref_score.numpy()).max()),
            float(np.abs(ref_map.numpy()).max()))


def main(argv=None):
    args = parse_args(argv)
    import anomaly_plugin  # noqa: F401  (registers the modules, safe checkpoint loading)
    from anomaly_plugin.deploy import export_onnx
    cfg = Config.fromfile(args.config)
    merge_options(cfg, args.cfg_options)
    try:
        model = init_detector(cfg, args.checkpoint)
    except (RuntimeError, FileNotFoundError) as e:  # incl. UnsafeCheckpointError
        raise SystemExit(checkpoint_error_message(e, args.checkpoint, args.config)) from e
    size = input_size(model, cfg)
    try:
        meta = export_onnx(model, args.out, size, args.batch_size, args.opset)
    except ValueError as e:
        raise SystemExit(f'error: {e}') from e
    print(f"exported {meta['model']} ({size[0]}x{size[1]}, batch {args.batch_size}) to "
          f"{osp.join(args.out, 'model.onnx')}; calibration in "
          f"{osp.join(args.out, 'calibration.json')}")
    if args.check:
        d_map, d_score, scale = compare(model, args.out, args.batch_size, size)
        print('check: ' + json.dumps(dict(max_abs_diff_map=d_map, max_abs_diff_score=d_score,
                                          max_abs_map=scale)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
