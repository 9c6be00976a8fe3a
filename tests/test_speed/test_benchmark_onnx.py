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
    for name in ('pytorch', 'onnxruntime', 'onnxruntime_constant_kernels'):
        assert len(times[name]) == 2 and min(times[name]) > 0
    assert row['constant_kernels_ratio'] == pytest.approx(
        statistics.median(times['onnxruntime_constant_kernels']) / statistics.median(times['pytorch']))
    printed = capsys.readouterr().out
    assert '| ×3 | 8×12 |' in printed
    assert f"| {row['constant_kernels_ratio']:.2f} |" in printed
    assert f"CPU {report['machine']['cpu']['model']} (flags: " in printed and 'onnxruntime ' in printed


def test_constant_dynamic_kernels_export_constant_depthwise_weights_and_restore_the_export(tmp_path):
    """Within the context manager the depthwise convs of the DMLs take initializers (constant kernels, which ONNX
    Runtime runs through its NCHWc kernels); outside, their kernels are computed in the graph, as before."""
    onnx = pytest.importorskip('onnx')
    sys.path.insert(0, str(REPO_ROOT / 'scripts'))
    try:
        bench = importlib.import_module('benchmark_onnx')
    finally:
        sys.path.remove(str(REPO_ROOT / 'scripts'))
    from srconvnet.archs.srconvnet_arch import SRConvNet
    from srconvnet.export import export_onnx

    model = SRConvNet(upscale=2, num_block=2).eval()

    def depthwise_weights(path):
        """(kernel size, whether the weight is an initializer) of each 5x5 / 7x7 Conv, in every subgraph."""
        found = []

        def visit(graph):
            constants = {t.name for t in graph.initializer}
            constants |= {o for n in graph.node if n.op_type == 'Constant' for o in n.output}
            for node in graph.node:
                kernel = [a.ints for a in node.attribute if a.name == 'kernel_shape']
                if node.op_type == 'Conv' and kernel and list(kernel[0]) in ([5, 5], [7, 7]):
                    found.append((kernel[0][0], node.input[1] in constants))
                for attribute in node.attribute:
                    if attribute.type == onnx.AttributeProto.GRAPH:
                        visit(attribute.g)

        visit(onnx.load(str(path)).graph)
        return sorted(found)

    with bench.constant_dynamic_kernels():
        constant = export_onnx(model, tmp_path / 'constant.onnx')
    exported = export_onnx(model, tmp_path / 'exported.onnx')
    assert depthwise_weights(constant) == [(5, True), (5, True), (7, True), (7, True)]
    assert depthwise_weights(exported) == [(5, False), (5, False), (7, False), (7, False)]
