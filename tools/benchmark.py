"""Speed / memory benchmark of a memory-bank model: fit + test, median of runs.

Measures, in-process (start-up and imports excluded):
* fit seconds: the training-data pass (image decoding, preprocessing,
  feature extraction) plus the bank selection / Gaussian fitting;
* test images/s: decoding + preprocessing + prediction over the test split;
* peak RSS of the process;
* image AUROC, pixel AUROC and AUPRO of the fitted model;
* for PatchCore, the kNN scoring rate beside a plain GEMM of the same shape.

Run it on an otherwise idle machine: a second busy process slows 2-thread
timings several times.

    python tools/benchmark.py configs/patchcore/patchcore_mobilenetv2_mvtec.py \
        --data-root DIR --max-train 50 --threads 2 --runs 3
"""
import argparse
import json
import resource
import statistics
import time

import torch
from mmengine.config import DictAction
from mmengine.runner import Runner

from anomaly_plugin.apis.profiling import benchmark_config, build_eval_model
from anomaly_plugin.evaluation import ImageMetric, PixelMetric
from anomaly_plugin.models.statistics import knn


def parse_args():
    p = argparse.ArgumentParser(description='Benchmark fit + test of a config')
    p.add_argument('config')
    p.add_argument('--data-root', required=True)
    p.add_argument('--max-train', type=int, default=None, help='first N training images')
    p.add_argument('--max-test', type=int, default=None, help='first N test images')
    p.add_argument('--repeat-train', type=int, default=1,
                   help='pass over the training images this many times (scale runs; '
                        'with a random flip in the pipeline the repeats differ)')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--runs', type=int, default=3)
    p.add_argument('--no-metrics', action='store_true')
    p.add_argument('--no-test', action='store_true', help='fit only (scale runs)')
    p.add_argument('--covering-radius', action='store_true',
                   help="PatchCore: the coreset's covering radius over the training patches")
    p.add_argument('--pixel-resolution', choices=('input', 'original'), default='input',
                   help="pixel metrics at the model input size or at each image's size")
    p.add_argument('--out', help='write the results as JSON here')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build(cfg, args):
    train_ds = dict(cfg.train_dataloader.dataset)
    test_ds = dict(cfg.test_dataloader.dataset)
    if args.max_train:
        train_ds['indices'] = args.max_train
    if args.max_test:  # spread over the sorted test list (normal and defective)
        n = len(Runner.build_dataloader(dict(cfg.test_dataloader, dataset=test_ds)).dataset)
        test_ds['indices'] = sorted({round(i * (n - 1) / max(1, args.max_test - 1))
                                     for i in range(args.max_test)})
    if args.repeat_train > 1:
        train_ds = dict(type='RepeatDataset', times=args.repeat_train, dataset=train_ds)
    train = Runner.build_dataloader(dict(cfg.train_dataloader, dataset=train_ds))
    test = Runner.build_dataloader(dict(cfg.test_dataloader, dataset=test_ds))
    return train, test


def fit(model, loader) -> float:
    start = time.perf_counter()
    model.fit_reset()
    pos = 0
    with torch.no_grad():
        for data in loader:
            data = model.data_preprocessor(data, False)
            model.note_input_size(data['inputs'])
            n = data['inputs'].shape[0]
            model.fit_embeddings(model.extract(data['inputs']), torch.arange(pos, pos + n))
            pos += n
        model.fit_finish(progress=False)
    return time.perf_counter() - start


def test(model, loader, metrics, resolution='input'):
    start, count, outputs = time.perf_counter(), 0, []
    with torch.no_grad():
        for data in loader:
            out = model.test_step(data)
            count += len(out)
            if metrics:
                outputs.append([s.to_dict() for s in out])
    seconds = time.perf_counter() - start
    result = {}
    if metrics:
        image, pixel = ImageMetric(), PixelMetric(resolution=resolution)
        for out in outputs:
            image.process(None, out)
            pixel.process(None, out)
        result = {**{f'image/{k}': v for k, v in image.compute_metrics(image.results).items()},
                  **{f'pixel/{k}': v for k, v in pixel.compute_metrics(pixel.results).items()}}
    return count / seconds, result


def covering_radius(model, loader) -> float:
    """Largest distance from a training patch to its nearest bank entry (the
    coreset's covering radius in the feature space the bank is queried in)."""
    radius = 0.0
    with torch.no_grad():
        for data in loader:
            emb = model.extract(model.data_preprocessor(data, False)['inputs'])
            feats = emb.movedim(-3, -1).reshape(-1, emb.shape[-3])  # (patches, D)
            dist, _ = model.memory_bank.query(feats, k=1)
            radius = max(radius, float(dist.max()))
    return radius


def knn_diagnostic(model, loader) -> dict:
    """kNN scoring rate vs this machine's GEMM rate at the same shape."""
    bank = model.memory_bank.bank
    data = model.data_preprocessor(next(iter(loader)), False)
    emb = model.extract(data['inputs'])
    q = emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1]).contiguous()  # (Q, D)
    flops = 2.0 * q.shape[0] * bank.shape[0] * q.shape[1]
    timings = {}
    for name, fn in (('gemm', lambda: q @ bank.t()),
                     ('knn', lambda: knn(q, bank, 1, model.memory_bank.chunk_size))):
        fn()
        t = []
        for _ in range(3):
            s = time.perf_counter()
            fn()
            t.append(time.perf_counter() - s)
        timings[name] = flops / statistics.median(t) / 1e9
    return dict(queries=q.shape[0], bank=bank.shape[0], dim=q.shape[1],
                gemm_gflops=timings['gemm'], knn_gflops=timings['knn'])


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    cfg = benchmark_config(args.config, args.data_root, args.cfg_options)
    train_loader, test_loader = build(cfg, args)
    runs = []
    for i in range(args.runs):
        model = build_eval_model(cfg)
        fit_s = fit(model, train_loader)
        if args.no_test:
            ips, metrics = float('nan'), {}
        else:
            ips, metrics = test(model, test_loader, not args.no_metrics and i == 0,
                                args.pixel_resolution)
        runs.append(dict(fit_s=fit_s, test_images_per_s=ips, **metrics))
        print(f'run {i}: fit {fit_s:.2f} s, test {ips:.2f} images/s', flush=True)
    result = dict(config=args.config, threads=args.threads, runs=runs,
                  train_images=len(train_loader.dataset), test_images=len(test_loader.dataset),
                  fit_s_median=statistics.median(r['fit_s'] for r in runs),
                  test_images_per_s_median=statistics.median(
                      r['test_images_per_s'] for r in runs),
                  peak_rss_mb=peak_rss_mb(), metrics=runs[0] if not args.no_metrics else {})
    if hasattr(model, 'memory_bank'):
        if args.covering_radius:
            result['covering_radius'] = covering_radius(model, train_loader)
        if not args.no_test:
            result['knn'] = knn_diagnostic(model, test_loader)
    print(json.dumps({k: v for k, v in result.items() if k != 'runs'}, indent=2))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)


if __name__ == '__main__':
    main()
