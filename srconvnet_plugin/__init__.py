"""SRConvNet for the BasicSR toolbox (the layer above the torch-only ``srconvnet`` core).

With basicsr installed, importing this package makes basicsr importable on today's torchvision and registers
``SRConvNet`` in ``basicsr.utils.registry.ARCH_REGISTRY`` (and the plugin's training models in ``MODEL_REGISTRY``).
Without basicsr (a model user's install), it registers nothing: the documented names that re-export the core
(``srconvnet_plugin.spandrel_support``, ``python -m srconvnet_plugin.export``) still work, and the toolbox modules
say how to install the toolbox.
"""
import importlib.util

from srconvnet import __version__  # noqa: F401  (one version for both layers)

#: how to install the toolbox side, for messages (run from the repository's root)
TOOLBOX_INSTALL = "bash scripts/setup_env.sh  (or: pip install --no-build-isolation '.[toolbox]')"

if importlib.util.find_spec('basicsr') is not None:
    from .patches.compat import apply_import_shims

    apply_import_shims()

    from . import archs, models  # noqa: E402,F401  (registers the archs and the models)


def require_toolbox(what):
    """Raise a ``ModuleNotFoundError`` that says how to install the toolbox, where basicsr is not installed."""
    if importlib.util.find_spec('basicsr') is None:
        raise ModuleNotFoundError(f'{what} needs the BasicSR toolbox (basicsr), which is not installed here; from the '
                                  f'srconvnet-plugin repository: {TOOLBOX_INSTALL}', name='basicsr')
