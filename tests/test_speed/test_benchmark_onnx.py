"""scripts/benchmark_onnx.py runs end to end on a tiny size and reports what it claims (no timing asserted)."""
import json

import pytest

from conftest import run_script_main

pytestmark = pytest.mark.slow


def test_benchmark_onnx_reports_both_paths(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    run_script_main('benchmark_onnx', ['--out-size', '24', '35', '--scales', '3', '--runs', '2', '--threads', '1',
                                       '--cpu-time', '--ops', '3', '--target', 'onnxruntime-cpu', '--json', str(out)])
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
    printed = capsys.readouterr().out
    assert '| ×3 | 8×12 |' in printed
    assert 'graph exported for target onnxruntime-cpu' in printed and report['args']['target'] == 'onnxruntime-cpu'
    assert f"CPU {report['machine']['cpu']['model']} (flags: " in printed and 'onnxruntime ' in printed

