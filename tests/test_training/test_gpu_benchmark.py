"""scripts/gpu_benchmark.py in its CPU dry-run mode (the GPU numbers come from scripts/gpu_check.sh on a GPU)."""
import json

import pytest

from training_helpers import import_script


@pytest.fixture(scope='module')
def bench():
    return import_script('gpu_benchmark')


def test_dry_run_measures_every_configuration_and_writes_json_and_markdown(bench, tmp_path, one_thread):
    bench.main(['--dry-run', '--out', str(tmp_path)])
    result = json.loads((tmp_path / 'gpu_benchmark.json').read_text())
    rows = result['results']
    assert [r['status'] for r in rows] == ['ok'] * len(rows), [r.get('error') for r in rows]
    train = {(r['net'], r['mode'], r['compile']) for r in rows if r['kind'] == 'train'}
    for mode in ('fp32', 'channels-last', 'bf16', 'bf16-channels-last'):
        assert ('srconvnet', mode, False) in train and ('srconvnet', mode, True) in train
    assert ('edsr', 'fp32', False) in train
    infer = {(r['net'], r['precision']) for r in rows if r['kind'] == 'infer'}
    assert infer == {(net, p) for net in ('srconvnet', 'edsr') for p in ('fp32', 'bf16')}
    for r in rows:
        assert r['median_s'] > 0 and len(r['times_s']) == 2
        assert r.get('iters_per_s', 0) == pytest.approx(1 / r['median_s']) or r['kind'] == 'infer'
    table = (tmp_path / 'gpu_benchmark.md').read_text()
    assert '| srconvnet | bf16-channels-last | yes | ' in table and '| edsr | bf16 | ' in table
    assert result['args']['batch'] == 2 and result['machine']['device'] == 'cpu'


def test_a_failing_configuration_is_recorded_and_the_next_runs(bench, tmp_path, one_thread):
    bench.main(['--dry-run', '--out', str(tmp_path), '--compile-mode', 'backend:no_such_backend',
                '--only', 'srconvnet fp32 compiled', 'edsr fp32'])
    rows = json.loads((tmp_path / 'gpu_benchmark.json').read_text())['results']
    assert [(r['name'], r['status']) for r in rows] == [('edsr fp32', 'ok'), ('edsr fp32 inference', 'ok'),
                                                        ('srconvnet fp32 compiled', 'failed')]
    assert 'no_such_backend' in rows[2]['error']
    assert '| srconvnet | fp32 | yes | - | - | - | ' in (tmp_path / 'gpu_benchmark.md').read_text()


def test_configurations_past_the_budget_are_skipped(bench, tmp_path):
    bench.main(['--dry-run', '--out', str(tmp_path), '--budget', '0', '--only', 'edsr'])
    rows = json.loads((tmp_path / 'gpu_benchmark.json').read_text())['results']
    assert rows and all(r['status'] == 'skipped' and 'of the --budget of 0 s left' in r['error'] for r in rows)
