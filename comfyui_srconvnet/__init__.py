"""SRConvNet for ComfyUI: link or copy this folder into ``ComfyUI/custom_nodes/`` (README.md beside this file).

Loading it registers SRConvNet with spandrel, so ComfyUI's own "Load Upscale Model" reads SRConvNet ``.pth`` and
``.safetensors`` files, and adds the "SRConvNet Upscale" node (``nodes.py``).
"""
try:
    from srconvnet.spandrel_support import install
except ImportError as e:
    raise ImportError(f'the SRConvNet node needs the srconvnet package ({e}): run "pip install -r requirements.txt" '
                      'in this folder with ComfyUI\'s Python (see README.md there)') from e

from .nodes import SRConvNetUpscale

install()  # before ComfyUI's "Load Upscale Model" reads a file: SRConvNet in spandrel.MAIN_REGISTRY

NODE_CLASS_MAPPINGS = {'SRConvNetUpscale': SRConvNetUpscale}
NODE_DISPLAY_NAME_MAPPINGS = {'SRConvNetUpscale': 'SRConvNet Upscale'}
__all__ = ['NODE_CLASS_MAPPINGS', 'NODE_DISPLAY_NAME_MAPPINGS']
