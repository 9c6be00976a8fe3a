"""SRConvNet as a BasicSR architecture, computing exactly what the authors' implementation computes.

Reference: Feng Li, Runmin Cong, Jingjing Wu, Huihui Bai, Meng Wang, Yao Zhao. "SRConvNet: A Transformer-Style
ConvNet for Lightweight Image Super-Resolution". International Journal of Computer Vision (IJCV), 2024.
Authors' code: github.com/lifengcs/SRConvNet (commit c532d7f, models/m_block.py and models/m_network.py).

The modules read top-down like the paper's figure: LayerNorm, Fourier unit, FMA (``FConvMod``), dynamic depthwise
convolution, DML (``MixFFN``), the block (ACB, ``BasicBlock``) and the network. Module and parameter names follow the
reference so that its state dicts load after stripping the ``module.`` prefix (see ``srconvnet_plugin.convert``).
Where the reference departs from the paper's prose, a one-line ``# Fidelity:`` comment says so.

Speed (same math, see the README's speed section): features flow channels-last (NHWC) through the network, so every
1×1 conv is one matrix product on the channel axis, the LayerNorm is one fused call, the spectrum's real/imaginary
interleaving is the ``view_as_real`` layout, the channel shuffle is a permutation of ``proj_out``'s columns, both
dynamic depthwise convs run as one 7×7 depthwise conv (the 5×5 kernels zero-padded; the strip-wise body keeps them
apart), and ``layer_scale`` is folded into ``v``'s weights. The upsampler never pixel-shuffles: its stages run on
the LR grid with output channels reordered to (sub-row, sub-column, channel), and the sub-pixels move to the HR grid
once, before the tail. Every module takes and returns B×C×H×W tensors (channels-last strides inside). Without
autograd (``torch.no_grad``/``inference_mode``) intermediate results are overwritten in place, the upsampler and
tail work in strips of LR rows (lower peak memory), float32 on CPU uses oneDNN's fused kernels (matmul/conv + bias
+ exact GELU or + residual in one pass, see ``_fused``), and on CPU the body runs strip by strip (``body_in_strips``,
its FFT along awkward widths as two matrix products: ``real_dft``); with autograd every operation is out of place and
plain.
"""
import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY
from srconvnet_plugin.archs.real_dft import real_dft

SUPPORTED_SCALES = (2, 3, 4)
# upsampler/tail strips hold about this many elements of the widest (pixel-shuffled, C-channel) map when not training
STRIP_ELEMENTS = 1 << 20


_FORCE_REFERENCE = False


@contextlib.contextmanager
def reference_forward():
    """Run SRConvNet's straightforward computation (the reference's operations, one by one) inside this block."""
    global _FORCE_REFERENCE
    saved, _FORCE_REFERENCE = _FORCE_REFERENCE, True
    try:
        yield
    finally:
        _FORCE_REFERENCE = saved


def _reference():
    """Whether to take the straightforward path: inside ``reference_forward()`` or while tracing, so that FLOP counters
    (mmengine) and the ONNX exporter see the reference's operations rather than the fast path's fusions."""
    return _FORCE_REFERENCE or torch.jit.is_tracing()


def _nhwc(x):
    """B×H×W×C contiguous view (free for channels-last tensors) of a B×C×H×W tensor."""
    return x.permute(0, 2, 3, 1).contiguous()


def _nchw(x):
    """B×C×H×W view (channels-last strides) of a contiguous B×H×W×C tensor."""
    return x.permute(0, 3, 1, 2)


def _inplace():
    """Whether intermediate results may be overwritten: only when autograd records nothing."""
    return not torch.is_grad_enabled()


def _eager_cpu_inference(x):
    """Whether ``x`` is on CPU, in eager mode (not compiled, not traced, not in ``reference_forward``), without
    autograd or autocast: the case the CPU inference schedules (``_fused``, ``_strips``) are for."""
    return (x.device.type == 'cpu' and not torch.is_grad_enabled() and not _reference()
            and not torch.is_autocast_enabled('cpu') and not torch.compiler.is_compiling())


def _fused(x):
    """Whether ``x`` may go through oneDNN's fused CPU kernels (float32, no autograd, no autocast).

    These are the kernels torch.compile's CPU backend emits (``torch.ops.mkldnn._linear_pointwise`` and
    ``_convolution_pointwise``): the same products, bias, exact GELU and residual add, in one pass over memory.
    They have no backward, so training and every other device or dtype take the plain path; so does
    ``torch.compile``, which makes its own fusions.
    """
    return (x.dtype == torch.float32 and _eager_cpu_inference(x) and torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled and hasattr(torch.ops.mkldnn, '_linear_pointwise'))


def _gelu(x):
    """Exact (erf) GELU, in place when autograd is off."""
    return torch.ops.aten.gelu_(x) if _inplace() else F.gelu(x)


def _linear(x, weight, bias=None, gelu=False, add=None, mul=None):
    """``F.linear`` on the last axis, then one of: exact GELU if ``gelu``, ``+ add``, ``· mul``."""
    if _fused(x):
        weight = weight.contiguous()  # oneDNN is very slow with a strided weight (it reorders it on every call)
        if add is not None or mul is not None:
            other, op = (add, 'add') if add is not None else (mul, 'mul')
            return torch.ops.mkldnn._linear_pointwise.binary(x, other, weight, bias, op)
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, 'gelu' if gelu else 'none', [],
                                                 'none' if gelu else '')
    out = F.linear(x, weight, bias)
    if gelu:
        out = _gelu(out)
    if add is not None:
        out = out.add_(add) if _inplace() else out + add
    if mul is not None:
        out = out.mul_(mul) if _inplace() else out * mul
    return out


def _conv_add(conv, x, other):
    """``conv(x) + other`` (``other`` cast to the conv's output dtype, as autocast leaves it)."""
    if _fused(x) and _fused(other):
        return torch.ops.mkldnn._convolution_pointwise.binary(x, other, conv.weight, conv.bias, list(conv.padding),
                                                              list(conv.stride), list(conv.dilation), conv.groups,
                                                              'add', None, None, [], None)
    out = conv(x)
    return out.add_(other.to(out.dtype)) if _inplace() else out + other.to(out.dtype)


def _matrix(conv):
    """Weight of a 1×1 conv as an out×in matrix (for ``F.linear`` on channels-last features)."""
    return conv.weight.flatten(1)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a B×C×H×W tensor ("channels_first" in the reference)."""

    def __init__(self, num_channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps  # Fidelity: eps 1e-6 inside the square root, biased variance.

    def forward(self, x):
        return _nchw(self.forward_nhwc(_nhwc(x)))

    def forward_nhwc(self, x, out=None):
        """Same on a B×H×W×C tensor: one fused call, the same numbers as the reference's explicit mean/var formula.
        Written into ``out`` (same shape, contiguous) if given."""
        if out is None:
            return F.layer_norm(x, (x.shape[-1], ), self.weight, self.bias, self.eps)
        torch.ops.aten.native_layer_norm.out(x, [x.shape[-1]], self.weight, self.bias, self.eps, out0=out,
                                             out1=out.new_empty(0), out2=out.new_empty(0))
        return out


class FourierUnit(nn.Module):
    """1×1 conv + GELU on the orthonormal 2-D real spectrum, real/imaginary parts interleaved as channels."""

    def __init__(self, num_feat):
        super().__init__()
        # Fidelity: the frequency-domain conv has no bias (the paper's prose suggests one).
        self.conv_layer = nn.Conv2d(num_feat * 2, num_feat * 2, 1, bias=False)
        self.act = nn.GELU()  # Fidelity: exact (erf) GELU in the frequency domain, on Re and Im separately.

    def forward(self, x):
        b, c, h, w = x.shape
        in_dtype = x.dtype
        # cuFFT in half precision takes only power-of-two sizes: the whole unit runs in float32 under autocast.
        with torch.autocast(device_type=x.device.type, enabled=False):
            if in_dtype not in (torch.float32, torch.float64):
                x = x.float()
            if _reference():
                return self.forward_reference(x)
            # B×H×(W//2+1)×C complex spectrum of the channels-last map
            spec = torch.fft.rfft2(_nhwc(x), dim=(1, 2), norm='ortho')  # Fidelity: orthonormal, one-sided along W.
            # Fidelity: channel 2c = Re(Y_c), channel 2c+1 = Im(Y_c): exactly the view_as_real layout of the last axis.
            spec = torch.view_as_real(spec).flatten(-2)
            spec = _linear(spec, _matrix(self.conv_layer).to(spec.dtype), gelu=True)
            spec = torch.view_as_complex(spec.view(b, h, w // 2 + 1, c, 2))
            # Fidelity: irfft2 drops the imaginary part of the W-frequency 0 (and W/2) column of the non-Hermitian map.
            return _nchw(torch.fft.irfft2(spec, s=(h, w), dim=(1, 2), norm='ortho'))

    def forward_reference(self, x):
        """The reference's steps on a float32/float64 B×C×H×W map."""
        b, c, h, w = x.shape
        spec = torch.fft.rfft2(x, norm='ortho')  # Fidelity: orthonormal scaling, one-sided along W.
        # Fidelity: channel 2c = Re(Y_c), channel 2c+1 = Im(Y_c) (interleaved, not two blocks of C).
        spec = torch.view_as_real(spec).permute(0, 1, 4, 2, 3).reshape(b, 2 * c, h, w // 2 + 1)
        spec = self.act(F.conv2d(spec, self.conv_layer.weight.to(spec.dtype)))
        spec = spec.view(b, c, 2, h, w // 2 + 1).permute(0, 1, 3, 4, 2).contiguous()
        # Fidelity: irfft2 drops the imaginary part of the W-frequency 0 (and W/2) column of the non-Hermitian map.
        return torch.fft.irfft2(torch.view_as_complex(spec), s=(h, w), norm='ortho')


class FConvMod(nn.Module):
    """Fourier modulated attention (FMA): softmax(layer_scale · FourierUnit(LN(x)) · v) + CPE, projected."""

    def __init__(self, num_feat, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.norm = LayerNorm2d(num_feat)
        # Fidelity: per-head scale of a·v, initialised to 1e-6.
        self.layer_scale = nn.Parameter(1e-6 * torch.ones(num_heads))
        self.a = FourierUnit(num_feat)
        self.v = nn.Conv2d(num_feat, num_feat, 1)  # Fidelity: the value conv has a bias.
        self.CPE = nn.Conv2d(num_feat, num_feat, 3, padding=1, groups=num_feat)
        self.proj = nn.Conv2d(num_feat, num_feat, 1)

    def forward(self, x):
        if _reference():
            return self.forward_reference(x)
        b, c, h, w = x.shape
        xn = _nhwc(x)
        y = self.norm.forward_nhwc(xn)
        a = _nhwc(self.a(_nchw(y)))
        # Fidelity: the reference's raster-order chunk split of the H·W axis is elementwise, hence a no-op: dropped.
        z = _linear(y, *self.scaled_v(), mul=a).view(b, h * w, c)
        # Fidelity: softmax over all H·W positions per channel, so each map sums to 1 (magnitude ~ 1/(H·W)).
        z = torch.softmax(z, dim=1).view(b, h, w, c)
        # Fidelity: positional term (CPE) from the raw block input, before the norm.
        z = _nhwc(_conv_add(self.CPE, _nchw(xn), _nchw(z)))
        return _nchw(_linear(z, _matrix(self.proj), self.proj.bias, add=xn))

    def scaled_v(self):
        """Weight and bias of ``layer_scale · v`` (heads are contiguous channel groups: the scale repeats d times)."""
        scale = self.layer_scale.repeat_interleave(self.v.out_channels // self.num_heads)
        return scale[:, None] * _matrix(self.v), scale * self.v.bias

    def forward_reference(self, x):
        """The reference's steps, one operation each."""
        b, c, h, w = x.shape
        pe = self.CPE(x)
        y = self.norm(x)
        a = self.a(y)
        v = self.v(y)
        scale = self.layer_scale.repeat_interleave(c // self.num_heads).view(1, c, 1, 1)
        z = torch.softmax((scale * a * v).reshape(b, c, h * w), dim=-1).view(b, c, h, w).to(pe.dtype)
        return self.proj(z + pe) + x


class KernelAttention(nn.Module):
    """Per-sample weights of the K kernels of a dynamic conv: pool, 1×1 conv, GELU, 1×1 conv, sigmoid."""

    def __init__(self, num_feat, num_kernels, reduction=8):
        super().__init__()
        # Fidelity: hidden width C // 8, except for C = 3, where the reference uses K.
        hidden = num_kernels if num_feat == 3 else num_feat // reduction
        self.conv1 = nn.Conv2d(num_feat, hidden, 1)
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(hidden, num_kernels, 1)

    def forward(self, x):
        if _reference():
            g = F.adaptive_avg_pool2d(x, 1)
            return torch.sigmoid(self.conv2(self.act(self.conv1(g))).flatten(1))
        return self.from_pooled(x.mean((2, 3)))

    def from_pooled(self, g):
        """Kernel weights (B×K) from the global average (B×C) of the input."""
        # Fidelity: sigmoid, not softmax: the K weights do not sum to 1 and there is no temperature.
        hidden = F.linear(g, _matrix(self.conv1), self.conv1.bias)
        # exact GELU written out: F.gelu costs milliseconds on these few numbers on CPU (kernel set-up)
        hidden = 0.5 * hidden * (1 + torch.erf(hidden * 0.7071067811865476))
        return torch.sigmoid(F.linear(hidden, _matrix(self.conv2), self.conv2.bias))


class KernelAggregation(nn.Module):
    """A bank of K depthwise k×k kernels and K bias vectors, mixed per sample by the kernel attention."""

    def __init__(self, num_feat, kernel_size, num_kernels):
        super().__init__()
        self.num_feat = num_feat
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.randn(num_kernels, num_feat, 1, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(num_kernels, num_feat))  # Fidelity: biases are mixed too.
        for i in range(num_kernels):  # each kernel of the bank separately, as the reference does
            nn.init.kaiming_uniform_(self.weight[i])

    def forward(self, x, attention):
        weight, bias = self.mix(attention)
        return depthwise_per_sample(x, weight, bias)

    def mix(self, attention, size=None):
        """Per-sample kernels B×C×1×k×k (zero-padded to ``size``×``size`` if given) and biases B×C."""
        k = self.kernel_size
        weight = (attention @ self.weight.flatten(1)).view(-1, self.num_feat, 1, k, k)
        if size is not None and size > k:
            # a k×k kernel with padding k//2 equals the same kernel zero-padded to size×size with padding size//2
            p = (size - k) // 2
            weight = F.pad(weight, (p, p, p, p))
        return weight, attention @ self.bias


def depthwise_per_sample(x, weight, bias, gelu=False, padding=None):
    """Depthwise conv of each sample n of ``x`` (B×C×H×W) with its own kernels weight[n] (C×1×k×k) and bias[n].

    Zero padding ``padding`` (rows, columns), default k // 2 on both. Followed by exact GELU if ``gelu``. Samples
    stay independent; one conv per sample keeps the channels-last layout (folding B into the channels, as the
    reference does, would copy the features twice).
    """
    b, c = x.shape[:2]
    weight, bias = weight.to(x.dtype), bias.to(x.dtype)
    pad = list(padding) if padding is not None else [weight.shape[-1] // 2] * 2
    if _fused(x):
        def conv(n):
            return torch.ops.mkldnn._convolution_pointwise(x[n:n + 1], weight[n], bias[n], pad, [1, 1], [1, 1],
                                                           c, 'gelu' if gelu else 'none', [], 'none' if gelu else '')
    else:
        def conv(n):
            out = F.conv2d(x[n:n + 1], weight[n], bias[n], padding=pad, groups=c)
            return _gelu(out) if gelu else out
    return conv(0) if b == 1 else torch.cat([conv(n) for n in range(b)])


class DynamicConv(nn.Module):
    """Depthwise dynamic convolution: kernel attention followed by kernel aggregation."""

    def __init__(self, num_feat, kernel_size, num_kernels):
        super().__init__()
        if num_kernels < 2:
            # the reference builds an unpadded static conv for K = 1, which breaks the shapes
            raise ValueError(f'num_kernels must be at least 2, got {num_kernels}')
        self.attention = KernelAttention(num_feat, num_kernels)
        self.aggregation = KernelAggregation(num_feat, kernel_size, num_kernels)

    def forward(self, x):
        return self.aggregation(x, self.attention(x))


class DynamicDWConv(nn.Module):
    """Holder of a ``DynamicConv`` under the name ``conv``, which keeps the reference's key names."""

    def __init__(self, num_feat, kernel_size, num_kernels):
        super().__init__()
        self.conv = DynamicConv(num_feat, kernel_size, num_kernels)

    def forward(self, x):
        return self.conv(x)


class MixFFN(nn.Module):
    """Dynamic mixing layer (DML): expand, 5×5 and 7×7 dynamic depthwise convs on the halves, shuffle, project."""

    def __init__(self, num_feat, num_kernels):
        super().__init__()
        self.norm = LayerNorm2d(num_feat)
        self.proj_in = nn.Conv2d(num_feat, num_feat * 2, 1)
        self.conv1 = DynamicDWConv(num_feat, 5, num_kernels)
        self.conv2 = DynamicDWConv(num_feat, 7, num_kernels)
        self.proj_out = nn.Conv2d(num_feat * 2, num_feat, 1)
        self.act = nn.GELU()

    def forward(self, x):
        if _reference():
            return self.forward_reference(x)
        xn = _nhwc(x)
        # Fidelity: GELU after proj_in and after each dynamic conv (absent from the paper's figure).
        y = _linear(self.norm.forward_nhwc(xn), _matrix(self.proj_in), self.proj_in.bias, gelu=True)
        (w1, b1), (w2, b2) = self.dynamic_kernels(y.mean((1, 2)), size=max(self.conv1.conv.aggregation.kernel_size,
                                                                             self.conv2.conv.aggregation.kernel_size))
        # both run as one depthwise conv over the 2C channels: the 5×5 kernels zero-padded to 7×7 (the same conv)
        weight, bias = torch.cat((w1, w2), 1), torch.cat((b1, b2), 1)
        y = _nhwc(depthwise_per_sample(_nchw(y), weight, bias, gelu=True))
        return _nchw(_linear(y, self.shuffled_proj_out(), self.proj_out.bias, add=xn))  # Fidelity: DML residual.

    def dynamic_kernels(self, g, size=None):
        """[(kernels, biases) of conv1, of conv2]: per-sample B×C×1×k×k kernels and B×C biases of the dynamic convs
        of y1 and y2, from the pooled 2C channels ``g``; with ``size``, the kernels zero-padded to size×size."""
        c = g.shape[1] // 2
        return [conv.conv.aggregation.mix(conv.conv.attention.from_pooled(part), size)
                for conv, part in ((self.conv1, g[:, :c]), (self.conv2, g[:, c:]))]

    def shuffled_proj_out(self):
        """proj_out's matrix with the channel shuffle (2i = y1 channel i, 2i+1 = y2 channel i) in its columns."""
        weight = _matrix(self.proj_out)
        return torch.cat((weight[:, 0::2], weight[:, 1::2]), 1)

    def forward_reference(self, x):
        """The reference's steps: each dynamic conv on its half, then the explicit channel shuffle."""
        b, c, h, w = x.shape
        y = self.act(self.proj_in(self.norm(x)))
        y1 = self.act(self.conv1(y[:, :c]))
        y2 = self.act(self.conv2(y[:, c:]))
        y = torch.stack((y1, y2), dim=2).reshape(b, 2 * c, h, w)
        return self.proj_out(y) + x


class BasicBlock(nn.Module):
    """Attention-like conv block (ACB): FMA then DML, each with its own residual."""

    def __init__(self, num_feat, num_heads, num_kernels):
        super().__init__()
        self.attention = FConvMod(num_feat, num_heads)
        self.ffn = MixFFN(num_feat, num_kernels)

    def forward(self, x):
        return self.ffn(self.attention(x))


# strip-wise inference of the body: strips of about this many elements of the 2C-channel DML map
BODY_STRIP_ELEMENTS = 1 << 20


def _strips(x, blocks):
    """Whether the body runs strip-wise (``body_in_strips``): on CPU without autograd, in float32 or float64, and
    while no forward hook watches a module of the body (the strip-wise schedule does not call their forwards)."""
    return x.dtype in (torch.float32, torch.float64) and _eager_cpu_inference(x) and not _hooked(blocks)


def _hooked(module):
    """Whether a forward hook (global, or on ``module`` or a submodule) would see its modules' inputs or outputs."""
    from torch.nn.modules import module as module_lib
    if module_lib._global_forward_hooks or module_lib._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())


def _zero_padded(like, h, w, c, pad):
    """An uninitialised 1×(h + 2·pad)×w×c buffer whose ``pad`` first and last rows are zero."""
    buf = like.new_empty(1, h + 2 * pad, w, c)
    buf[:, :pad].zero_()
    buf[:, h + pad:].zero_()
    return buf


def _splits(n, size):
    """(start, end) of ``ceil(n / size)`` parts of range(n) as equal as possible."""
    parts = min(n, -(-n // max(1, size)))
    step = -(-n // parts)
    return [(i, min(n, i + step)) for i in range(0, n, step)]


def body_in_strips(blocks, feat):
    """``blocks(feat) + feat`` for one sample's features (1×H×W×C), without autograd, on CPU.

    The same operations as the blocks' forward, scheduled for the cache and for few, reused buffers: everything
    that acts per pixel or on a small window (norms, 1×1 convs, CPE, dynamic depthwise convs, residuals) runs in
    strips of rows whose temporaries stay in the cache, and results go into a handful of full-size buffers allocated
    once. The three steps that need the whole map are split the same way: the Fourier unit's 2-D FFTs are 1-D FFTs
    along W on row strips and along H on column strips (where the frequency-domain conv runs as well); the softmax
    over all positions takes each strip's exponentials with the strip's own maximum and rescales them once the
    global maximum and sum are known; the dynamic convs' global average is summed strip by strip. Both residual
    branches add into the block's map in place; the CPE of a strip reads the row above it before that row changes.
    """
    _, h, w, c = feat.shape
    strips = _splits(h, BODY_STRIP_ELEMENTS // (w * 2 * c))
    dft = real_dft(w, feat.dtype, feat.device)  # the FFT along W (frequencies in the order it keeps them)
    wf = dft.width
    columns = _splits(wf, BODY_STRIP_ELEMENTS // (h * 2 * c))
    blocks = list(blocks)
    x = _zero_padded(feat, h, w, c, 1)  # block input, zero rows above and below for the CPE's 3×3 window
    e = feat.new_empty(1, h, w, c)  # LN(x) of the attention, then the exponentials of its softmax, then + CPE
    complex_dtype = torch.complex128 if feat.dtype == torch.float64 else torch.complex64
    spec = feat.new_empty(1, h, wf, c, dtype=complex_dtype)  # spectrum of y (NHWC: view_as_real interleaves)
    # the two halves y1, y2 of the expanded DML map, each with zero rows for its dynamic conv's window (separate
    # buffers: oneDNN would copy a half that is a channel slice)
    pads = [max(getattr(b.ffn, name).conv.aggregation.kernel_size for b in blocks) // 2 for name in ('conv1', 'conv2')]
    halves = [_zero_padded(feat, h, w, c, pad) for pad in pads]

    def norm_and_rfft(norm, r0, r1):
        """LN(x) of rows r0..r1 into e and its FFT along W (orthonormal: 1/sqrt(W) here, 1/sqrt(H) along H)."""
        dft.rfft(norm.forward_nhwc(x[:, 1 + r0:1 + r1], out=e[:, r0:r1])[0], out=spec[0, r0:r1])

    def spectral_columns(spectral, c0, c1):
        """FFT along H, frequency-domain 1×1 conv + GELU and inverse FFT along H of spectrum columns c0..c1."""
        f = torch.fft.fft(spec[:, :, c0:c1], dim=1, norm='ortho')
        # Fidelity: channel 2c = Re, 2c+1 = Im (the view_as_real layout), GELU on both parts separately
        f = _linear(torch.view_as_real(f.contiguous()).flatten(-2), spectral, gelu=True)
        spec[:, :, c0:c1] = torch.fft.ifft(torch.view_as_complex(f.unflatten(-1, (c, 2))), dim=1, norm='ortho')

    def exponentials(v_weight, v_bias, r0, r1):
        """exp(z − strip max) into e for z = layer_scale·a·v on rows r0..r1; returns the strip's max and sum."""
        # Fidelity: irfft drops the imaginary part of the W-frequency 0 (and W/2) column
        a = dft.irfft(spec[0, r0:r1])[None]
        z = _linear(e[:, r0:r1], v_weight, v_bias, mul=a)
        m = z.amax((0, 1, 2))
        torch.exp(z.sub_(m), out=e[:, r0:r1])
        return m, e[:, r0:r1].sum((0, 1, 2))

    def positional(att, factor, r0, r1):
        """Softmax + CPE(x) into e on rows r0..r1 (x still the block input on rows r0 − 1 .. r1)."""
        _conv_add_rows(att.CPE, x[:, r0:r1 + 2], e[:, r0:r1].mul_(factor))

    def attention_and_expansion(att, ffn, r0, r1):
        """x += proj(e) on rows r0..r1 (the FMA output), and the DML's expanded map GELU(proj_in(LN(x))) into the
        two halves; returns the expanded map's sum over the strip (2C channels)."""
        _add_linear(x[:, 1 + r0:1 + r1], e[:, r0:r1], att.proj.weight, att.proj.bias)
        y = ffn.norm.forward_nhwc(x[:, 1 + r0:1 + r1]).view(-1, c)
        weight, bias = _matrix(ffn.proj_in), ffn.proj_in.bias
        sums = []
        for j, (half, pad) in enumerate(zip(halves, pads)):
            t = half[:, pad + r0:pad + r1]
            torch.addmm(bias[j * c:(j + 1) * c], y, weight[j * c:(j + 1) * c].t(), out=t.view(-1, c))
            sums.append(_gelu(t).sum((0, 1, 2)))
        return torch.cat(sums)

    def mixing(ffn, kernels, following, r0, r1):
        """x += DML output on rows r0..r1 (the block output), then the next block's LN and FFT along W.

        Each dynamic conv runs on its half with its own kernel size, and proj_out takes their outputs as two
        products (its columns for y1 and for y2: the channel shuffle), the first adding its bias.
        """
        for j, (weight, bias, proj) in enumerate(kernels):
            q, pad = weight.shape[-1] // 2, pads[j]
            half = halves[j][:, pad - q + r0:pad + q + r1]
            d = _nhwc(depthwise_per_sample(_nchw(half), weight, bias, gelu=True, padding=(0, q)))
            _add_linear(x[:, 1 + r0:1 + r1], d, proj, ffn.proj_out.bias if j == 0 else None)
        if following is not None:
            norm_and_rfft(following, r0, r1)

    x[:, 1:h + 1] = feat
    for r0, r1 in strips:
        norm_and_rfft(blocks[0].attention.norm, r0, r1)
    for i, block in enumerate(blocks):
        att, ffn = block.attention, block.ffn
        spectral = _matrix(att.a.conv_layer).to(feat.dtype).contiguous()
        for c0, c1 in columns:
            spectral_columns(spectral, c0, c1)
        v_weight, v_bias = (t.contiguous() for t in att.scaled_v())
        maxima, sums = zip(*[exponentials(v_weight, v_bias, r0, r1) for r0, r1 in strips])
        # Fidelity: softmax over all H·W positions per channel: strip factor exp(m_strip − m) / Σ exp(z − m)
        maxima = torch.stack(maxima)
        factors = torch.exp(maxima - maxima.amax(0))
        factors = factors / (factors * torch.stack(sums)).sum(0)
        # the CPE of strip j + 1 runs before strip j's rows of x change (it reads the last of them)
        positional(att, factors[0], *strips[0])
        sums = []
        for j, (r0, r1) in enumerate(strips):
            if j + 1 < len(strips):
                positional(att, factors[j + 1], *strips[j + 1])
            sums.append(attention_and_expansion(att, ffn, r0, r1))
        kernels = ffn.dynamic_kernels((torch.stack(sums).sum(0) / (h * w))[None])
        # Fidelity: channel shuffle: proj_out's input channel 2i is y1's channel i, 2i + 1 is y2's
        kernels = [(weight, bias, ffn.proj_out.weight[:, j::2].contiguous())
                   for j, (weight, bias) in enumerate(kernels)]
        following = blocks[i + 1].attention.norm if i + 1 < len(blocks) else None
        for r0, r1 in strips:
            mixing(ffn, kernels, following, r0, r1)
    return x[:, 1:h + 1].add_(feat)


def _add_linear(acc, x, weight, bias=None):
    """``acc += x·weightᵀ + bias`` in place for B×H×W×C maps ``acc`` and ``x`` and a C_out×C_in×1×1 conv weight."""
    if _fused(x) and _fused(acc):
        torch.ops.mkldnn._convolution_pointwise_.binary(_nchw(acc), _nchw(x), weight, bias, [0, 0],
                                                        [1, 1], [1, 1], 1, 'add', None, None, [], None)
    else:
        acc.add_(F.linear(x, weight.flatten(1), bias))


def _conv_add_rows(conv, x, other):
    """``conv(x) + other`` written into ``other`` (B×H×W×C), for a 3×3 ``conv`` and B×(H+2)×W×C rows ``x``.

    ``x`` holds one extra row above and below (zero at the image border); columns are zero-padded.
    """
    if _fused(x) and _fused(other):
        torch.ops.mkldnn._convolution_pointwise_.binary(_nchw(other), _nchw(x), conv.weight, conv.bias, [0, 1],
                                                        [1, 1], [1, 1], conv.groups, 'add', None, None, [], None)
        return other
    return other.add_(_nhwc(F.conv2d(_nchw(x), conv.weight.to(x.dtype), conv.bias.to(x.dtype), padding=(0, 1),
                                     groups=conv.groups)))


@ARCH_REGISTRY.register()
class SRConvNet(nn.Module):
    """SRConvNet: A Transformer-Style ConvNet for Lightweight Image Super-Resolution (Li et al., IJCV 2024).

    Takes BasicSR's [0, 1] images, multiplies by ``img_range`` (the authors trained on 0..255), runs the reference
    network and divides by ``img_range``. The reference's MeanShift modules and the attention GELU are never used
    in its forward pass and are left out, so the parameters are exactly the reference's trainable ones
    (990,851 / 1,011,651 / 1,007,491 at ×2 / ×3 / ×4 with the defaults).

    Args:
        num_in_ch (int): Channel number of inputs. Default: 3.
        num_out_ch (int): Channel number of outputs. Default: 3.
        num_feat (int): Channel number of intermediate features (``dim``). Default: 64.
        num_block (int): Number of ACBs. Default: 8.
        num_heads (int): Number of heads of the Fourier modulated attention; divides ``num_feat``. Default: 8.
        num_kernels (int): Kernels in each dynamic conv's bank, at least 2. Default: 16.
        upscale (int): Upsampling factor, 2, 3 or 4. Default: 4.
        img_range (float): Image range the weights expect. Default: 255.
    """

    def __init__(self,
                 num_in_ch=3,
                 num_out_ch=3,
                 num_feat=64,
                 num_block=8,
                 num_heads=8,
                 num_kernels=16,
                 upscale=4,
                 img_range=255.):
        super().__init__()
        if upscale not in SUPPORTED_SCALES:
            raise ValueError(f'SRConvNet supports upscale in {SUPPORTED_SCALES}, got {upscale!r}')
        if num_feat % num_heads != 0:
            raise ValueError(f'num_feat ({num_feat}) must be divisible by num_heads ({num_heads})')
        if num_feat != 3 and num_feat < 8:
            raise ValueError(f'num_feat must be at least 8 (kernel attention width num_feat // 8), got {num_feat}')
        if num_in_ch != num_out_ch:
            # the bilinear skip adds the upsampled input to the output
            raise ValueError(f'num_in_ch ({num_in_ch}) must equal num_out_ch ({num_out_ch})')
        self.upscale = upscale
        self.img_range = img_range

        self.to_feat = nn.Conv2d(num_in_ch, num_feat, 3, padding=1)
        self.blocks = nn.Sequential(*[BasicBlock(num_feat, num_heads, num_kernels) for _ in range(num_block)])
        if upscale == 4:  # keys upsampling.0.* and upsampling.3.*
            self.upsampling = nn.Sequential(
                nn.Conv2d(num_feat, num_feat * 4, 1), nn.PixelShuffle(2), nn.GELU(),
                nn.Conv2d(num_feat, num_feat * 4, 1), nn.PixelShuffle(2), nn.GELU())
        else:  # keys upsampling.0.*
            self.upsampling = nn.Sequential(
                nn.Conv2d(num_feat, num_feat * upscale**2, 1), nn.PixelShuffle(upscale), nn.GELU())
        self.tail = nn.Conv2d(num_feat, num_out_ch, 3, padding=1)

    def forward(self, x):
        x = x * self.img_range  # Fidelity: no mean shift (the reference's MeanShift modules are never called).
        if _reference():
            feat = self.to_feat(x)
            feat = self.blocks(feat) + feat
            skip = F.interpolate(x, scale_factor=self.upscale, mode='bilinear', align_corners=False)
            return (self.tail(self.upsampling(feat)) + skip.to(feat.dtype)) / self.img_range
        feat = self.to_feat(x.contiguous(memory_format=torch.channels_last))
        if _strips(feat, self.blocks):
            feat = torch.cat([_nchw(body_in_strips(self.blocks, _nhwc(feat[n:n + 1]))) for n in range(len(feat))])
        else:
            feat = self.blocks(feat) + feat
        # Fidelity: global skip is bilinear upsampling of the raw input, align_corners=False.
        out = F.interpolate(x, scale_factor=self.upscale, mode='bilinear', align_corners=False)
        out = self.add_upsample_tail(_nhwc(feat), out)
        return out.div_(self.img_range) if _inplace() else out / self.img_range

    def _stages(self):
        """(conv, r) of each conv + PixelShuffle(r) + GELU stage of the upsampler."""
        convs = [m for m in self.upsampling if isinstance(m, nn.Conv2d)]
        shuffles = [m for m in self.upsampling if isinstance(m, nn.PixelShuffle)]
        return [(conv, shuffle.upscale_factor) for conv, shuffle in zip(convs, shuffles)]

    def add_upsample_tail(self, feat, out):
        """``out + tail(upsampling(feat))`` for B×H×W×C features ``feat`` and a B×3×sH×sW tensor ``out``.

        PixelShuffle is a permutation and GELU and 1×1 convs act per pixel, so each upsampler stage runs on the LR
        grid with its output channels reordered to (sub-row, sub-column, channel). With autograd, the sub-pixels
        then move to the HR grid and the tail conv runs there. Without autograd, the tail's 3×3 conv is split into
        its 9 taps: one product C → 9·out_ch per HR pixel (still on the LR grid), only those 9·out_ch values move to
        the HR grid (instead of C), and a 3×3 conv with one-hot kernels sums the shifted taps into ``out`` (in
        place). This runs in strips of LR rows; the last two HR rows of tap maps of a strip are carried over to the
        next one, whose first output row needs them, so nothing is computed twice and only a strip of the HR map
        exists at a time.
        """
        b, h, w, c = feat.shape
        s = self.upscale
        stages = [(self._subpixel_matrix(conv, r), self._subpixel_bias(conv, r), r) for conv, r in self._stages()]
        # axes 1, rows, W, (i1, j1), (i2, j2), ..., X -> 1, rows, i1, i2, ..., W, j1, j2, ..., X
        rows_sub = [3 + 2 * i for i in range(len(stages))]
        cols_sub = [4 + 2 * i for i in range(len(stages))]

        def subpixels(u):
            for weight, bias, r in stages:
                # (..., r, r, C): the sub-pixel (i, j) of every pixel so far, then the channels
                u = _linear(u, weight, bias, gelu=True).unflatten(-1, (r, r, c))
            return u

        if not _inplace():
            u = subpixels(feat)
            u = u.permute(0, 1, *rows_sub, 2, *cols_sub, u.dim() - 1).reshape(b, h * s, w * s, c)
            return out + self.tail(_nchw(u)).to(out.dtype)
        o, k = self.tail.out_channels, self.tail.kernel_size[0]
        # rows (dy, dx, out channel)
        taps = self.tail.weight.permute(2, 3, 0, 1).reshape(k * k * o, c).to(feat.dtype)
        # the tail is then a k×k conv of the k·k·O tap maps with one-hot kernels: output channel j sums the maps
        # (dy, dx, j) shifted by (dy, dx)
        pick = torch.zeros(o, k, k, o, k, k, dtype=feat.dtype, device=feat.device)
        for dy in range(k):
            for dx in range(k):
                pick[:, dy, dx, :, dy, dx] = torch.eye(o, dtype=feat.dtype, device=feat.device)
        pick = pick.view(o, k * k * o, k, k)
        q = k // 2
        rows = max(1, STRIP_ELEMENTS // (w * s * s * c))
        # HR tap maps of a strip, after the last 2q HR rows of the previous strip (zero above the image)
        buf = feat.new_empty(1, 2 * q + rows * s + q, w * s, k * k * o)
        bias = self.tail.bias.to(feat.dtype)
        for n in range(b):
            buf[:, :2 * q].zero_()
            for r0 in range(0, h, rows):
                r1 = min(h, r0 + rows)
                m = (r1 - r0) * s
                t = _linear(subpixels(feat[n:n + 1, r0:r1]), taps)
                # the sub-pixels move to the HR grid: k·k·O values per HR pixel instead of C
                hr = buf[:, 2 * q:2 * q + m]
                hr.view(1, r1 - r0, *[t.shape[i] for i in rows_sub], w, *[t.shape[i] for i in cols_sub], -1).copy_(
                    t.permute(0, 1, *rows_sub, 2, *cols_sub, t.dim() - 1))
                first, last = r0 == 0, r1 == h
                if last:
                    buf[:, 2 * q + m:3 * q + m].zero_()  # zero below the image
                # input HR rows r0·s − 2q (r0·s − q for the first strip) .. r1·s (+ q for the last strip)
                taps_in = buf[:, (q if first else 0):2 * q + m + (q if last else 0)]
                tail = F.conv2d(_nchw(taps_in), pick, bias, padding=(0, q))
                y0 = r0 * s - (0 if first else q)
                out[n:n + 1, :, y0:y0 + tail.shape[2]] += tail.to(out.dtype)
                buf[:, :2 * q] = buf[:, m:m + 2 * q].clone()  # carry the last 2q HR rows
        return out

    @staticmethod
    def _subpixel_matrix(conv, r):
        """1×1 conv weight with output channels reordered from PixelShuffle's c·r² + i·r + j to (i·r + j)·C + c."""
        weight = _matrix(conv)
        return weight.view(-1, r * r, weight.shape[1]).transpose(0, 1).reshape(weight.shape)

    @staticmethod
    def _subpixel_bias(conv, r):
        """Bias of a 1×1 conv reordered like ``_subpixel_matrix``."""
        return conv.bias.view(-1, r * r).t().reshape(-1)


def count_parameters(model):
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ['SRConvNet', 'SUPPORTED_SCALES', 'count_parameters', 'reference_forward']
