"""The tiler: run SRConvNet on a whole image or in tiles with context, keeping each tile's centre. Needs torch only.

One tiler for every front end: ``srconvnet-infer`` (``infer.py``), the ComfyUI node (``comfyui_srconvnet/``) and
``scripts/benchmark_tiling.py``. Tiles bound memory but are not exact for SRConvNet, whose FFT, softmax and kernel
attention span the whole input: docs/inference.md, "Tiling and the network's image-wide operations", gives the
numbers.
"""
import torch
import torch.nn.functional as F

# Defaults chosen from scripts/benchmark_tiling.py (numbers in docs/inference.md): inputs up to DEFAULT_TILE pixels on
# each side run whole (exact), larger ones in tiles of DEFAULT_TILE with DEFAULT_TILE_PAD pixels of context.
DEFAULT_TILE = 512
DEFAULT_TILE_PAD = 32
#: how an alpha channel is upscaled: by the network on a grey replica (Real-ESRGAN's default) or bilinearly
ALPHA_UPSAMPLERS = ('model', 'bilinear')
#: ITU-R BT.601 luma weights (OpenCV's COLOR_RGB2GRAY): the network's RGB output of a grey replica back to grey
GREY_WEIGHTS = (0.299, 0.587, 0.114)


def _run(model, lq, autocast_dtype):
    """Model forward on a 1×3×h×w tensor, under autocast when asked; float32 output."""
    if autocast_dtype is None:
        return model(lq).float()
    with torch.autocast(device_type=lq.device.type, dtype=autocast_dtype):
        return model(lq).float()


def tile_boxes(height, width, tile, tile_pad):
    """Tiles of an h×w image: list of ``(core, padded)`` boxes ``(y0, y1, x0, x1)`` in LR pixels.

    The cores partition the image into ``tile``×``tile`` pieces (smaller at the right and bottom edges); each padded
    box is its core grown by ``tile_pad`` on every side, clipped to the image. ``tile <= 0`` gives one whole tile.
    """
    if tile <= 0 or (height <= tile and width <= tile):
        box = (0, height, 0, width)
        return [(box, box)]
    boxes = []
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            padded = (max(y0 - tile_pad, 0), min(y1 + tile_pad, height), max(x0 - tile_pad, 0),
                      min(x1 + tile_pad, width))
            boxes.append(((y0, y1, x0, x1), padded))
    return boxes


@torch.inference_mode()
def upscale_tensor(model, lq, scale, tile=0, tile_pad=DEFAULT_TILE_PAD, autocast_dtype=None, progress=False,
                   on_tile=None):
    """Upscale a 1×3×h×w tensor in [0, 1] on the model's device; returns a CPU float32 1×3×sh×sw tensor in [0, 1].

    With ``tile > 0`` and an image larger than ``tile`` on some side, each tile is run with ``tile_pad`` pixels of
    context and only its core is kept (as Real-ESRGAN's ``tile_process``), so memory is bounded by the tile size.
    ``on_tile()`` is called after each network pass (once for a whole image); ``progress=True`` shows a tqdm bar
    over the tiles.
    """
    _, channels, height, width = lq.shape
    boxes = tile_boxes(height, width, tile, tile_pad)
    if len(boxes) == 1:
        out = _run(model, lq, autocast_dtype).clamp_(0, 1).cpu()
        if on_tile is not None:
            on_tile()
        return out
    bar = None
    if progress:
        from tqdm import tqdm  # srconvnet-infer's progress bars (the infer extra)
        bar = tqdm(total=len(boxes), desc='tiles', unit='tile', leave=False)
    out = torch.empty(1, channels, height * scale, width * scale)
    for (y0, y1, x0, x1), (py0, py1, px0, px1) in boxes:
        sr = _run(model, lq[:, :, py0:py1, px0:px1], autocast_dtype)
        oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
        out[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = sr[:, :, oy:oy + (y1 - y0) * scale,
                                                                    ox:ox + (x1 - x0) * scale].clamp(0, 1).cpu()
        if bar is not None:
            bar.update()
        if on_tile is not None:
            on_tile()
    if bar is not None:
        bar.close()
    return out


def upscale_alpha(model, alpha, scale, alpha_upsampler='model', **kwargs):
    """Upscale an alpha channel, a 1×1×h×w tensor in [0, 1]; returns a CPU float32 1×1×sh×sw tensor in [0, 1].

    ``'model'``: the network on a grey replica (the alpha copied into R, G and B), its output converted back to grey
    with :data:`GREY_WEIGHTS`, as Real-ESRGAN does; ``kwargs`` go to :func:`upscale_tensor` (tiles, ``on_tile``).
    ``'bilinear'``: bilinear interpolation (half-pixel centres, as OpenCV's ``INTER_LINEAR``).
    """
    if alpha_upsampler == 'model':
        rgb = upscale_tensor(model, alpha.expand(-1, 3, -1, -1), scale, **kwargs)
        return (rgb * torch.tensor(GREY_WEIGHTS).view(1, 3, 1, 1)).sum(1, keepdim=True).clamp_(0, 1)
    if alpha_upsampler == 'bilinear':
        return F.interpolate(alpha.float(), scale_factor=scale, mode='bilinear', align_corners=False).clamp_(0, 1).cpu()
    raise ValueError(f'alpha_upsampler must be one of {ALPHA_UPSAMPLERS}, got {alpha_upsampler!r}')
