"""The exportable form of SRConvNet: real arithmetic only, captured by ``torch.export.export`` with dynamic sizes.

(Interim version: the module swaps of the former TorchScript export, batch 1; being replaced by the one exportable
form described in issue 29. The API below stays.)
"""
import copy

import torch
from torch import nn

from srconvnet.archs.srconvnet_arch import FourierUnit, KernelAggregation, LayerNorm2d
from srconvnet.engine import guard
from srconvnet.engine.real_dft import dft_matrices

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



def exportable_form(model):
    """The module ``torch.export`` captures for ``model`` (an ``SRConvNet``): float32, CPU, eval mode; input
    N×C×H×W in [0, 1], output N×C×sH×sW. ``model`` itself is not changed."""
    return to_exportable(model).float().cpu().eval()


def export_program(model, input_size=(32, 40), dynamic=True, batch=1):
    """``torch.export.export`` of ``exportable_form(model)`` on a ``batch``×C×``input_size`` sample: with
    ``dynamic``, height and width are dynamic (``torch.export.Dim``); ``batch=None`` makes the batch dynamic too."""
    form = exportable_form(model)
    h, w = input_size
    sample = torch.rand(batch or 2, model.to_feat.in_channels, h, w)
    dims = {}
    if batch is None:
        dims[0] = torch.export.Dim('batch', min=1, max=1024)
    if dynamic:
        dims[2] = torch.export.Dim('height', min=1, max=8192)
        dims[3] = torch.export.Dim('width', min=1, max=8192)
    with torch.no_grad():
        return torch.export.export(form, (sample, ), dynamic_shapes={'x': dims} if dims else None)
