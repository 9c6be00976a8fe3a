"""Export a trained SRConvNet to ONNX with dynamic batch, height and width.

Usage::

    python -m srconvnet.export --weights experiments/pretrained_models/SRConvNet_x4.pth srconvnet_x4.onnx

The graph takes RGB images ``N×3×H×W``, float32 in [0, 1] (any N, H, W ≥ 1), and returns ``N×3×sH×sW`` in
[0, 1] (not clamped). It is traced from one image (batch 1) and wrapped in a ``Scan`` over the batch: each image is
computed on its own, as the network's image-wide steps (the Fourier unit's spectrum, the softmax over all positions,
the dynamic convs' kernels) ask for anyway, and the per-image graph keeps static conv groups.

For the stock network (``srconvnet.engine.guard.first_difference(model) is None``) the traced module is
``srconvnet.engine.onnx_net.OnnxSRConvNet``: the same numbers, written for ONNX Runtime (every 2-D DFT as matrix
products with a factorisation chosen in the graph from the input's size; see that module). Any other network (an
ablation, an edited module) is traced through its module forwards after an ``EngineStepsAside`` warning, with the
stock ``FourierUnit``, ``LayerNorm2d`` and ``KernelAggregation`` swapped by ``to_exportable`` for exportable
equivalents (``torch.fft`` has no export in the TorchScript exporter): ``MatrixDFTFourierUnit`` computes the same
orthonormal real 2-D DFT as products with dense cosine/sine matrices built in the graph from H and W (slower:
O(H·W·(H+W)) per channel). Modules that are not exactly the stock ones are traced as they are. The model used for
PyTorch inference is not changed.
"""
import argparse
import copy
import io
import os
import warnings

import torch
from torch import nn

from srconvnet.archs.srconvnet_arch import FourierUnit, KernelAggregation, LayerNorm2d
from srconvnet.atomic_write import atomic_write
from srconvnet.checkpoints import CheckpointError
from srconvnet.engine import guard
from srconvnet.engine.guard import EngineStepsAside, first_difference
from srconvnet.engine.onnx_net import OnnxSRConvNet
from srconvnet.engine.real_dft import dft_matrices
from srconvnet.onnxruntime_cpu import TARGET, for_onnxruntime_cpu

DEFAULT_OPSET = 17  # LayerNormalization (module-forward graphs) needs 17; nothing here needs more


class MatrixDFTFourierUnit(nn.Module):
    """``FourierUnit`` with the orthonormal ``rfft2``/``irfft2`` pair written as matrix products (exportable).

    Forward: ``Y = F_H · x · F_W`` with ``F = cos - i·sin`` (one-sided along W), scaled by ``1/sqrt(HW)``; the
    interleaved 1×1 conv and GELU as in ``FourierUnit``; inverse: a complex inverse DFT along H, then the one-sided
    complex-to-real inverse along W with weights 1, 2, ..., 2, (1 if W is even). Like ``irfft2``, it ignores the
    imaginary part of the W-frequency 0 and W/2 columns (their sine rows are zero).
    """

    def __init__(self, unit):
        super().__init__()
        self.conv_layer = unit.conv_layer  # shared with the original unit, not copied
        self.act = unit.act

    def forward(self, x):
        b, c, h, w = x.shape
        wf = w // 2 + 1
        in_dtype = x.dtype
        if in_dtype not in (torch.float32, torch.float64):
            x = x.float()
        cos_h, sin_h = dft_matrices(h, h, x.dtype, x.device)  # symmetric H×H
        cos_w, sin_w = dft_matrices(w, wf, x.dtype, x.device)  # W×Wf
        scale = 1.0 / torch.sqrt((h * w) * torch.ones((), dtype=x.dtype, device=x.device))
        # forward DFT along W (real input), then along H
        a_re, a_im = x @ cos_w, -(x @ sin_w)
        y_re = (cos_h @ a_re + sin_h @ a_im) * scale
        y_im = (cos_h @ a_im - sin_h @ a_re) * scale
        # channel 2c = Re(Y_c), channel 2c+1 = Im(Y_c), as in FourierUnit
        spec = torch.stack((y_re, y_im), dim=2).reshape(b, 2 * c, h, wf)
        spec = self.act(nn.functional.conv2d(spec, self.conv_layer.weight.to(spec.dtype)))
        spec = spec.reshape(b, c, 2, h, wf)
        z_re, z_im = spec[:, :, 0], spec[:, :, 1]
        # inverse complex DFT along H
        u_re = cos_h @ z_re - sin_h @ z_im
        u_im = cos_h @ z_im + sin_h @ z_re
        # one-sided complex-to-real inverse along W: column weights 1 (k = 0 and k = W/2), 2 otherwise
        k = torch.arange(wf, device=x.device)
        weight = torch.where((k == 0) | (2 * k == w), 1.0, 2.0).to(x.dtype)
        out = (u_re * weight) @ cos_w.transpose(0, 1) - (u_im * weight) @ sin_w.transpose(0, 1)
        return out * scale


class StaticLayerNorm2d(nn.Module):
    """``LayerNorm2d`` with its channel count fixed at build time (the tracer would record ``x.shape[1]``)."""

    def __init__(self, norm):
        super().__init__()
        self.weight = norm.weight
        self.bias = norm.bias
        self.eps = norm.eps
        self.num_channels = int(norm.weight.shape[0])

    def forward(self, x):
        y = nn.functional.layer_norm(x.permute(0, 2, 3, 1), (self.num_channels, ), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class StaticKernelAggregation(nn.Module):
    """``KernelAggregation`` for a batch of one with static kernel shapes (ONNX conv kernels need known shapes)."""

    def __init__(self, aggregation):
        super().__init__()
        self.weight = aggregation.weight
        self.bias = aggregation.bias
        self.num_feat = int(aggregation.weight.shape[1])
        self.kernel_size = int(aggregation.weight.shape[-1])

    def forward(self, x, attention):
        c, k = self.num_feat, self.kernel_size
        weight = (attention @ self.weight.flatten(1)).view(c, 1, k, k).to(x.dtype)
        bias = (attention @ self.bias).view(c).to(x.dtype)
        # a plain NCHW input: the tracer records one conv per kernel bank
        return nn.functional.conv2d(x.contiguous(), weight, bias, padding=k // 2, groups=c)


_SWAPS = {FourierUnit: MatrixDFTFourierUnit, LayerNorm2d: StaticLayerNorm2d, KernelAggregation: StaticKernelAggregation}


def _is_stock(module):
    """Whether ``module`` is exactly a stock module of its class: same class (no subclass), no forward or hook set
    on it, the class's code unchanged (``guard.FINGERPRINTS``): what a swap may stand in for."""
    cls = type(module)
    return (cls in _SWAPS and 'forward' not in vars(module) and not module._forward_hooks
            and not module._forward_pre_hooks
            and guard.fingerprints()[cls.__name__] == guard.FINGERPRINTS[cls.__name__])


def to_exportable(model):
    """Deep copy of ``model`` with its stock FFT and shape-dependent modules swapped for exportable equivalents.

    ``FourierUnit`` → ``MatrixDFTFourierUnit``; ``LayerNorm2d`` and ``KernelAggregation`` → versions whose channel
    counts and kernel shapes are Python constants (batch of one). Only modules that are exactly the stock ones are
    swapped (``_is_stock``); any other module is traced through its own forward. Parameters are shared with
    ``model``'s copy. The exporter traces the module forwards (the inference engine never runs while tracing).
    """
    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if _is_stock(child):
                setattr(module, child_name, _SWAPS[type(child)](child))
    return model


def traced_module(model):
    """The module the export traces for ``model``: ``OnnxSRConvNet`` for the stock network, else (after an
    ``EngineStepsAside`` warning naming the difference) ``to_exportable(model)``."""
    difference = first_difference(model)
    if difference is None:
        return OnnxSRConvNet(model).float().cpu()
    warnings.warn(f'srconvnet.export: {difference}; the ONNX graph is traced from this network\'s module forwards '
                  '(dense DFT matrices: several times slower in ONNX Runtime than the stock network\'s graph)',
                  EngineStepsAside, stacklevel=3)
    return to_exportable(model).float().cpu()


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


TARGETS = ('portable', TARGET)


def export_onnx(model, output_path, opset=DEFAULT_OPSET, sample_size=(32, 40), overwrite=False, target='portable'):
    """Write ``model`` (an ``SRConvNet``) as ONNX to ``output_path`` with dynamic batch, H and W; returns the path.

    Traces ``traced_module(model)`` on one image of ``sample_size`` and wraps it in ``scan_over_batch``; with
    ``target='onnxruntime-cpu'`` the graph is then rewritten by ``srconvnet.onnxruntime_cpu.for_onnxruntime_cpu``
    (faster in ONNX Runtime's CPU provider on x86-64, loads nowhere else). The file is
    written with :func:`~srconvnet.atomic_write.atomic_write` (complete or not at all); an existing file is replaced
    only with ``overwrite=True``, and is refused before the (slow) export starts.
    """
    try:
        import onnx
    except ImportError:
        raise ValueError("the ONNX export needs the onnx package: pip install 'srconvnet-plugin[onnx]'") from None

    if target not in TARGETS:
        raise ValueError(f'unknown ONNX target {target!r}; choose one of {", ".join(TARGETS)}')
    output_path = os.fspath(output_path)
    if os.path.exists(output_path) and not overwrite:
        raise FileExistsError(f'{output_path} exists; pass --overwrite to replace it')
    traced = traced_module(model).eval()
    sample = torch.rand(1, model.to_feat.in_channels, *sample_size)
    buffer = io.BytesIO()
    with torch.inference_mode(), warnings.catch_warnings():
        # the TorchScript exporter warns about itself being deprecated and about traced shape arithmetic
        warnings.simplefilter('ignore')
        try:
            torch.onnx.export(
                traced, (sample, ),
                buffer,
                dynamo=False,  # the TorchScript exporter: no onnxscript dependency
                opset_version=opset,
                input_names=['sample_lq'],
                output_names=['sample_sr'],
                dynamic_axes={'sample_lq': {2: 'height', 3: 'width'}, 'sample_sr': {2: 'out_height', 3: 'out_width'}})
        except torch.onnx.errors.OnnxExporterError as err:  # e.g. an edited module whose forward uses torch.fft
            message = str(err).strip().splitlines()[0]
            raise ValueError(f'this network cannot be exported to ONNX ({type(err).__name__}: {message})') from None
    graph = scan_over_batch(onnx.load_from_string(buffer.getvalue()))
    if target == TARGET:
        graph = for_onnxruntime_cpu(graph)
    data = graph.SerializeToString()
    atomic_write(output_path, data, overwrite=overwrite)
    return output_path


def main(argv=None):
    """Console entry point: ``python -m srconvnet.export --weights W out.onnx``."""
    from srconvnet.infer import load_model

    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('output', help='ONNX file to write')
    parser.add_argument('--weights', required=True, help="BasicSR checkpoint, .safetensors or the authors' checkpoint")
    parser.add_argument('--scale', default='auto', help='expected scale; "auto" reads it from the checkpoint')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET, help=f'ONNX opset (default {DEFAULT_OPSET})')
    parser.add_argument('--overwrite', action='store_true', help='replace OUTPUT if it exists')
    parser.add_argument('--target', choices=TARGETS, default='portable',
                        help='"portable" (default): standard ONNX operators, for any runtime; "onnxruntime-cpu": '
                        "faster in ONNX Runtime's CPU provider on x86-64 (its NCHWc operators), loads nowhere else")
    args = parser.parse_args(argv)
    try:
        model, config = load_model(args.weights, scale=args.scale, device='cpu')
        export_onnx(model, args.output, opset=args.opset, overwrite=args.overwrite, target=args.target)
    except (CheckpointError, FileExistsError, ValueError) as err:
        parser.exit(2, f'error: {err}\n')
    print(f'wrote {args.output}: SRConvNet x{config["upscale"]}, input "lq" Nx3xHxW in [0,1], output "sr", '
          f'opset {args.opset}' + (", for ONNX Runtime's CPU provider only" if args.target == TARGET else ''))


if __name__ == '__main__':
    main()
