"""``--target onnxruntime-cpu``: the dynamic depthwise convs run as ONNX Runtime's NCHWc operators, with the same
outputs as the portable graph and PyTorch (any batch, height and width), in every kind of exported graph."""
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper

from conftest import REPO_ROOT
from srconvnet.engine import EngineStepsAside
from srconvnet.export import ExportError, export, main
from srconvnet.export.common import SCALE_KEY, TARGET_KEY
from srconvnet.export.onnxruntime_cpu import NCHWC, for_onnxruntime_cpu
from test_export import check_onnx_runtime, module_forwards, tiny_model


def convs(path):
    """(domain, kernel size, weight computed in the graph?) of every 5×5 / 7×7 Conv, in every subgraph."""
    found = []

    def visit(graph, outer):
        constants = outer | {t.name for t in graph.initializer}
        constants |= {o for n in graph.node if n.op_type == 'Constant' for o in n.output}
        for node in graph.node:
            kernel = [a.ints for a in node.attribute if a.name == 'kernel_shape']
            if node.op_type == 'Conv' and kernel and list(kernel[0]) in ([5, 5], [7, 7]):
                found.append((node.domain or 'ai.onnx', kernel[0][0], node.input[1] not in constants))
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    visit(attribute.g, constants)

    visit(onnx.load(str(path)).graph, set())
    return sorted(found)


@pytest.mark.slow
def test_cli_target_onnxruntime_cpu_rewrites_every_dynamic_conv_and_matches(tmp_path):
    model = tiny_model()  # 2 blocks, a 5×5 and a 7×7 dynamic conv each, 16 channels
    weights = tmp_path / 'net_g_x3.pth'
    torch.save({'params_ema': model.state_dict()}, weights)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    path = tmp_path / 'onnxruntime-cpu.onnx'
    cmd = [sys.executable, '-m', 'srconvnet.export', '--weights', str(weights), str(path), '--target',
           'onnxruntime-cpu']
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ONNX Runtime's CPU provider on x86-64 only" in result.stdout
    assert convs(path) == [(NCHWC, 5, True)] * 2 + [(NCHWC, 7, True)] * 2
    rewritten = onnx.load(str(path))
    assert {p.key: p.value for p in rewritten.metadata_props} == {SCALE_KEY: '3', TARGET_KEY: 'onnxruntime-cpu'}
    assert [n.op_type for n in rewritten.graph.node] == ['Scan']
    check_onnx_runtime(path, model, [(20, 24), (7, 9), (33, 17), (1, 1)])
    # the same numbers without ONNX Runtime's graph optimisations (no constant folding of the block-size probe)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    lq = torch.rand(2, 3, 13, 10)
    (got, ) = ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider']).run(None, {'lq': lq.numpy()})
    assert np.abs(got - module_forwards(model, lq).numpy()).max() < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize('upscale', [2, 4])
def test_target_onnxruntime_cpu_other_scales(tmp_path, upscale):
    model = tiny_model(upscale)
    export(model, tmp_path / 'net.onnx', target='onnxruntime-cpu')
    check_onnx_runtime(tmp_path / 'net.onnx', model, [(11, 6), (1, 3)])


@pytest.mark.slow
def test_target_onnxruntime_cpu_for_a_network_exported_through_its_module_forwards(tmp_path):
    model = tiny_model()
    model.blocks[0].attention = torch.nn.Identity()  # an ablation: the module forwards are exported
    with pytest.warns(EngineStepsAside):
        export(model, tmp_path / 'ablation.onnx', target='onnxruntime-cpu')
    assert convs(tmp_path / 'ablation.onnx') == [(NCHWC, 5, True)] * 2 + [(NCHWC, 7, True)] * 2
    check_onnx_runtime(tmp_path / 'ablation.onnx', model, [(9, 11), (1, 1)])


@pytest.mark.slow
def test_refusals(tmp_path, capsys):
    model = tiny_model()
    with pytest.raises(ExportError, match="unknown export target 'tensorrt'; choose one of portable, onnxruntime-cpu"):
        export(model, tmp_path / 'a.onnx', target='tensorrt')
    # 24 channels do not split into blocks of 16: nothing to rewrite, said in one line, nothing written
    torch.manual_seed(0)
    from srconvnet.archs.srconvnet_arch import SRConvNet
    odd = SRConvNet(num_feat=24, num_block=1, num_heads=4, num_kernels=4, upscale=2).eval()
    weights = tmp_path / 'odd.pth'
    torch.save({'params': odd.state_dict()}, weights)
    with pytest.raises(SystemExit) as exit_info:
        main(['--weights', str(weights), str(tmp_path / 'odd.onnx'), '--target', 'onnxruntime-cpu'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'num_feat must be a multiple of 16' in err and 'Traceback' not in err
    assert not (tmp_path / 'odd.onnx').exists()


def conv_graph(weight_shape, group, constant):
    """A one-Conv model of a 1×Cin×6×7 input ``x`` (3×3, padding 1) whose weight is an initializer or is computed
    in the graph (Identity of the input ``w``)."""
    cin = weight_shape[1] * group
    inputs = [helper.make_tensor_value_info('x', onnx.TensorProto.FLOAT, [1, cin, 6, 7])]
    nodes, initializers = [], []
    if constant:
        initializers.append(helper.make_tensor('kernels', onnx.TensorProto.FLOAT, weight_shape,
                                               [0.1] * int(np.prod(weight_shape))))
    else:
        inputs.append(helper.make_tensor_value_info('w', onnx.TensorProto.FLOAT, weight_shape))
        nodes.append(helper.make_node('Identity', ['w'], ['kernels']))
    nodes.append(helper.make_node('Conv', ['x', 'kernels'], ['y'], group=group, kernel_shape=[3, 3],
                                  pads=[1, 1, 1, 1]))
    graph = helper.make_graph(nodes, 'g', inputs, [helper.make_tensor_value_info('y', onnx.TensorProto.FLOAT, None)],
                              initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])


def test_only_depthwise_convs_with_run_time_kernels_of_a_known_shape_are_rewritten():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 32, 6, 7), dtype=np.float32), rng.standard_normal((32, 1, 3, 3), dtype=np.float32)
    model = for_onnxruntime_cpu(conv_graph([32, 1, 3, 3], 32, constant=False))
    assert [n.domain for n in model.graph.node if n.op_type == 'Conv'] == [NCHWC]
    (y, ) = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider']).run(
        None, {'x': x, 'w': w})
    expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1, groups=32)
    torch.testing.assert_close(torch.from_numpy(y), expected, rtol=1e-5, atol=1e-5)
    # constant kernels are left to ONNX Runtime's own optimiser; a grouped conv with 2 input channels per group is
    # not depthwise
    for shape, group, constant in (([32, 1, 3, 3], 32, True), ([32, 2, 3, 3], 16, False)):
        with pytest.raises(ValueError, match='no depthwise conv with run-time kernels of a known shape'):
            for_onnxruntime_cpu(conv_graph(shape, group, constant))
