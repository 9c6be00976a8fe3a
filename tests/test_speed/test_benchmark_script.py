"""scripts/benchmark_speed.py runs end to end and reports what it claims (correctness only: no timing asserted)."""
import json

import pytest
import torch

from conftest import load_script


@pytest.fixture(scope='module')
def bench():
    return load_script('benchmark_speed')


@pytest.mark.slow
def test_benchmark_script_reports_both_models(bench, tmp_path, capsys):
    threads = torch.get_num_threads()
    out = tmp_path / 'bench.json'
    try:
        bench.main(['--out-size', '24', '35', '--scales', '3', '--runs', '2', '--threads', '1', '--json', str(out)])
    finally:
        torch.set_num_threads(threads)
    report = json.loads(out.read_text())
    (row, ) = report['results']
    assert row['scale'] == 3 and row['lr_size'] == [8, 12]
    assert report['machine']['threads'] == 1 and set(report['machine']['cpu']) == {'model', 'flags'}
    for name in ('srconvnet', 'edsr'):
        assert len(row['times_s'][name]) == 2 and min(row['times_s'][name]) > 0
        assert row['peak_memory_bytes'][name] > 0  # measured in a fresh process
    assert row['ratio'] > 0
    times = row['times_s']
    assert row['pair_ratios'] == pytest.approx([a / b for a, b in zip(times['srconvnet'], times['edsr'])])
    printed = capsys.readouterr().out
    assert '| ×3 | 8×12 |' in printed
    assert f"CPU {report['machine']['cpu']['model']} (flags: " in printed  # machines differ: the header says which


def test_operator_breakdown_lists_srconvnets_costliest_operators(bench, tmp_path, capsys):
    threads = torch.get_num_threads()
    out = tmp_path / 'bench.json'
    try:
        bench.main(['--out-size', '16', '24', '--scales', '2', '--runs', '2', '--threads', '1', '--no-memory',
                    '--ops', '4', '--json', str(out)])
    finally:
        torch.set_num_threads(threads)
    (row, ) = json.loads(out.read_text())['results']
    ops = row['ops']
    assert len(ops) == 4
    assert [op['self_ms'] for op in ops] == sorted((op['self_ms'] for op in ops), reverse=True)
    for op in ops:
        assert '::' in op['op'] and op['input_shapes'].startswith('[')  # real operator names, with their inputs
        assert op['calls'] >= 1 and op['self_ms'] > 0 and 0 < op['share'] <= 1
    assert sum(op['share'] for op in ops) <= 1 + 1e-9
    printed = capsys.readouterr().out
    assert '# ×2 SRConvNet by operator (self time, min of 2 profiled passes)' in printed
    assert f'| {ops[0]["op"]} |' in printed


@pytest.mark.parametrize('argv,message', [(['--runs', '0'], '--runs must be at least 1, got 0'),
                                          (['--ops', '-1'], '--ops must be 0 or more, got -1'),
                                          (['--precision', 'fp16'], 'fp16 is for GPUs'),
                                          (['--out-size', '0', '8'], '--out-size must be positive')])
def test_benchmark_script_refuses_bad_options(bench, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_isa_avx2_measures_with_the_instruction_set_capped(bench, tmp_path, capfd):
    """``--isa avx2`` reruns the benchmark in a child process whose torch, oneDNN and MKL are capped at AVX2
    (``--cpu-time``: the child times CPU seconds)."""
    from srconvnet_plugin.measure.benchmark_helpers import cpu_info
    if 'avx2' not in cpu_info()['flags']:
        pytest.skip('the CPU has no AVX2')
    out = tmp_path / 'bench.json'
    bench.main(['--out-size', '12', '16', '--scales', '2', '--runs', '1', '--warmup', '0', '--threads', '1',
                '--no-memory', '--isa', 'avx2', '--cpu-time', '--json', str(out)])
    machine = json.loads(out.read_text())['machine']
    assert machine['cpu_capability'] == 'AVX2'
    assert machine['isa_env'] == {'ATEN_CPU_CAPABILITY': 'avx2', 'ONEDNN_MAX_CPU_ISA': 'AVX2',
                                  'MKL_ENABLE_INSTRUCTIONS': 'AVX2'}
    printed = capfd.readouterr().out
    assert 'torch cpu capability AVX2), instruction set capped (ATEN_CPU_CAPABILITY=avx2 ' in printed
    assert 'default allocator, CPU time' in printed


def test_cpu_time_needs_one_thread(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(['--threads', '2', '--cpu-time'])
    assert '--cpu-time needs --threads 1' in capsys.readouterr().err
