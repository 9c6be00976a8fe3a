"""The stock SRConvNet re-written for ONNX Runtime: what ``python -m srconvnet.export`` traces for a stock network.

``OnnxSRConvNet(model)`` computes ``model(x)`` for one image (batch 1; the export wraps the traced graph in a
``Scan`` over the batch) from ``model``'s parameters, in a form whose traced ONNX graph ONNX Runtime runs fast:

- **Every DFT is two matrix products** (``real_dft.factored_real_dft`` / ``factored_complex_dft``): for a length
  N = P·Q, a Q-point DFT, then per frequency group one 2P×2P matrix with the twiddle factors; about Q + 2P
  multiply-adds per value instead of N for a dense DFT matrix. The split is chosen in the graph from the input's
  size (any N works; a prime N falls back to one dense stage). ONNX's ``DFT`` operator is no alternative: ONNX
  Runtime 1.32 runs it hundreds of times slower than these products at 720p sizes.
- **The image is processed transposed** (W before H), so that the real DFT, along W, contracts the leading axis:
  each stage is one large matrix product. Convolution kernels are transposed to match; the output is not.
- **The body is channels-first** (C × H·W) so that the 1×1 convs are plain matrix products, the softmax runs on the
  last axis, and the depthwise convs need no layout change; the Fourier unit runs channels-last inside (the layout
  its matrix products and the frequency-domain 1×1 conv want), with one transpose in and one out.
- **The upsampler runs per pixel then pixel-shuffles channels-last** (block copies), and the tail's 3×3 conv is
  split into taps as in ``srconvnet.engine.tail`` (a product C → 27 per HR pixel, then a one-hot 3×3 conv).
- ``layer_scale`` is folded into the value conv, the mixing layer's LayerNorm affine into ``proj_in`` and its
  channel shuffle into ``proj_out``'s columns; the LayerNorms are computed channels-first (two reductions over the
  channel axis).

The dynamic depthwise convs stay ``Conv`` nodes with per-image weights: ONNX Runtime runs them without its blocked
(NCHWc) kernels, which need constant weights, and they are the largest single cost (``docs/speed.md``).

Only the stock network is re-written (``guard.first_difference`` is None): the export traces anything else through
its module forwards (``srconvnet.export.to_exportable``) after an ``EngineStepsAside`` warning.
"""
import torch
import torch.nn.functional as F
from torch import nn

from srconvnet.engine.real_dft import factored_complex_dft, factored_real_dft, reshape


def _copy(t):
    return t.detach().clone().contiguous()


class _Block(nn.Module):
    """One ACB (``BasicBlock``): FMA then DML, on a C × W × H map (transposed frame, batch dimension dropped)."""

    def __init__(self, block):
        super().__init__()
        att, ffn = block.attention, block.ffn
        c = att.v.weight.shape[0]
        self.c = c
        self.eps1, self.eps2 = att.norm.eps, ffn.norm.eps
        scale = att.layer_scale.repeat_interleave(c // att.num_heads)
        # the spectral conv's channels 2c + ri become ri·C + c (Re/Im halves), as the spectrum is laid out
        perm = torch.arange(2 * c).view(c, 2).t().reshape(-1)
        spec = att.a.conv_layer.weight.flatten(1)
        w_in, w_out = ffn.proj_in.weight.flatten(1), ffn.proj_out.weight.flatten(1)
        tensors = {
            'cpe_w': att.CPE.weight.transpose(2, 3), 'cpe_b': att.CPE.bias,
            'n1_w': att.norm.weight[:, None], 'n1_b': att.norm.bias[:, None],
            'v_w': att.v.weight.flatten(1) * scale[:, None], 'v_b': (att.v.bias * scale)[:, None],
            'spec_wt': spec[perm][:, perm].t(),
            'proj_w': att.proj.weight.flatten(1), 'proj_b': att.proj.bias[:, None],
            # the mixing layer's LayerNorm affine folded into proj_in (split into the halves the two convs take)
            'in1_w': w_in[:c] * ffn.norm.weight, 'in1_b': (ffn.proj_in.bias + w_in @ ffn.norm.bias)[:c, None],
            'in2_w': w_in[c:] * ffn.norm.weight, 'in2_b': (ffn.proj_in.bias + w_in @ ffn.norm.bias)[c:, None],
            # the channel shuffle (2i: first half, 2i + 1: second half) read from proj_out's columns
            'out1_w': w_out[:, 0::2], 'out2_w': w_out[:, 1::2], 'out_b': ffn.proj_out.bias[:, None],
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

    @staticmethod
    def _norm(x, eps):
        """LayerNorm without its affine over the channels of a C × N map (biased variance, eps inside the root)."""
        d = x - x.mean(0, keepdim=True)
        return d * torch.rsqrt((d * d).mean(0, keepdim=True) + eps)

    def _fourier_unit(self, y, dft_w, dft_h):
        """``FourierUnit`` of a C × W × H map (rfft2's one-sided axis is W, here the leading one); returns C × W·H."""
        c, a, b = y.shape[0], y.shape[1], y.shape[2]
        p, q, g, s1, s2, i2, i1 = dft_w
        hp, hq, f1, f2, b2, b1 = dft_h
        t = reshape(y, c, -1).t()  # W·H × C
        t = torch.matmul(s1, reshape(t, q, p * b * c))  # 2G(g, Re/Im) × P·H·C
        t = torch.matmul(s2, reshape(t, g, 2 * p, b * c))  # G × 2P(Re/Im, slot) × H·C
        t = reshape(t, g, 2, p, b, c).permute(1, 3, 0, 2, 4)  # Re/Im × H × G × P × C
        t = torch.matmul(f1, reshape(t, 2 * hq, hp * g * p * c))  # 2Q'(k1, Re/Im) × P'·G·P·C
        t = torch.matmul(f2, reshape(t, hq, 2 * hp, g * p * c))  # Q' × 2P'(Re/Im, k2) × G·P·C
        t = reshape(t, hq, 2, hp * g * p, c).permute(0, 2, 1, 3)  # Q' × P'·G·P × Re/Im × C
        t = F.gelu(torch.matmul(reshape(t, hq, hp * g * p, 2 * c), self.spec_wt))
        t = reshape(t, hq, hp * g * p, 2, c).permute(0, 2, 1, 3)  # Q' × Re/Im × P'·G·P × C
        t = torch.matmul(b2, reshape(t, hq, 2 * hp, g * p * c))  # Q' × 2P'(Re/Im, n2) × G·P·C
        t = torch.matmul(b1, reshape(t, 2 * hq, hp * g * p * c))  # Re/Im × H × G × P × C
        t = reshape(t, 2, b, g, p, c).permute(2, 0, 3, 1, 4)  # G × Re/Im × P × H × C
        t = torch.matmul(i2, reshape(t, g, 2 * p, b * c))  # G × 2P(Re/Im, n2) × H·C
        t = torch.matmul(i1, reshape(t, 2 * g, p * b * c))  # W × H·C
        return reshape(t, a * b, c).t()

    def _dynamic_conv(self, i, h):
        """``DynamicConv`` of a 1 × C × W × H map: kernel attention, then the mixed depthwise kernels."""
        c, k = self.c, self.kernel_sizes[i]
        pooled = h.mean((2, 3))
        hidden = F.gelu(F.linear(pooled, getattr(self, f'att{i}_w1'), getattr(self, f'att{i}_b1')))
        attention = torch.sigmoid(F.linear(hidden, getattr(self, f'att{i}_w2'), getattr(self, f'att{i}_b2')))
        weight = (attention @ getattr(self, f'bank{i}_w')).view(c, 1, k, k)
        bias = (attention @ getattr(self, f'bank{i}_b')).view(c)
        return F.conv2d(h, weight, bias, padding=k // 2, groups=c)

    def forward(self, x, dft_w, dft_h):
        c, a, b = x.shape[0], x.shape[1], x.shape[2]
        pe = reshape(F.conv2d(x.unsqueeze(0), self.cpe_w, self.cpe_b, padding=1, groups=c), c, -1)
        x = reshape(x, c, -1)
        y = self._norm(x, self.eps1) * self.n1_w + self.n1_b
        z = self._fourier_unit(reshape(y, c, a, b), dft_w, dft_h) * (torch.matmul(self.v_w, y) + self.v_b)
        x = torch.matmul(self.proj_w, torch.softmax(z, dim=1) + pe) + self.proj_b + x
        y = self._norm(x, self.eps2)
        halves = [F.gelu(torch.matmul(getattr(self, f'in{i}_w'), y) + getattr(self, f'in{i}_b')) for i in (1, 2)]
        d1, d2 = [reshape(F.gelu(self._dynamic_conv(i, reshape(h, 1, c, a, b))), c, -1) for i, h in enumerate(halves)]
        x = (torch.matmul(self.out1_w, d1) + self.out_b) + torch.matmul(self.out2_w, d2) + x  # bias in a Gemm
        return reshape(x, c, a, b)


class OnnxSRConvNet(nn.Module):
    """``model(x)`` for a stock ``SRConvNet`` and a 1 × C × H × W ``x``, written for tracing to ONNX (see the module
    docstring). Holds copies of ``model``'s parameters (as buffers), computed once when it is built."""

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
        for n, (conv, r) in enumerate(zip(convs, self.factors)):
            weight = conv.weight.flatten(1).view(c, r, r, c).permute(2, 1, 0, 3).reshape(r * r * c, c)
            self.register_buffer(f'up{n}_wt', _copy(weight.t()), persistent=False)
            self.register_buffer(f'up{n}_b', _copy(conv.bias.view(c, r, r).permute(2, 1, 0).reshape(-1)),
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
        h, w = x.shape[2], x.shape[3]
        c = self.c
        x = x * self.img_range
        feat = F.conv2d(x.transpose(2, 3), self.feat_w, self.feat_b, padding=1)[0]  # C × W × H
        dft_w, dft_h = factored_real_dft(w, x.dtype), factored_complex_dft(h, x.dtype)  # shared by all blocks
        body = feat
        for block in self.blocks:
            body = block(body, dft_w, dft_h)
        t = reshape(body + feat, c, -1).t()  # W·H × C
        a, b = w, h
        for n, r in enumerate(self.factors):
            t = F.gelu(torch.matmul(t, getattr(self, f'up{n}_wt')) + getattr(self, f'up{n}_b'))
            t = reshape(t, a, b, r, r, c).permute(0, 2, 1, 3, 4)  # the sub-pixels move onto the (transposed) grid
            a, b = a * r, b * r
            t = reshape(t, a * b, c)
        taps = reshape(torch.matmul(self.taps_w, t.t()), 1, self.taps, a, b)
        out = F.conv2d(taps, self.pick, self.tail_b, padding=self.tail_padding).transpose(2, 3)
        skip = F.interpolate(x, scale_factor=self.scale, mode='bilinear', align_corners=False)
        return (out + skip) / self.img_range
