"""Every patch this plugin applies to basicsr 1.4.2, in one place.

Nothing here edits site-packages; each shim says which basicsr behaviour it replaces and why.
``apply_import_shims`` runs when ``srconvnet_plugin`` is imported, before anything imports basicsr.
"""
import importlib
import sys


def apply_import_shims():
    """Make ``import basicsr`` work on current torchvision."""
    # basicsr/data/degradations.py imports torchvision.transforms.functional_tensor, renamed to _functional_tensor
    # in torchvision 0.17; alias the new module under the old name so basicsr's eager imports succeed.
    try:
        importlib.import_module('torchvision.transforms.functional_tensor')
    except ImportError:
        sys.modules['torchvision.transforms.functional_tensor'] = importlib.import_module(
            'torchvision.transforms._functional_tensor')
