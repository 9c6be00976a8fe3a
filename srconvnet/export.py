"""Export a trained SRConvNet to ONNX with dynamic height and width.

Usage::

    python -m srconvnet.export --weights experiments/pretrained_models/SRConvNet_x4.pth srconvnet_x4.onnx

The graph takes one RGB image, ``1×3×H×W`` float32 in [0, 1] (any H, W ≥ 1), and returns ``1×3×sH×sW`` in [0, 1]
(not clamped). The batch is fixed to 1: the dynamic depthwise convolutions fold the batch into conv groups, and ONNX
conv groups are static.

``torch.fft.rfft2``/``irfft2`` have no ONNX export in the TorchScript exporter (and the dynamo exporter needs
``onnxscript``, which this package does not depend on), so for export only every ``FourierUnit`` is replaced by
``MatrixDFTFourierUnit``: the same orthonormal real 2-D DFT written as products with cosine/sine matrices built in
the graph from the input's H and W. It reuses the original unit's ``conv_layer`` weights and matches the FFT version
to float rounding (tested). ``LayerNorm2d`` and ``KernelAggregation`` are swapped too, for versions whose channel
count and kernel shape are constants (the tracer would record them as input-dependent, which ONNX convs reject).
The model used for PyTorch inference is not changed.
"""
import argparse
import copy
import os

import torch
from torch import nn

from srconvnet.archs.srconvnet_arch import FourierUnit, KernelAggregation, LayerNorm2d
from srconvnet.atomic_write import atomic_write
from srconvnet.checkpoints import CheckpointError
from srconvnet.engine.real_dft import dft_matrices

DEFAULT_OPSET = 17  # LayerNormalization needs 17; nothing here needs more


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


def to_exportable(model):
    """Deep copy of ``model`` with its FFT and shape-dependent modules swapped for exportable equivalents.

    ``FourierUnit`` → ``MatrixDFTFourierUnit``; ``LayerNorm2d`` and ``KernelAggregation`` → versions whose channel
    counts and kernel shapes are Python constants (batch of one). Parameters are shared with ``model``'s copy. The
    exporter traces the module forwards (the inference engine never runs while tracing).
    """
    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, FourierUnit):
                setattr(module, child_name, MatrixDFTFourierUnit(child))
            elif isinstance(child, LayerNorm2d):
                setattr(module, child_name, StaticLayerNorm2d(child))
            elif isinstance(child, KernelAggregation):
                setattr(module, child_name, StaticKernelAggregation(child))
    return model


def export_onnx(model, output_path, opset=DEFAULT_OPSET, sample_size=(32, 40), overwrite=False):
    """Write ``model`` (an ``SRConvNet``) as ONNX to ``output_path`` with dynamic H and W; returns the path.

    The file is written with :func:`~srconvnet.atomic_write.atomic_write` (complete or not at all); an
    existing file is replaced only with ``overwrite=True``, and is refused before the (slow) export starts.
    """
    output_path = os.fspath(output_path)
    if os.path.exists(output_path) and not overwrite:
        raise FileExistsError(f'{output_path} exists; pass --overwrite to replace it')
    exportable = to_exportable(model).float().eval().cpu()
    sample = torch.rand(1, exportable.to_feat.in_channels, *sample_size)

    def write(tmp_path):
        with torch.inference_mode():
            torch.onnx.export(
                exportable, (sample, ),
                tmp_path,
                dynamo=False,  # the TorchScript exporter: no onnxscript dependency
                opset_version=opset,
                input_names=['lq'],
                output_names=['sr'],
                dynamic_axes={
                    'lq': {
                        2: 'height',
                        3: 'width'
                    },
                    'sr': {
                        2: 'out_height',
                        3: 'out_width'
                    }
                })

    atomic_write(output_path, write, overwrite=overwrite)
    return output_path


def main(argv=None):
    """Console entry point: ``python -m srconvnet.export --weights W out.onnx``."""
    import warnings

    from srconvnet.infer import load_model

    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('output', help='ONNX file to write')
    parser.add_argument('--weights', required=True, help="BasicSR checkpoint, .safetensors or the authors' checkpoint")
    parser.add_argument('--scale', default='auto', help='expected scale; "auto" reads it from the checkpoint')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET, help=f'ONNX opset (default {DEFAULT_OPSET})')
    parser.add_argument('--overwrite', action='store_true', help='replace OUTPUT if it exists')
    args = parser.parse_args(argv)
    try:
        model, config = load_model(args.weights, scale=args.scale, device='cpu')
        with warnings.catch_warnings():
            # the TorchScript exporter warns about itself being deprecated and about traced shape arithmetic
            warnings.simplefilter('ignore')
            export_onnx(model, args.output, opset=args.opset, overwrite=args.overwrite)
    except (CheckpointError, FileExistsError, ValueError) as err:
        parser.exit(2, f'error: {err}\n')
    print(f'wrote {args.output}: SRConvNet x{config["upscale"]}, input "lq" 1x3xHxW in [0,1], output "sr", '
          f'opset {args.opset}')


if __name__ == '__main__':
    main()
