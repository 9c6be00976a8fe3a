"""The exportable form of SRConvNet: what every export target starts from.

``exportable_form(model)`` computes ``model(x)`` for an N × C × H × W batch with real arithmetic only, in a form
that ``torch.export.export`` captures with dynamic batch, height and width (``export_program``):

- **Every DFT is two matrix products** (``srconvnet.engine.real_dft.factored_real_dft`` / ``factored_complex_dft``):
  for a length N = P·Q, a Q-point DFT, then per frequency group one 2P×2P matrix with the twiddle factors; about
  Q + 2P multiply-adds per value instead of N for a dense DFT matrix. The split is chosen in the graph from the
  input's size (an argmin over the divisors; any N works, a prime N falls back to one dense stage), so one exported
  program serves every size. ONNX's ``DFT`` operator is no alternative: ONNX Runtime 1.32 runs it hundreds of times
  slower than these products at 720p sizes.
- **The image is processed transposed** (W before H), so that the real DFT, along W, contracts the leading axis:
  each stage is one large matrix product. Convolution kernels are transposed to match; the output is not.
- **The body is channels-first** (N × C × H·W): the 1×1 convs are 1-D convs (one GEMM each, bias included, for
  any batch), the LayerNorms' channel means products with a 1 × C row, the softmax runs on the last axis, and the
  depthwise convs need no layout change; the Fourier unit runs channels-last inside (the layout its matrix products
  and the frequency-domain 1×1 conv want), with one transpose in and one out. (With the value conv and the
  projection as matrix products, OpenVINO's CPU plugin on one thread fuses product, softmax and product into one
  kernel that runs out of registers; as convs they compile.)
- **Each image convolves with its own dynamic kernels** as one depthwise conv of the batch folded into the channels
  (N·C groups; a batch of one, as the ONNX graph's ``Scan`` runs it, has C static groups).
- **The upsampler runs per pixel then pixel-shuffles channels-last** (block copies), and the tail's 3×3 conv is
  split into taps as in ``srconvnet.engine.tail`` (a product C → 27 per HR pixel, then a one-hot 3×3 conv).
- ``layer_scale`` is folded into the value conv, the mixing layer's LayerNorm affine into ``proj_in`` and its
  channel shuffle into ``proj_out``'s columns; the LayerNorms are computed channels-first (two reductions over the
  channel axis).

Only the stock network is re-written as a whole (``srconvnet.engine.guard.first_difference`` is None). Any other
network (an ablation, an edited module) is exported through its own module forwards after an ``EngineStepsAside``
warning, in a copy whose modules that are exactly the stock ones and cannot be exported as they are get the same
computation: ``FourierUnit`` (complex FFTs) → ``ExportableFourierUnit``, ``KernelAggregation`` (a Python loop over
the batch) → ``ExportableKernelAggregation``. The model itself is never changed.
"""
import copy
import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from srconvnet.archs.srconvnet_arch import FourierUnit, KernelAggregation, MixFFN
from srconvnet.engine import guard
from srconvnet.engine.guard import EngineStepsAside, first_difference
from srconvnet.engine.real_dft import factored_complex_dft, factored_real_dft

#: the sizes ``export_program`` traces with when none is given (neither side 1: torch.export specialises size 1)
DEFAULT_SAMPLE_SIZE = (32, 40)
#: the largest side a dynamic dimension accepts by default (``export_program``'s ``max_size``)
DEFAULT_MAX_SIDE = 8192


def _copy(t):
    return t.detach().clone().contiguous()


def spectral_weight(unit):
    """A ``FourierUnit``'s frequency-domain 1×1 conv as a 2C × 2C matrix applied from the right, its channels
    reordered from the interleaved 2c + ri (Re/Im) to halves ri·C + c, as ``fourier_unit`` lays the spectrum out."""
    weight = unit.conv_layer.weight.flatten(1)
    c = weight.shape[0] // 2
    perm = torch.arange(2 * c).view(c, 2).t().reshape(-1)
    return weight[perm][:, perm].t()


def fourier_unit(y, spec_wt, dft_w, dft_h):
    """``FourierUnit`` of a map laid out W × H × N × C (rfft2's one-sided axis W leading); returns W × H × N × C.

    ``dft_w = factored_real_dft(W)``, ``dft_h = factored_complex_dft(H)``; ``spec_wt = spectral_weight(unit)``.
    """
    a, b, n, c = y.shape
    x = n * c
    p, q, g, s1, s2, i2, i1 = dft_w
    hp, hq, f1, f2, b2, b1 = dft_h
    t = torch.matmul(s1, y.reshape(q, p * b * x))  # 2G(g, Re/Im) × P·H·N·C
    t = torch.matmul(s2, t.reshape(g, 2 * p, b * x))  # G × 2P(Re/Im, slot) × H·N·C
    t = t.reshape(g, 2, p, b, x).permute(1, 3, 0, 2, 4)  # Re/Im × H × G × P × N·C
    t = torch.matmul(f1, t.reshape(2 * hq, hp * g * p * x))  # 2Q'(k1, Re/Im) × P'·G·P·N·C
    t = torch.matmul(f2, t.reshape(hq, 2 * hp, g * p * x))  # Q' × 2P'(Re/Im, k2) × G·P·N·C
    t = t.reshape(hq, 2, hp * g * p, n, c).permute(0, 2, 3, 1, 4)  # Q' × P'·G·P × N × Re/Im × C
    t = F.gelu(torch.matmul(t.reshape(hq, hp * g * p * n, 2 * c), spec_wt))
    t = t.reshape(hq, hp * g * p, n, 2, c).permute(0, 3, 1, 2, 4)  # Q' × Re/Im × P'·G·P × N × C
    t = torch.matmul(b2, t.reshape(hq, 2 * hp, g * p * x))  # Q' × 2P'(Re/Im, n2) × G·P·N·C
    t = torch.matmul(b1, t.reshape(2 * hq, hp * g * p * x))  # Re/Im × H × G × P × N·C
    t = t.reshape(2, b, g, p, x).permute(2, 0, 3, 1, 4)  # G × Re/Im × P × H × N·C
    t = torch.matmul(i2, t.reshape(g, 2 * p, b * x))  # G × 2P(Re/Im, n2) × H·N·C
    t = torch.matmul(i1, t.reshape(2 * g, p * b * x))  # W × H·N·C
    return t.reshape(a, b, n, c)


def per_image_depthwise(x, weight, bias, kernel_size):
    """Image i of the N × C × H × W ``x`` convolved with its own depthwise kernels ``weight[i]`` (C·k·k values) and
    bias ``bias[i]`` (C), 'same' padding: one conv with the batch folded into the channels (N·C groups)."""
    n, c, h, w = x.shape
    k = kernel_size
    y = F.conv2d(x.reshape(1, n * c, h, w), weight.reshape(n * c, 1, k, k).to(x.dtype), bias.reshape(n * c).to(x.dtype),
                 padding=k // 2, groups=n * c)
    return y.reshape(n, c, h, w)


class ExportableFourierUnit(nn.Module):
    """A stock ``FourierUnit`` (N × C × H × W in and out) computed by ``fourier_unit``: real matrix products."""

    def __init__(self, unit):
        super().__init__()
        self.register_buffer('spec_wt', _copy(spectral_weight(unit)), persistent=False)

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        y = fourier_unit(x.permute(3, 2, 0, 1), self.spec_wt.to(x.dtype), factored_real_dft(w, x.dtype),
                         factored_complex_dft(h, x.dtype))
        return y.permute(2, 3, 1, 0)


class ExportableKernelAggregation(nn.Module):
    """A stock ``KernelAggregation`` with every image's kernels applied by one conv (``per_image_depthwise``)
    instead of a Python loop over the batch (which ``torch.export`` cannot keep dynamic)."""

    def __init__(self, aggregation):
        super().__init__()
        self.weight = aggregation.weight  # shared with the module, not copied
        self.bias = aggregation.bias
        self.kernel_size = aggregation.kernel_size

    def forward(self, x, attention):
        return per_image_depthwise(x, attention @ self.weight.flatten(1), attention @ self.bias, self.kernel_size)


def _dft_from_ones(ones):
    """cos and sin (1 × 1 × n × n) of 2π·(j·k mod n)/n, and n (1 × 1 × 1 × 1), from a 1 × 1 × n × 1 column of
    ones: the indices are cumulative sums and the modulo a floor division, so that no shape arithmetic enters the
    graph (exact in float32 for n ≤ 4096)."""
    index = torch.cumsum(ones, dim=2)
    n = index[:, :, -1:]
    index = index - 1
    product = torch.matmul(index, index.transpose(2, 3))
    angle = (product - torch.floor(product / n) * n) * (2 * math.pi) / n
    return torch.cos(angle), torch.sin(angle), n


class ValueSizedFourierUnit(nn.Module):
    """A stock ``FourierUnit`` (1 × C × H × W in and out) as dense DFT matrix products whose matrices are built from
    the input's values (``_dft_from_ones``), not its shape: for converters that keep no shape arithmetic and no
    tensor above 4-D (pnnx → NCNN), one net then serves every size. The spectrum is full-length along W; the
    one-sided inverse weights its columns 1 (k = 0 and 2k = W), 2 (0 < k < W/2) and 0 (k > W/2), from clamps."""

    def __init__(self, unit):
        super().__init__()
        weight = unit.conv_layer.weight.flatten(1)
        c2 = weight.shape[0]
        perm = torch.cat((torch.arange(0, c2, 2), torch.arange(1, c2, 2)))  # Re channels, then Im channels
        self.register_buffer('weight', _copy(weight[perm][:, perm])[:, :, None, None], persistent=False)
        self.c = c2 // 2

    def forward(self, x):
        ones_h = x[:, :1, :, :1] * 0 + 1
        ones_w = x[:, :1, :1, :].transpose(2, 3) * 0 + 1
        cos_h, sin_h, n_h = _dft_from_ones(ones_h)
        cos_w, sin_w, n_w = _dft_from_ones(ones_w)
        scale = torch.rsqrt(n_h * n_w)
        a_re, a_im = torch.matmul(x, cos_w), -torch.matmul(x, sin_w)
        y_re = (torch.matmul(cos_h, a_re) + torch.matmul(sin_h, a_im)) * scale
        y_im = (torch.matmul(cos_h, a_im) - torch.matmul(sin_h, a_re)) * scale
        spec = F.gelu(F.conv2d(torch.cat((y_re, y_im), 1), self.weight))
        z_re, z_im = spec[:, :self.c], spec[:, self.c:]
        u_re = torch.matmul(cos_h, z_re) - torch.matmul(sin_h, z_im)
        u_im = torch.matmul(cos_h, z_im) + torch.matmul(sin_h, z_re)
        k = (torch.cumsum(ones_w, dim=2) - 1).transpose(2, 3)
        d = n_w - 2 * k
        weight = 2 * torch.clamp(d, 0, 1) - (1 - torch.clamp(k, 0, 1)) + (1 - torch.clamp(torch.abs(d), 0, 1))
        return (torch.matmul(u_re * weight, cos_w.transpose(2, 3))
                - torch.matmul(u_im * weight, sin_w.transpose(2, 3))) * scale


class ShuffleFoldedMixFFN(nn.Module):
    """A stock ``MixFFN`` (1 × C × H × W) with its channel shuffle read from ``proj_out``'s columns (the GELU after
    it acts per element, so it moves onto each half): no 5-D tensor, which NCNN has not."""

    def __init__(self, ffn):
        super().__init__()
        self.norm, self.proj_in, self.conv1, self.conv2 = ffn.norm, ffn.proj_in, ffn.conv1, ffn.conv2
        weight = ffn.proj_out.weight.flatten(1)
        self.c = weight.shape[0]
        self.register_buffer('out1_w', _copy(weight[:, 0::2])[:, :, None, None], persistent=False)
        self.register_buffer('out2_w', _copy(weight[:, 1::2])[:, :, None, None], persistent=False)
        self.register_buffer('out_b', _copy(ffn.proj_out.bias), persistent=False)

    def forward(self, x):
        y = F.gelu(self.proj_in(self.norm(x)))
        y1, y2 = F.gelu(self.conv1(y[:, :self.c])), F.gelu(self.conv2(y[:, self.c:]))
        return F.conv2d(y1, self.out1_w) + F.conv2d(y2, self.out2_w, self.out_b) + x


_SWAPS = {FourierUnit: ExportableFourierUnit, KernelAggregation: ExportableKernelAggregation}
#: the swaps of ``module_forward_form(model, value_sized=True)``
_VALUE_SIZED_SWAPS = {FourierUnit: ValueSizedFourierUnit, KernelAggregation: ExportableKernelAggregation,
                      MixFFN: ShuffleFoldedMixFFN}


def _is_stock(module, swaps=None):
    """Whether ``module`` is exactly a stock module of a swapped class (``_SWAPS`` or ``swaps``): same class (no
    subclass), no forward or hook set on it, the class's code unchanged (``guard.FINGERPRINTS``)."""
    cls = type(module)
    return (cls in (swaps or _SWAPS) and 'forward' not in vars(module) and not module._forward_hooks
            and not module._forward_pre_hooks
            and guard.fingerprints()[cls.__name__] == guard.FINGERPRINTS[cls.__name__])


class _Block(nn.Module):
    """One ACB (``BasicBlock``): FMA then DML, on an N × C × W·H map (the transposed frame)."""

    def __init__(self, block):
        super().__init__()
        att, ffn = block.attention, block.ffn
        c = att.v.weight.shape[0]
        self.c = c
        self.eps1, self.eps2 = att.norm.eps, ffn.norm.eps
        scale = att.layer_scale.repeat_interleave(c // att.num_heads)
        w_in, w_out = ffn.proj_in.weight.flatten(1), ffn.proj_out.weight.flatten(1)
        # the 1×1 convs are 1-D convs (C_out × C × 1 kernels) on the N × C × L map: one GEMM with the bias in it
        tensors = {
            'cpe_w': att.CPE.weight.transpose(2, 3), 'cpe_b': att.CPE.bias,
            'mean_w': torch.full((1, c), 1 / c, dtype=att.norm.weight.dtype),  # a mean over C as a product
            'n1_w': att.norm.weight[:, None], 'n1_b': att.norm.bias[:, None],
            # the value conv as a conv also keeps OpenVINO's CPU plugin on one thread from fusing matrix product,
            # softmax and matrix product into one kernel that runs out of registers
            'v_w': (att.v.weight * scale[:, None, None, None])[..., 0], 'v_b': att.v.bias * scale,
            'spec_wt': spectral_weight(att.a),
            'proj_w': att.proj.weight[..., 0], 'proj_b': att.proj.bias,
            # the mixing layer's LayerNorm affine folded into proj_in (split into the halves the two convs take)
            'in1_w': (w_in[:c] * ffn.norm.weight)[..., None], 'in1_b': (ffn.proj_in.bias + w_in @ ffn.norm.bias)[:c],
            'in2_w': (w_in[c:] * ffn.norm.weight)[..., None], 'in2_b': (ffn.proj_in.bias + w_in @ ffn.norm.bias)[c:],
            # the channel shuffle (2i: first half, 2i + 1: second half) read from proj_out's columns
            'out1_w': w_out[:, 0::2, None], 'out2_w': w_out[:, 1::2, None], 'out_b': ffn.proj_out.bias,
        }
        for i, holder in enumerate((ffn.conv1, ffn.conv2)):
            dyn = holder.conv
            tensors.update({
                f'att{i}_w1': dyn.attention.conv1.weight.flatten(1), f'att{i}_b1': dyn.attention.conv1.bias,
                f'att{i}_w2': dyn.attention.conv2.weight.flatten(1), f'att{i}_b2': dyn.attention.conv2.bias,
                f'bank{i}_w': dyn.aggregation.weight.transpose(-1, -2).flatten(1), f'bank{i}_b': dyn.aggregation.bias,
            })
        for name, value in tensors.items():
            self.register_buffer(name, _copy(value), persistent=False)
        self.kernel_sizes = (ffn.conv1.conv.aggregation.kernel_size, ffn.conv2.conv.aggregation.kernel_size)

    def _norm(self, x, eps):
        """LayerNorm without its affine over the channels of an N × C × L map (biased variance, eps inside the
        root); the means as products with a 1 × C row (ONNX Runtime reduces a middle axis several times slower)."""
        d = x - torch.matmul(self.mean_w, x)
        return d * torch.rsqrt(torch.matmul(self.mean_w, d * d) + eps)

    def _dynamic_conv(self, i, h):
        """``DynamicConv`` of an N × C × W × H map: kernel attention, then each image's mixed depthwise kernels."""
        pooled = h.mean((2, 3))
        hidden = F.gelu(F.linear(pooled, getattr(self, f'att{i}_w1'), getattr(self, f'att{i}_b1')))
        attention = torch.sigmoid(F.linear(hidden, getattr(self, f'att{i}_w2'), getattr(self, f'att{i}_b2')))
        return per_image_depthwise(h, attention @ getattr(self, f'bank{i}_w'), attention @ getattr(self, f'bank{i}_b'),
                                   self.kernel_sizes[i])

    def forward(self, x, a, b, dft_w, dft_h):
        n, c = x.shape[0], self.c
        pe = F.conv2d(x.reshape(n, c, a, b), self.cpe_w, self.cpe_b, padding=1, groups=c).reshape(n, c, a * b)
        y = self._norm(x, self.eps1) * self.n1_w + self.n1_b
        spectral = fourier_unit(y.permute(2, 0, 1).reshape(a, b, n, c), self.spec_wt, dft_w, dft_h)
        z = spectral.reshape(a * b, n, c).permute(1, 2, 0).contiguous() * F.conv1d(y, self.v_w, self.v_b)
        x = F.conv1d(torch.softmax(z, dim=-1) + pe, self.proj_w, self.proj_b) + x
        y = self._norm(x, self.eps2)
        halves = [F.gelu(F.conv1d(y, getattr(self, f'in{i}_w'), getattr(self, f'in{i}_b'))) for i in (1, 2)]
        d1, d2 = [F.gelu(self._dynamic_conv(i, h.reshape(n, c, a, b))).reshape(n, c, a * b)
                  for i, h in enumerate(halves)]
        return F.conv1d(d1, self.out1_w, self.out_b) + F.conv1d(d2, self.out2_w) + x


class ExportableSRConvNet(nn.Module):
    """``model(x)`` for a stock ``SRConvNet`` and an N × C × H × W ``x``, written for ``torch.export`` (see the
    module docstring). Holds copies of ``model``'s parameters (as buffers), computed once when it is built."""

    def __init__(self, model):
        super().__init__()
        self.scale = model.upscale
        self.img_range = model.img_range
        c = model.to_feat.out_channels
        self.c = c
        self.register_buffer('feat_w', _copy(model.to_feat.weight.transpose(2, 3)), persistent=False)
        self.register_buffer('feat_b', _copy(model.to_feat.bias), persistent=False)
        self.blocks = nn.ModuleList(_Block(block) for block in model.blocks)
        # upsampler stages: 1×1 conv + PixelShuffle(r) + GELU, output channels reordered from PixelShuffle's
        # c·r² + i·r + j to (j, i, c): sub-column first, as the transposed frame needs
        convs = [m for m in model.upsampling if isinstance(m, nn.Conv2d)]
        shuffles = [m for m in model.upsampling if isinstance(m, nn.PixelShuffle)]
        self.factors = tuple(shuffle.upscale_factor for shuffle in shuffles)
        for i, (conv, r) in enumerate(zip(convs, self.factors)):
            weight = conv.weight.flatten(1).view(c, r, r, c).permute(2, 1, 0, 3).reshape(r * r * c, c)
            self.register_buffer(f'up{i}_w', _copy(weight), persistent=False)
            self.register_buffer(f'up{i}_b', _copy(conv.bias.view(c, r, r).permute(2, 1, 0).reshape(-1)),
                                 persistent=False)
        tail = model.tail
        o, k = tail.out_channels, tail.kernel_size[0]
        self.taps = k * k * o
        # the tail conv's taps, rows (dx, dy, o) (transposed frame), and the one-hot conv that sums them
        self.register_buffer('taps_w', _copy(tail.weight.permute(3, 2, 0, 1).reshape(self.taps, c)), persistent=False)
        pick = torch.zeros(o, k, k, o, k, k, dtype=tail.weight.dtype)
        for dy in range(k):
            for dx in range(k):
                pick[:, dy, dx, :, dy, dx] = torch.eye(o, dtype=tail.weight.dtype)
        self.register_buffer('pick', pick.view(o, self.taps, k, k), persistent=False)
        self.register_buffer('tail_b', _copy(tail.bias), persistent=False)
        self.tail_padding = k // 2

    def forward(self, x):
        n, h, w = x.shape[0], x.shape[2], x.shape[3]
        c = self.c
        x = x * self.img_range
        feat = F.conv2d(x.transpose(2, 3), self.feat_w, self.feat_b, padding=1).reshape(n, c, w * h)  # W-major
        dft_w, dft_h = factored_real_dft(w, x.dtype), factored_complex_dft(h, x.dtype)  # shared by all blocks
        body = feat
        for block in self.blocks:
            body = block(body, w, h, dft_w, dft_h)
        t = (body + feat).permute(0, 2, 1).reshape(n * w * h, c)  # pixels × C: the 1×1 convs are one GEMM each
        a, b = w, h
        for i, r in enumerate(self.factors):
            t = F.gelu(F.linear(t, getattr(self, f'up{i}_w'), getattr(self, f'up{i}_b')))
            # the sub-pixels move onto the (transposed) grid
            t = t.reshape(n, a, b, r, r, c).permute(0, 1, 3, 2, 4, 5).reshape(n * a * r * b * r, c)
            a, b = a * r, b * r
        taps = torch.matmul(self.taps_w, t.reshape(n, a * b, c).transpose(1, 2)).reshape(n, self.taps, a, b)
        out = F.conv2d(taps, self.pick, self.tail_b, padding=self.tail_padding).transpose(2, 3)
        skip = F.interpolate(x, scale_factor=self.scale, mode='bilinear', align_corners=False)
        return (out + skip) / self.img_range


def exportable_form(model):
    """The module every export captures for ``model`` (an ``SRConvNet``): float32, CPU, eval mode, no gradients;
    input N × C × H × W in [0, 1], output N × C × sH × sW, equal to ``model(x)``.

    ``ExportableSRConvNet(model)`` for the stock network; for any other network (after an ``EngineStepsAside``
    warning naming the difference) a copy whose exactly-stock ``FourierUnit`` and ``KernelAggregation`` modules are
    swapped for ``ExportableFourierUnit`` / ``ExportableKernelAggregation``, every other module running its own
    forward. ``model`` itself is not changed.
    """
    difference = first_difference(model)
    if difference is None:
        form = ExportableSRConvNet(model)
    else:
        warnings.warn(f'srconvnet.export: {difference}; this network is exported through its module forwards (without '
                      'the stock network\'s folded form)', EngineStepsAside, stacklevel=2)
        form = module_forward_form(model)
    return form.float().cpu().eval().requires_grad_(False)


def module_forward_form(model, value_sized=False):
    """A copy of ``model`` that runs its module forwards, its exactly-stock ``FourierUnit`` and ``KernelAggregation``
    modules swapped for ``ExportableFourierUnit`` and ``ExportableKernelAggregation``; with ``value_sized`` (a batch
    of one, for pnnx → NCNN), ``ValueSizedFourierUnit`` and, for ``MixFFN``, ``ShuffleFoldedMixFFN``. Float32, CPU,
    eval mode, no gradients. ``model`` itself is not changed."""
    swaps = _VALUE_SIZED_SWAPS if value_sized else _SWAPS
    form = copy.deepcopy(model)
    for module in list(form.modules()):
        for name, child in list(module.named_children()):
            if _is_stock(child, swaps):
                setattr(module, name, swaps[type(child)](child))
    return form.float().cpu().eval().requires_grad_(False)


def export_program(model, input_size=None, dynamic=True, batch=None, max_size=None):
    """``torch.export.export`` of ``exportable_form(model)``: an ``ExportedProgram`` taking ``x``, N × C × H × W.

    - ``input_size`` (H, W): the sample the program is traced with (default ``DEFAULT_SAMPLE_SIZE``), and the
      fixed size when ``dynamic`` is False.
    - ``dynamic``: height and width are dynamic (``torch.export.Dim``, 1 to ``max_size``, default
      ``DEFAULT_MAX_SIDE`` each); the DFT factorisation is then chosen in the program from the input's size.
    - ``batch``: None makes the batch dynamic (1 to 1024); an int fixes it.

    With dynamic sizes the program holds data-dependent sizes (the DFT split, read back with ``.item()``); with
    ``dynamic=False`` it has none (the split is a constant). Lower each program once: in torch 2.14 a second
    ``torch.onnx.export`` of the same dynamic program fails (``PendingUnbackedSymbolNotFound``); call
    ``export_program`` again instead.
    """
    form = exportable_form(model)
    h, w = input_size or DEFAULT_SAMPLE_SIZE
    max_h, max_w = max_size or (DEFAULT_MAX_SIDE, DEFAULT_MAX_SIDE)
    sample = torch.rand(2 if batch is None else batch, model.to_feat.in_channels, h, w)
    dims = {}
    if batch is None:
        dims[0] = torch.export.Dim('batch', min=1, max=1024)
    if dynamic:
        dims[2] = torch.export.Dim('height', min=1, max=max_h)
        dims[3] = torch.export.Dim('width', min=1, max=max_w)
    # gradients stay enabled while tracing: SRConvNet.forward then never considers the engine
    return torch.export.export(form, (sample, ), dynamic_shapes={'x': dims} if dims else None)
