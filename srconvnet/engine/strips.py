"""The body (all ACBs plus the global residual) of one sample, strip by strip, without autograd.

The same operations as the blocks' module forwards, scheduled for the cache and for few, reused buffers: everything
that acts per pixel or on a small window (norms, 1×1 convs, CPE, dynamic depthwise convs, residuals) runs in strips
of rows whose temporaries stay in the cache, and results go into a handful of full-size buffers allocated once. The
three steps that need the whole map are split the same way: the Fourier unit's 2-D FFTs are 1-D FFTs along W on row
strips and along H on column strips (where the frequency-domain conv runs as well); the softmax over all positions
takes each strip's exponentials with the strip's own maximum and rescales them once the global maximum and sum are
known; the dynamic convs' global average is summed strip by strip. Both residual branches add into the block's map
in place; the CPE of a strip reads the row above it before that row changes. Each dynamic conv runs on its half of
the expanded map with its own kernel size, and proj_out takes their outputs as two products (its columns for y1
and for y2: the channel shuffle).
"""
import torch
import torch.nn.functional as F

from srconvnet.engine.fused import add_conv_rows_, add_linear_, depthwise_per_sample, gelu_, linear, nchw, nhwc
from srconvnet.engine.real_dft import real_dft

# strips of about this many elements of the 2C-channel DML map
BODY_STRIP_ELEMENTS = 1 << 20


def layer_norm(norm, x, out=None):
    """``LayerNorm2d`` ``norm`` on a B×H×W×C tensor, written into ``out`` (same shape, contiguous) if given."""
    if out is None:
        return F.layer_norm(x, (x.shape[-1], ), norm.weight, norm.bias, norm.eps)
    torch.ops.aten.native_layer_norm.out(x, [x.shape[-1]], norm.weight, norm.bias, norm.eps, out0=out,
                                         out1=out.new_empty(0), out2=out.new_empty(0))
    return out


def scaled_v(att):
    """Weight and bias of ``layer_scale · v`` of an FMA (heads are contiguous channel groups)."""
    scale = att.layer_scale.repeat_interleave(att.v.out_channels // att.num_heads)
    return (scale[:, None] * att.v.weight.flatten(1)).contiguous(), (scale * att.v.bias).contiguous()


def kernel_attention(attention, g):
    """``KernelAttention`` from the global average ``g`` (B×C) of its input: B×K kernel weights."""
    hidden = F.linear(g, attention.conv1.weight.flatten(1), attention.conv1.bias)
    # exact GELU written out: F.gelu costs milliseconds on these few numbers on CPU (kernel set-up)
    hidden = 0.5 * hidden * (1 + torch.erf(hidden * 0.7071067811865476))
    return torch.sigmoid(F.linear(hidden, attention.conv2.weight.flatten(1), attention.conv2.bias))


def dynamic_kernels(ffn, g):
    """[(kernels, biases) of conv1, of conv2]: per-sample B×C×1×k×k kernels and B×C biases of a DML's dynamic
    convs, from the average ``g`` (B×2C) of the expanded map."""
    c = g.shape[1] // 2
    kernels = []
    for holder, part in ((ffn.conv1, g[:, :c]), (ffn.conv2, g[:, c:])):
        aggregation = holder.conv.aggregation
        attention = kernel_attention(holder.conv.attention, part)
        k = aggregation.kernel_size
        kernels.append(((attention @ aggregation.weight.flatten(1)).view(-1, aggregation.num_feat, 1, k, k),
                        attention @ aggregation.bias))
    return kernels


def _zero_padded(like, h, w, c, pad):
    """An uninitialised 1×(h + 2·pad)×w×c buffer whose ``pad`` first and last rows are zero."""
    buf = like.new_empty(1, h + 2 * pad, w, c)
    buf[:, :pad].zero_()
    buf[:, h + pad:].zero_()
    return buf


def splits(n, size):
    """(start, end) of ``ceil(n / size)`` parts of range(n) as equal as possible."""
    parts = min(n, -(-n // max(1, size)))
    step = -(-n // parts)
    return [(i, min(n, i + step)) for i in range(0, n, step)]


def body_in_strips(blocks, feat):
    """``blocks(feat) + feat`` for one sample's features ``feat`` (1×H×W×C), without autograd."""
    _, h, w, c = feat.shape
    strips = splits(h, BODY_STRIP_ELEMENTS // (w * 2 * c))
    dft = real_dft(w, feat.dtype, feat.device)  # the FFT along W (frequencies in the order it keeps them)
    columns = splits(dft.width, BODY_STRIP_ELEMENTS // (h * 2 * c))
    blocks = list(blocks)
    x = _zero_padded(feat, h, w, c, 1)  # block input, zero rows above and below for the CPE's 3×3 window
    e = feat.new_empty(1, h, w, c)  # LN(x) of the attention, then the exponentials of its softmax, then + CPE
    complex_dtype = torch.complex128 if feat.dtype == torch.float64 else torch.complex64
    spec = feat.new_empty(1, h, dft.width, c, dtype=complex_dtype)  # spectrum of y (NHWC: view_as_real interleaves)
    # the two halves y1, y2 of the expanded DML map, each with zero rows for its dynamic conv's window (separate
    # buffers: oneDNN would copy a half that is a channel slice)
    pads = [max(getattr(b.ffn, name).conv.aggregation.kernel_size for b in blocks) // 2 for name in ('conv1', 'conv2')]
    halves = [_zero_padded(feat, h, w, c, pad) for pad in pads]

    def norm_and_rfft(norm, r0, r1):
        """LN(x) of rows r0..r1 into e and its FFT along W (orthonormal: 1/sqrt(W) here, 1/sqrt(H) along H)."""
        dft.rfft(layer_norm(norm, x[:, 1 + r0:1 + r1], out=e[:, r0:r1])[0], out=spec[0, r0:r1])

    def spectral_columns(spectral, c0, c1):
        """FFT along H, frequency-domain 1×1 conv + GELU and inverse FFT along H of spectrum columns c0..c1."""
        f = torch.fft.fft(spec[:, :, c0:c1], dim=1, norm='ortho')
        # channel 2c = Re, 2c+1 = Im (the view_as_real layout), GELU on both parts separately
        f = linear(torch.view_as_real(f.contiguous()).flatten(-2), spectral, gelu=True)
        spec[:, :, c0:c1] = torch.fft.ifft(torch.view_as_complex(f.unflatten(-1, (c, 2))), dim=1, norm='ortho')

    def exponentials(v_weight, v_bias, r0, r1):
        """exp(z − strip max) into e for z = layer_scale·a·v on rows r0..r1; returns the strip's max and sum."""
        a = dft.irfft(spec[0, r0:r1])[None]  # drops the imaginary part of the W-frequency 0 (and W/2) column
        z = linear(e[:, r0:r1], v_weight, v_bias, mul=a)
        m = z.amax((0, 1, 2))
        torch.exp(z.sub_(m), out=e[:, r0:r1])
        return m, e[:, r0:r1].sum((0, 1, 2))

    def positional(att, factor, r0, r1):
        """Softmax + CPE(x) into e on rows r0..r1 (x still the block input on rows r0 − 1 .. r1)."""
        add_conv_rows_(e[:, r0:r1].mul_(factor), x[:, r0:r1 + 2], att.CPE)

    def attention_and_expansion(att, ffn, r0, r1):
        """x += proj(e) on rows r0..r1 (the FMA output), and the DML's expanded map GELU(proj_in(LN(x))) into the
        two halves; returns the expanded map's sum over the strip (2C channels)."""
        add_linear_(x[:, 1 + r0:1 + r1], e[:, r0:r1], att.proj.weight, att.proj.bias)
        y = layer_norm(ffn.norm, x[:, 1 + r0:1 + r1]).view(-1, c)
        weight, bias = ffn.proj_in.weight.flatten(1), ffn.proj_in.bias
        sums = []
        for j, (half, pad) in enumerate(zip(halves, pads)):
            t = half[:, pad + r0:pad + r1]
            torch.addmm(bias[j * c:(j + 1) * c], y, weight[j * c:(j + 1) * c].t(), out=t.view(-1, c))
            sums.append(gelu_(t).sum((0, 1, 2)))
        return torch.cat(sums)

    def mixing(ffn, kernels, following, r0, r1):
        """x += DML output on rows r0..r1 (the block output), then the next block's LN and FFT along W."""
        for j, (weight, bias, proj) in enumerate(kernels):
            q, pad = weight.shape[-1] // 2, pads[j]
            half = halves[j][:, pad - q + r0:pad + q + r1]
            d = nhwc(depthwise_per_sample(nchw(half), weight, bias, gelu=True, padding=(0, q)))
            add_linear_(x[:, 1 + r0:1 + r1], d, proj, ffn.proj_out.bias if j == 0 else None)
        if following is not None:
            norm_and_rfft(following, r0, r1)

    x[:, 1:h + 1] = feat
    for r0, r1 in strips:
        norm_and_rfft(blocks[0].attention.norm, r0, r1)
    for i, block in enumerate(blocks):
        att, ffn = block.attention, block.ffn
        spectral = att.a.conv_layer.weight.flatten(1).contiguous()
        for c0, c1 in columns:
            spectral_columns(spectral, c0, c1)
        v_weight, v_bias = scaled_v(att)
        maxima, sums = zip(*[exponentials(v_weight, v_bias, r0, r1) for r0, r1 in strips])
        # softmax over all H·W positions per channel: strip factor exp(m_strip − m) / Σ exp(z − m)
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
        kernels = dynamic_kernels(ffn, (torch.stack(sums).sum(0) / (h * w))[None])
        # the channel shuffle: proj_out's input channel 2i is y1's channel i, 2i + 1 is y2's
        kernels = [(weight, bias, ffn.proj_out.weight[:, j::2].contiguous())
                   for j, (weight, bias) in enumerate(kernels)]
        following = blocks[i + 1].attention.norm if i + 1 < len(blocks) else None
        for r0, r1 in strips:
            mixing(ffn, kernels, following, r0, r1)
    return x[:, 1:h + 1].add_(feat)
