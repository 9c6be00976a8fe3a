"""The ONNX targets: ``portable`` (standard operators: ONNX Runtime, OpenVINO, ...) and ``onnxruntime-cpu``.

The graph takes RGB images ``N×3×H×W``, float32 in [0, 1] (any N, H, W ≥ 1), and returns ``N×3×sH×sW`` in [0, 1]
(not clamped). The one-image graph is wrapped in a ``Scan`` over the batch: each image is computed on its own, as
the network's image-wide steps (the Fourier unit's spectrum, the softmax over all positions, the dynamic convs'
kernels) ask for anyway, and the per-image graph keeps static conv groups.
"""
import contextlib
import io
import os
import warnings

import torch

from srconvnet.export.common import ExportError, metadata, refuse_existing, require, write_bytes
from srconvnet.export.exportable import export_program

#: the opset the graphs are written with (Gelu is an operator from 20 on)
DEFAULT_OPSET = 20


def scan_over_batch(model_proto, input_name='lq', output_name='sr'):
    """The ONNX model that runs ``model_proto``'s one-image graph (one input 1×C×H×W, one output) on every image of
    an N×C×H×W batch ``input_name``, giving ``output_name``: a ``Scan`` whose body is that graph (its initializers
    moved into the body, where ONNX Runtime's optimisations treat them as constants)."""
    import onnx
    from onnx import TensorProto, helper

    graph = model_proto.graph
    (image_input, ), (image_output, ) = graph.input, graph.output
    axis = helper.make_tensor('batch_axis', TensorProto.INT64, [1], [0])
    body = helper.make_graph(
        [helper.make_node('Unsqueeze', ['image', 'batch_axis'], [image_input.name])] + list(graph.node)
        + [helper.make_node('Squeeze', [image_output.name, 'batch_axis'], ['result'])],
        'one_image', [helper.make_tensor_value_info('image', TensorProto.FLOAT, ['channels', 'height', 'width'])],
        [helper.make_tensor_value_info('result', TensorProto.FLOAT, ['out_channels', 'out_height', 'out_width'])],
        [axis] + list(graph.initializer), value_info=list(graph.value_info))
    scan = helper.make_node('Scan', [input_name], [output_name], num_scan_inputs=1, body=body)
    outer = helper.make_graph(
        [scan], graph.name,
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ['batch', 'channels', 'height', 'width'])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT,
                                       ['batch', 'out_channels', 'out_height', 'out_width'])])
    model = helper.make_model(outer, opset_imports=model_proto.opset_import, producer_name=model_proto.producer_name,
                              producer_version=model_proto.producer_version, functions=model_proto.functions)
    model.ir_version = model_proto.ir_version
    onnx.checker.check_model(model)
    return model


def onnx_model(model, target='portable', opset=DEFAULT_OPSET):
    """The ONNX ``ModelProto`` of ``model`` for ``target`` (scale and target in its metadata_props): the one-image
    ``ExportedProgram`` of ``export_program(model, batch=1)`` through torch's torch.export-based ONNX exporter,
    wrapped in ``scan_over_batch``."""
    onnx = require('onnx', 'onnx', target)
    require('onnxscript', 'onnx', target)  # the exporter's ONNX builder
    from onnx import helper

    try:
        program = export_program(model, batch=1)
    except Exception as err:  # torch.export's refusals come as many types; the command line shows one line
        message = (str(err).strip().splitlines() or [''])[0]
        raise ExportError(f'this network cannot be captured by torch.export ({type(err).__name__}: {message})') from err
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter('ignore')  # the exporter's progress lines and notes
        try:
            onnx_program = torch.onnx.export(program, dynamo=True, opset_version=opset, verbose=False)
        except torch.onnx.errors.OnnxExporterError as err:
            message = str(err).strip().splitlines()[0]
            raise ExportError(f'this network cannot be exported to ONNX ({type(err).__name__}: {message})') from None
    graph = scan_over_batch(onnx_program.model_proto)
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
