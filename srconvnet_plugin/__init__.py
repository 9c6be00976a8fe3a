"""SRConvNet for BasicSR.

Importing this package makes basicsr importable on today's torchvision and registers ``SRConvNet`` in
``basicsr.utils.registry.ARCH_REGISTRY``.
"""
from .compat import apply_import_shims

apply_import_shims()

from . import archs  # noqa: E402,F401  (registers the archs)

__version__ = '0.1.0'
