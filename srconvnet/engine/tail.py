"""Upsampler and tail of SRConvNet on the LR grid, in strips of LR rows, without autograd.

PixelShuffle is a permutation and GELU and 1×1 convs act per pixel, so each upsampler stage (1×1 conv,
PixelShuffle(r), exact GELU) runs on the LR grid with its output channels reordered to (sub-row, sub-column,
channel). The tail's 3×3 conv is split into its 9 taps: one product C → 9·out_ch per HR pixel (still on the LR grid),
only those 9·out_ch values move to the HR grid (instead of C), and a 3×3 conv with one-hot kernels sums the shifted
taps into the output (in place). This runs in strips of LR rows; the last two HR rows of tap maps of a strip are
carried over to the next one, whose first output row needs them, so nothing is computed twice and only a strip of
the HR map exists at a time.
"""
import torch
import torch.nn.functional as F
from torch import nn

from srconvnet.engine.fused import linear

# strips hold about this many elements of the widest (pixel-shuffled, C-channel) map
STRIP_ELEMENTS = 1 << 20


def subpixel_stages(upsampling):
    """(weight, bias, r) of each 1×1 conv + PixelShuffle(r) stage, output channels reordered from PixelShuffle's
    c·r² + i·r + j to (i·r + j)·C + c."""
    convs = [m for m in upsampling if isinstance(m, nn.Conv2d)]
    shuffles = [m for m in upsampling if isinstance(m, nn.PixelShuffle)]
    stages = []
    for conv, shuffle in zip(convs, shuffles):
        r = shuffle.upscale_factor
        weight = conv.weight.flatten(1)
        weight = weight.view(-1, r * r, weight.shape[1]).transpose(0, 1).reshape(weight.shape)
        stages.append((weight.contiguous(), conv.bias.view(-1, r * r).t().reshape(-1), r))
    return stages


def add_upsample_tail(upsampling, tail, scale, feat, out):
    """``out += tail(upsampling(feat))`` in place for B×H×W×C features ``feat`` and a B×O×sH×sW tensor ``out``."""
    b, h, w, c = feat.shape
    stages = subpixel_stages(upsampling)
    # axes 1, rows, W, (i1, j1), (i2, j2), ..., X -> 1, rows, i1, i2, ..., W, j1, j2, ..., X
    rows_sub = [3 + 2 * i for i in range(len(stages))]
    cols_sub = [4 + 2 * i for i in range(len(stages))]

    def subpixels(u):
        for weight, bias, r in stages:
            # (..., r, r, C): the sub-pixel (i, j) of every pixel so far, then the channels
            u = linear(u, weight, bias, gelu=True).unflatten(-1, (r, r, c))
        return u

    o, k = tail.out_channels, tail.kernel_size[0]
    taps = tail.weight.permute(2, 3, 0, 1).reshape(k * k * o, c)  # rows (dy, dx, out channel)
    # the tail is then a k×k conv of the k·k·O tap maps with one-hot kernels: output channel j sums the maps
    # (dy, dx, j) shifted by (dy, dx)
    pick = torch.zeros(o, k, k, o, k, k, dtype=feat.dtype, device=feat.device)
    for dy in range(k):
        for dx in range(k):
            pick[:, dy, dx, :, dy, dx] = torch.eye(o, dtype=feat.dtype, device=feat.device)
    pick = pick.view(o, k * k * o, k, k)
    q = k // 2
    rows = max(1, STRIP_ELEMENTS // (w * scale * scale * c))
    # HR tap maps of a strip, after the last 2q HR rows of the previous strip (zero above the image)
    buf = feat.new_empty(1, 2 * q + rows * scale + q, w * scale, k * k * o)
    for n in range(b):
        buf[:, :2 * q].zero_()
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            m = (r1 - r0) * scale
            t = linear(subpixels(feat[n:n + 1, r0:r1]), taps)
            # the sub-pixels move to the HR grid: k·k·O values per HR pixel instead of C
            hr = buf[:, 2 * q:2 * q + m]
            hr.view(1, r1 - r0, *[t.shape[i] for i in rows_sub], w, *[t.shape[i] for i in cols_sub], -1).copy_(
                t.permute(0, 1, *rows_sub, 2, *cols_sub, t.dim() - 1))
            first, last = r0 == 0, r1 == h
            if last:
                buf[:, 2 * q + m:3 * q + m].zero_()  # zero below the image
            # input HR rows r0·s − 2q (r0·s − q for the first strip) .. r1·s (+ q for the last strip)
            taps_in = buf[:, (q if first else 0):2 * q + m + (q if last else 0)]
            rows_out = F.conv2d(taps_in.permute(0, 3, 1, 2), pick, tail.bias, padding=(0, q))
            y0 = r0 * scale - (0 if first else q)
            out[n:n + 1, :, y0:y0 + rows_out.shape[2]] += rows_out
            buf[:, :2 * q] = buf[:, m:m + 2 * q].clone()  # carry the last 2q HR rows
    return out
