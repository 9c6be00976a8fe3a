"""scripts/benchmark_train.py runs end to end and reports what it claims (correctness only: no timing asserted)."""
import json
import statistics

import pytest
import torch

from training_helpers import import_script


@pytest.fixture(scope='module')
def bench():
    return import_script('benchmark_train')


@pytest.mark.slow
def test_reports_both_networks_in_every_mode_with_the_machine(bench, tmp_path, capsys, one_thread):
    out = tmp_path / 'train.json'
    bench.main(['--batch', '1', '--patch', '8', '--scales', '3', '--runs', '2', '--threads', '1',
                '--modes', 'fp32', 'bf16', 'channels-last', '--json', str(out)])
    data = json.loads(out.read_text())
    (row, ) = data['results']
    assert row['scale'] == 3 and row['batch'] == 1 and row['patch'] == 8
    for name in ('srconvnet', 'edsr'):
        assert list(row['times_s'][name]) == ['fp32', 'bf16', 'channels-last']
        assert all(len(t) == 2 and min(t) > 0 for t in row['times_s'][name].values())
    times = row['times_s']
    for mode, ratio in row['ratio'].items():
        median = {name: statistics.median(times[name][mode]) for name in times}
        assert ratio == pytest.approx(median['srconvnet'] / median['edsr'])
    assert row['speedup_vs_fp32']['srconvnet']['fp32'] == 1
    machine = data['machine']
    assert machine['torch'] == torch.__version__ and machine['threads'] == 1
    assert set(machine['cpu']['flags']) <= {'avx2', 'avx512f', 'avx512_bf16', 'amx_tile', 'amx_bf16'}
    printed = capsys.readouterr().out
    assert f'torch {torch.__version__}, device cpu, 1 threads, CPU ' in printed and '(flags: ' in printed
    assert '| x3 | bf16 |' in printed and '| x3 | channels-last |' in printed


@pytest.mark.parametrize('mode', ['fp32', 'bf16-channels-last'])
@pytest.mark.slow
def test_the_timed_step_trains(bench, mode, one_thread):
    """The step is a real training step: on a fixed batch, Adam lowers the L1 loss."""
    lq, gt = bench.train_batch(2, 8, 2)
    step = bench.train_step(bench.build('srconvnet', 2), lq, gt, torch.device('cpu'), mode, lr=2e-3)
    losses = [step().item() for _ in range(6)]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize('argv,message', [(['--batch', '0'], '--batch must be at least 1, got 0'),
                                          (['--runs', '0'], '--runs must be at least 1'),
                                          (['--modes', 'fp16'], 'fp16 modes are for GPUs'),
                                          (['--modes', 'int8'], "invalid choice: 'int8'")])
def test_refuses_bad_options(bench, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
