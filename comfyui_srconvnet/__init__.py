"""SRConvNet for ComfyUI: link or copy this folder into ``ComfyUI/custom_nodes/`` (README.md beside this file).

Loading it registers SRConvNet with spandrel, so ComfyUI's own "Load Upscale Model" reads SRConvNet ``.pth`` and
``.safetensors`` files, and adds the "SRConvNet Upscale" node (``nodes.py``).
"""


def _install_command():
    """How to install the core for this folder, with the Python that runs it: from the repository above the folder's
    real location (a linked folder, or the checkout itself), else, for a copied folder, from the user's checkout."""
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    repository = here.parent
    if (repository / 'pyproject.toml').is_file() and (repository / 'srconvnet').is_dir():
        return f'"{sys.executable}" -m pip install "{repository}[spandrel]"'
    return (f'{here} is a copy with no srconvnet-plugin repository above it, so install the core from your checkout: '
            f'"{sys.executable}" -m pip install "/path/to/srconvnet-plugin[spandrel]"')


try:
    from srconvnet.spandrel_support import install
except ImportError as e:
    raise ImportError(f'the SRConvNet node needs the srconvnet package ({e}); install it with ComfyUI\'s Python, then '
                      f'restart ComfyUI: {_install_command()}') from e

from .nodes import SRConvNetUpscale

install()  # before ComfyUI's "Load Upscale Model" reads a file: SRConvNet in spandrel.MAIN_REGISTRY

NODE_CLASS_MAPPINGS = {'SRConvNetUpscale': SRConvNetUpscale}
NODE_DISPLAY_NAME_MAPPINGS = {'SRConvNetUpscale': 'SRConvNet Upscale'}
__all__ = ['NODE_CLASS_MAPPINGS', 'NODE_DISPLAY_NAME_MAPPINGS']
