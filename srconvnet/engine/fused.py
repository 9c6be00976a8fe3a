"""In-place CPU kernels of the engine: oneDNN's fused ones where a capability probe finds them, else public ops.

The fused kernels are the ones torch.compile's CPU backend emits (``torch.ops.mkldnn._linear_pointwise`` and
``_convolution_pointwise``): the same product, bias, exact GELU and residual add in one pass over memory. They are
private to torch, so they are used only after ``probe()`` has run each of them once on tiny tensors and found the
public ops' result, and only for float32 (they have no float64 kernels). Setting ``USE_FUSED = False`` forces the
public ops everywhere (the tests run both).
"""
import functools

import torch
import torch.nn.functional as F

USE_FUSED = True


def nhwc(x):
    """B×H×W×C contiguous view (free for channels-last tensors) of a B×C×H×W tensor."""
    return x.permute(0, 2, 3, 1).contiguous()


def nchw(x):
    """B×C×H×W view (channels-last strides) of a contiguous B×H×W×C tensor."""
    return x.permute(0, 3, 1, 2)


def fused(*tensors):
    """Whether the fused kernels may take these tensors: float32 on CPU, oneDNN enabled, the probe passed."""
    return (USE_FUSED and all(t.dtype == torch.float32 and t.device.type == 'cpu' for t in tensors)
            and torch.backends.mkldnn.enabled and probe())


@functools.lru_cache(maxsize=1)
def probe():
    """Whether every fused kernel used here exists and matches the public ops on tiny float32 tensors."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, '_linear_pointwise')):
        return False
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 4, 8, generator=gen)
    weight, bias = torch.randn(5, 8, generator=gen), torch.randn(5, generator=gen)
    other = torch.randn(1, 3, 4, 5, generator=gen)
    kernel = torch.randn(8, 1, 3, 3, generator=gen)
    square, acc = torch.randn(8, 8, generator=gen), torch.randn(1, 3, 4, 8, generator=gen)
    try:
        with torch.inference_mode():
            checks = [(_fused_linear(x, weight, bias, gelu=True), F.gelu(F.linear(x, weight, bias))),
                      (_fused_linear(x, weight, bias, add=other), F.linear(x, weight, bias) + other),
                      (_fused_linear(x, weight, bias, mul=other), F.linear(x, weight, bias) * other),
                      (_fused_depthwise(nchw(x), kernel, bias.new_ones(8), [1, 1], gelu=True),
                       F.gelu(F.conv2d(nchw(x), kernel, bias.new_ones(8), padding=1, groups=8)))]
            expected = acc + F.linear(x, square)
            _fused_add_conv_(acc, x, square[:, :, None, None], None, [0, 0], 1)
            checks.append((acc, expected))
            return all(a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-4) for a, b in checks)
    except (RuntimeError, TypeError, AttributeError):
        return False


def _fused_linear(x, weight, bias, gelu=False, add=None, mul=None):
    weight = weight.contiguous()  # oneDNN is very slow with a strided weight (it reorders it on every call)
    if add is not None or mul is not None:
        other, op = (add, 'add') if add is not None else (mul, 'mul')
        return torch.ops.mkldnn._linear_pointwise.binary(x, other, weight, bias, op)
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, 'gelu' if gelu else 'none', [], 'none' if gelu else '')


def _fused_depthwise(x, weight, bias, padding, gelu):
    return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, padding, [1, 1], [1, 1], x.shape[1],
                                                   'gelu' if gelu else 'none', [], 'none' if gelu else '')


def _fused_add_conv_(acc, x, weight, bias, padding, groups):
    """``acc += conv(x)`` in place for B×H×W×C ``acc`` and ``x`` (stride 1, the given padding of rows, columns)."""
    torch.ops.mkldnn._convolution_pointwise_.binary(nchw(acc), nchw(x), weight, bias, padding, [1, 1], [1, 1], groups,
                                                    'add', None, None, [], None)


def gelu_(x):
    """Exact (erf) GELU in place."""
    return torch.ops.aten.gelu_(x)


def linear(x, weight, bias=None, gelu=False, add=None, mul=None):
    """``F.linear`` on the last axis, then one of: exact GELU if ``gelu``, ``+ add``, ``· mul`` (in place)."""
    if fused(x, weight):
        return _fused_linear(x, weight, bias, gelu, add, mul)
    out = F.linear(x, weight, bias)
    if gelu:
        out = gelu_(out)
    if add is not None:
        out = out.add_(add)
    if mul is not None:
        out = out.mul_(mul)
    return out


def add_linear_(acc, x, weight, bias=None):
    """``acc += x·weightᵀ + bias`` in place for B×H×W×C maps ``acc`` and ``x`` and a C_out×C_in×1×1 conv weight."""
    if fused(acc, x, weight):
        _fused_add_conv_(acc, x, weight, bias, [0, 0], 1)
    else:
        acc.add_(F.linear(x, weight.flatten(1), bias))


def add_conv_rows_(acc, x, conv):
    """``acc += conv(x)`` in place for a 3×3 depthwise ``conv``, B×H×W×C ``acc`` and B×(H+2)×W×C rows ``x``.

    ``x`` holds one extra row above and below (zero at the image border); columns are zero-padded.
    """
    if fused(acc, x, conv.weight):
        _fused_add_conv_(acc, x, conv.weight, conv.bias, [0, 1], conv.groups)
    else:
        acc.add_(nhwc(F.conv2d(nchw(x), conv.weight, conv.bias, padding=(0, 1), groups=conv.groups)))
    return acc


def depthwise_per_sample(x, weight, bias, gelu=False, padding=None):
    """Depthwise conv of each sample n of ``x`` (B×C×H×W) with its own kernels weight[n] (C×1×k×k) and bias[n].

    Zero padding ``padding`` (rows, columns), default k // 2 on both. Followed by exact GELU if ``gelu``. Samples
    stay independent; one conv per sample keeps the channels-last layout.
    """
    b, c = x.shape[:2]
    pad = list(padding) if padding is not None else [weight.shape[-1] // 2] * 2

    def conv(n):
        if fused(x, weight):
            return _fused_depthwise(x[n:n + 1], weight[n], bias[n], pad, gelu)
        out = F.conv2d(x[n:n + 1], weight[n], bias[n], padding=pad, groups=c)
        return gelu_(out) if gelu else out

    return conv(0) if b == 1 else torch.cat([conv(n) for n in range(b)])
