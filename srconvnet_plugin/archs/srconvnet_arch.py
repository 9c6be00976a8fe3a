"""SRConvNet in BasicSR's ``ARCH_REGISTRY``: the network is the core's (``srconvnet/archs/srconvnet_arch.py``,
torch alone); the toolbox registers that very class, so ``network_g: {type: SRConvNet}`` builds it."""
from basicsr.utils.registry import ARCH_REGISTRY

from srconvnet.archs.srconvnet_arch import SRConvNet

ARCH_REGISTRY.register()(SRConvNet)

__all__ = ['SRConvNet']
