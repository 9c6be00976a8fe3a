"""scripts/benchmark_onnx.py runs end to end on a tiny size and reports what it claims (no timing asserted)."""
import importlib
import json
import statistics
import sys

import pytest
import torch

from conftest import REPO_ROOT


def test_benchmark_onnx_reports_both_paths(tmp_path, capsys):
    sys.path.insert(0, str(REPO_ROOT / 'scripts'))
    threads = torch.get_num_threads()
    out = tmp_path / 'bench.json'
    try:
        bench = importlib.import_module('benchmark_onnx')
        bench.main(['--out-size', '24', '35', '--scales', '3', '--runs', '2', '--threads', '1', '--cpu-time',
                    '--ops', '3', '--dynamic-conv', '--json', str(out)])
    finally:
        torch.set_num_threads(threads)
        sys.path.remove(str(REPO_ROOT / 'scripts'))
    report = json.loads(out.read_text())
    (row, ) = report['results']
    assert row['scale'] == 3 and row['lr_size'] == [8, 12]
    assert report['machine']['threads'] == 1 and report['machine']['onnxruntime']
    for name in ('pytorch', 'onnxruntime'):
        assert len(row['times_s'][name]) == 2 and min(row['times_s'][name]) > 0
    times = row['times_s']
    assert row['pair_ratios'] == pytest.approx([a / b for a, b in zip(times['onnxruntime'], times['pytorch'])])
    assert row['max_abs_difference'] < 1e-4  # the exported graph computes the network
    ops = row['ops']
    assert len(ops) == 3 and all(op['op'] != 'Scan' and op['nodes'] >= 1 and 0 < op['share'] < 1 for op in ops)
    cost = row['dynamic_conv_s']  # 8 blocks x (5x5 + 7x7) per run, per-image kernels and constant ones
    assert all(len(cost[kind]) == 2 and min(cost[kind]) > 0 for kind in ('per_image', 'constant'))
    median = statistics.median
    assert row['projected_ratio'] == pytest.approx(
        (median(times['onnxruntime']) - median(cost['per_image']) + median(cost['constant'])) / median(times['pytorch']))
    printed = capsys.readouterr().out
    assert '| ×3 | 8×12 |' in printed
    assert "# ONNX Runtime's dynamic depthwise convs" in printed and f"| {row['projected_ratio']:.2f} |" in printed
    assert f"CPU {report['machine']['cpu']['model']} (flags: " in printed and 'onnxruntime ' in printed


@pytest.mark.parametrize('constant_weights', [False, True])
def test_dynamic_conv_graphs_compute_the_depthwise_conv(constant_weights):
    """The one-node graphs --dynamic-conv times are the exported graph's depthwise conv, with either kind of kernels."""
    sys.path.insert(0, str(REPO_ROOT / 'scripts'))
    try:
        bench = importlib.import_module('benchmark_onnx')
    finally:
        sys.path.remove(str(REPO_ROOT / 'scripts'))
    graph, feed = bench.depthwise_graph(6, (9, 11), 7, constant_weights, seed=3)
    _, expected_feed = bench.depthwise_graph(6, (9, 11), 7, False, seed=3)
    (y, ) = bench.session(graph, 1).run(None, feed)
    x, w, b = (torch.from_numpy(expected_feed[name]) for name in ('x', 'w', 'b'))
    assert set(feed) == ({'x'} if constant_weights else {'x', 'w', 'b'})
    torch.testing.assert_close(torch.from_numpy(y), torch.nn.functional.conv2d(x, w, b, padding=3, groups=6),
                               rtol=1e-5, atol=1e-5)
