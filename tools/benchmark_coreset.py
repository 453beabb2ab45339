"""Coreset selection time against the number of patches, exact and approx.

Extracts the PatchCore config's training patches once (each training image
and, with ``--flips``, its horizontal, vertical and double flip: 4x the
patches, all different), then for each size N selects the config's coreset
ratio of the first N patches with ``coreset_mode='exact'`` (``exact_limit``
off) and ``'approx'``, selection only (no feature pass), median of
``--runs``. Run it on an otherwise idle machine.

    python tools/benchmark_coreset.py configs/patchcore/patchcore_mobilenetv2_mvtec.py \
        --data-root DIR --sizes 51200 204800 472064 1000000 --flips --threads 2
"""
import argparse
import json
import statistics
import time

import torch
from mmengine.config import DictAction
from mmengine.runner import Runner

from anomaly_plugin.apis.profiling import benchmark_config, build_eval_model
from anomaly_plugin.models.statistics import greedy_coreset


def parse_args():
    p = argparse.ArgumentParser(description='Coreset selection time against N')
    p.add_argument('config', help='a PatchCore config')
    p.add_argument('--data-root', required=True)
    p.add_argument('--sizes', type=int, nargs='+', required=True, help='patch counts N')
    p.add_argument('--modes', nargs='+', default=['exact', 'approx'],
                   choices=['exact', 'approx'])
    p.add_argument('--flips', action='store_true',
                   help='add each image\'s three flips (4x the patches)')
    p.add_argument('--max-exact', type=int, default=None,
                   help='skip exact selection above this N')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--runs', type=int, default=1)
    p.add_argument('--out', help='write the results as JSON here')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args()


@torch.no_grad()
def training_patches(model, loader, flips: bool, limit: int) -> torch.Tensor:
    """The training patches in dataset order (then the flipped copies), as
    the model keeps them for the selection (its ``feature_dtype``).

    Returns:
        (N, D) patches, N <= ``limit``.
    """
    views = [lambda x: x]
    if flips:
        views += [lambda x: x.flip(-1), lambda x: x.flip(-2), lambda x: x.flip(-1, -2)]
    parts, count = [], 0
    for view in views:
        for data in loader:
            inputs = view(model.data_preprocessor(data, False)['inputs'])  # (B, 3, H, W)
            emb = model.extract(inputs)  # (B, D, h, w)
            part = emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1])  # (B*h*w, D)
            parts.append(part.to(model.feature_dtype))
            count += part.shape[0]
            if count >= limit:
                return torch.cat(parts)[:limit]
    return torch.cat(parts)


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    cfg = benchmark_config(args.config, args.data_root, args.cfg_options)
    loader = Runner.build_dataloader(cfg.train_dataloader)
    model = build_eval_model(cfg)
    bank = model.memory_bank
    feats = training_patches(model, loader, args.flips, max(args.sizes))
    print(f'{feats.shape[0]:,} patches of {feats.shape[1]} channels', flush=True)
    rows = []
    for n in sorted(args.sizes):
        if n > feats.shape[0]:
            print(f'N={n:,}: only {feats.shape[0]:,} patches, skipped')
            continue
        k = max(1, int(round(n * bank.coreset_ratio)))
        row = dict(patches=n, selections=k)
        for mode in args.modes:
            if mode == 'exact' and args.max_exact and n > args.max_exact:
                continue
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                greedy_coreset(feats[:n], k, bank.projection_dim, bank.seed, mode,
                               bank.block_size, False, bank.coreset_kernel)
                times.append(time.perf_counter() - start)
            row[f'{mode}_s'] = statistics.median(times)
            print(f'N={n:,} k={k:,} {mode}: {row[f"{mode}_s"]:.2f} s', flush=True)
        rows.append(row)
    print('| patches N | selections k | ' + ' | '.join(f'{m} s' for m in args.modes) + ' |')
    print('| --- | --- | ' + ' | '.join('---' for _ in args.modes) + ' |')
    for r in rows:
        cells = [f'{r[m + "_s"]:.2f}' if m + '_s' in r else '-' for m in args.modes]
        print(f'| {r["patches"]:,} | {r["selections"]:,} | ' + ' | '.join(cells) + ' |')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(config=args.config, threads=args.threads, runs=args.runs,
                           flips=args.flips, rows=rows), f, indent=2)


if __name__ == '__main__':
    main()
