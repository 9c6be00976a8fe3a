"""Checkpoint → ``SRConvNet`` in eval mode, with torch alone: what ``srconvnet-infer`` and ``python -m
srconvnet.export`` load their network with (exporting reads no image, so it needs no OpenCV)."""
from srconvnet.archs.srconvnet_arch import SRConvNet
from srconvnet.checkpoints import load_srconvnet


class InferenceError(ValueError):
    """Bad input or option, with a message naming the file or value at fault."""


def load_model(weights, scale='auto', device='cpu'):
    """Build an ``SRConvNet`` from a checkpoint; returns ``(model in eval mode on device, config)``.

    ``weights`` is a BasicSR checkpoint (``{'params_ema': sd}`` is preferred over ``{'params': sd}`` when both are
    present, as in BasicSR's and Real-ESRGAN's inference), the authors' training checkpoint, a bare state dict or a
    ``.safetensors`` file (``checkpoints.load_srconvnet``). The configuration (scale included) comes from the tensor
    shapes; ``scale`` other than ``'auto'`` must agree.
    """
    state_dict, config = load_srconvnet(weights)
    if scale not in (None, 'auto'):
        try:
            wanted = int(scale)
        except (TypeError, ValueError):
            raise InferenceError(f'--scale must be "auto" or an integer, got {scale!r}') from None
        if wanted != config['upscale']:
            raise InferenceError(f'--scale {wanted} disagrees with {weights}, which holds a x{config["upscale"]} '
                                 'model; use --scale auto or the matching checkpoint')
    if config['num_in_ch'] != 3:
        raise InferenceError(f'{weights}: the model takes {config["num_in_ch"]} channels; this tool runs RGB models')
    model = SRConvNet(**config)
    model.load_state_dict(state_dict, strict=True)
    return model.eval().to(device), config
