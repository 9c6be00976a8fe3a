"""SRConvNet for the BasicSR toolbox (the layer above the torch-only ``srconvnet`` core).

With basicsr installed, importing this package makes basicsr importable on today's torchvision and registers
``SRConvNet`` in ``basicsr.utils.registry.ARCH_REGISTRY`` (and the plugin's training models in ``MODEL_REGISTRY``).
Without basicsr (a model user's install), it registers nothing: the documented names that re-export the core
(``srconvnet_plugin.spandrel_support``, ``python -m srconvnet_plugin.export``, ``.infer``, ``.convert``) still work,
and the toolbox's commands say in one line how to install the toolbox (:mod:`srconvnet_plugin.launch`).
"""
import importlib.util

from srconvnet import __version__  # noqa: F401  (one version for both layers)

from .launch import TOOLBOX_INSTALL, require_toolbox  # noqa: F401  (safe without the toolbox)

if importlib.util.find_spec('basicsr') is not None:
    from .patches.compat import apply_import_shims

    apply_import_shims()

    from . import archs, models  # noqa: E402,F401  (registers the archs and the models)

