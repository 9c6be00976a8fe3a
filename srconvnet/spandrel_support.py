"""SRConvNet for spandrel (the model loader of ComfyUI, chaiNNer and many upscaler front-ends).

Two lines in your own script (with spandrel installed: ``pip install spandrel``)::

    from srconvnet.spandrel_support import install; install()
    model = spandrel.ModelLoader().load_from_file('SRConvNet_x4.safetensors')  # or .pth / the authors' .pt

:func:`install` adds :class:`SRConvNetArch` to ``spandrel.MAIN_REGISTRY`` as ``spandrel_extra_arches.install()``
does for its architectures. Detection and configuration come from key names and tensor shapes, read by
``checkpoints.py`` like every other loader of the plugin: BasicSR checkpoints (``params_ema`` or ``params``; spandrel
unwraps them), the authors' training checkpoints (``model_state_dict``, ``module.`` prefixes, MeanShift entries) and
flat ``.safetensors`` files.

What the descriptor says, and why:

* ``purpose='SR'``, ``scale`` 2/3/4 and the channels from the shapes.
* ``supports_half=True``, ``supports_bfloat16=True``: a ``.half()`` / ``.bfloat16()`` model runs (tested on CPU,
  torch 2.14: outputs within 2e-3 / 1e-2 of float32 on [0, 1] images); the Fourier unit computes in float32
  internally (cuFFT in half precision takes only power-of-two sizes).
* ``tiling=ModelTiling.DISCOURAGED``: the attention's softmax and the Fourier unit's FFT span the whole image, so
  tiles change the output (docs/inference.md gives the numbers); run whole images where memory allows.
* no size requirements: every size from 1x1 up runs (the reference needs H*W >= 4; this port does not).
"""
try:
    import spandrel
    from spandrel import Architecture, ArchSupport, ImageModelDescriptor, ModelTiling, SizeRequirements
except ImportError as e:  # an optional extra
    raise ImportError(f'srconvnet.spandrel_support needs spandrel ({e}): pip install spandrel') from e

from srconvnet.checkpoints import is_srconvnet, srconvnet_state_dict

ARCH_ID = 'SRConvNet'


class SRConvNetArch(Architecture):
    """spandrel's view of SRConvNet: ``detect`` from key names, ``load`` from shapes."""

    def __init__(self):
        super().__init__(id=ARCH_ID, name='SRConvNet', detect=is_srconvnet)

    def load(self, state_dict):
        from srconvnet.archs.srconvnet_arch import SRConvNet
        stripped, config = srconvnet_state_dict(state_dict)
        model = SRConvNet(**config)
        model.load_state_dict(stripped, strict=True)
        return ImageModelDescriptor(
            model,
            stripped,
            architecture=self,
            purpose='SR',
            tags=[f'{config["num_feat"]}nf', f'{config["num_block"]}nb', f'{config["num_heads"]}nh',
                  f'{config["num_kernels"]}nk'],
            supports_half=True,
            supports_bfloat16=True,
            scale=config['upscale'],
            input_channels=config['num_in_ch'],
            output_channels=config['num_out_ch'],
            size_requirements=SizeRequirements(),
            tiling=ModelTiling.DISCOURAGED,
        )


def install(registry=None):
    """Register SRConvNet in ``registry`` (default ``spandrel.MAIN_REGISTRY``, which ``ModelLoader()`` uses);
    calling it again does nothing. Returns the ``ArchSupport`` entries added (empty when already there)."""
    registry = spandrel.MAIN_REGISTRY if registry is None else registry
    return registry.add(ArchSupport.from_architecture(SRConvNetArch()), ignore_duplicates=True)
