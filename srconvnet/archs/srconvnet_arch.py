"""SRConvNet, computing exactly what the authors' implementation computes; it needs torch alone.

``import srconvnet_plugin`` registers :class:`SRConvNet` in BasicSR's ``ARCH_REGISTRY`` (option files say
``network_g: {type: SRConvNet, ...}``); spandrel, ComfyUI, ONNX export and ``srconvnet-infer`` use this class as is.

Reference: Feng Li, Runmin Cong, Jingjing Wu, Huihui Bai, Meng Wang, Yao Zhao. "SRConvNet: A Transformer-Style
ConvNet for Lightweight Image Super-Resolution". International Journal of Computer Vision (IJCV), 2024.
Authors' code: github.com/lifengcs/SRConvNet (commit c532d7f, models/m_block.py and models/m_network.py).

The modules read top-down like the paper's Figure 2: LayerNorm, Fourier unit, FMA (``FConvMod``), dynamic depthwise
convolution, DML (``MixFFN``), the block (ACB, ``BasicBlock``) and the network. Module and parameter names follow the
reference so that its state dicts load after stripping the ``module.`` prefix (see ``srconvnet.convert``).
Where the reference departs from the paper's prose, a one-line ``# Fidelity:`` comment says so.

Each module's ``forward`` is the whole computation: training, validation, FLOP counting and ONNX export run it.
Features are channels-last (NHWC strides) throughout, which makes the 1×1 convs matrix products on the channel axis.
Without autograd on CPU, ``SRConvNet.forward`` hands the stock network to ``srconvnet.engine`` (the same
numbers, scheduled strip by strip with fused kernels); the engine checks that the network is exactly this code and
otherwise warns once and steps aside, so an edit made here changes every path.
"""
import torch
import torch.nn.functional as F
from torch import nn

from srconvnet import engine

SUPPORTED_SCALES = (2, 3, 4)


class PointwiseConv(nn.Conv2d):
    """A 1×1 ``nn.Conv2d`` (same parameters and keys) computed as one matrix product on the channel axis: the same
    numbers as the conv, faster to train on CPU with channels-last features."""

    def __init__(self, in_channels, out_channels, bias=True):
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, x):
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x.permute(0, 2, 3, 1), self.weight.flatten(1).to(x.dtype), bias).permute(0, 3, 1, 2)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a B×C×H×W tensor ("channels_first" in the reference)."""

    def __init__(self, num_channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps  # Fidelity: eps 1e-6 inside the square root, biased variance.

    def forward(self, x):
        # one fused call on the channel axis: the reference's explicit mean/variance formula, the same numbers
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1], ), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class FourierUnit(nn.Module):
    """1×1 conv + GELU on the orthonormal 2-D real spectrum, real/imaginary parts interleaved as channels."""

    def __init__(self, num_feat):
        super().__init__()
        # Fidelity: the frequency-domain conv has no bias (the paper's prose suggests one).
        self.conv_layer = PointwiseConv(num_feat * 2, num_feat * 2, bias=False)
        self.act = nn.GELU()  # Fidelity: exact (erf) GELU in the frequency domain, on Re and Im separately.

    def forward(self, x):
        b, c, h, w = x.shape
        # cuFFT in half precision takes only power-of-two sizes: the whole unit runs in float32 under autocast.
        with torch.autocast(device_type=x.device.type, enabled=False):
            if x.dtype not in (torch.float32, torch.float64):
                x = x.float()
            # B×H×(W//2+1)×C spectrum of the channels-last map. Fidelity: orthonormal, one-sided along W.
            spec = torch.fft.rfft2(x.permute(0, 2, 3, 1), dim=(1, 2), norm='ortho')
            # Fidelity: channel 2c = Re(Y_c), channel 2c+1 = Im(Y_c): exactly the view_as_real layout of the last axis.
            spec = torch.view_as_real(spec).flatten(-2)
            spec = self.act(self.conv_layer(spec.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)
            spec = torch.view_as_complex(spec.reshape(b, h, w // 2 + 1, c, 2))
            # Fidelity: irfft2 drops the imaginary part of the W-frequency 0 (and W/2) column of the non-Hermitian map.
            out = torch.fft.irfft2(spec, s=(h, w), dim=(1, 2), norm='ortho').permute(0, 3, 1, 2)
            # the FFT writes channel-major memory: back to channels-last, as the features it multiplies are
            return out.contiguous(memory_format=torch.channels_last)


class FConvMod(nn.Module):
    """Fourier modulated attention (FMA): softmax(layer_scale · FourierUnit(LN(x)) · v) + CPE, projected."""

    def __init__(self, num_feat, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.norm = LayerNorm2d(num_feat)
        # Fidelity: per-head scale of a·v, initialised to 1e-6.
        self.layer_scale = nn.Parameter(1e-6 * torch.ones(num_heads))
        self.a = FourierUnit(num_feat)
        self.v = PointwiseConv(num_feat, num_feat)  # Fidelity: the value conv has a bias.
        self.CPE = nn.Conv2d(num_feat, num_feat, 3, padding=1, groups=num_feat)
        self.proj = PointwiseConv(num_feat, num_feat)

    def forward(self, x):
        b, c, h, w = x.shape
        pe = self.CPE(x)  # Fidelity: positional term (CPE) from the raw block input, before the norm.
        y = self.norm(x)
        # heads are contiguous channel groups: each head's scale repeats over its C / heads channels
        scale = self.layer_scale.repeat_interleave(c // self.num_heads).view(1, c, 1, 1)
        z = self.a(y) * self.v(y) * scale
        # Fidelity: the reference's raster-order chunk split of the H·W axis is elementwise, hence a no-op: dropped.
        # Fidelity: softmax over all H·W positions per channel, so each map sums to 1 (magnitude ~ 1/(H·W)).
        z = torch.softmax(z.permute(0, 2, 3, 1).flatten(1, 2), dim=1).view(b, h, w, c).permute(0, 3, 1, 2)
        return self.proj(z.to(pe.dtype) + pe) + x


class KernelAttention(nn.Module):
    """Per-sample weights of the K kernels of a dynamic conv: pool, 1×1 conv, GELU, 1×1 conv, sigmoid."""

    def __init__(self, num_feat, num_kernels, reduction=8):
        super().__init__()
        # Fidelity: hidden width C // 8, except for C = 3, where the reference uses K.
        hidden = num_kernels if num_feat == 3 else num_feat // reduction
        self.conv1 = PointwiseConv(num_feat, hidden)
        self.act = nn.GELU()
        self.conv2 = PointwiseConv(hidden, num_kernels)

    def forward(self, x):
        g = F.adaptive_avg_pool2d(x, 1)
        # Fidelity: sigmoid, not softmax: the K weights do not sum to 1 and there is no temperature.
        return torch.sigmoid(self.conv2(self.act(self.conv1(g))).flatten(1))


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
        k = self.kernel_size
        weight = (attention @ self.weight.flatten(1)).view(-1, self.num_feat, 1, k, k).to(x.dtype)
        bias = (attention @ self.bias).to(x.dtype)
        # sample n with its own kernels; one conv per sample keeps the channels-last layout (folding B into the
        # channels, as the reference does, would copy the features twice)
        return torch.cat([F.conv2d(x[n:n + 1], weight[n], bias[n], padding=k // 2, groups=self.num_feat)
                          for n in range(x.shape[0])])


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
        self.proj_in = PointwiseConv(num_feat, num_feat * 2)
        self.conv1 = DynamicDWConv(num_feat, 5, num_kernels)
        self.conv2 = DynamicDWConv(num_feat, 7, num_kernels)
        self.proj_out = PointwiseConv(num_feat * 2, num_feat)
        self.act = nn.GELU()

    def forward(self, x):
        # Fidelity: GELU after proj_in and after each dynamic conv (absent from the paper's figure).
        # the halves are split on the channels-last layout (so that their gradients join in it too)
        y1, y2 = self.act(self.proj_in(self.norm(x))).permute(0, 2, 3, 1).chunk(2, dim=-1)
        y1, y2 = self.conv1(y1.permute(0, 3, 1, 2)), self.conv2(y2.permute(0, 3, 1, 2))
        # Fidelity: channel shuffle: channel 2i is y1's channel i, channel 2i + 1 is y2's (built channels-last).
        y = torch.stack((y1.permute(0, 2, 3, 1), y2.permute(0, 2, 3, 1)), dim=-1).flatten(3).permute(0, 3, 1, 2)
        # the GELU after the dynamic convs acts per element: once, after the shuffle (the same numbers, faster)
        return self.proj_out(self.act(y)) + x  # Fidelity: DML residual.


class BasicBlock(nn.Module):
    """Attention-like conv block (ACB): FMA then DML, each with its own residual."""

    def __init__(self, num_feat, num_heads, num_kernels):
        super().__init__()
        self.attention = FConvMod(num_feat, num_heads)
        self.ffn = MixFFN(num_feat, num_kernels)

    def forward(self, x):
        return self.ffn(self.attention(x))


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
        # the constructor's arguments with their defaults, as spandrel's and traiNNer-redux's architectures keep them
        self.hyperparameters = dict(num_in_ch=num_in_ch, num_out_ch=num_out_ch, num_feat=num_feat, num_block=num_block,
                                    num_heads=num_heads, num_kernels=num_kernels, upscale=upscale, img_range=img_range)
        self.upscale = upscale
        self.img_range = img_range

        self.to_feat = nn.Conv2d(num_in_ch, num_feat, 3, padding=1)
        self.blocks = nn.Sequential(*[BasicBlock(num_feat, num_heads, num_kernels) for _ in range(num_block)])
        if upscale == 4:  # keys upsampling.0.* and upsampling.3.*
            self.upsampling = nn.Sequential(
                PointwiseConv(num_feat, num_feat * 4), nn.PixelShuffle(2), nn.GELU(),
                PointwiseConv(num_feat, num_feat * 4), nn.PixelShuffle(2), nn.GELU())
        else:  # keys upsampling.0.*
            self.upsampling = nn.Sequential(
                PointwiseConv(num_feat, num_feat * upscale**2), nn.PixelShuffle(upscale), nn.GELU())
        self.tail = nn.Conv2d(num_feat, num_out_ch, 3, padding=1)

    def forward(self, x):
        if not torch.is_grad_enabled() and engine.accepts(self, x):
            return engine.run(self, x)  # the same numbers, faster (srconvnet.engine)
        x = x * self.img_range  # Fidelity: no mean shift (the reference's MeanShift modules are never called).
        feat = self.to_feat(x.contiguous(memory_format=torch.channels_last))
        feat = self.blocks(feat) + feat
        # Fidelity: global skip is bilinear upsampling of the raw input, align_corners=False.
        skip = F.interpolate(x, scale_factor=self.upscale, mode='bilinear', align_corners=False)
        return (self.tail(self.upsampling(feat)) + skip.to(feat.dtype)) / self.img_range


def count_parameters(model):
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ['SRConvNet', 'SUPPORTED_SCALES', 'count_parameters']
