"""SRConvNet (Li et al., IJCV 2024) for PyTorch: the network, its inference engine, checkpoint reading and writing,
spandrel support, ONNX export and image inference. Needs torch (and numpy, safetensors); never imports basicsr.

The BasicSR toolbox side (registration in ``ARCH_REGISTRY``, training and test pipelines, option files) is the
``srconvnet_plugin`` package on top of this one.
"""
from srconvnet.archs.srconvnet_arch import SRConvNet

# the one version string: pyproject.toml reads it from here (dynamic = ["version"])
__version__ = '0.2.0'
__all__ = ['SRConvNet', '__version__']
