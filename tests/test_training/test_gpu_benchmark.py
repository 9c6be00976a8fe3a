"""scripts/gpu_benchmark.py in its CPU dry-run mode (the GPU numbers come from scripts/gpu_check.sh on a GPU), and
its grouped form of the dynamic convs against the module forward."""
import json

import pytest
import torch

from training_helpers import import_script


@pytest.fixture(scope='module')
def bench():
    return import_script('gpu_benchmark')


@pytest.mark.slow
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
    dynconv = {(r['form'], r['precision'], r['compile']) for r in rows if r['kind'] == 'dynconv'}
    assert dynconv == {(form, p, False) for form in ('per-sample', 'grouped') for p in ('fp32', 'bf16')} | {
        (form, 'fp32', True) for form in ('per-sample', 'grouped')}
    assert {r['compile'] for r in rows if r.get('dynconv') == 'grouped'} == {False, True}
    table = (tmp_path / 'gpu_benchmark.md').read_text()
    assert '| srconvnet | bf16-channels-last | yes | ' in table and '| edsr | bf16 | ' in table
    assert '| srconvnet (grouped dynamic convs) | fp32 | yes | ' in table
    assert '| grouped | bf16 | no | ' in table and '| per-sample | fp32 | yes | ' in table
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


def test_grouped_dynamic_conv_equals_the_module_forward_and_its_gradients(bench):
    """The authors' form (batch folded into the conv groups), from the module's own parameters, computes the module
    forward's output and gradients, here in float64 on a channels-last batch with perturbed biases."""
    from srconvnet.archs.srconvnet_arch import DynamicConv
    torch.manual_seed(0)
    results = []
    for form in ('per-sample', 'grouped'):
        torch.manual_seed(1)
        conv = DynamicConv(16, 5, 4).double()
        with torch.no_grad():
            conv.aggregation.bias.normal_()
        x = torch.randn(3, 16, 7, 9, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        out = conv(x) if form == 'per-sample' else bench.dynamic_conv_grouped(conv, x)
        out.square().sum().backward()
        results.append([out.detach(), x.grad] + [p.grad for p in conv.parameters()])
    for module_forward, grouped in zip(*results):
        assert (module_forward - grouped).abs().max().item() < 1e-10


def test_whole_network_with_grouped_dynamic_convs_equals_the_module_forwards(bench):
    from srconvnet.archs.srconvnet_arch import SRConvNet
    torch.manual_seed(0)
    model = SRConvNet(num_feat=16, num_block=1, num_heads=4, num_kernels=4, upscale=2).double()
    x = torch.rand(2, 3, 6, 5, dtype=torch.float64)
    with torch.enable_grad():
        expected = model(x)
        out = bench.use_grouped_dynamic_convs(model)(x)
    assert (out - expected).abs().max().item() < 1e-10
