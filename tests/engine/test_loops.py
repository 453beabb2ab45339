import json

from conftest import make_mvtec, options_to_cli
from conftest import run_tool as run

from anomaly_plugin.engine.loops import first_occurrence


def test_first_occurrence_drops_sampler_padding():
    # 5 samples on 2 ranks: rank 1's last index repeats sample 0
    ranks = [[0, 2, 4], [1, 3, 0]]
    assert first_occurrence(ranks, 0) == [True, True, True]
    assert first_occurrence(ranks, 1) == [True, True, False]
    assert first_occurrence([[0, 1, 2]], 0) == [True, True, True]


def test_benchmark_tool_reports_timings_and_metrics(tmp_path):
    data = make_mvtec(tmp_path / 'cat', size=64, n_train=6)
    out = tmp_path / 'bench.json'
    run(['tools/benchmark.py', 'configs/patchcore/patchcore_mobilenetv2_mvtec.py',
         '--data-root', data, '--runs', '2', '--threads', '1', '--out', str(out),
         '--cfg-options', *options_to_cli({'img_size': 64,
                                           'model.backbone.backbone.init_cfg': None})])
    result = json.loads(out.read_text())
    assert len(result['runs']) == 2 and result['fit_s_median'] > 0
    assert result['test_images_per_s_median'] > 0 and result['peak_rss_mb'] > 0
    assert 0 <= result['metrics']['pixel/AUPRO'] <= 1
    assert result['knn']['gemm_gflops'] > 0 and result['knn']['knn_gflops'] > 0
