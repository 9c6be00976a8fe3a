"""The ONNX targets: ``portable`` (standard operators: ONNX Runtime, OpenVINO, ...) and ``onnxruntime-cpu``.

The graph takes RGB images ``N×3×H×W``, float32 in [0, 1] (any N, H, W ≥ 1), and returns ``N×3×sH×sW`` in [0, 1]
(not clamped). The one-image graph is wrapped in a ``Scan`` over the batch: each image is computed on its own, as
the network's image-wide steps (the Fourier unit's spectrum, the softmax over all positions, the dynamic convs'
kernels) ask for anyway, and the per-image graph keeps static conv groups.
"""
import io
import os
import warnings

import torch

from srconvnet.export.common import ExportError, metadata, refuse_existing, require, write_bytes
from srconvnet.export.exportable import exportable_form

DEFAULT_OPSET = 17


def scan_over_batch(model_proto, input_name='lq', output_name='sr'):
    """The ONNX model that runs ``model_proto``'s one-image graph (input ``sample_<input_name>`` 1×C×H×W, output
    ``sample_<output_name>``) on every image of an N×C×H×W batch: a ``Scan`` whose body is that graph (its
    initializers moved into the body, where ONNX Runtime's optimisations treat them as constants)."""
    import onnx
    from onnx import TensorProto, helper

    graph = model_proto.graph
    axis = helper.make_tensor('batch_axis', TensorProto.INT64, [1], [0])
    body = helper.make_graph(
        [helper.make_node('Unsqueeze', ['image', 'batch_axis'], [f'sample_{input_name}'])] + list(graph.node)
        + [helper.make_node('Squeeze', [f'sample_{output_name}', 'batch_axis'], ['result'])],
        'one_image', [helper.make_tensor_value_info('image', TensorProto.FLOAT, ['channels', 'height', 'width'])],
        [helper.make_tensor_value_info('result', TensorProto.FLOAT, ['out_channels', 'out_height', 'out_width'])],
        [axis] + list(graph.initializer))
    scan = helper.make_node('Scan', [input_name], [output_name], num_scan_inputs=1, body=body)
    outer = helper.make_graph(
        [scan], graph.name,
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ['batch', 'channels', 'height', 'width'])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT,
                                       ['batch', 'out_channels', 'out_height', 'out_width'])])
    model = helper.make_model(outer, opset_imports=model_proto.opset_import, producer_name=model_proto.producer_name,
                              producer_version=model_proto.producer_version)
    model.ir_version = model_proto.ir_version
    onnx.checker.check_model(model)
    return model


def onnx_model(model, target='portable', opset=DEFAULT_OPSET, sample_size=(32, 40)):
    """The ONNX ``ModelProto`` of ``model`` for ``target`` (scale and target in its metadata_props)."""
    onnx = require('onnx', 'onnx', target)
    from onnx import helper

    form = exportable_form(model)
    sample = torch.rand(1, model.to_feat.in_channels, *sample_size)
    buffer = io.BytesIO()
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            torch.onnx.export(
                form, (sample, ), buffer, dynamo=False, opset_version=opset, input_names=['sample_lq'],
                output_names=['sample_sr'],
                dynamic_axes={'sample_lq': {2: 'height', 3: 'width'}, 'sample_sr': {2: 'out_height', 3: 'out_width'}})
        except torch.onnx.errors.OnnxExporterError as err:
            message = str(err).strip().splitlines()[0]
            raise ExportError(f'this network cannot be exported to ONNX ({type(err).__name__}: {message})') from None
    graph = scan_over_batch(onnx.load_from_string(buffer.getvalue()))
    if target == 'onnxruntime-cpu':
        from srconvnet.export.onnxruntime_cpu import for_onnxruntime_cpu
        graph = for_onnxruntime_cpu(graph)
    helper.set_model_props(graph, metadata(model, target))
    return graph


def _write(model, output_path, target, input_size, overwrite, opset):
    output_path = os.fspath(output_path)
    refuse_existing(output_path, overwrite)
    if input_size is not None:
        raise ExportError(f'the {target} graph takes any input size; --input-size is for fixed-size targets')
    return write_bytes(output_path, onnx_model(model, target, opset).SerializeToString(), overwrite)


def write_portable(model, output_path, *, input_size=None, overwrite=False, opset=DEFAULT_OPSET):
    """ONNX with standard operators (ONNX Runtime, OpenVINO, any ONNX runtime); dynamic batch, height and width."""
    return _write(model, output_path, 'portable', input_size, overwrite, opset)


def write_onnxruntime_cpu(model, output_path, *, input_size=None, overwrite=False, opset=DEFAULT_OPSET):
    """ONNX for ONNX Runtime's CPU provider on x86-64 only (its NCHWc operators: faster there, loads nowhere
    else); dynamic batch, height and width."""
    return _write(model, output_path, 'onnxruntime-cpu', input_size, overwrite, opset)
