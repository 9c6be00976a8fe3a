"""The "SRConvNet Upscale" node: its logic, importable without ComfyUI (the unit tests import it).

The node takes the ``UPSCALE_MODEL`` that ComfyUI's own "Load Upscale Model" gives (a spandrel
``ImageModelDescriptor``; ``__init__.py`` registers SRConvNet with spandrel so that loader reads SRConvNet files)
and an ``IMAGE`` (batch × height × width × 3 or 4, float in [0, 1]). It runs the network on the whole image by
default, which is exact; ``tile_size > 0`` runs tiles of that many input pixels with ``tile_overlap`` pixels of
context on every side to bound memory. Both go through the core's tiler (``srconvnet.tiling``, the one
``srconvnet-infer`` uses), and a fourth (alpha) channel is upscaled as ``srconvnet-infer`` does it.

``comfy.utils`` (the progress bar) and ``comfy.model_management`` (the device, freeing memory) are imported when the
node runs inside ComfyUI; without them it runs on the model's own device with no progress bar.
"""
import torch

from srconvnet.archs.srconvnet_arch import SRConvNet
from srconvnet.tiling import ALPHA_UPSAMPLERS, DEFAULT_TILE_PAD, tile_boxes, upscale_alpha, upscale_tensor

NODE_NAME = 'SRConvNet Upscale'
#: the largest tile size and overlap the node offers (input pixels)
MAX_TILE = 8192
#: the network's working set in float32 maps of ``num_feat`` channels over the largest piece, for ComfyUI's
#: ``free_memory`` (about 6 to 7 measured on CPU: docs/comfyui.md, "What tiling costs")
WORKING_MAPS = 8


def srconvnet_module(upscale_model):
    """The ``SRConvNet`` inside ``upscale_model`` (a spandrel descriptor); a ``ValueError`` naming the architecture
    of any other model (ComfyUI shows it as the node's error)."""
    module = getattr(upscale_model, 'model', None)
    if isinstance(module, SRConvNet):
        return module
    arch = getattr(upscale_model, 'architecture', None)
    name = getattr(arch, 'name', None) or type(module if module is not None else upscale_model).__name__
    raise ValueError(f'{NODE_NAME}: the upscale model is {name}, not SRConvNet; upscale it with ComfyUI\'s '
                     '"Upscale Image (using Model)" node, or load an SRConvNet checkpoint here')


def check_inputs(image, tile_size, tile_overlap, alpha_upsampler):
    if tile_size < 0 or tile_overlap < 0:
        raise ValueError(f'{NODE_NAME}: tile_size and tile_overlap must be >= 0, got {tile_size} and '
                         f'{tile_overlap}')
    if image.ndim != 4 or image.shape[-1] not in (3, 4):
        raise ValueError(f'{NODE_NAME}: expected an IMAGE of batch x height x width x 3 (RGB) or 4 (RGBA), got '
                         f'{tuple(image.shape)}')
    if alpha_upsampler not in ALPHA_UPSAMPLERS:
        raise ValueError(f'{NODE_NAME}: alpha_upsampler must be one of {ALPHA_UPSAMPLERS}, got '
                         f'{alpha_upsampler!r}')


def steps(image, tile_size, tile_overlap, alpha_upsampler='model'):
    """How many network passes :func:`upscale_images` makes: one per tile (a whole image is one), per image of the
    batch, twice for an alpha channel upscaled by the network."""
    batch, height, width, channels = image.shape
    passes = 2 if channels == 4 and alpha_upsampler == 'model' else 1
    return batch * passes * len(tile_boxes(height, width, tile_size, tile_overlap))


def upscale_images(model, image, scale, tile_size=0, tile_overlap=DEFAULT_TILE_PAD, alpha_upsampler='model',
                   device=None, on_tile=None):
    """Upscale a ComfyUI ``IMAGE`` with the SRConvNet ``model``; returns a CPU float32 batch × sH × sW × C tensor in
    [0, 1].

    Each image of the batch runs alone through the core's :func:`~srconvnet.tiling.upscale_tensor` on ``device``
    (default: the model's): whole when ``tile_size`` is 0 (exact), else in tiles. A fourth channel is alpha,
    upscaled by :func:`~srconvnet.tiling.upscale_alpha` (the network on a grey replica, or bilinearly). ``on_tile()``
    is called after every network pass.
    """
    check_inputs(image, tile_size, tile_overlap, alpha_upsampler)
    if device is None:
        device = next(model.parameters()).device
    if model.training:
        model.eval()
    kwargs = dict(tile=tile_size, tile_pad=tile_overlap, on_tile=on_tile)
    out = []
    for one in image:
        lq = one.movedim(-1, 0).unsqueeze(0).to(device=device, dtype=torch.float32)
        planes = [upscale_tensor(model, lq[:, :3], scale, **kwargs)]
        if lq.shape[1] == 4:
            planes.append(upscale_alpha(model, lq[:, 3:], scale, alpha_upsampler, **kwargs))
        out.append(torch.cat(planes, 1)[0].movedim(0, -1))
    return torch.stack(out)


def memory_required(model, image, tile_size, tile_overlap, scale):
    """Bytes to free on the device before a run (for ``comfy.model_management.free_memory``): the weights, one
    image in and out, and :data:`WORKING_MAPS` maps of ``num_feat`` channels over the largest piece."""
    _, height, width, _ = image.shape
    if tile_size > 0:
        height, width = min(height, tile_size + 2 * tile_overlap), min(width, tile_size + 2 * tile_overlap)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return (weights + image[0].numel() * 4 * (1 + scale * scale) +
            height * width * model.hyperparameters['num_feat'] * 4 * WORKING_MAPS)


def _comfy():
    """``(comfy.utils, comfy.model_management)`` inside ComfyUI, else ``(None, None)``."""
    try:
        import comfy.model_management
        import comfy.utils
    except ImportError:
        return None, None
    return comfy.utils, comfy.model_management


class SRConvNetUpscale:
    """ComfyUI node: upscale an IMAGE with an SRConvNet UPSCALE_MODEL, whole (exact) or in tiles."""

    DESCRIPTION = ('Upscale an image with an SRConvNet model from "Load Upscale Model". By default the whole image '
                   'runs at once, which is exact; a tile size bounds memory, and tiles differ slightly from the whole '
                   'image (SRConvNet looks at all of it).')
    RETURN_TYPES = ('IMAGE', )
    FUNCTION = 'upscale'
    CATEGORY = 'image/upscaling'

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 (ComfyUI's name)
        return {
            'required': {
                'upscale_model': ('UPSCALE_MODEL', ),
                'image': ('IMAGE', ),
            },
            'optional': {
                'tile_size': ('INT', {'default': 0, 'min': 0, 'max': MAX_TILE, 'step': 8,
                                      'tooltip': 'input pixels per tile side; 0 = the whole image at once (exact)'}),
                'tile_overlap': ('INT', {'default': DEFAULT_TILE_PAD, 'min': 0, 'max': MAX_TILE, 'step': 8,
                                         'tooltip': 'pixels of context around each tile (with tile_size > 0)'}),
                'alpha_upsampler': (list(ALPHA_UPSAMPLERS), {
                    'default': 'model', 'tooltip': 'RGBA images: alpha upscaled by the network or bilinearly'}),
            },
        }

    def upscale(self, upscale_model, image, tile_size=0, tile_overlap=DEFAULT_TILE_PAD, alpha_upsampler='model'):
        model = srconvnet_module(upscale_model)
        check_inputs(image, tile_size, tile_overlap, alpha_upsampler)
        utils, management = _comfy()
        if management is None:
            return (upscale_images(model, image, upscale_model.scale, tile_size, tile_overlap, alpha_upsampler), )
        device = management.get_torch_device()
        management.free_memory(memory_required(model, image, tile_size, tile_overlap, upscale_model.scale), device)
        pbar = utils.ProgressBar(steps(image, tile_size, tile_overlap, alpha_upsampler))
        model.to(device)
        try:
            out = upscale_images(model, image, upscale_model.scale, tile_size, tile_overlap, alpha_upsampler, device,
                                 on_tile=lambda: pbar.update(1))
        finally:
            model.to('cpu')  # where ComfyUI's own upscale node leaves its model
        return (out, )
