"""The whole SRConvNet forward pass as the engine runs it (CPU, no autograd, float32 or float64)."""
import torch
import torch.nn.functional as F

from srconvnet.engine.fused import nchw, nhwc
from srconvnet.engine.strips import body_in_strips
from srconvnet.engine.tail import add_upsample_tail


def run(model, x):
    """``model(x)`` for a stock ``SRConvNet`` (``srconvnet.engine.accepts(model, x)``), computed by the
    engine: the body of each sample strip by strip, the upsampler and tail on the LR grid in strips of rows."""
    x = x * model.img_range
    feat = model.to_feat(x.contiguous(memory_format=torch.channels_last))
    feat = torch.cat([nchw(body_in_strips(model.blocks, nhwc(feat[n:n + 1]))) for n in range(len(feat))])
    out = F.interpolate(x, scale_factor=model.upscale, mode='bilinear', align_corners=False)
    out = add_upsample_tail(model.upsampling, model.tail, model.upscale, nhwc(feat), out)
    return out.div_(model.img_range)
