"""scripts/benchmark_export.py runs end to end on a tiny network and size and reports what it claims (no timing
asserted): the two quickest targets to export, the portable ONNX graph and NCNN (when installed)."""
import importlib.util
import json

import pytest

from conftest import run_script_main


def test_benchmark_export_reports_every_target_asked(tmp_path, capsys):
    targets = ['portable'] + (['ncnn'] if importlib.util.find_spec('ncnn') and importlib.util.find_spec('pnnx') else [])
    out = tmp_path / 'bench.json'
    run_script_main('benchmark_export', [
        '--size', '16x20', '--scale', '3', '--num-feat', '16', '--num-block', '1', '--runs', '2', '--threads', '1',
        '--cpu-time', '--json', str(out), '--targets', *targets])
    report = json.loads(out.read_text())
    assert report['lr_size'] == [16, 20] and report['machine']['threads'] == 1
    assert [row['target'] for row in report['results']] == targets
    for row in report['results']:
        times = row['times_s']
        assert len(times['pytorch']) == len(times['runtime']) == 2 and min(times['pytorch'] + times['runtime']) > 0
        assert row['pair_ratios'] == pytest.approx([a / b for a, b in zip(times['runtime'], times['pytorch'])])
        assert row['max_abs_difference'] < 1e-4 and row['file_bytes'] > 10_000  # the file holds the weights
    printed = capsys.readouterr().out
    assert f"CPU {report['machine']['cpu']['model']} (flags: " in printed and 'LR input 16×20' in printed
    assert all(f'| {target} | ' in printed for target in targets)
