"""Record the synthetic anomaly every training sample gets in one epoch of a
config's training dataloader, per rank (run directly or through torchrun).

Usage: python synthesis_draws.py CONFIG DATA_ROOT EPOCH OUT_DIR [--launcher pytorch]
Writes ``OUT_DIR/rank<r>.json``: {image path: [sha1 of the input, sha1 of the mask, mask pixels]}.
"""
import hashlib
import json
import os
import sys

from mmengine.runner import Runner

import anomaly_plugin  # noqa: F401
from anomaly_plugin.engine import load_tool_config


def main():
    config, data_root, epoch, out = sys.argv[1:5]
    launcher = sys.argv[6] if len(sys.argv) > 6 else 'none'
    cfg = load_tool_config(config, {'img_size': [32, 32], 'train_dataloader.batch_size': 2},
                           data_root=data_root, launcher=launcher,
                           work_dir=os.path.join(out, 'work'))
    runner = Runner.from_cfg(cfg)
    runner.message_hub.update_info('epoch', int(epoch))
    draws = {}
    for batch in runner.train_dataloader:
        for inputs, sample in zip(batch['inputs'], batch['data_samples']):
            draws[os.path.basename(sample.img_path)] = [
                hashlib.sha1(inputs.numpy().tobytes()).hexdigest(),
                hashlib.sha1(sample.gt_mask.numpy().tobytes()).hexdigest(),
                int(sample.gt_mask.sum())]
    with open(os.path.join(out, f'rank{runner.rank}.json'), 'w') as f:
        json.dump(draws, f)


if __name__ == '__main__':
    main()
