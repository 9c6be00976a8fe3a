"""spandrel's lightweight archs beside SRConvNet and BasicSR's, each network built once, alternating timing, and the
comparison without spandrel."""
import functools
import json
import statistics
import subprocess
from collections import Counter

import pytest
import spandrel.architectures.SAFMN
import torch

from basicsr.utils.registry import ARCH_REGISTRY
from helpers import plugin_env, python_cmd
from srconvnet_plugin.compare import (SPANDREL_PRESETS, ArchSpec, build, main, resolve_archs, time_alternating)
from srconvnet_plugin.compare.measure import relative_times

pytestmark = pytest.mark.usefixtures('one_thread')  # see tests/conftest.py

TINY = 'type=SRConvNet,num_feat=16,num_block=1,num_heads=4,num_kernels=4'
TINY_SAFMN = 'type=spandrel.SAFMN,dim=8,n_blocks=1'


@pytest.fixture
def constructed(monkeypatch):
    """Counts of real constructor calls: the registry entries of SRConvNet, EDSR and ECBSR and spandrel's SAFMN
    class are wrapped (each wrapper calls the real class)."""
    calls = Counter()

    def counting(name, cls):
        @functools.wraps(cls)
        def make(*args, **kwargs):
            calls[name] += 1
            return cls(*args, **kwargs)

        return make

    for name in ('SRConvNet', 'EDSR', 'ECBSR'):
        monkeypatch.setitem(ARCH_REGISTRY._obj_map, name, counting(name, ARCH_REGISTRY.get(name)))
    monkeypatch.setattr(spandrel.architectures.SAFMN, 'SAFMN', counting('SAFMN', spandrel.architectures.SAFMN.SAFMN))
    return calls


def test_spandrel_preset_beside_srconvnet_and_a_basicsr_arch(tmp_path, capsys, constructed):
    out_dir = tmp_path / 'cmp'
    main(['--scale', '4', '--archs', 'SAFMN', 'SRConvNet', 'EDSR-baseline', '--input-size', '12x20', '--runs', '3',
          '--warmup', '1', '--no-memory', '--out-dir', str(out_dir)])
    assert constructed == {'SAFMN': 1, 'SRConvNet': 1, 'EDSR': 1}  # each network built once, for every measurement
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith('| ')]
    assert '| Time vs SRConvNet |' in table[0]
    assert [line.split(' | ')[0] for line in table[1:]] == ['| SAFMN', '| SRConvNet', '| EDSR-baseline']
    assert "input padded 12×20→16×24 (reflect, multiple of 8, spandrel's size requirement)" in table[1]

    report = json.loads((out_dir / 'compare.json').read_text())
    rows = {r['arch']: r for r in report['rows']}
    safmn = rows['SAFMN']
    assert safmn['type'] == 'spandrel.SAFMN' and safmn['options']['upscaling_factor'] == 4
    assert safmn['traced_input'] == '16x24' and safmn['output'] == '48x80'
    options = {k: v for k, v in safmn['options'].items() if k != 'type'}
    reference = spandrel.architectures.SAFMN.SAFMN.__wrapped__(**options)  # spandrel's class, built by the test
    assert safmn['params'] == sum(p.numel() for p in reference.parameters()) == 239_520
    assert rows['SRConvNet']['params'] == 1_007_491 and rows['EDSR-baseline']['params'] == 1_517_571
    assert safmn['params'] < rows['SRConvNet']['params'] < rows['EDSR-baseline']['params']
    for row in rows.values():
        assert row['macs'] > 0 and row['params_thop'] > 0
        assert row['runs'] == 3 and len(row['times_ms']) == 3 and min(row['times_ms']) > 0
        assert 0 < row['latency_min_ms'] <= row['latency_median_ms'] <= row['latency_max_ms']
        assert row['relative_to'] == 'SRConvNet'
    # the relative time: the median over the rounds of the time ratio of that round
    srconvnet_times = rows['SRConvNet']['times_ms']
    for row in rows.values():
        ratios = [own / ref for own, ref in zip(row['times_ms'], srconvnet_times)]
        assert row['latency_relative'] == pytest.approx(statistics.median(ratios))
    assert rows['SRConvNet']['latency_relative'] == 1.0
    # SAFMN's MACs at its padded size: 8 blocks of 36 channels do far fewer than EDSR's 16 blocks of 64
    assert safmn['macs'] < rows['EDSR-baseline']['macs']
    assert report['meta']['timing'] == 'alternating rounds' and report['meta']['relative_to'] == 'SRConvNet'


def test_each_network_is_built_once_per_scale(tmp_path, capsys, constructed):
    main(['--scale', '2', '4', '--archs', '--arch-opt', 'tiny', TINY, '--arch-opt', 'safmn', TINY_SAFMN,
          '--relative-to', 'safmn', '--input-size', '8', '--runs', '1', '--warmup', '0', '--no-memory', '--out-dir',
          str(tmp_path)])
    assert constructed == {'SRConvNet': 2, 'SAFMN': 2}
    rows = json.loads((tmp_path / 'compare.json').read_text())['rows']
    assert [(r['arch'], r['scale']) for r in rows] == [(n, s) for s in (2, 4) for n in ('tiny', 'safmn')]
    assert {r['relative_to'] for r in rows} == {'safmn'}
    assert '| Time vs safmn |' in capsys.readouterr().out


def test_rounds_alternate_between_the_networks():
    specs = resolve_archs([], [('tiny', TINY), ('safmn', TINY_SAFMN)])
    networks = [build(spec, 2) for spec in specs]
    order = []
    for network in networks:
        network.model.register_forward_pre_hook(lambda module, args, name=network.spec.name: order.append(name))
    inputs = [torch.rand(1, 3, 8, 8) for _ in networks]
    rounds = []
    times = time_alternating(networks, inputs, runs=3, warmup=2, progress=lambda: rounds.append(len(order)))
    assert order == ['tiny', 'safmn'] * 5
    assert rounds == [2, 4, 6, 8, 10]
    assert [len(t) for t in times] == [3, 3] and min(min(t) for t in times) > 0
    relative = relative_times(times, 1)
    assert relative[1] == 1.0
    assert relative[0] == pytest.approx(statistics.median(a / b for a, b in zip(*times)))


def test_a_spandrel_arch_that_is_not_there_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(['--archs', '--arch-opt', 'x', 'type=spandrel.NoSuchNet', '--out-dir', str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "type 'spandrel.NoSuchNet': spandrel has no arch class NoSuchNet; its archs:" in err and 'SAFMN' in err
    # a spandrel class whose scale argument is 'upscale' gets it set, as BasicSR archs do
    span = build(ArchSpec('s', {'type': 'spandrel.SPAN', 'num_in_ch': 3, 'num_out_ch': 3}, 'arch-opt'), 2)
    assert span.opt['upscale'] == 2 and span.model(torch.rand(1, 3, 5, 7)).shape == (1, 3, 10, 14)


@pytest.mark.slow  # a fresh interpreter
def test_without_spandrel_its_presets_are_unavailable_in_one_line(tmp_path):
    """A fresh interpreter where ``import spandrel`` fails: help lists the presets as unavailable, naming them
    is one error line with exit code 2, and BasicSR's presets are still there."""
    code = ("import sys; sys.modules['spandrel'] = None\n"
            "from srconvnet_plugin.compare import available_archs, build_parser, main\n"
            "print('AVAILABLE', ' '.join(available_archs()))\n"
            "print(build_parser().format_help())\n"
            "main(sys.argv[1:])\n")
    proc = subprocess.run(python_cmd('-c', code, '--archs', 'SRConvNet', 'SAFMN', '--out-dir', tmp_path / 'cmp'),
                          capture_output=True, text=True, env=plugin_env(), timeout=300)
    line = (f"spandrel presets ({', '.join(SPANDREL_PRESETS)}) unavailable: spandrel is not installed; "
            "pip install 'srconvnet-plugin[spandrel]'")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == f'error: SAFMN: {line}'
    assert 'Traceback' not in proc.stderr
    available = next(ln for ln in proc.stdout.splitlines() if ln.startswith('AVAILABLE')).split()[1:]
    assert 'EDSR-baseline' in available and 'SRConvNet' in available and 'SAFMN' not in available
    assert line in ' '.join(proc.stdout.split())  # the help's epilog, re-wrapped by argparse
    assert not (tmp_path / 'cmp').exists()
